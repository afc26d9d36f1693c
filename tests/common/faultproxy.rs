//! A fault-injecting HTTP/1.1 proxy between ecsync and moto (issue 6, scope 1).
//!
//! [`FaultProxy::start`] listens on a free loopback port and forwards every request to moto on
//! `127.0.0.1:<port>` (it never forwards anywhere else). For a configurable, seeded share of
//! requests it answers instead with one of the [`Fault`] kinds, chosen uniformly from the
//! configured list:
//!
//! * [`Fault::Throttle`]: the throttling error of the request's protocol — ECS (awsJson):
//!   HTTP 400, `x-amzn-ErrorType: ThrottlingException`, `{"__type":"ThrottlingException",...}`;
//!   EC2 (ec2Query): HTTP 503 `<Code>RequestLimitExceeded</Code>`; ELBv2 (awsQuery): HTTP 400
//!   `<Code>Throttling</Code>`.
//! * [`Fault::ServerError`] (500) and [`Fault::Unavailable`] (503), in the protocol's shape.
//! * [`Fault::Slow`]: wait, then forward (the call succeeds late).
//! * [`Fault::Drop`]: read the request, then close the connection without answering (nothing
//!   reaches moto).
//! * [`Fault::LostAnswer`]: forward the request, then close the connection without passing the
//!   answer on: the call took effect but the caller cannot know (a retried `CreateService`
//!   meets a service that exists, a retried `RegisterTaskDefinition` registers twice).
//!
//! With [`FaultConfig::memoise_reads`] the proxy also answers a read (`Describe*`, `List*`,
//! `Get*`) that it has seen since the last write with moto's earlier answer, byte for byte. moto
//! serialises every member of every shape through botocore's model, about 2.4 ms per described
//! service on these cores, so a 1,000-service fleet costs moto seconds a pass; a soak that wants
//! thousands of passes measures ecsync, not moto's serializer. Any other operation clears the
//! memory before it goes out, so no write is ever answered from it and no read after a write sees
//! an older world. Faults are still drawn for every request, memoised or not.
//!
//! The seed fixes the sequence of decisions; which request gets which decision still depends on
//! the order concurrent requests arrive in. The proxy counts requests, injections per kind,
//! requests per operation and the peak number of requests in flight at once.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does instead of (or before) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Throttle,
    ServerError,
    Unavailable,
    Slow,
    Drop,
    LostAnswer,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Unavailable,
        Fault::Slow,
        Fault::Drop,
        Fault::LostAnswer,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// How often and how to misbehave. `rate` is the share of requests (0.0..=1.0) that get a fault.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub rate: f64,
    pub seed: u64,
    pub kinds: Vec<Fault>,
    /// How long [`Fault::Slow`] waits before forwarding.
    pub slow: Duration,
    /// Answer reads seen since the last write from memory (see the module docs).
    pub memo_reads: bool,
}

impl FaultConfig {
    /// Forward everything: a counting proxy.
    pub fn none() -> Self {
        FaultConfig {
            rate: 0.0,
            seed: 0,
            kinds: Fault::ALL.to_vec(),
            slow: Duration::from_millis(300),
            memo_reads: false,
        }
    }

    /// `rate` of requests get a fault, every kind equally likely.
    pub fn mixed(rate: f64, seed: u64) -> Self {
        FaultConfig {
            rate,
            seed,
            ..FaultConfig::none()
        }
    }

    /// Answer reads seen since the last write from memory (see the module docs).
    pub fn memoise_reads(self) -> Self {
        FaultConfig {
            memo_reads: true,
            ..self
        }
    }

    /// `rate` of requests get only this kind of fault.
    pub fn only(kind: Fault, rate: f64, seed: u64) -> Self {
        FaultConfig {
            rate,
            seed,
            kinds: vec![kind],
            ..FaultConfig::none()
        }
    }
}

struct Shared {
    upstream_port: u16,
    config: Mutex<(FaultConfig, fastrand::Rng)>,
    requests: AtomicU64,
    forwarded: AtomicU64,
    injected: [AtomicU64; 6],
    by_operation: Mutex<BTreeMap<String, u64>>,
    /// Reads answered from memory, keyed by request line, target and body.
    memo: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    memo_hits: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    stop: AtomicBool,
    /// Every request's operation and when it arrived and was answered, in the order answered.
    timeline: Mutex<Vec<Exchange>>,
}

/// One request through the proxy: what a bench needs to split a pass into its phases.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: String,
    pub arrived: std::time::SystemTime,
    pub answered: std::time::SystemTime,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(60);

