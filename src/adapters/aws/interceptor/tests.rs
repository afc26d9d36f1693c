use super::*;
use std::collections::VecDeque;
use std::time::Duration;

use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned HTTP response: status, extra headers, body.
type Canned = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// A tiny HTTP/1.1 server answering each request with the next canned response (500 when
/// they run out) and remembering each request's `X-Amz-Target` or `Action=`, so tests see
/// exactly what reached the wire.
struct Responder {
    endpoint: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn responder(canned: Vec<Canned>) -> Responder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(VecDeque::from(canned)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, content_length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let cl = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (i + 4, cl);
                    }
                };
                while buf.len() < head_end + content_length {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let what = req
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .starts_with("x-amz-target:")
                            .then(|| l[13..].trim().to_owned())
                    })
                    .or_else(|| {
                        req[head_end..]
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("Action="))
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                seen.lock().unwrap().push(what);
                let (status, headers, body) =
                    queue
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((500, vec![], "{}"));
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(body);
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Responder { endpoint, seen }
}

/// Attempts by (service, operation, result), as an observer hears them.
#[derive(Debug, Default)]
struct Recorder(Mutex<BTreeMap<(String, String, &'static str), u64>>);

impl CallObserver for Recorder {
    fn observe(&self, service: &str, operation: &str, result: CallResult) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((service.into(), operation.into(), result.as_str()))
            .or_default() += 1;
    }
}

struct Probe {
    calls: Arc<Recorder>,
    counts: Arc<CallCounts>,
    interceptor: ApiCallInterceptor,
}

fn probe(read_only: bool) -> Probe {
    let calls = Arc::new(Recorder::default());
    let counts = Arc::new(CallCounts::new());
    let interceptor =
        ApiCallInterceptor::new(calls.clone(), counts.clone(), ReadOnly::new(read_only));
    Probe {
        calls,
        counts,
        interceptor,
    }
}

fn retry(max_attempts: u32) -> aws_smithy_types::retry::RetryConfig {
    aws_smithy_types::retry::RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(Duration::from_millis(1))
}

fn timeouts() -> aws_smithy_types::timeout::TimeoutConfig {
    aws_smithy_types::timeout::TimeoutConfig::builder()
        .operation_timeout(Duration::from_secs(20))
        .build()
}

fn ecs(endpoint: &str, i: &ApiCallInterceptor, attempts: u32) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry(attempts))
        .timeout_config(timeouts())
        .interceptor(i.clone())
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

fn ec2(endpoint: &str, i: &ApiCallInterceptor) -> aws_sdk_ec2::Client {
    use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry(1))
        .timeout_config(timeouts())
        .interceptor(i.clone())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

fn elbv2(endpoint: &str, i: &ApiCallInterceptor) -> aws_sdk_elasticloadbalancingv2::Client {
    use aws_sdk_elasticloadbalancingv2::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_elasticloadbalancingv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry(1))
        .timeout_config(timeouts())
        .interceptor(i.clone())
        .build();
    aws_sdk_elasticloadbalancingv2::Client::from_conf(conf)
}

const JSON: (&str, &str) = ("content-type", "application/x-amz-json-1.1");
const XML: (&str, &str) = ("content-type", "text/xml");

