//! The status server end to end: the bridge binary streams to the libsrt
//! receiver peer with `--status-listen`. While it runs, the tests read
//! `/status.json`, `/metrics`, `/preview.jpg` and the status page
//! (rendered in headless Chromium) and compare them with what the
//! receiver got.

mod support;

use serde_json::Value;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::bridge_process::BridgeProcess;
use support::fault_peers::{wait_for_rtmp_recording, SOURCE_ID};
use support::nginx::Nginx;
use support::receiver::{free_udp_port, Receiver};
use support::standin::Standin;

const PATH: &str = "inputs/srt-status-server";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A key pair in a temporary directory and a token signed with it.
struct Keys {
    directory: tempfile::TempDir,
    token: String,
}

impl Keys {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let private = directory.path().join("key.pem");
        let public = directory.path().join("key.pub.pem");
        let token = support::mint_token(&[
            "--key",
            private.to_str().unwrap(),
            "--public-key-out",
            public.to_str().unwrap(),
            "--path",
            PATH,
        ]);
        Self { directory, token }
    }

    /// Starts the receiver on `port`, printing its byte count every 250 ms.
    fn receiver(&self, port: u16) -> Receiver {
        let public = self.directory.path().join("key.pub.pem");
        Receiver::start(
            port,
            &[
                "--expected-path",
                PATH,
                "--public-key",
                public.to_str().unwrap(),
                "--stats-interval-ms",
                "250",
            ],
        )
    }
}

/// The bridge as a child process with its log in a file; killed on drop.
struct Bridge {
    child: Child,
    log: PathBuf,
    _directory: tempfile::TempDir,
}

