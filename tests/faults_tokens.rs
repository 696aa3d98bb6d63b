//! Session tokens under faults: a redial after the first token expired
//! goes out with a fresh one, and a token the SRT receiver rejects is
//! acquired again once, then reported with exit 3.

mod support;

use std::time::{Duration, Instant};
use support::fault_peers::{
    check_recording, srt_port, start_bridge, start_srt_receiver, SOURCE_ARGS, SOURCE_ID,
};
use support::receiver::Receiver;
use support::standin::Standin;

const ACQUIRE: &str = "POST /v1/sources/{sourceId}/publish-credentials";

/// Token lifetime for the expiry test, in seconds.
const TOKEN_TTL_S: u64 = 6;

fn srt_args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{port}"),
    ]);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

fn accepted(receiver: &Receiver) -> Vec<bool> {
    receiver
        .events_named("connecting")
        .iter()
        .map(|event| event["accepted"] == true)
        .collect()
}

#[test]
fn redial_after_expiry_uses_fresh_token() {
    let _guard = support::setup();
    let ttl = TOKEN_TTL_S.to_string();
    let standin = Standin::start(&["--token-ttl-s", &ttl]);
    let directory = tempfile::tempdir().unwrap();
    let port = srt_port();
    let before = directory.path().join("before.ts");
    let srt = start_srt_receiver(&standin, port, &before);
    let mut bridge = start_bridge(&srt_args(port, &[]), &standin);
    srt.wait_for("connected", Duration::from_secs(20));
    let connected = Instant::now();

    // The first token has expired well before the receiver crashes.
    std::thread::sleep(Duration::from_secs(TOKEN_TTL_S + 4));
    srt.kill();
    std::thread::sleep(Duration::from_secs(2));
    let srt = start_srt_receiver(&standin, port, &directory.path().join("after.ts"));
    srt.wait_for("connected", Duration::from_secs(30));
    eprintln!(
        "redialed {:?} after the first connection, {} tokens acquired",
        connected.elapsed(),
        standin.count(ACQUIRE)
    );

    let ended = bridge.terminate(Duration::from_secs(15));
    let log = bridge.log();
    assert_eq!(ended.code, Some(0), "{log}");
    // The first connection outlived its token: the edge checks a token only
    // when a session starts.
    let ttl_s = TOKEN_TTL_S as f64;
    check_recording("SRT past the expiry", &before, ttl_s + 1.0, false);
    // The receiver checks exp against the clock: an expired token would
    // have been rejected.
    assert_eq!(accepted(&srt), [true], "{:?}", srt.events());
    assert!(
        standin.count(ACQUIRE) >= 2,
        "the token was never renewed: {} acquisitions",
        standin.count(ACQUIRE)
    );
    assert!(!log.contains("eyJ"), "something JWT-shaped in the log");
}

#[test]
fn rejected_token_reacquired_once_then_exit_3() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let port = srt_port();
    let srt = Receiver::start(port, &["--reject-all"]);
    let mut bridge = start_bridge(&srt_args(port, &[]), &standin);
    let ended = bridge.wait(Duration::from_secs(30));
    let log = bridge.log();
    let events = srt.stop();

    assert_eq!(ended.code, Some(3), "{log}");
    assert!(
        log.contains("session token, path or passphrase rejected"),
        "{log}"
    );
    assert!(log.contains("rejected 2 times in a row"), "{log}");
    let handshakes = events.iter().filter(|e| e["event"] == "connecting").count();
    assert_eq!(handshakes, 2, "{events:?}");
    // One token at start, and one more after the first rejection.
    assert_eq!(standin.count(ACQUIRE), 2);
}

#[test]
fn rejected_token_reacquired_then_streams() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let port = srt_port();
    let srt = Receiver::start(port, &["--reject-first", "1"]);
    let mut bridge = start_bridge(&srt_args(port, &["--duration", "5"]), &standin);
    let ended = bridge.wait(Duration::from_secs(30));
    let log = bridge.log();
    let verdicts: Vec<bool> = srt
        .stop()
        .iter()
        .filter(|event| event["event"] == "connecting")
        .map(|event| event["accepted"] == true)
        .collect();
    assert_eq!(ended.code, Some(0), "{log}");
    assert_eq!(verdicts, [false, true]);
    assert_eq!(standin.count(ACQUIRE), 2);
}
