//! The bridge's WHIP output when its receiver fails: a receiver that
//! vanishes mid-stream without a word, against the aiortc receiver on
//! loopback. Every new session must start with an IDR.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::whip_receiver::{AiortcReceiver, AiortcToken};
use support::whip_token::WHIP_AUDIENCE;

const PATH: &str = "inputs/whip-faults";

/// Mints a WHIP token for `PATH` into `directory`/token and returns the
/// file.
fn token_file(directory: &Path) -> std::path::PathBuf {
    let key = directory.join("key.pem");
    let file = directory.join("token");
    support::mint_token(&[
        "--key",
        key.to_str().unwrap(),
        "--path",
        PATH,
        "--aud",
        WHIP_AUDIENCE,
        "--exp-in-s",
        "3600",
        "--out",
        file.to_str().unwrap(),
    ]);
    file
}

/// Starts the bridge on the test source, publishing to `url`.
fn spawn_bridge(url: &str, token: &Path, duration_s: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--size", "320x240", "--output", url])
        .arg("--token-file")
        .arg(token)
        .args(["--ice-address", "127.0.0.1", "--duration", duration_s])
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_LOG", "bridge=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary runs")
}

/// Stops the bridge with SIGTERM and returns its exit code and stderr.
fn stop(mut bridge: Child) -> (Option<i32>, String) {
    // SAFETY: kill on our own child's pid has no memory effects.
    unsafe {
        libc::kill(bridge.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut log = String::new();
    bridge
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let status = bridge.wait().unwrap();
    (status.code(), log)
}

#[test]
fn vanished_receiver_replaced() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let token = token_file(directory.path());
    let first = AiortcReceiver::start(
        &directory.path().join("first"),
        AiortcToken::File(&token),
        &[],
    );
    let port = first.port.to_string();
    let bridge = spawn_bridge(&first.url_for(PATH), &token, "60");
    first.wait_for("connected", 1, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));

    // SIGKILL: no DELETE, no BYE, no ICE close, as when a server crashes.
    drop(first);
    let killed = Instant::now();
    let second = AiortcReceiver::start(
        &directory.path().join("second"),
        AiortcToken::File(&token),
        &["--port", &port],
    );
    second.wait_for("connected", 1, Duration::from_secs(20));
    let reconnect = killed.elapsed();
    std::thread::sleep(Duration::from_secs(2));

    let (code, log) = stop(bridge);
    second.wait_for("closed", 1, Duration::from_secs(10));
    let report = second.report(1).expect("the new session's report.json");
    second.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("sent no RTCP"), "{log}");
    assert!(
        reconnect < Duration::from_secs(12),
        "the new receiver got a session {reconnect:?} after the old one vanished"
    );

    let video = &report["video"];
    assert_eq!(
        video["first_access_unit_s"], video["first_idr_s"],
        "the new session did not start with an IDR: {report}"
    );
    assert_eq!(
        video["frames_decoded"], video["access_units"],
        "access units that did not decode: {report}"
    );
}
