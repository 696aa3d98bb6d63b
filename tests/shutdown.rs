//! Stopping the bridge with signals: the first SIGTERM stops cleanly within
//! a bound, a second one ends the process at once.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzZWNyZXQiOiJzaHV0ZG93bi10ZXN0In0.c2lnbmF0dXJl";

/// A TCP server that accepts RTMP connections and never answers, so the
/// bridge's RTMP output stays in its handshake until its 5 s step timeout.
fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn start_bridge(port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--size", "320x240", "--output"])
        .arg(format!("rtmp://127.0.0.1:{port}/inputs/rtmp-1"))
        // A stream key has no claims to check, so the output dials.
        .env("TRAX_STREAM_KEY", TOKEN)
        .env_remove("TRAX_SESSION_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary runs")
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill on our own child's pid has no memory effects.
    let result = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(result, 0, "kill({signal}) failed");
}

fn wait_exit(child: &mut Child, bound: Duration) -> (i32, String) {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the bridge did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn second_signal_exits_at_once() {
    let (_listener, port) = silent_server();
    let mut child = start_bridge(port);
    // Let the output dial and sit in the RTMP handshake.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    signal(&child, libc::SIGINT);
    let (code, stderr) = wait_exit(&mut child, Duration::from_secs(10));
    let took = second.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("a second stop signal arrived"), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert!(!stderr.contains("c2lnbmF0dXJl"), "{stderr}");
}

#[test]
fn one_signal_stops_cleanly() {
    let (_listener, port) = silent_server();
    let mut child = start_bridge(port);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGTERM);
    // The output waits out its handshake step (5 s at most), then stops.
    let (code, stderr) = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("a stop signal arrived"), "{stderr}");
}