impl Bridge {
    fn start(args: &[String], token: &str) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("bridge.log");
        let file = File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
        // An empty token: a run that needs none, such as a recording only.
        match token {
            "" => command.env_remove("TRAX_SESSION_TOKEN"),
            token => command.env("TRAX_SESSION_TOKEN", token),
        };
        let child = command
            .args(args)
            .env_remove("TRAX_STREAM_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the bridge binary runs");
        Self {
            child,
            log,
            _directory: directory,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `text` in the log.
    fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the bridge logged no '{text}' within {timeout:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and returns the exit code (`None`: killed after 20 s).
    fn terminate(&mut self) -> Option<i32> {
        support::bridge_process::send_signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the bridge's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn bridge_args(srt_port: u16, status: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--size",
        "640x360",
        "--output",
        &format!("srt://127.0.0.1:{srt_port}"),
        "--path",
        PATH,
        "--status-listen",
        &status.to_string(),
        "--status-interval",
        "0",
        "--reconnect-max-delay",
        "1",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn get(address: SocketAddr, path: &str) -> reqwest::blocking::Response {
    client()
        .get(format!("http://{address}{path}"))
        .send()
        .unwrap_or_else(|error| panic!("GET {path} failed: {error}"))
}

fn status_json(address: SocketAddr) -> Value {
    let response = get(address, "/status.json");
    assert_eq!(response.status(), 200);
    response.json().expect("/status.json is JSON")
}

fn metrics(address: SocketAddr) -> String {
    let response = get(address, "/metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().unwrap()
}

/// Returns the value of the sample `name` for the SRT output in `text`.
fn srt_sample(text: &str, name: &str, srt_port: u16) -> Option<f64> {
    let label = format!("srt://127.0.0.1:{srt_port} path={PATH}");
    sample(text, name, &label, "srt")
}

/// Returns the value of the sample `name` for the output `label`.
fn sample(text: &str, name: &str, label: &str, protocol: &str) -> Option<f64> {
    let prefix = format!("{name}{{output=\"{label}\",protocol=\"{protocol}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

/// Polls `/status.json` until `check` holds for the first output; panics
/// with the last document after `timeout`.
fn wait_for_output(
    address: SocketAddr,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(response) = client().get(format!("http://{address}/status.json")).send() {
            if let Ok(document) = response.json::<Value>() {
                if check(&document["outputs"][0]) {
                    return document;
                }
                last = document;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no /status.json within {timeout:?} fitted; the last: {last:#}");
}

/// Checks an output's `latency` figures in `/status.json` and returns
/// their count: frames measured, p50 <= p99 <= max, all below 2 s.
fn check_latency(output: &Value) -> u64 {
    let latency = &output["latency"];
    assert_eq!(latency["window"], "connection", "{output:#}");
    let count = latency["count"].as_u64().unwrap_or(0);
    assert!(count > 0, "no frame measured: {output:#}");
    let p50 = latency["p50_ms"].as_f64().expect("p50_ms");
    let p99 = latency["p99_ms"].as_f64().expect("p99_ms");
    let max = latency["max_ms"].as_f64().expect("max_ms");
    assert!(p50 > 0.0, "{latency:#}");
    assert!(p50 <= p99, "{latency:#}");
    assert!(p99 <= max, "{latency:#}");
    assert!(max < 2000.0, "{latency:#}");
    count
}

/// Returns the receiver's byte count from its latest `bytes` event.
fn received_bytes(receiver: &Receiver) -> u64 {
    receiver
        .events_named("bytes")
        .last()
        .and_then(|event| event["total"].as_u64())
        .unwrap_or(0)
}

/// Reads the width and height from a JPEG's start-of-frame segment.
fn jpeg_size(data: &[u8]) -> Option<(u16, u16)> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    while at + 9 < data.len() {
        if data[at] != 0xFF {
            return None;
        }
        let marker = data[at + 1];
        let length = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        if matches!(marker, 0xC0..=0xC3) {
            let height = u16::from_be_bytes([data[at + 5], data[at + 6]]);
            let width = u16::from_be_bytes([data[at + 7], data[at + 8]]);
            return Some((width, height));
        }
        at += 2 + length;
    }
    None
}

#[test]
fn status_follows_srt_output_and_reconnect() {
    let _guard = support::setup();
    let keys = Keys::new();
    let srt_port = free_udp_port();
    let status = free_tcp_address();
    let receiver = keys.receiver(srt_port);
    let args = bridge_args(srt_port, status, &["--device", "test"]);
    let mut bridge = Bridge::start(&args, &keys.token);

    let live = wait_for_output(status, Duration::from_secs(20), |output| {
        output["state"] == "live"
    });
    assert_eq!(live["input"], "source");
    assert_eq!(live["encoder"].as_str().map(str::is_empty), Some(false));
    assert!(
        live["source"].as_str().unwrap().contains("test pattern"),
        "{live:#}"
    );
    let output = &live["outputs"][0];
    assert_eq!(
        output["label"],
        format!("srt://127.0.0.1:{srt_port} path={PATH}")
    );
    assert_eq!(output["protocol"], "srt");
    assert_eq!(output["attempt"], 1);
    assert_eq!(output["reconnects"], 0);

    // The bitrate averages the last 5 s, so the window starts after 5 s live.
    std::thread::sleep(Duration::from_secs(5));
    let received_before = received_bytes(&receiver);
    let sent_before = status_json(status)["outputs"][0]["bytes"].as_u64().unwrap();
    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let received_after = received_bytes(&receiver);
    let seconds = window_start.elapsed().as_secs_f64();
    let document = status_json(status);
    let text = metrics(status);
    let output = &document["outputs"][0];

    let received_kbps = (received_after - received_before) as f64 * 8.0 / 1000.0 / seconds;
    assert!(
        received_kbps > 50.0,
        "the receiver got {received_kbps:.0} kb/s"
    );
    let json_kbps = output["bitrate_kbps"].as_f64().unwrap();
    assert!(
        (0.5 * received_kbps..=2.0 * received_kbps).contains(&json_kbps),
        "/status.json says {json_kbps:.0} kb/s, the receiver counted {received_kbps:.0} kb/s"
    );
    let metrics_kbps =
        srt_sample(&text, "bridge_output_bitrate_bits_per_second", srt_port).unwrap() / 1000.0;
    assert!(
        (0.5 * received_kbps..=2.0 * received_kbps).contains(&metrics_kbps),
        "/metrics says {metrics_kbps:.0} kb/s, the receiver counted {received_kbps:.0} kb/s"
    );
    let sent = output["bytes"].as_u64().unwrap() - sent_before;
    let received = received_after - received_before;
    assert!(
        (received / 2..=received * 2).contains(&sent),
        "sent {sent} bytes, received {received} in the same window"
    );
    assert!(output["srt"]["rtt_ms"].as_f64().is_some(), "{output:#}");
    assert!(
        output["srt"]["lost_packets"].as_u64().is_some(),
        "{output:#}"
    );
    assert_eq!(srt_sample(&text, "bridge_output_up", srt_port), Some(1.0));
    assert!(
        srt_sample(&text, "bridge_output_srt_rtt_seconds", srt_port).is_some(),
        "{text}"
    );
    let first_count = check_latency(output);
    let total = srt_sample(
        &text,
        "bridge_output_handover_latency_seconds_count",
        srt_port,
    );
    assert!(total >= Some(first_count as f64), "{total:?} in\n{text}");
    let label = format!("srt://127.0.0.1:{srt_port} path={PATH}");
    let infinite = format!(
        "bridge_output_handover_latency_seconds_bucket{{output=\"{label}\",\
         protocol=\"srt\",le=\"+Inf\"}} "
    );
    let infinite = text
        .lines()
        .find_map(|line| line.strip_prefix(&infinite))
        .and_then(|value| value.parse::<f64>().ok());
    assert_eq!(infinite, total, "{text}");

    // A killed receiver: libsrt notices after about 5 s, and the output
    // redials until the receiver is back.
    receiver.kill();
    wait_for_output(status, Duration::from_secs(20), |output| {
        output["state"] != "live"
    });
    let receiver = keys.receiver(srt_port);
    let again = wait_for_output(status, Duration::from_secs(30), |output| {
        output["state"] == "live" && output["reconnects"].as_u64() >= Some(1)
    });
    let output = &again["outputs"][0];
    assert!(output["attempt"].as_u64() >= Some(2), "{output:#}");
    assert!(output["last_error"].is_string(), "{output:#}");
    let text = metrics(status);
    let reconnects = srt_sample(&text, "bridge_output_reconnects_total", srt_port);
    assert!(
        reconnects >= Some(1.0),
        "reconnects {reconnects:?} in\n{text}"
    );
    let attempts = srt_sample(&text, "bridge_output_attempts_total", srt_port);
    assert!(attempts >= Some(2.0), "attempts {attempts:?} in\n{text}");
    // The status covers the new connection only; the metrics keep counting.
    let output = &wait_for_output(status, Duration::from_secs(10), |output| {
        output["latency"]["count"].as_u64() > Some(0)
    })["outputs"][0];
    let again_count = check_latency(output);
    let text = metrics(status);
    let total = srt_sample(
        &text,
        "bridge_output_handover_latency_seconds_count",
        srt_port,
    );
    assert!(
        total >= Some((first_count + again_count) as f64),
        "{total:?} after {first_count} and {again_count} in\n{text}"
    );

    for body in [status_json(status).to_string(), text] {
        assert!(!body.contains(&keys.token), "the token is in a response");
        let signature = keys.token.rsplit('.').next().unwrap();
        assert!(
            !body.contains(signature),
            "part of the token is in a response"
        );
    }
    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

#[test]
fn preview_and_errors_over_http() {
    let _guard = support::setup();
    let keys = Keys::new();
    let srt_port = free_udp_port();
    let status = free_tcp_address();
    let receiver = keys.receiver(srt_port);
    let args = bridge_args(srt_port, status, &["--device", "test"]);
    let mut bridge = Bridge::start(&args, &keys.token);
    wait_for_output(status, Duration::from_secs(20), |output| {
        output["state"] == "live"
    });

    // The first still comes a second after the start at most; allow more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let jpeg = loop {
        let response = get(status, "/preview.jpg");
        if response.status() == 200 {
            assert_eq!(response.headers()["content-type"], "image/jpeg");
            break response.bytes().unwrap();
        }
        assert_eq!(
            response.status(),
            503,
            "/preview.jpg before the first still"
        );
        assert!(Instant::now() < deadline, "no preview within 10 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        &jpeg[jpeg.len() - 2..],
        [0xFF, 0xD9],
        "the JPEG has no end marker"
    );
    // 640x360 scaled to 320 px wide keeps 16:9.
    assert_eq!(jpeg_size(&jpeg), Some((320, 180)));

    let page = get(status, "/");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().unwrap();
    assert!(
        html.contains("/status.json"),
        "the page does not fetch /status.json"
    );
    assert!(
        html.contains("/preview.jpg"),
        "the page does not show /preview.jpg"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads an external asset"
    );

    let unknown = get(status, "/nothing-here");
    assert_eq!(unknown.status(), 404);
    let post = client()
        .post(format!("http://{status}/status.json"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let head = client()
        .head(format!("http://{status}/metrics"))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.bytes().unwrap().len(), 0, "HEAD returned a body");

    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

/// Starts the receiver and the bridge on the test source, and waits until
/// the output is live.
fn start_live(keys: &Keys) -> (Receiver, Bridge, SocketAddr) {
    let srt_port = free_udp_port();
    let status = free_tcp_address();
    let receiver = keys.receiver(srt_port);
    let args = bridge_args(srt_port, status, &["--device", "test"]);
    let bridge = Bridge::start(&args, &keys.token);
    wait_for_output(status, Duration::from_secs(20), |output| {
        output["state"] == "live"
    });
    (receiver, bridge, status)
}

/// Reads from `stream` until the server closes it or `timeout` passes, and
/// returns what came and whether the server closed the connection.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (data, true),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return (data, true),
            Err(_) => return (data, false),
        }
    }
}

#[test]
fn oversized_request_head_gets_431() {
    let _guard = support::setup();
    let keys = Keys::new();
    let (receiver, mut bridge, status) = start_live(&keys);

    // 64 KiB of headers: past any sane limit, yet small enough for the
    // socket buffers to take at once.
    let mut stream = TcpStream::connect(status).unwrap();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let mut request = b"GET /status.json HTTP/1.1\r\nHost: bridge\r\n".to_vec();
    for _ in 0..64 {
        request.extend_from_slice(filler.as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(15));
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 431 "),
        "the response to a 64 KiB request head: {}",
        text.lines().next().unwrap_or_default()
    );
    assert!(closed, "the server kept the connection open after a 431");
    assert_eq!(status_json(status)["outputs"][0]["state"], "live");

    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

#[test]
fn stuck_client_blocks_no_one() {
    let _guard = support::setup();
    let keys = Keys::new();
    let (receiver, mut bridge, status) = start_live(&keys);

    // A client that pipelines requests for the page and never reads the
    // responses: several megabytes that fill every socket buffer.
    let mut stuck = TcpStream::connect(status).unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: bridge\r\n\r\n".repeat(4000);
    stuck.write_all(&request).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let received_before = received_bytes(&receiver);
    let patient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = patient
            .get(format!("http://{status}/status.json"))
            .send()
            .unwrap_or_else(|error| panic!("/status.json failed while a client is stuck: {error}"));
        assert_eq!(response.status(), 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    let received_after = received_bytes(&receiver);
    assert!(
        received_after > received_before,
        "the receiver got nothing while a status client was stuck"
    );

    drop(stuck);
    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

#[test]
fn idle_clients_are_disconnected() {
    let _guard = support::setup();
    let keys = Keys::new();
    let (receiver, mut bridge, status) = start_live(&keys);

    // Clients that start a request and never finish it, more than the
    // server serves at once.
    let mut idle: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(status).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();

    let patient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = patient
        .get(format!("http://{status}/status.json"))
        .send()
        .unwrap_or_else(|error| panic!("/status.json failed beside idle clients: {error}"));
    assert_eq!(response.status(), 200);

    // Wide bound: the server's own timeout is a few seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (index, stream) in idle.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, closed) = read_until_closed(stream, left.max(Duration::from_millis(10)));
        assert!(closed, "idle client {index} still connected after 60 s");
    }

    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

#[test]
fn trickling_body_is_cut_off() {
    let _guard = support::setup();
    let keys = Keys::new();
    let (receiver, mut bridge, status) = start_live(&keys);

    // A request body sent a byte at a time after the 405, for up to 30 s.
    // The server ends its side after the response, so only a failing write
    // shows that it has closed the connection and stopped reading.
    let mut stream = TcpStream::connect(status).unwrap();
    stream
        .write_all(b"POST /status.json HTTP/1.1\r\nHost: bridge\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        if stream.write_all(b"x").is_err() {
            break true;
        }
        match stream.read(&mut chunk) {
            Ok(0) => std::thread::sleep(Duration::from_millis(300)),
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => {}
        }
    };
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(closed, "the server still read the body after 30 s");

    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

/// Runs headless Chromium on `url` with `extra` arguments and returns its
/// standard output.
fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {CHROMIUM} (scripts/install-deps.sh installs it): {error}")
        });
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Reads the width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> Option<(u32, u32)> {
    let data = std::fs::read(path).ok()?;
    if data.get(..8)? != b"\x89PNG\r\n\x1a\n" || data.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(data.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(data.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

#[test]
fn status_page_renders_in_chromium() {
    let _guard = support::setup();
    let keys = Keys::new();
    let srt_port = free_udp_port();
    let status = free_tcp_address();
    let receiver = keys.receiver(srt_port);
    let clip = format!("file:{}/media/bigbuckbunny.mp4", env!("CARGO_MANIFEST_DIR"));
    let args = bridge_args(srt_port, status, &["--device", &clip, "--loop"]);
    let mut bridge = Bridge::start(&args, &keys.token);
    wait_for_output(status, Duration::from_secs(20), |output| {
        output["state"] == "live"
    });
    let url = format!("http://{status}/");

    let dom = chromium(&url, &["--dump-dom".to_string()]);
    let row = format!("<tr data-protocol=\"srt\" data-state=\"live\"><td>srt://127.0.0.1:{srt_port} path={PATH}</td>");
    assert!(dom.contains(&row), "no live SRT row in the page:\n{dom}");
    assert!(dom.contains("class=\"state state-live\">live "), "{dom}");
    assert!(dom.contains("data-signal=\"source\""), "{dom}");
    assert!(
        dom.contains("x264enc") || dom.contains("openh264enc"),
        "no encoder in\n{dom}"
    );
    let image = dom
        .lines()
        .find(|line| line.contains("<img id=\"preview\""))
        .unwrap_or_else(|| panic!("no preview image in\n{dom}"));
    assert!(
        image.contains("data-loaded=\"yes\""),
        "the preview did not load: {image}"
    );
    assert!(image.contains("data-natural-width=\"320\""), "{image}");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,720".to_string(),
        ],
    );
    assert_eq!(
        png_size(&screenshot),
        Some((1280, 720)),
        "{}",
        screenshot.display()
    );

    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());
    receiver.stop();
}

#[test]
fn taken_port_is_bound_once_free() {
    let _guard = support::setup();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = holder.local_addr().unwrap();
    let record = tempfile::tempdir().unwrap();
    let mut bridge = Bridge::start(
        &[
            "--device".to_string(),
            "test".into(),
            "--size".into(),
            "320x240".into(),
            "--record".into(),
            record.path().to_str().unwrap().into(),
            "--status-listen".into(),
            address.to_string(),
        ],
        "",
    );
    // The feed does not wait for the page: the bridge streams and says why
    // there is no status page.
    bridge.wait_for_log("streaming", Duration::from_secs(30));
    let log = bridge.log();
    assert!(
        log.contains(&address.to_string()),
        "the error does not name {address}: {log}"
    );
    assert!(log.contains("already in use"), "{log}");

    // Once the other program lets the port go, the server comes up there.
    drop(holder);
    bridge.wait_for_log(
        "status page, /status.json and /metrics served",
        Duration::from_secs(25),
    );
    let document = status_json(address);
    assert!(document["outputs"].is_array(), "{document}");
    assert_eq!(bridge.terminate(), Some(0), "{}", bridge.log());

    let invalid = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--record"])
        .arg(record.path())
        .args(["--status-listen", "localhost:8181"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = support::media::output_text(&invalid);
    assert_eq!(invalid.status.code(), Some(2), "{log}");
    assert!(log.contains("'localhost:8181'"), "{log}");
    assert!(
        log.contains("127.0.0.1:8181"),
        "the error suggests no address: {log}"
    );
}

#[test]
fn same_output_twice_is_usage_error() {
    let _guard = support::setup();
    let keys = Keys::new();
    let srt_port = free_udp_port();
    let status = free_tcp_address();
    let url = format!("srt://127.0.0.1:{srt_port}");
    // Two outputs with one label would give /metrics duplicate series,
    // which Prometheus rejects.
    let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--size", "320x240", "--duration", "3"])
        .args(["--output", &url, "--output", &url, "--path", PATH])
        .args(["--status-listen", &status.to_string()])
        .env("TRAX_SESSION_TOKEN", &keys.token)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = support::media::output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!("{url} path={PATH}")),
        "the error does not name the output: {log}"
    );
    assert!(
        !log.contains("streaming"),
        "capture started before the error: {log}"
    );
}

#[test]
fn unusable_address_is_usage_error() {
    let _guard = support::setup();
    let record = tempfile::tempdir().unwrap();
    // A link-local IPv6 address needs a scope, which the option cannot
    // carry, so binding it fails (EINVAL, or EAFNOSUPPORT without IPv6).
    let address = "[fe80::1]:8181";
    let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--size", "320x240", "--record"])
        .arg(record.path())
        .args(["--duration", "3", "--status-listen", address])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = support::media::output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    let error = log
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {log}"));
    assert!(error.contains(address), "{error}");
    assert_eq!(
        error.matches("os error").count(),
        1,
        "the cause is repeated: {error}"
    );
    assert!(
        error.contains("127.0.0.1:8181"),
        "the error suggests no address: {error}"
    );
    assert!(
        !log.contains("streaming"),
        "capture started before the error: {log}"
    );
}

/// Returns the size of nginx's latest recording.
fn recorded_bytes(nginx: &Nginx) -> u64 {
    nginx
        .recordings()
        .last()
        .and_then(|file| std::fs::metadata(file).ok())
        .map_or(0, |meta| meta.len())
}

#[test]
fn status_follows_rtmp_output_and_reconnect() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let mut nginx = Nginx::start(&standin.origin);
    let status = free_tcp_address();
    let status_text = status.to_string();
    let rtmp_url = nginx.rtmp_url("");
    let args = [
        "--device",
        "test",
        "--size",
        "640x360",
        "--source",
        SOURCE_ID,
        "--output",
        &rtmp_url,
        "--status-listen",
        &status_text,
        "--reconnect-max-delay",
        "1",
    ];
    let mut bridge = BridgeProcess::start(&args, &standin);

    wait_for_rtmp_recording(&nginx, 1, Duration::from_secs(20));
    let live = wait_for_output(status, Duration::from_secs(10), |output| {
        output["state"] == "live"
    });
    let output = &live["outputs"][0];
    assert_eq!(output["protocol"], "rtmp");
    assert!(output["srt"].is_null(), "{output:#}");
    let label = output["label"].as_str().unwrap().to_string();
    let prefix = format!("rtmp://127.0.0.1:{}", nginx.rtmp_port());
    assert!(label.starts_with(&prefix), "{label}");

    // nginx writes what it receives to its FLV recording, whose growth is
    // the byte count it got, give or take the FLV framing.
    std::thread::sleep(Duration::from_secs(5));
    let recorded_before = recorded_bytes(&nginx);
    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let recorded_after = recorded_bytes(&nginx);
    let seconds = window_start.elapsed().as_secs_f64();
    let document = status_json(status);
    let text = metrics(status);

    let recorded_kbps = (recorded_after - recorded_before) as f64 * 8.0 / 1000.0 / seconds;
    assert!(
        recorded_kbps > 50.0,
        "nginx recorded {recorded_kbps:.0} kb/s"
    );
    let json_kbps = document["outputs"][0]["bitrate_kbps"].as_f64().unwrap();
    assert!(
        (0.5 * recorded_kbps..=2.0 * recorded_kbps).contains(&json_kbps),
        "/status.json says {json_kbps:.0} kb/s, nginx recorded {recorded_kbps:.0} kb/s"
    );
    let metrics_kbps = sample(
        &text,
        "bridge_output_bitrate_bits_per_second",
        &label,
        "rtmp",
    )
    .unwrap()
        / 1000.0;
    assert!(
        (0.5 * recorded_kbps..=2.0 * recorded_kbps).contains(&metrics_kbps),
        "/metrics says {metrics_kbps:.0} kb/s, nginx recorded {recorded_kbps:.0} kb/s"
    );
    assert_eq!(sample(&text, "bridge_output_up", &label, "rtmp"), Some(1.0));

    // nginx crashes: the RTMP output notices the closed connection at once
    // and redials until nginx is back.
    nginx.kill();
    wait_for_output(status, Duration::from_secs(10), |output| {
        output["state"] != "live"
    });
    nginx.restart();
    wait_for_rtmp_recording(&nginx, 2, Duration::from_secs(30));
    let again = wait_for_output(status, Duration::from_secs(10), |output| {
        output["state"] == "live" && output["reconnects"].as_u64() >= Some(1)
    });
    let attempt = again["outputs"][0]["attempt"].as_u64();
    assert!(attempt >= Some(2), "{again:#}");
    let text = metrics(status);
    let reconnects = sample(&text, "bridge_output_reconnects_total", &label, "rtmp");
    assert!(
        reconnects >= Some(1.0),
        "reconnects {reconnects:?} in\n{text}"
    );
    assert!(!text.contains("eyJ"), "something JWT-shaped in /metrics");
    let json = status_json(status).to_string();
    assert!(
        !json.contains("eyJ"),
        "something JWT-shaped in /status.json"
    );

    let ended = bridge.terminate(Duration::from_secs(15));
    assert_eq!(ended.code, Some(0), "{}", bridge.log());
}
