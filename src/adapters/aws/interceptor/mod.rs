//! Counts every AWS API attempt and refuses mutating calls while the
//! [`ReadOnly`] switch is on.
//!
//! Attach one [`ApiCallInterceptor`] to each service client's config builder with
//! `.interceptor(...)`. It is the single place that knows how many calls ecsync makes, and the
//! last line of defence for DESIGN §5: `--mode report` and `--dry-run` make no mutating call,
//! even if a bug upstream plans one. Who else wants to hear of each attempt (the runtime's
//! metrics) plugs in as a [`CallObserver`]; this module knows nothing of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The one switch that says "make no mutating AWS call": on for `--dry-run`
/// and `--mode report`, and flipped at run time by leader election, so a
/// replica that lost its lease cannot mutate even from a pass that is still
/// running (fencing at the client). Clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct ReadOnly(Arc<AtomicBool>);

impl ReadOnly {
    pub fn new(on: bool) -> Self {
        ReadOnly(Arc::new(AtomicBool::new(on)))
    }
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
}

/// Hears of every attempt, whatever its outcome.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    fn observe(&self, service: &str, operation: &str, result: CallResult);
}

/// Error codes that mean "slow down", across the awsJson (ECS) and query (EC2, ELBv2) protocols.
pub const THROTTLING_CODES: [&str; 7] = [
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "ProvisionedThroughputExceededException",
    "SlowDown",
];

/// Read-only by naming convention of the AWS APIs ecsync uses (ECS, EC2, ELBv2).
pub fn is_read_only_operation(operation: &str) -> bool {
    ["Describe", "List", "Get"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// Returned (inside the SDK error) for a mutating call attempted in read-only mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read-only mode: refusing mutating call {service}:{operation}")]
pub struct ReadOnlyViolation {
    pub service: String,
    pub operation: String,
}

impl ReadOnlyViolation {
    /// Finds a refusal anywhere in an SDK error's source chain, so callers can tell "refused by
    /// policy" from an AWS failure without matching on text.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a ReadOnlyViolation> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(v) = e.downcast_ref::<ReadOnlyViolation>() {
                return Some(v);
            }
            cur = e.source();
        }
        None
    }
}

/// The outcome of one attempt, as labelled in `ecsync_aws_api_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Ok,
    Throttled,
    Error,
}

impl CallResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Throttled => "throttled",
            CallResult::Error => "error",
        }
    }
}

/// Totals since start, for tests, logs and the end-of-pass summary.
#[derive(Debug, Default)]
pub struct CallCounts {
    total: AtomicU64,
    mutating: AtomicU64,
    throttled: AtomicU64,
    refused: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl CallCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts sent (each retry counts).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Attempts of mutating operations.
    pub fn mutating(&self) -> u64 {
        self.mutating.load(Ordering::Relaxed)
    }

    /// Attempts answered with throttling.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Mutating calls refused in read-only mode (never sent, so not in `total`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Attempts per `Service:Operation`, e.g. `ECS:DescribeServices`.
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, service: &str, operation: &str, result: CallResult) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if !is_read_only_operation(operation) {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        if result == CallResult::Throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        *self
            .by_operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!("{service}:{operation}"))
            .or_default() += 1;
    }
}

#[derive(Debug, Clone)]
pub struct ApiCallInterceptor {
    observer: Arc<dyn CallObserver>,
    counts: Arc<CallCounts>,
    read_only: ReadOnly,
}

impl ApiCallInterceptor {
    /// Refuses mutating calls while `read_only` is on.
    pub fn new(
        observer: Arc<dyn CallObserver>,
        counts: Arc<CallCounts>,
        read_only: ReadOnly,
    ) -> Self {
        ApiCallInterceptor {
            observer,
            counts,
            read_only,
        }
    }

    pub fn read_only(&self) -> &ReadOnly {
        &self.read_only
    }

    fn refuse_if_read_only(&self, cfg: &ConfigBag) -> Result<(), BoxError> {
        if !self.read_only.is_on() {
            return Ok(());
        }
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service(), m.name()),
            // Fail closed: an operation we cannot name might be mutating.
            None => (UNKNOWN, UNKNOWN),
        };
        if is_read_only_operation(operation) {
            return Ok(());
        }
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
        Err(Box::new(ReadOnlyViolation {
            service: service.to_owned(),
            operation: operation.to_owned(),
        }))
    }
}

const UNKNOWN: &str = "unknown";

impl Intercept for ApiCallInterceptor {
    fn name(&self) -> &'static str {
        "ecsync::ApiCallInterceptor"
    }

    // Not `read_before_execution`: for a client-level interceptor that hook runs before the
    // operation's runtime plugin has put `Metadata` in the bag. This hook runs once per
    // execution, before serialization, so a refusal sends nothing.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.refuse_if_read_only(cfg)
    }

    // And again before every attempt: the switch can close between the SDK's retries of
    // a mutation (a replica fenced mid-call), and no retry may go out after it.
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.refuse_if_read_only(cfg)
    }

    // Runs exactly once per attempt that started, whatever its outcome (including connection
    // errors and attempt timeouts), which is what makes retries visible.
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or((UNKNOWN, UNKNOWN), |m| (m.service(), m.name()));
        let result = classify(
            context.response(),
            matches!(context.output_or_error(), Some(Ok(_))),
        );
        self.counts.record(service, operation, result);
        self.observer.observe(service, operation, result);
        Ok(())
    }
}

/// Classifies an attempt from what came back on the wire. The modeled error types are per
/// operation and type-erased here, so the error code is read from the response the same way the
/// SDK's protocol parsers find it.
fn classify(response: Option<&HttpResponse>, succeeded: bool) -> CallResult {
    if succeeded {
        return CallResult::Ok;
    }
    let Some(response) = response else {
        // Connection refused, DNS, TLS, timeout: nothing came back.
        return CallResult::Error;
    };
    if response.status().as_u16() == 429 {
        return CallResult::Throttled;
    }
    match error_code(response) {
        Some(code) if THROTTLING_CODES.contains(&code.as_str()) => CallResult::Throttled,
        _ => CallResult::Error,
    }
}

/// The AWS error code of a failed response, for the awsJson 1.x protocol (ECS: header
/// `x-amzn-ErrorType`, else body `__type` or `code`) and the awsQuery / ec2Query protocols
/// (ELBv2, EC2: the first `<Code>` element).
pub fn error_code(response: &HttpResponse) -> Option<String> {
    if let Some(t) = response.headers().get("x-amzn-errortype") {
        return Some(sanitize_code(t).to_owned());
    }
    let body = response.body().bytes()?;
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(body) {
        return ["__type", "code", "Code"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(|v| v.as_str()))
            .map(|c| sanitize_code(c).to_owned());
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].trim().to_owned())
}

/// `aws.protocols#awsJson1_1` codes may carry a namespace (`com.amazonaws.ecs#X`) and a URL
/// suffix (`X:http://...`); both are dropped, as the SDK does.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim()
}

#[cfg(test)]
mod tests;
