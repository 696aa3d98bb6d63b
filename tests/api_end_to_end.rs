//! The bridge binary against the /v1 stand-in: listings, the spec check,
//! each error path with its exit code, and credentials acquired with an API
//! key and accepted by an SRT receiver that verifies them against the JWKS.

mod support;

use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::media::output_text;
use support::receiver::{free_udp_port, Receiver};
use support::standin::Standin;

fn bridge(args: &[&str], standin: &Standin) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .arg("--api-url")
        .arg(&standin.origin)
        .arg("--api-key-file")
        .arg(standin.key_path())
        .env_remove("TRAX_API_KEY")
        .env_remove("TRAX_API_URL")
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .expect("the bridge binary runs")
}

fn assert_exit(output: &Output, code: i32, expected: &str, standin: &Standin) {
    let log = output_text(output);
    assert_eq!(output.status.code(), Some(code), "{log}");
    assert!(log.contains(expected), "expected '{expected}' in: {log}");
    assert!(!log.contains(&standin.key), "the API key is in: {log}");
}

#[test]
fn sources_page_through_three_pages() {
    let _guard = support::setup();
    let standin = Standin::start(&["--generate-sources", "450"]);
    let output = bridge(&["sources", "--json"], &standin);
    assert_exit(&output, 0, "src_gen_450", &standin);
    let sources: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sources.len(), 450);
    assert_eq!(sources[0]["id"], "src_gen_001");
    assert_eq!(standin.count("GET /v1/sources"), 3);
}

#[test]
fn studios_print_as_table() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let output = bridge(&["studios"], &standin);
    assert_exit(&output, 0, "Morning show", &standin);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{stdout}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("std_news") && l.contains("Newsroom")));

    let output = bridge(&["sources", "--studio", "std_news"], &standin);
    assert_exit(&output, 0, "src_desk", &standin);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("src_cam1"));
}

#[test]
fn api_check_reports_operations() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let output = bridge(&["api", "check"], &standin);
    assert_exit(
        &output,
        0,
        "found    POST /v1/sources/{sourceId}/publish-credentials",
        &standin,
    );
    assert!(output_text(&output).contains("spec version 1.3.0"));

    let standin = Standin::start(&[
        "--omit-operation",
        "POST /v1/sources/{sourceId}/publish-credentials",
    ]);
    let output = bridge(&["api", "check"], &standin);
    assert_exit(
        &output,
        1,
        "MISSING  POST /v1/sources/{sourceId}/publish-credentials",
        &standin,
    );
    assert!(
        output_text(&output).contains("lacks 1 operation"),
        "{}",
        output_text(&output)
    );
}

#[test]
fn rejected_key_exits_3_with_request_id() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    std::fs::write(standin.key_path(), "sk_live_wrong_key").unwrap();
    let output = bridge(&["sources"], &standin);
    assert_exit(&output, 3, "401", &standin);
    let log = output_text(&output);
    assert!(log.contains("req_"), "no request id in: {log}");
    assert!(!log.contains("sk_live_wrong_key"), "{log}");
    assert_eq!(standin.count("GET /v1/sources"), 1, "a 401 was retried");
}

#[test]
fn rate_limit_honours_retry_after() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    for form in ["seconds", "http-date"] {
        standin.control(json!({"reset_stats": true, "rate_limit": {
            "count": 2, "retry_after_s": 1, "retry_after_form": form}}));
        let started = Instant::now();
        let output = bridge(&["sources"], &standin);
        let waited = started.elapsed();
        assert_exit(&output, 0, "src_cam1", &standin);
        assert_eq!(standin.count("GET /v1/sources"), 3, "{form}");
        assert!(
            waited >= Duration::from_millis(1500),
            "{form}: waited only {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(12),
            "{form}: waited {waited:?}"
        );
    }

    standin.control(json!({"reset_stats": true, "rate_limit": {"count": 50, "retry_after_s": 1}}));
    let output = bridge(&["sources"], &standin);
    assert_exit(&output, 1, "429", &standin);
    let attempts = standin.count("GET /v1/sources");
    assert!((2..=6).contains(&attempts), "{attempts} attempts");
}

#[test]
fn server_errors_retried_then_succeed() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    standin.control(json!({"fail": {"count": 2, "status": 502, "body": "html"}}));
    let output = bridge(&["studios"], &standin);
    assert_exit(&output, 0, "Morning show", &standin);
    assert_eq!(standin.count("GET /v1/studios"), 3);
}

#[test]
fn write_disabled_not_retried() {
    let _guard = support::setup();
    let standin = Standin::start(&["--write-disabled"]);
    let output = bridge(&["--device", "test", "--source", "src_cam1"], &standin);
    assert_exit(&output, 1, "writes", &standin);
    let operation = "POST /v1/sources/{sourceId}/publish-credentials";
    assert_eq!(standin.count(operation), 1);
}

