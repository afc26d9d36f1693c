//! ECS: observe services and task definitions, apply plans, read services for import.

pub mod apply;
pub mod hooks;
pub mod import;
pub mod observe;
pub mod rollouts;
pub mod services;
