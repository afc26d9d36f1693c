//! Orchestration: the reconciler and its phases, the daemon loop, status,
//! metrics, HTTP and webhooks. Imports the core and the adapters.

pub mod daemon;
pub mod desired;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod reconciler;
pub mod status;
pub mod wait;
pub mod webhook;

use std::sync::Arc;

use crate::adapters::aws::Clients;
use crate::adapters::aws::interceptor::{ApiCallInterceptor, CallCounts, ReadOnly};
use metrics::Metrics;

/// AWS clients whose every attempt is counted and reaches the metrics, and
/// whose mutating calls are refused while `read_only` is on.
pub fn clients(
    sdk: &aws_config::SdkConfig,
    metrics: Arc<Metrics>,
    read_only: ReadOnly,
) -> (Clients, Arc<CallCounts>) {
    let counts = Arc::new(CallCounts::default());
    let interceptor = ApiCallInterceptor::new(metrics, counts.clone(), read_only);
    (Clients::new(sdk, interceptor), counts)
}