impl FaultProxy {
    /// Start a proxy in front of moto listening on `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16, config: FaultConfig) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let rng = fastrand::Rng::with_seed(config.seed);
        let shared = Arc::new(Shared {
            upstream_port,
            config: Mutex::new((config, rng)),
            requests: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            injected: Default::default(),
            by_operation: Mutex::new(BTreeMap::new()),
            memo: Mutex::new(HashMap::new()),
            memo_hits: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            timeline: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept_shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        });
        FaultProxy { port, shared }
    }

    /// Change the fault rate from now on (e.g. 0.0 to verify the end state without faults).
    pub fn set_rate(&self, rate: f64) {
        self.shared.config.lock().unwrap().0.rate = rate;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: what `AWS_ENDPOINT_URL` should point at.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests received (faulted or not).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests passed on to moto (including slow ones).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// The requests that arrived at or after `since` and have been answered, in arrival order.
    pub fn exchanges_since(&self, since: std::time::SystemTime) -> Vec<Exchange> {
        let mut since_then: Vec<Exchange> = self
            .shared
            .timeline
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.arrived >= since)
            .cloned()
            .collect();
        since_then.sort_by_key(|e| e.arrived);
        since_then
    }

    /// Reads answered from memory instead of moto.
    pub fn memo_hits(&self) -> u64 {
        self.shared.memo_hits.load(Ordering::SeqCst)
    }

    /// Faults of this kind injected so far.
    pub fn injected(&self, kind: Fault) -> u64 {
        self.shared.injected[kind.index()].load(Ordering::SeqCst)
    }

    /// Faults of every kind injected so far.
    pub fn injected_total(&self) -> u64 {
        Fault::ALL.iter().map(|k| self.injected(*k)).sum()
    }

    /// Requests per operation (`DescribeServices`, `DescribeVpcs`, ...).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.shared.by_operation.lock().unwrap().clone()
    }

    /// The most requests that were being handled at the same moment.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Reset the peak-in-flight gauge (e.g. between phases of a test).
    pub fn reset_peak(&self) {
        self.shared.peak_in_flight.store(0, Ordering::SeqCst);
    }

    /// One line for failure messages and bench output.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = Fault::ALL
            .iter()
            .map(|k| format!("{k:?}={}", self.injected(*k)))
            .collect();
        format!(
            "{} requests, {} forwarded, {} answered from memory, injected: {}",
            self.requests(),
            self.forwarded(),
            self.memo_hits(),
            kinds.join(" ")
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One request as read off the wire.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The SigV4 credential scope's service (`ecs`, `ec2`, `elasticloadbalancing`).
    fn signing_service(&self) -> Option<&str> {
        let auth = self.header("authorization")?;
        let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
        scope.split('/').nth(3)
    }

    fn protocol(&self) -> Protocol {
        if self.header("x-amz-target").is_some() {
            Protocol::Json
        } else if self.signing_service() == Some("ec2")
            || String::from_utf8_lossy(&self.body).contains("Version=2016-11-15")
        {
            Protocol::Ec2
        } else {
            Protocol::Query
        }
    }

    fn is_read(&self) -> bool {
        let op = self.operation();
        ["Describe", "List", "Get"]
            .iter()
            .any(|p| op.starts_with(p))
    }

    /// What identifies a read's answer: the request line (path and query), the JSON target and
    /// the body. Signatures and dates are left out: they change on every attempt.
    fn memo_key(&self) -> Vec<u8> {
        let mut key = self
            .head
            .split("\r\n")
            .next()
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        key.push(b'\n');
        key.extend_from_slice(self.header("x-amz-target").unwrap_or_default().as_bytes());
        key.push(b'\n');
        key.extend_from_slice(&self.body);
        key
    }

    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        body.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("unknown")
            .to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// awsJson1_1 (ECS).
    Json,
    /// ec2Query.
    Ec2,
    /// awsQuery (ELBv2).
    Query,
}

fn serve(mut client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut pending = Vec::new();
    loop {
        let Some(req) = read_request(&mut client, &mut pending)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        *shared
            .by_operation
            .lock()
            .unwrap()
            .entry(req.operation())
            .or_default() += 1;
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let arrived = std::time::SystemTime::now();
        let result = handle(&mut client, &req, shared);
        shared.timeline.lock().unwrap().push(Exchange {
            operation: req.operation(),
            arrived,
            answered: std::time::SystemTime::now(),
        });
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !result? {
            return Ok(());
        }
    }
}

