//! AWS, one module per service: clients, reads that return plain data, and
//! the mutating calls the runtime asks for. What to do is decided in the core.

pub mod autoscaling;
pub mod cloudwatch;
pub mod convert;
pub mod ec2;
pub mod ecs;
pub mod elbv2;
pub mod eventbridge;
pub mod interceptor;
pub mod launch_template;
pub mod leftovers;
pub mod scheduler;

#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};

use interceptor::{ApiCallInterceptor, ReadOnly};

/// One client per AWS service, all built from the same settings.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    /// Read only: `import` reports ECS targets of EventBridge rules.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The switch the clients' interceptor enforces.
    pub read_only: ReadOnly,
}

/// Load AWS settings from the standard chain (env, profile, IMDS, IRSA).
///
/// Throttling is retried by the SDK (standard mode, 5 attempts, jittered
/// exponential backoff), and nowhere else, so no call is retried twice over.
pub async fn load_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

impl Clients {
    pub fn new(sdk: &SdkConfig, interceptor: ApiCallInterceptor) -> Self {
        let read_only = interceptor.read_only().clone();
        let ecs = aws_sdk_ecs::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let ec2 = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let elbv2 = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let autoscaling = aws_sdk_autoscaling::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let scheduler = aws_sdk_scheduler::config::Builder::from(sdk)
            .interceptor(interceptor.clone())
            .build();
        let eventbridge = aws_sdk_eventbridge::config::Builder::from(sdk)
            .interceptor(interceptor)
            .build();
        // Building a client costs no call: the ones no manifest needs stay idle.
        Clients {
            ecs: aws_sdk_ecs::Client::from_conf(ecs),
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::from_conf(elbv2),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch),
            scheduler: aws_sdk_scheduler::Client::from_conf(scheduler),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge),
            read_only,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation}: {message}")]
    Call {
        operation: &'static str,
        code: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Input(#[from] convert::InputError),
    /// Part of an observation could not be made: the pass must not act as if it
    /// had seen everything.
    #[error("incomplete observation: {0}")]
    Incomplete(String),
}

impl AwsError {
    /// A read that ran on a task and did not come back (it panicked or was cancelled).
    pub fn lost(what: &str, e: tokio::task::JoinError) -> Self {
        AwsError::Incomplete(format!("{what}: {e}"))
    }
}

impl AwsError {
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            AwsError::Input(_) | AwsError::Incomplete(_) => None,
        }
    }
}

/// Keep what an operator needs from an SDK error: the code and AWS's message.
pub(crate) fn call_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            (
                e.code().map(str::to_string),
                match (e.code(), e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => aws_sdk_ecs::error::DisplayErrorContext(&err).to_string(),
                },
            )
        }
        _ => (
            None,
            aws_sdk_ecs::error::DisplayErrorContext(&err).to_string(),
        ),
    };
    AwsError::Call {
        operation,
        code,
        message,
    }
}
