//! The /v1 API client against a scripted HTTP/1.1 peer on 127.0.0.1 that
//! this test process starts. The tests cover status handling, retries and
//! their waits, pagination, credential acquisition and the OpenAPI check.
//! Every error and log line is checked for the API key.

use bridge::config::Secret;
use bridge::exit::ExitStatus;
use bridge::trax::api::{ApiClient, ApiConfig, ApiError, Protocol, RetryPolicy, Sleeper};
use bridge::trax::credential::Credential;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "trx_test_key_Zq81xVb27PmmW0";

/// How long the peer waits for the client's next connection before it
/// stops serving.
const PEER_IDLE_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Scripted peer

/// What the peer does with one connection.
enum Step {
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Reads the request and never responds, holding the connection open.
    Hang,
}

fn reply(status: u16, body: &str) -> Step {
    Step::Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn reply_with(status: u16, headers: &[(&'static str, &str)], body: &str) -> Step {
    Step::Reply {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect(),
        body: body.to_string(),
    }
}

fn envelope(code: &str, message: &str, request_id: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message, "requestId": request_id}})
        .to_string()
}

#[derive(Clone, Debug)]
struct Recorded {
    at: Instant,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

struct Peer {
    origin: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Peer {
    /// Serves `steps` in order, one connection each, then closes the
    /// listener.
    fn start(steps: Vec<Step>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test peer on loopback");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        thread::spawn(move || serve(listener, steps, recorded));
        Peer { origin, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(listener: TcpListener, steps: Vec<Step>, recorded: Arc<Mutex<Vec<Recorded>>>) {
    listener.set_nonblocking(true).unwrap();
    for step in steps {
        let Some(stream) = accept_within(&listener, PEER_IDLE_LIMIT) else {
            return;
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let Some(request) = read_request(&stream) else {
            continue;
        };
        recorded.lock().unwrap().push(request);
        match step {
            Step::Reply {
                status,
                headers,
                body,
            } => write_response(stream, status, &headers, &body),
            Step::Hang => {
                thread::spawn(move || {
                    thread::sleep(Duration::from_secs(10));
                    drop(stream);
                });
            }
        }
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
    None
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        at,
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn write_response(mut stream: TcpStream, status: u16, headers: &[(&str, String)], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

// ---------------------------------------------------------------------------
// Client helpers

fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        max_retry_after: Duration::from_secs(5),
    }
}

fn config(origin: &str, max_attempts: u32) -> ApiConfig {
    captured_logs();
    ApiConfig {
        origin: origin.to_string(),
        key: Some(Secret::new("API key", KEY)),
        ca_file: None,
        timeout: Duration::from_secs(5),
        retry: fast_policy(max_attempts),
    }
}

fn client(peer: &Peer, max_attempts: u32) -> ApiClient {
    ApiClient::new(config(&peer.origin, max_attempts)).unwrap()
}

/// Returns a client whose waits are recorded instead of slept.
fn recording_client(peer: &Peer, max_attempts: u32) -> (ApiClient, Arc<Mutex<Vec<Duration>>>) {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let record = delays.clone();
    let sleeper: Sleeper = Arc::new(move |delay| record.lock().unwrap().push(delay));
    (client(peer, max_attempts).with_sleeper(sleeper), delays)
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the API key leaked into: {text}");
}

fn assert_error_clean(error: &ApiError) {
    assert_no_key(&error.to_string());
    assert_no_key(&format!("{error:?}"));
}

fn studio_page(ids: &[&str], next_cursor: Option<&str>) -> String {
    let data: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "name": format!("Studio {id}")}))
        .collect();
    serde_json::json!({"data": data, "nextCursor": next_cursor}).to_string()
}

/// Returns a compact JWS with the given claims and a dummy signature.
fn jwt(claims: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

// ---------------------------------------------------------------------------
// Headers and base URL

#[test]
fn requests_carry_key_and_user_agent() {
    let peer = Peer::start(vec![reply(200, &studio_page(&["std_1"], None))]);
    client(&peer, 1).studios().unwrap();

    let requests = peer.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/v1/studios?limit=200");
    let expected_authorization = format!("Bearer {KEY}");
    assert_eq!(
        request.header("authorization"),
        Some(expected_authorization.as_str())
    );
    let expected_agent = format!("bridge/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(request.header("user-agent"), Some(expected_agent.as_str()));
    assert_eq!(request.header("accept"), Some("application/json"));
}

#[test]
fn health_and_spec_send_no_key() {
    let spec = r#"{"paths": {}}"#;
    let peer = Peer::start(vec![reply(200, "{}"), reply(200, spec)]);
    let client = client(&peer, 1);
    client.health().unwrap();
    client.check_operations().unwrap();

    let requests = peer.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].target, "/v1/health");
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(requests[1].target, "/v1/openapi.json");
    assert_eq!(requests[1].header("authorization"), None);
}

#[test]
fn origin_with_v1_not_doubled() {
    let peer = Peer::start(vec![reply(200, "{}")]);
    let client = ApiClient::new(config(&format!("{}/v1/", peer.origin), 1)).unwrap();
    assert_eq!(client.base_url(), format!("{}/v1", peer.origin));
    client.health().unwrap();
    assert_eq!(peer.requests()[0].target, "/v1/health");
}

#[test]
fn missing_key_is_usage_error() {
    let peer = Peer::start(vec![]);
    let mut config = config(&peer.origin, 1);
    config.key = None;
    let error = ApiClient::new(config).unwrap().studios().unwrap_err();
    assert!(matches!(error, ApiError::MissingKey { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert!(peer.requests().is_empty());
}

// ---------------------------------------------------------------------------
// Error envelope and statuses

#[test]
fn envelope_and_request_id_in_message() {
    let body = envelope("invalid_request", "limit must be at most 200", "req_body_1");
    let peer = Peer::start(vec![reply_with(
        400,
        &[("X-Request-Id", "req_hdr_7")],
        &body,
    )]);
    let error = client(&peer, 3).studios().unwrap_err();
    let text = error.to_string();

    assert!(matches!(error, ApiError::BadRequest { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(text.contains("code 'invalid_request'"), "{text}");
    assert!(text.contains("limit must be at most 200"), "{text}");
    assert!(text.contains("request id 'req_hdr_7'"), "{text}");
    assert!(text.contains("GET http://127.0.0.1:"), "{text}");
    assert_eq!(peer.requests().len(), 1);
    assert_error_clean(&error);
}

#[test]
fn envelope_request_id_without_header() {
    let body = envelope("conflict", "busy", "req_body_2");
    let peer = Peer::start(vec![reply(409, &body)]);
    let error = client(&peer, 3).studios().unwrap_err();
    let text = error.to_string();
    assert!(text.contains("request id 'req_body_2'"), "{text}");
    assert!(text.contains("HTTP 409"), "{text}");
    assert_eq!(error.exit_status(), ExitStatus::Other);
}

#[test]
fn non_json_error_body_readable() {
    let html = "<html><body><h1>418 I'm a teapot</h1></body></html>";
    let peer = Peer::start(vec![reply_with(418, &[("X-Request-Id", "edge-55")], html)]);
    let error = client(&peer, 3).studios().unwrap_err();
    let text = error.to_string();
    assert!(text.contains("HTTP 418"), "{text}");
    assert!(text.contains("request id 'edge-55'"), "{text}");
    assert!(text.contains("body '418 I'm a teapot'"), "{text}");
    assert_eq!(peer.requests().len(), 1);
}

#[test]
fn unauthorized_not_retried() {
    let echo = format!("bad key {KEY}");
    let body = envelope("unauthorized", &echo, "req_401");
    let peer = Peer::start(vec![reply(401, &body), reply(200, "{}")]);
    let error = client(&peer, 4).studios().unwrap_err();
    let text = error.to_string();

    assert!(matches!(error, ApiError::Unauthorized { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Credentials);
    assert!(text.contains("rejected the API key"), "{text}");
    assert!(text.contains("code 'unauthorized'"), "{text}");
    assert!(text.contains("request id 'req_401'"), "{text}");
    assert_eq!(peer.requests().len(), 1);
    assert_error_clean(&error);
}

#[test]
fn forbidden_not_retried() {
    let body = envelope("forbidden", "role viewer cannot publish", "req_403");
    let peer = Peer::start(vec![reply(403, &body), reply(200, "{}")]);
    let error = client(&peer, 4)
        .acquire("src_1", Protocol::Srt)
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApiError::Forbidden { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Credentials);
    assert!(text.contains("lacks permission"), "{text}");
    assert!(text.contains("request id 'req_403'"), "{text}");
    assert_eq!(peer.requests().len(), 1);
}

#[test]
fn unknown_source_is_usage_error() {
    let body = envelope("not_found", "no such source", "req_404");
    let peer = Peer::start(vec![reply(404, &body)]);
    let error = client(&peer, 4)
        .acquire("src_missing", Protocol::Srt)
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApiError::UnknownSource { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert!(text.contains("source 'src_missing' not found"), "{text}");
    assert!(text.contains("request id 'req_404'"), "{text}");
    assert_eq!(peer.requests().len(), 1);
}

#[test]
fn write_disabled_not_retried() {
    let body = envelope("write_disabled", "maintenance", "req_503");
    let peer = Peer::start(vec![reply(503, &body), reply(201, "{}")]);
    let (client, delays) = recording_client(&peer, 4);
    let error = client.acquire("src_1", Protocol::Srt).unwrap_err();
    let text = error.to_string();

    assert!(matches!(error, ApiError::WriteDisabled { .. }), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(text.contains("writes are switched off"), "{text}");
    assert!(text.contains("request id 'req_503'"), "{text}");
    assert_eq!(peer.requests().len(), 1);
    assert!(delays.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Retries

#[test]
fn server_errors_retried_then_success() {
    let peer = Peer::start(vec![
        reply(502, "<html>Bad Gateway</html>"),
        reply(500, &envelope("internal", "oops", "req_500")),
        reply(200, &studio_page(&["std_1"], None)),
    ]);
    let (client, delays) = recording_client(&peer, 4);
    let studios = client.studios().unwrap();

    assert_eq!(studios.len(), 1);
    assert_eq!(peer.requests().len(), 3);
    let delays = delays.lock().unwrap().clone();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] >= Duration::from_millis(10), "{delays:?}");
    assert!(delays[0] <= Duration::from_millis(20), "{delays:?}");
    assert!(delays[1] >= Duration::from_millis(20), "{delays:?}");
    assert!(delays[1] <= Duration::from_millis(40), "{delays:?}");
}

#[test]
fn server_errors_exhaust_attempts() {
    let peer = Peer::start(vec![
        reply(500, "a"),
        reply(502, "b"),
        reply_with(503, &[("X-Request-Id", "req_last")], "c"),
    ]);
    let (client, delays) = recording_client(&peer, 3);
    let error = client.studios().unwrap_err();
    let text = error.to_string();

    assert!(
        matches!(error, ApiError::ServerError { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(text.contains("request id 'req_last'"), "{text}");
    assert_eq!(peer.requests().len(), 3);
    assert_eq!(delays.lock().unwrap().len(), 2);
}

#[test]
fn retry_after_seconds_honoured() {
    let peer = Peer::start(vec![
        reply_with(
            429,
            &[("Retry-After", "1")],
            &envelope("rate_limited", "slow", "r1"),
        ),
        reply(200, &studio_page(&["std_1"], None)),
    ]);
    client(&peer, 3).studios().unwrap();

    let requests = peer.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(1000), "waited {waited:?}");
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
}

#[test]
fn retry_after_http_date_honoured() {
    let at = SystemTime::now() + Duration::from_secs(2);
    let date = httpdate::fmt_http_date(at);
    let peer = Peer::start(vec![
        reply_with(429, &[("Retry-After", date.as_str())], ""),
        reply(200, &studio_page(&["std_1"], None)),
    ]);
    client(&peer, 3).studios().unwrap();

    let requests = peer.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    // The date has whole seconds, so the wait lies between 1 s and 2 s.
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(waited < Duration::from_millis(3000), "waited {waited:?}");
}

#[test]
fn retry_after_missing_uses_backoff() {
    let peer = Peer::start(vec![reply(429, ""), reply(200, &studio_page(&[], None))]);
    let (client, delays) = recording_client(&peer, 3);
    client.studios().unwrap();
    let delays = delays.lock().unwrap().clone();
    assert_eq!(delays.len(), 1);
    assert!(delays[0] <= Duration::from_millis(20), "{delays:?}");
}

#[test]
fn rate_limit_exhausts_attempts() {
    let limited = || {
        reply_with(
            429,
            &[("Retry-After", "0")],
            &envelope("rate_limited", "slow", "r9"),
        )
    };
    let peer = Peer::start(vec![limited(), limited(), limited(), reply(200, "{}")]);
    let (client, delays) = recording_client(&peer, 3);
    let error = client.studios().unwrap_err();
    let text = error.to_string();

    assert!(
        matches!(error, ApiError::RateLimited { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(text.contains("rate limited"), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.contains("request id 'r9'"), "{text}");
    assert_eq!(peer.requests().len(), 3);
    assert_eq!(delays.lock().unwrap().len(), 2);
}

#[test]
fn retry_after_beyond_limit_stops() {
    let peer = Peer::start(vec![reply_with(429, &[("Retry-After", "3600")], "")]);
    let (client, delays) = recording_client(&peer, 3);
    let error = client.studios().unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ApiError::RetryAfterTooLong { .. }),
        "{error:?}"
    );
    assert!(text.contains("3600 s"), "{text}");
    assert!(text.contains("the 5 s the client accepts"), "{text}");
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(delays.lock().unwrap().is_empty());
}

#[test]
fn timeout_is_bounded() {
    let peer = Peer::start(vec![Step::Hang, Step::Hang]);
    let mut config = config(&peer.origin, 2);
    config.timeout = Duration::from_millis(300);
    let client = ApiClient::new(config).unwrap();

    let started = Instant::now();
    let error = client.studios().unwrap_err();
    let elapsed = started.elapsed();
    let text = error.to_string();

    assert!(
        matches!(
            error,
            ApiError::Transport {
                attempts: 2,
                timed_out: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert!(text.contains("after 2 attempts"), "{text}");
    assert!(text.contains("timed out after 300 ms"), "{text}");
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(peer.requests().len(), 2);
}

#[test]
fn connection_refused_retried() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = config(&format!("http://127.0.0.1:{port}"), 3);
    config.timeout = Duration::from_secs(2);
    let delays = Arc::new(Mutex::new(Vec::new()));
    let record = delays.clone();
    let client = ApiClient::new(config)
        .unwrap()
        .with_sleeper(Arc::new(move |delay| record.lock().unwrap().push(delay)));

    let error = client.studios().unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            error,
            ApiError::Transport {
                attempts: 3,
                timed_out: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(text.contains("cannot connect"), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
    assert_eq!(delays.lock().unwrap().len(), 2);
}

#[test]
fn retries_logged_without_key() {
    let echo = format!("{{\"seen\":\"Bearer {KEY}\"}}");
    let peer = Peer::start(vec![
        reply_with(500, &[("X-Request-Id", KEY)], &echo),
        reply_with(429, &[("Retry-After", "0")], &envelope("rate", &echo, KEY)),
        reply(200, &studio_page(&["std_1"], None)),
    ]);
    let (client, _) = recording_client(&peer, 4);
    client.studios().unwrap();

    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = logs.lines().filter(|l| l.contains(&peer.origin)).collect();
    let retries: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{logs}");
    assert!(retries[0].contains("WARN"), "{logs}");
    assert!(retries[0].contains("attempt=1"), "{logs}");
    assert!(retries[0].contains("delay_ms="), "{logs}");
    assert!(retries[0].contains("HTTP 500"), "{logs}");
    assert!(retries[1].contains("attempt=2"), "{logs}");
    assert!(retries[1].contains("rate limited"), "{logs}");
    let responses = ours
        .iter()
        .filter(|l| l.contains("TRaX API response"))
        .count();
    assert_eq!(responses, 3, "{logs}");
    // The buffer contains the log lines of every test in this file so far.
    assert_no_key(&logs);
}

/// Returns the log lines of every test in this file. The first call
/// installs a global subscriber at trace level that writes into it, so
/// all threads log into one place however the tests interleave.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer_logs = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer_logs.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber is installed in this test binary");
        logs
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Lists

#[test]
fn pagination_across_three_pages() {
    let peer = Peer::start(vec![
        reply(200, &studio_page(&["std_1", "std_2"], Some("c2"))),
        reply(200, &studio_page(&["std_3"], Some("c3"))),
        reply(200, &studio_page(&["std_4", "std_5"], None)),
    ]);
    let studios = client(&peer, 1).studios().unwrap();

    let ids: Vec<&str> = studios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["std_1", "std_2", "std_3", "std_4", "std_5"]);
    assert_eq!(studios[2].name, "Studio std_3");
    let targets: Vec<String> = peer.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/v1/studios?limit=200",
            "/v1/studios?limit=200&cursor=c2",
            "/v1/studios?limit=200&cursor=c3",
        ]
    );
}

#[test]
fn repeated_cursor_stops() {
    let peer = Peer::start(vec![
        reply(200, &studio_page(&["std_1"], Some("c2"))),
        reply(200, &studio_page(&["std_2"], Some("c3"))),
        reply(200, &studio_page(&["std_3"], Some("c2"))),
        reply(200, &studio_page(&["std_2"], Some("c3"))),
    ]);
    let error = client(&peer, 1).studios().unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ApiError::Pagination { .. }), "{error:?}");
    assert!(text.contains("cursor 'c2' a second time"), "{text}");
    assert_eq!(error.exit_status(), ExitStatus::Other);
    assert_eq!(peer.requests().len(), 3);
}

#[test]
fn unknown_fields_ignored() {
    let body = r#"{"data":[{"id":"src_1","name":"Cam 1","type":"srt","studioId":"std_1",
                    "createdAt":"2026-01-01T00:00:00Z","tags":["a"],"owner":{"id":"u"}}],
                  "nextCursor":null,"total":1,"links":{}}"#;
    let peer = Peer::start(vec![reply(200, body)]);
    let sources = client(&peer, 1).sources(Some("std 1")).unwrap();

    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].id, "src_1");
    assert_eq!(sources[0].name, "Cam 1");
    assert_eq!(sources[0].kind.as_deref(), Some("srt"));
    assert_eq!(sources[0].studio_id.as_deref(), Some("std_1"));
    assert_eq!(
        peer.requests()[0].target,
        "/v1/sources?limit=200&studioId=std+1"
    );
}

#[test]
fn malformed_page_is_invalid_response() {
    let peer = Peer::start(vec![reply(200, r#"{"items":[]}"#)]);
    let error = client(&peer, 1).studios().unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ApiError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(text.contains("missing field `data`"), "{text}");
}

// ---------------------------------------------------------------------------
// Acquisition

#[test]
fn acquire_with_token() {
    let exp_unix_s = 1_900_000_000u64;
    let token =
        jwt(serde_json::json!({"action": "publish", "path": "inputs/srt-5f0c", "exp": exp_unix_s}));
    let body = serde_json::json!({
        "sourceId": "src_1",
        "protocol": "srt",
        "path": "inputs/srt-5f0c",
        "token": token,
        "ingestUrl": "srt://ingest.example.test:8890",
        "issuedBy": "unknown field",
    });
    let peer = Peer::start(vec![reply(201, &body.to_string())]);
    let acquired = client(&peer, 1).acquire("src_1", Protocol::Srt).unwrap();

    assert_eq!(acquired.path, "inputs/srt-5f0c");
    assert_eq!(
        acquired.credential,
        Credential::SessionToken(Secret::new("session token", token.clone()))
    );
    assert_eq!(
        acquired.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(exp_unix_s))
    );
    assert_eq!(
        acquired.ingest_url.as_deref(),
        Some("srt://ingest.example.test:8890")
    );
    assert!(!format!("{acquired:?}").contains(&token));

    let request = &peer.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/sources/src_1/publish-credentials");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let sent: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(sent, serde_json::json!({"protocol": "srt"}));
}

#[test]
fn acquire_with_stream_key() {
    let body = serde_json::json!({
        "path": "inputs/rtmp-1",
        "streamKey": "sk_live_abc",
        "expiresAt": "2030-01-01T00:00:00Z",
    });
    let peer = Peer::start(vec![reply(201, &body.to_string())]);
    let acquired = client(&peer, 1).acquire("src/2", Protocol::Rtmp).unwrap();

    assert_eq!(
        acquired.credential,
        Credential::StreamKey(Secret::new("stream key", "sk_live_abc"))
    );
    assert_eq!(
        acquired.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_893_456_000))
    );
    assert_eq!(acquired.ingest_url, None);
    let request = &peer.requests()[0];
    assert_eq!(request.target, "/v1/sources/src%2F2/publish-credentials");
    assert_eq!(request.body, r#"{"protocol":"rtmp"}"#);
}

#[test]
fn acquire_bad_path_hides_token() {
    let token = jwt(serde_json::json!({"exp": 1_900_000_000u64}));
    let body = serde_json::json!({"path": "inputs/../etc", "token": token});
    let peer = Peer::start(vec![reply_with(
        201,
        &[("X-Request-Id", "req_c")],
        &body.to_string(),
    )]);
    let error = client(&peer, 1)
        .acquire("src_1", Protocol::Srt)
        .unwrap_err();
    let text = error.to_string();

    assert!(
        matches!(error, ApiError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(text.contains("'..' segment"), "{text}");
    assert!(text.contains("request id 'req_c'"), "{text}");
    assert!(!text.contains(&token), "{text}");
    assert_error_clean(&error);
}

#[test]
fn acquire_rejects_empty_source_id() {
    let peer = Peer::start(vec![]);
    let error = client(&peer, 1).acquire(" ", Protocol::Whip).unwrap_err();
    assert!(
        matches!(error, ApiError::InvalidSourceId { .. }),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert!(peer.requests().is_empty());
}

// ---------------------------------------------------------------------------
// OpenAPI check

#[test]
fn check_reports_found_and_missing() {
    let spec = serde_json::json!({
        "openapi": "3.1.0",
        "info": {"version": "2026.11.1"},
        "servers": [{"url": "https://api.example.test/v1"}],
        "paths": {
            "/health": {"get": {}},
            "/studios": {"get": {}},
            "/sources/{id}": {"get": {}},
        },
    });
    let peer = Peer::start(vec![reply(200, &spec.to_string())]);
    let report = client(&peer, 1).check_operations().unwrap();

    let found: Vec<String> = report.found.iter().map(|op| op.to_string()).collect();
    let missing: Vec<String> = report.missing.iter().map(|op| op.to_string()).collect();
    assert_eq!(
        found,
        ["GET /v1/health", "GET /v1/studios", "GET /v1/openapi.json"]
    );
    assert_eq!(
        missing,
        [
            "GET /v1/sources",
            "POST /v1/sources/{sourceId}/publish-credentials"
        ]
    );
    assert_eq!(report.spec_version.as_deref(), Some("2026.11.1"));
}

#[test]
fn check_rejects_non_json_spec() {
    let peer = Peer::start(vec![reply(200, "<html>docs</html>")]);
    let error = client(&peer, 1).check_operations().unwrap_err();
    assert!(
        matches!(error, ApiError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not JSON"), "{error}");
}