/// Answer one request; `Ok(false)` when the connection was closed on purpose.
fn handle(client: &mut TcpStream, req: &Request, shared: &Shared) -> io::Result<bool> {
    let (fault, memo_reads) = {
        let mut guard = shared.config.lock().unwrap();
        let (config, rng) = &mut *guard;
        // Always draw both numbers so the sequence depends only on the seed.
        let roll = rng.f64();
        let pick = rng.usize(..config.kinds.len().max(1));
        let fault = (roll < config.rate && !config.kinds.is_empty())
            .then(|| (config.kinds[pick], config.slow));
        (fault, config.memo_reads)
    };
    let memo_key = (memo_reads && req.is_read()).then(|| req.memo_key());
    if memo_reads && memo_key.is_none() {
        // A write, faulted or not, may change what every read answers.
        shared.memo.lock().unwrap().clear();
    }
    if let Some((kind, _)) = fault {
        shared.injected[kind.index()].fetch_add(1, Ordering::SeqCst);
    }
    let protocol = req.protocol();
    match fault {
        Some((Fault::Drop, _)) => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Some((Fault::Throttle, _)) => {
            let (status, headers, body) = match protocol {
                Protocol::Json => (
                    400,
                    "x-amzn-ErrorType: ThrottlingException\r\nContent-Type: application/x-amz-json-1.1\r\n",
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string(),
                ),
                Protocol::Ec2 => (
                    503,
                    "Content-Type: text/xml\r\n",
                    ec2_error("RequestLimitExceeded", "Request limit exceeded."),
                ),
                Protocol::Query => (
                    400,
                    "Content-Type: text/xml\r\n",
                    query_error("Throttling", "Rate exceeded"),
                ),
            };
            write_response(client, status, headers, body.as_bytes())?;
        }
        Some((kind @ (Fault::ServerError | Fault::Unavailable), _)) => {
            let (status, json_code, xml_code) = if kind == Fault::ServerError {
                (500, "ServerException", "InternalError")
            } else {
                (503, "ServiceUnavailableException", "Unavailable")
            };
            let (headers, body) = match protocol {
                Protocol::Json => (
                    format!(
                        "x-amzn-ErrorType: {json_code}\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    ),
                    format!(
                        r#"{{"__type":"{json_code}","message":"injected by the fault proxy"}}"#
                    ),
                ),
                Protocol::Ec2 => (
                    "Content-Type: text/xml\r\n".to_string(),
                    ec2_error(xml_code, "injected by the fault proxy"),
                ),
                Protocol::Query => (
                    "Content-Type: text/xml\r\n".to_string(),
                    query_error(xml_code, "injected by the fault proxy"),
                ),
            };
            write_response(client, status, &headers, body.as_bytes())?;
        }
        Some((Fault::LostAnswer, _)) => {
            fetch(req, shared)?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Some((Fault::Slow, delay)) => {
            std::thread::sleep(delay);
            answer(client, req, memo_key, shared)?;
        }
        None => answer(client, req, memo_key, shared)?,
    }
    Ok(true)
}

/// Forward the request, or with a memo key, answer from memory when the same read was
/// answered with 200 since the last write.
fn answer(
    client: &mut TcpStream,
    req: &Request,
    memo_key: Option<Vec<u8>>,
    shared: &Shared,
) -> io::Result<()> {
    let Some(key) = memo_key else {
        return send(client, &fetch(req, shared)?);
    };
    let cached = shared.memo.lock().unwrap().get(&key).cloned();
    if let Some(raw) = cached {
        shared.memo_hits.fetch_add(1, Ordering::SeqCst);
        return send(client, &raw);
    }
    let raw = fetch(req, shared)?;
    let ok = raw.split(|b| *b == b' ').nth(1) == Some(b"200".as_slice());
    if ok {
        // Without its Date: a replayed one would tell the SDK's clock-skew check that time
        // stood still.
        shared.memo.lock().unwrap().insert(key, without_date(&raw));
    }
    send(client, &raw)
}

fn without_date(raw: &[u8]) -> Vec<u8> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return raw.to_vec();
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&raw[end..]);
    out
}

fn send(client: &mut TcpStream, raw: &[u8]) -> io::Result<()> {
    client.write_all(raw)?;
    client.flush()
}

fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
    )
}

fn query_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}

fn write_response(
    client: &mut TcpStream,
    status: u16,
    headers: &str,
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes())?;
    client.write_all(body)?;
    client.flush()
}

/// Send the request to moto on a fresh connection (`Connection: close`) and read the whole
/// answer, re-framed for the client's kept-alive connection.
fn fetch(req: &Request, shared: &Shared) -> io::Result<Vec<u8>> {
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let mut upstream = TcpStream::connect(("127.0.0.1", shared.upstream_port))?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut lines = req.head.split("\r\n");
    let mut head = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&req.body)?;
    upstream.flush()?;
    let mut raw = Vec::new();
    upstream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut out = format!("{status_line}\r\n");
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
            continue;
        }
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(n) = length {
        body.truncate(n);
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    ));
    let mut raw = out.into_bytes();
    raw.extend_from_slice(&body);
    Ok(raw)
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_field = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_field.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or_else(bad)?);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Read one request (head and `Content-Length` body) from a kept-alive connection; `None` when
/// the client closed it between requests. Bytes past the request stay in `pending`.
fn read_request(client: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = match client.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if pending.is_empty() => {
                // An idle kept-alive connection timing out or being reset is a normal end.
                let _ = e;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let length = head
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let start = head_end + 4;
    while pending.len() < start + length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body cut short",
            ));
        }
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[start..start + length].to_vec();
    pending.drain(..start + length);
    Ok(Some(Request { head, body }))
}