fn aws_calls(r: &Recorder, service: &str, operation: &str, result: &str) -> u64 {
    r.0.lock()
        .unwrap()
        .iter()
        .find(|((s, o, res), _)| s == service && o == operation && *res == result)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn success_counts_ok() {
    let p = probe(false);
    let r = responder(vec![(200, vec![JSON], r#"{"services":[],"failures":[]}"#)]).await;
    ecs(&r.endpoint, &p.interceptor, 1)
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .unwrap();
    assert_eq!(aws_calls(&p.calls, "ECS", "DescribeServices", "ok"), 1);
    assert_eq!(p.counts.total(), 1);
    assert_eq!(p.counts.mutating(), 0);
    assert_eq!(p.counts.throttled(), 0);
    assert_eq!(
        p.counts.by_operation(),
        BTreeMap::from([("ECS:DescribeServices".to_owned(), 1)])
    );
}

#[tokio::test]
async fn every_retry_attempt_is_counted_and_throttling_recognised() {
    let p = probe(false);
    let r = responder(vec![
        // Code in the body only, namespaced, as ECS sends it.
        (
            400,
            vec![JSON],
            r#"{"__type":"com.amazonaws.ecs#ThrottlingException","message":"Rate exceeded"}"#,
        ),
        // Code in the header only, with the URL suffix some services add.
        (
            400,
            vec![
                JSON,
                (
                    "x-amzn-ErrorType",
                    "ThrottlingException:http://internal.amazon.com/",
                ),
            ],
            "{}",
        ),
        (200, vec![JSON], r#"{"services":[],"failures":[]}"#),
    ])
    .await;
    ecs(&r.endpoint, &p.interceptor, 3)
        .describe_services()
        .cluster("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(r.seen.lock().unwrap().len(), 3);
    assert_eq!(
        aws_calls(&p.calls, "ECS", "DescribeServices", "throttled"),
        2
    );
    assert_eq!(aws_calls(&p.calls, "ECS", "DescribeServices", "ok"), 1);
    assert_eq!(p.counts.total(), 3);
    assert_eq!(p.counts.throttled(), 2);
}

#[tokio::test]
async fn http_429_is_throttled() {
    let p = probe(false);
    let r = responder(vec![(429, vec![JSON], "{}")]).await;
    let err = ecs(&r.endpoint, &p.interceptor, 1)
        .list_services()
        .send()
        .await;
    assert!(err.is_err());
    assert_eq!(aws_calls(&p.calls, "ECS", "ListServices", "throttled"), 1);
}

#[tokio::test]
async fn server_error_and_other_codes_count_error() {
    let p = probe(false);
    let r = responder(vec![
        (
            500,
            vec![JSON],
            r#"{"__type":"ServerException","message":"boom"}"#,
        ),
        (
            400,
            vec![JSON],
            r#"{"__type":"ClusterNotFoundException","message":"no"}"#,
        ),
        // ECS's LimitExceededException is a quota, not a rate: not throttling.
        (
            400,
            vec![JSON],
            r#"{"__type":"LimitExceededException","message":"no"}"#,
        ),
    ])
    .await;
    let client = ecs(&r.endpoint, &p.interceptor, 1);
    for _ in 0..3 {
        assert!(client.describe_clusters().send().await.is_err());
    }
    assert_eq!(aws_calls(&p.calls, "ECS", "DescribeClusters", "error"), 3);
    assert_eq!(p.counts.throttled(), 0);
}

#[tokio::test]
async fn connection_refused_counts_error_per_attempt() {
    let p = probe(false);
    // Bind then drop, so nothing listens on the port.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let res = ecs(&format!("http://{addr}"), &p.interceptor, 2)
        .describe_services()
        .send()
        .await;
    assert!(res.is_err());
    assert_eq!(aws_calls(&p.calls, "ECS", "DescribeServices", "error"), 2);
    assert_eq!(p.counts.total(), 2);
}

#[tokio::test]
async fn ec2_query_protocol_throttling() {
    let p = probe(false);
    let r = responder(vec![(
            503,
            vec![XML],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
        )])
        .await;
    assert!(
        ec2(&r.endpoint, &p.interceptor)
            .describe_instances()
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        aws_calls(&p.calls, "EC2", "DescribeInstances", "throttled"),
        1
    );
}

#[tokio::test]
async fn elbv2_query_protocol_throttling_and_error() {
    let p = probe(false);
    let r = responder(vec![
            (
                400,
                vec![XML],
                "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>",
            ),
            (
                400,
                vec![XML],
                "<ErrorResponse><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code><Message>x</Message></Error><RequestId>r-2</RequestId></ErrorResponse>",
            ),
        ])
        .await;
    let client = elbv2(&r.endpoint, &p.interceptor);
    assert!(client.describe_target_groups().send().await.is_err());
    assert!(client.describe_target_groups().send().await.is_err());
    let svc = "Elastic Load Balancing v2";
    assert_eq!(
        aws_calls(&p.calls, svc, "DescribeTargetGroups", "throttled"),
        1
    );
    assert_eq!(aws_calls(&p.calls, svc, "DescribeTargetGroups", "error"), 1);
}

#[tokio::test]
async fn read_only_refuses_mutating_calls_before_sending() {
    let p = probe(true);
    let r = responder(vec![(200, vec![JSON], r#"{"services":[],"failures":[]}"#)]).await;
    let client = ecs(&r.endpoint, &p.interceptor, 3);
    let err = client
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(3)
        .send()
        .await
        .unwrap_err();
    let violation = ReadOnlyViolation::find(&err).expect("refusal in the error chain");
    assert_eq!(
        violation.to_string(),
        "read-only mode: refusing mutating call ECS:UpdateService"
    );
    assert!(r.seen.lock().unwrap().is_empty(), "a request was sent");
    assert_eq!(p.counts.total(), 0);
    assert_eq!(p.counts.mutating(), 0);
    assert_eq!(p.counts.refused(), 1);

    // Reads still go through in read-only mode.
    client.describe_services().send().await.unwrap();
    assert_eq!(
        *r.seen.lock().unwrap(),
        vec!["AmazonEC2ContainerServiceV20141113.DescribeServices".to_owned()]
    );
    assert_eq!(p.counts.total(), 1);
}

/// Closes the switch as soon as it hears of an attempt: a replica fenced while
/// the SDK is between retries of a mutation.
#[derive(Debug)]
struct FenceAfterAttempt(ReadOnly);

impl CallObserver for FenceAfterAttempt {
    fn observe(&self, _service: &str, _operation: &str, _result: CallResult) {
        self.0.set(true);
    }
}

#[tokio::test]
async fn a_fence_closed_between_retries_stops_the_next_attempt() {
    let switch = ReadOnly::new(false);
    let counts = Arc::new(CallCounts::new());
    let interceptor = ApiCallInterceptor::new(
        Arc::new(FenceAfterAttempt(switch.clone())),
        counts.clone(),
        switch,
    );
    // A retryable failure, then what a retry would have been answered.
    let r = responder(vec![
        (
            500,
            vec![JSON],
            r#"{"__type":"ServerException","message":"boom"}"#,
        ),
        (200, vec![JSON], r#"{"service":{}}"#),
    ])
    .await;
    let err = ecs(&r.endpoint, &interceptor, 3)
        .update_service()
        .cluster("prod")
        .service("web")
        .desired_count(3)
        .send()
        .await
        .unwrap_err();
    assert!(ReadOnlyViolation::find(&err).is_some(), "{err:?}");
    assert_eq!(
        r.seen.lock().unwrap().len(),
        1,
        "a retry went out after the fence"
    );
    assert_eq!(counts.refused(), 1);
}

#[tokio::test]
async fn read_write_mode_sends_and_counts_mutating_calls() {
    let p = probe(false);
    let r = responder(vec![(200, vec![JSON], r#"{}"#)]).await;
    ecs(&r.endpoint, &p.interceptor, 1)
        .update_service()
        .cluster("prod")
        .service("web")
        .send()
        .await
        .unwrap();
    assert_eq!(p.counts.mutating(), 1);
    assert_eq!(p.counts.refused(), 0);
    assert_eq!(aws_calls(&p.calls, "ECS", "UpdateService", "ok"), 1);
}

#[tokio::test]
async fn works_alongside_aws_smithy_mocks() {
    use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};
    let ok = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder().build()
    });
    let throttled = mock!(aws_sdk_ecs::Client::list_services).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"ThrottlingException","message":"slow"}"#),
        )
    });
    let p = probe(false);
    use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .retry_config(retry(1))
        .interceptor(
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .with_rule(&ok)
                .with_rule(&throttled),
        )
        .interceptor(p.interceptor.clone())
        .build();
    let client = aws_sdk_ecs::Client::from_conf(conf);
    client.describe_services().send().await.unwrap();
    assert!(client.list_services().send().await.is_err());
    assert_eq!(aws_calls(&p.calls, "ECS", "DescribeServices", "ok"), 1);
    assert_eq!(aws_calls(&p.calls, "ECS", "ListServices", "throttled"), 1);
}

#[test]
fn read_only_operation_names() {
    for op in ["DescribeServices", "ListTasks", "GetParameters"] {
        assert!(is_read_only_operation(op), "{op}");
    }
    for op in [
        "UpdateService",
        "CreateService",
        "DeleteService",
        "RegisterTaskDefinition",
        "ModifyListener",
        "StopInstances",
        "TerminateInstances",
        "CreateTags",
    ] {
        assert!(!is_read_only_operation(op), "{op}");
    }
}

#[test]
fn sanitizes_json_error_codes() {
    assert_eq!(
        sanitize_code("com.amazonaws.ecs#ThrottlingException"),
        "ThrottlingException"
    );
    assert_eq!(
        sanitize_code("ThrottlingException:http://x/"),
        "ThrottlingException"
    );
    assert_eq!(sanitize_code("aws.ecs#Throttling:http://x/"), "Throttling");
    assert_eq!(sanitize_code("SlowDown"), "SlowDown");
}