#[test]
fn unknown_source_exits_2() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let output = bridge(&["--device", "test", "--source", "src_nope"], &standin);
    assert_exit(&output, 2, "src_nope", &standin);
}

#[test]
fn slow_api_times_out_bounded() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    standin.control(json!({"slow": {"delay_s": 5}}));
    let started = Instant::now();
    let output = bridge(&["studios", "--api-timeout", "0.5"], &standin);
    let waited = started.elapsed();
    assert_exit(&output, 1, "timed out", &standin);
    assert!(waited < Duration::from_secs(15), "took {waited:?}");
}

#[test]
fn expired_token_refused_before_dial() {
    let _guard = support::setup();
    let standin = Standin::start(&["--token-ttl-s", "-60"]);
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--jwks-url", &standin.jwks_url()]);
    let url = format!("srt://127.0.0.1:{port}");
    let args = ["--device", "test", "--source", "src_cam1", "--output", &url];
    let output = bridge(&args, &standin);
    let events = receiver.stop();
    assert_exit(&output, 3, "had already expired", &standin);
    let handshakes = events.iter().filter(|e| e["event"] == "connecting").count();
    assert_eq!(handshakes, 0, "{events:?}");
}

#[test]
fn acquired_token_publishes_to_ingest_url() {
    let _guard = support::setup();
    let port = free_udp_port();
    let ingest = format!("srt://127.0.0.1:{port}");
    let standin = Standin::start(&["--ingest-srt", &ingest]);
    let directory = tempfile::tempdir().unwrap();
    let received = directory.path().join("received.ts");
    let receiver = Receiver::start(
        port,
        &[
            "--jwks-url",
            &standin.jwks_url(),
            "--output",
            received.to_str().unwrap(),
        ],
    );

    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--source",
        "src_cam1",
        "--duration",
        "3",
    ];
    let output = bridge(&args, &standin);
    let events = receiver.stop();
    assert_exit(
        &output,
        0,
        "using the ingest URL the API returned",
        &standin,
    );

    let accepted: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "connecting" && e["accepted"] == true)
        .collect();
    assert_eq!(accepted.len(), 1, "{events:?}");
    assert!(std::fs::metadata(&received).unwrap().len() > 10_000);
    let log = output_text(&output);
    assert!(log.contains("path=inputs/srt-"), "{log}");
    assert!(!log.contains("eyJ"), "something JWT-shaped is in: {log}");
}

#[test]
fn output_flag_wins_over_ingest_url() {
    let _guard = support::setup();
    let port = free_udp_port();
    let standin = Standin::start(&["--ingest-srt", "srt://127.0.0.1:9"]);
    let receiver = Receiver::start(port, &["--jwks-url", &standin.jwks_url()]);
    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--source",
        "src_cam1",
        "--output",
        &url,
        "--duration",
        "2",
    ];
    let output = bridge(&args, &standin);
    let events = receiver.stop();
    assert_exit(&output, 0, "differs from the ingest URL", &standin);
    assert!(events
        .iter()
        .any(|e| e["event"] == "connecting" && e["accepted"] == true));
}

#[test]
fn token_renewed_before_redial() {
    let _guard = support::setup();
    let port = free_udp_port();
    let standin = Standin::start(&["--token-ttl-s", "3"]);
    let jwks = standin.jwks_url();
    let first = Receiver::start(port, &["--jwks-url", &jwks]);
    let url = format!("srt://127.0.0.1:{port}");

    let child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "--device", "test", "--size", "320x240", "--source", "src_cam1",
        ])
        .args([
            "--output",
            &url,
            "--duration",
            "16",
            "--api-url",
            &standin.origin,
        ])
        .arg("--api-key-file")
        .arg(standin.key_path())
        .env_remove("TRAX_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The first token expires 3 s in; the receiver goes away at 5 s, so the
    // redial must carry a token acquired later, which the second receiver
    // checks with no leeway.
    first.wait_for("connected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));
    first.kill();
    let second = Receiver::start(port, &["--jwks-url", &jwks]);
    second.wait_for("connected", Duration::from_secs(15));
    let output = child.wait_with_output().unwrap();
    let events = second.stop();

    assert_exit(&output, 0, "reconnecting", &standin);
    let connecting: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "connecting")
        .collect();
    assert!(!connecting.is_empty());
    assert!(
        connecting.iter().all(|e| e["accepted"] == true),
        "a redial used a token the receiver refused: {connecting:?}"
    );
    let acquisitions = standin.count("POST /v1/sources/{sourceId}/publish-credentials");
    assert!(
        acquisitions >= 2,
        "the token was acquired {acquisitions} times"
    );
}

#[test]
fn peers_pass_their_self_check() {
    let output = Command::new(support::receiver::PYTHON)
        .arg(support::receiver::peer_script("check_peers.py"))
        .output()
        .expect("cannot run /usr/bin/python3 tests/peers/check_peers.py");
    assert!(output.status.success(), "{}", output_text(&output));
}
