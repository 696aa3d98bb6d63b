//! The bridge's WHIP output when its receiver fails: a receiver that
//! vanishes mid-stream without a word (the aiortc receiver on loopback;
//! every new session must start with an IDR), and a server whose answer
//! cannot be used (an HTTP server of the test's own), whose session must
//! be deleted all the same.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::whip_http::{Request, Response, Server};
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
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&file, owner_only).unwrap();
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

/// An answer that rejects the video: port 0 on its video m-line.
const VIDEO_REJECTED_ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";

/// Serves OPTIONS and DELETE, and responds to every POST with 201, a
/// `Location` and `body` of `content_type`. Returns the server and the
/// count of DELETEs of that location.
fn unusable_answer_server(
    content_type: &'static str,
    body: &'static str,
) -> (Server, Arc<AtomicUsize>) {
    let deletes = Arc::new(AtomicUsize::new(0));
    let counter = deletes.clone();
    let handler = move |request: &Request| match request.method.as_str() {
        "POST" => Response {
            status: 201,
            headers: vec![
                ("Content-Type".to_string(), content_type.to_string()),
                ("Location".to_string(), "/session/1".to_string()),
            ],
            body: body.as_bytes().to_vec(),
        },
        "DELETE" if request.target == "/session/1" => {
            counter.fetch_add(1, Ordering::SeqCst);
            Response::text(200, "deleted")
        }
        "OPTIONS" => Response::text(204, ""),
        _ => Response::text(404, "not found"),
    };
    (Server::start(Arc::new(handler)).unwrap(), deletes)
}

#[test]
fn unusable_answer_session_deleted() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let token = token_file(directory.path());
    let cases = [
        (
            "video rejected",
            "application/sdp",
            VIDEO_REJECTED_ANSWER,
            2,
        ),
        ("HTML answer", "text/html", "<html>welcome</html>", 1),
    ];
    for (name, content_type, body, exit_code) in cases {
        let (server, deletes) = unusable_answer_server(content_type, body);
        let url = format!("http://{}/{PATH}/whip", server.address);
        let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(["--device", "test", "--size", "320x240", "--output", &url])
            .arg("--token-file")
            .arg(&token)
            .args(["--ice-address", "127.0.0.1", "--duration", "20"])
            .env_remove("TRAX_SESSION_TOKEN")
            .env_remove("TRAX_STREAM_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .output()
            .expect("the bridge binary runs");
        let log = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(exit_code), "{name}: {log}");
        assert_eq!(deletes.load(Ordering::SeqCst), 1, "{name}: {log}");
    }
}
