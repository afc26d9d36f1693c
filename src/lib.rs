pub mod http;
pub mod interceptor;
pub mod metrics;
pub mod status;
pub mod webhook;
