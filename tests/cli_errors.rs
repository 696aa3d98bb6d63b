//! The bridge binary's responses to bad input: the message names the value and
//! the fix, the exit code follows the documented table, and no secret shows.

use std::process::{Command, Output};

const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzZWNyZXQiOiJjbGktdGVzdCJ9.c2lnbmF0dXJlLXNlY3JldA";

fn bridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .args(args)
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("TRAX_SRT_PASSPHRASE")
        .env_remove("CREDENTIALS_DIRECTORY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the bridge binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_fails(args: &[&str], env: &[(&str, &str)], code: i32, expected: &str) {
    let output = bridge(args, env);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {text}");
    assert!(
        text.contains(expected),
        "{args:?}: expected '{expected}' in: {text}"
    );
    assert!(
        !text.contains("c2lnbmF0dXJlLXNlY3JldA"),
        "secret in: {text}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("c2lnbmF0dXJlLXNlY3JldA"));
}

const SRT: &[&str] = &["--output", "srt://127.0.0.1:9", "--path", "inputs/srt-demo"];

fn with_srt<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(SRT.iter().copied()).collect()
}

#[test]
fn usage_errors_exit_2() {
    let token = [("TRAX_SESSION_TOKEN", TOKEN)];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (SRT.to_vec(), "missing --device"),
        (vec!["--device", "test"], "missing --output"),
        (with_srt(&["--device", "webcam"]), "invalid device 'webcam'"),
        (
            with_srt(&["--device", "test", "--fps", "abc"]),
            "invalid frame rate 'abc'",
        ),
        (
            with_srt(&["--device", "test", "--size", "1281x720"]),
            "even width",
        ),
        (
            with_srt(&["--device", "test", "--encoder", "quicksync"]),
            "invalid encoder 'quicksync'",
        ),
        (
            with_srt(&["--device", "test", "--profile", "extended"]),
            "invalid profile 'extended'",
        ),
        (
            with_srt(&["--device", "test", "--gop", "0"]),
            "invalid --gop 0",
        ),
        (
            with_srt(&["--device", "test", "--latency", "5"]),
            "invalid --latency 5",
        ),
        (
            with_srt(&["--device", "test", "--duration=-1"]),
            "invalid --duration -1",
        ),
        (
            with_srt(&["--device", "test", "--duration", "1e20"]),
            "invalid --duration 100000000000000000000",
        ),
        (
            with_srt(&["--device", "test", "--status-interval=-1"]),
            "invalid --status-interval -1",
        ),
        (
            with_srt(&["--device", "test", "--status-interval", "0.001"]),
            "invalid --status-interval 0.001",
        ),
        (
            with_srt(&["--device", "test", "--reconnect-max-delay", "0"]),
            "invalid --reconnect-max-delay 0",
        ),
        (
            with_srt(&["--device", "test", "--reconnect-initial-delay", "20"]),
            "invalid --reconnect-initial-delay 20",
        ),
        (
            with_srt(&["--device", "test", "--log-level", "loud"]),
            "invalid --log-level 'loud'",
        ),
        (
            with_srt(&["--device", "test", "--pbkeylen", "20"]),
            "invalid --pbkeylen 20",
        ),
        (
            vec!["--device", "test", "--output", "srt://127.0.0.1:9"],
            "needs the stream path",
        ),
        (
            vec!["--device", "test", "--output", "ftp://host", "--path", "a"],
            "unknown scheme",
        ),
    ];
    for (args, expected) in cases {
        assert_fails(&args, &token, 2, expected);
    }
}

