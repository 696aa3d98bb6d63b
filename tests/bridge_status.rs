//! The output status end to end: the bridge binary streams the test source
//! to the libsrt receiver peer (or to no receiver) and its status lines are
//! read from its log, or from a pseudo-terminal for the live view.

mod support;

use std::process::{Command, Output, Stdio};
use support::media::output_text;
use support::receiver::{free_udp_port, Receiver, PYTHON};

const PATH: &str = "inputs/srt-status-test";

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

    fn public(&self) -> String {
        self.directory
            .path()
            .join("key.pub.pem")
            .display()
            .to_string()
    }

    fn receiver(&self, port: u16) -> Receiver {
        Receiver::start(
            port,
            &["--expected-path", PATH, "--public-key", &self.public()],
        )
    }
}

fn bridge_args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--output",
        &format!("srt://127.0.0.1:{port}"),
        "--path",
        PATH,
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

fn run_bridge(args: &[String], token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .env("TRAX_SESSION_TOKEN", token)
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the bridge binary runs")
}

/// Returns the bridge's status log lines.
fn status_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("output status"))
        .collect()
}

/// Returns the text after `name=` up to the next space, such as `live` for `state`.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let start = line.find(&key)? + key.len();
    line[start..].split(' ').next()
}

fn number(line: &str, name: &str) -> Option<f64> {
    field(line, name).and_then(|text| text.parse().ok())
}

#[test]
fn status_log_shows_live_srt() {
    let _guard = support::setup();
    let keys = Keys::new();
    let port = free_udp_port();
    let receiver = keys.receiver(port);

    let args = bridge_args(port, &["--status-interval", "1", "--duration", "4"]);
    let output = run_bridge(&args, &keys.token);
    receiver.stop();
    let log = output_text(&output);

    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(!log.contains(&keys.token), "the token is in the log");
    let signature = keys.token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "part of the token is in the log");

    let lines = status_lines(&log);
    assert!(lines.len() >= 2, "fewer than 2 status lines in 4 s:\n{log}");
    let label = format!("output=srt://127.0.0.1:{port} path={PATH} ");
    for line in &lines {
        assert!(line.contains(&label), "no label in {line}");
    }
    let live: Vec<&&str> = lines
        .iter()
        .filter(|line| field(line, "state") == Some("live"))
        .collect();
    assert!(!live.is_empty(), "no status line with state=live:\n{log}");

    let last = live.last().unwrap();
    let bitrate = number(last, "bitrate_kbps").expect("bitrate_kbps");
    assert!(bitrate > 0.0, "bitrate_kbps is 0 while live: {last}");
    let rtt = number(last, "rtt_ms").expect("rtt_ms on an SRT output");
    assert!(rtt >= 0.0, "{last}");
    assert_eq!(number(last, "lost"), Some(0.0), "{last}");
    assert!(number(last, "retransmitted").is_some(), "{last}");
    assert_eq!(number(last, "dropped"), Some(0.0), "{last}");
    assert_eq!(number(last, "attempts"), Some(1.0), "{last}");
    assert!(number(last, "bytes").unwrap() > 0.0, "{last}");
}

#[test]
fn status_log_shows_backoff_without_receiver() {
    let _guard = support::setup();
    let keys = Keys::new();
    let port = free_udp_port();

    // An SRT dial waits 3 s for a listener to respond, and the first two
    // delays are about 0.5 s and 1 s, so lines every 0.25 s catch the
    // backing-off state, and 8 s cover at least two attempts.
    let args = bridge_args(port, &["--status-interval", "0.25", "--duration", "8"]);
    let output = run_bridge(&args, &keys.token);
    let log = output_text(&output);

    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(!log.contains(&keys.token), "the token is in the log");

    let lines = status_lines(&log);
    assert!(lines.len() >= 10, "too few status lines:\n{log}");
    let states: Vec<&str> = lines
        .iter()
        .filter_map(|line| field(line, "state"))
        .collect();
    assert!(!states.contains(&"live"), "{states:?}");
    assert!(states.contains(&"connecting"), "{states:?}");
    assert!(states.contains(&"backing_off"), "{states:?}");

    let attempts: Vec<u64> = lines
        .iter()
        .map(|line| number(line, "attempts").expect("attempts") as u64)
        .collect();
    assert!(
        attempts.windows(2).all(|pair| pair[0] <= pair[1]),
        "attempts went down: {attempts:?}"
    );
    assert!(
        attempts.last().copied().unwrap_or(0) >= 2,
        "attempts did not rise: {attempts:?}"
    );

    let backing_off = lines
        .iter()
        .find(|line| field(line, "state") == Some("backing_off"))
        .unwrap();
    assert!(number(backing_off, "retry_in_s").is_some(), "{backing_off}");
    assert!(
        backing_off.contains("last_error=\"no SRT listener answered"),
        "{backing_off}"
    );
    assert!(!backing_off.contains("rtt_ms"), "{backing_off}");
}

/// Runs the command in a pseudo-terminal 200 columns wide and returns
/// everything it wrote there.
const PTY_RUNNER: &str = r#"
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
output = b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    output += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(output)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// The bytes that clear a row: carriage return, then erase the line.
const CLEAR_ROW: &str = "\r\x1b[2K";

/// Removes ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn terminal_redraws_status_in_place() {
    let _guard = support::setup();
    let keys = Keys::new();
    let port = free_udp_port();
    let receiver = keys.receiver(port);

    let args = bridge_args(port, &["--duration", "3"]);
    let output = Command::new(PYTHON)
        .args(["-c", PTY_RUNNER, env!("CARGO_BIN_EXE_bridge")])
        .args(&args)
        .env("TRAX_SESSION_TOKEN", &keys.token)
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the pseudo-terminal runner with /usr/bin/python3");
    receiver.stop();
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();

    assert_eq!(
        output.status.code(),
        Some(0),
        "{screen:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !screen.contains(&keys.token),
        "the token is on the terminal"
    );

    let label = format!("srt://127.0.0.1:{port} path={PATH}");
    let drawn = screen
        .split(CLEAR_ROW)
        .filter(|part| part.contains("LIVE 0:00:") && part.contains(&label))
        .count();
    assert!(
        drawn >= 3,
        "the status line was drawn {drawn} times: {screen:?}"
    );
    assert!(
        screen.matches(CLEAR_ROW).count() >= 3,
        "no erased rows: {screen:?}"
    );

    // What each row shows once its erases are applied: a log line never
    // shares its row with a status line.
    for row in screen.split('\n') {
        let visible = strip_ansi(row.rsplit(CLEAR_ROW).next().unwrap());
        if visible.contains(" INFO ") || visible.contains(" WARN ") {
            assert!(!visible.contains("LIVE 0:"), "mixed row: {row:?}");
        }
    }
    let last_row = screen.rsplit(CLEAR_ROW).next().unwrap();
    assert!(
        !last_row.contains("LIVE"),
        "the status line stayed after the exit: {last_row:?}"
    );
}