#[test]
fn whip_usage_errors_exit_2() {
    let token = [("TRAX_SESSION_TOKEN", TOKEN)];
    let whip = "http://127.0.0.1:9/inputs/whip-1/whip";
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "--device",
                "test",
                "--output",
                "https://127.0.0.1:9/inputs/x",
            ],
            token.to_vec(),
            "ends in /whip",
        ),
        (
            vec!["--device", "test", "--output", "https://127.0.0.1:9/whip"],
            token.to_vec(),
            "the stream path is missing before /whip",
        ),
        (
            vec!["--device", "test", "--output", "https://127.0.0.1:9"],
            token.to_vec(),
            "needs the stream path",
        ),
        (
            vec!["--device", "test", "--output", whip],
            vec![("TRAX_STREAM_KEY", "sk_0123456789")],
            "takes a session token as its Bearer, not a stream key",
        ),
        (
            vec!["--device", "test", "--output", whip],
            vec![],
            "needs a session token",
        ),
        (
            vec![
                "--device",
                "test",
                "--output",
                whip,
                "--ice-server",
                "http://stun.example",
            ],
            token.to_vec(),
            "invalid --ice-server: ICE server 'http://stun.example'",
        ),
        (
            vec![
                "--device",
                "test",
                "--output",
                whip,
                "--ice-server",
                "turn:127.0.0.1:3478",
            ],
            token.to_vec(),
            "needs --turn-username",
        ),
        (
            vec!["--device", "test", "--output", whip, "--turn-username", "u"],
            token.to_vec(),
            "no --ice-server is a turn: or turns: URL",
        ),
        (
            with_srt(&["--device", "test", "--ice-server", "stun:127.0.0.1:3478"]),
            token.to_vec(),
            "apply to WHIP outputs only",
        ),
        (
            vec![
                "--device",
                "test",
                "--output",
                whip,
                "--ice-address",
                "eth0",
            ],
            token.to_vec(),
            "invalid --ice-address 'eth0'",
        ),
        (
            vec!["--device", "test", "--output", whip, "--opus-bitrate", "8"],
            token.to_vec(),
            "invalid --opus-bitrate 8",
        ),
    ];
    for (args, env, expected) in cases {
        assert_fails(&args, &env, 2, expected);
    }
}

#[test]
fn ice_server_password_not_echoed() {
    let args = [
        "--device",
        "test",
        "--output",
        "http://127.0.0.1:9/inputs/whip-1/whip",
        "--ice-server",
        "turn:user:turn-password-secret@127.0.0.1:3478",
        "--turn-username",
        "user",
    ];
    let env = [
        ("TRAX_SESSION_TOKEN", TOKEN),
        ("TRAX_TURN_CREDENTIAL", "turn-password-secret"),
    ];
    let output = bridge(&args, &env);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("the URI carries credentials"), "{text}");
    assert!(
        !text.contains("turn-password-secret"),
        "password in: {text}"
    );
}

#[test]
fn whip_token_audience_checked_before_capture() {
    // An SRT token (audience trax-mediamtx) on a WHIP output.
    let token = [("TRAX_SESSION_TOKEN", TOKEN)];
    let args = [
        "--device",
        "/dev/video97",
        "--output",
        "http://127.0.0.1:9/inputs/whip-1/whip",
    ];
    assert_fails(&args, &token, 3, "not 'publish'");
}

#[test]
fn secret_flags_rejected_without_echo() {
    for flag in ["--token", "--stream-key", "--passphrase"] {
        let args = with_srt(&["--device", "test", flag, TOKEN]);
        assert_fails(&args, &[], 2, "does not take a secret's value");
    }
}

#[test]
fn token_claims_checked_before_capture() {
    let token = [("TRAX_SESSION_TOKEN", TOKEN)];
    let args = with_srt(&["--device", "/dev/video97"]);
    assert_fails(&args, &token, 3, "not 'publish'");
}

#[test]
fn secret_typed_as_file_not_echoed() {
    let key = "sk_live_0123456789abcdef0123456789";
    let args = with_srt(&["--device", "test", "--token-file", key]);
    let output = bridge(&args, &[]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("looks like a secret itself"), "{text}");
    assert!(!text.contains(key), "{text}");
}

#[test]
fn missing_credentials_named() {
    let args = with_srt(&["--device", "test"]);
    assert_fails(&args, &[], 2, "needs credentials: set TRAX_SESSION_TOKEN");
}

#[test]
fn userinfo_in_url_redacted() {
    let url = format!("srt://trax:{TOKEN}@127.0.0.1:9");
    let args = [
        "--device",
        "test",
        "--output",
        url.as_str(),
        "--path",
        "inputs/x",
    ];
    assert_fails(&args, &[], 2, "carry no credentials");
}

#[test]
fn missing_sources_exit_4() {
    let token = [("TRAX_STREAM_KEY", "c2lnbmF0dXJlLXNlY3JldA")];
    assert_fails(
        &with_srt(&["--device", "file:/nonexistent/clip.mp4"]),
        &token,
        4,
        "/nonexistent/clip.mp4",
    );
    assert_fails(
        &with_srt(&["--device", "/dev/video97"]),
        &token,
        4,
        "/dev/video97",
    );
}

#[test]
fn unusable_forced_encoder_exits_5() {
    let token = [("TRAX_STREAM_KEY", "c2lnbmF0dXJlLXNlY3JldA")];
    let args = with_srt(&[
        "--device",
        "test",
        "--encoder",
        "nvenc",
        "--size",
        "320x240",
    ]);
    assert_fails(&args, &token, 5, "nvh264enc");
}
