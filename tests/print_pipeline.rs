//! `--print-pipeline`: the real binary plans the capture, runs its test
//! encode and prints the media pipeline, which must be the one the
//! references in `pipelines/` describe, and exits 0 without connecting to
//! any output. The outputs point at listeners this test owns, which must
//! see nothing.

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A publish token for `inputs/srt-print`, SRT and WHIP (unsigned: `--print-pipeline`
/// checks its claims as a run does, and the signature is the server's).
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJhY3Rpb24iOiJwdWJsaXNoIiwicGF0aCI6ImlucHV0cy9zcnQtcHJpbnQiLCJhdWQiOlsidHJheC1tZWRpYW10eCIsInRyYXgtbWVkaWFtdHgtdGFsayJdfQ.c2lnbmF0dXJl";

fn bridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .env("TRAX_SESSION_TOKEN", TOKEN)
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("TRAX_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("the bridge binary runs")
}

/// Returns the description part of a reference file: every line after the
/// leading comment block.
fn reference(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    description(&text)
}

fn description(text: &str) -> String {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Loopback listeners standing in for an SRT receiver (UDP) and a WHIP
/// endpoint (TCP).
struct Listeners {
    srt: UdpSocket,
    whip: TcpListener,
}

impl Listeners {
    fn new() -> Self {
        let srt = UdpSocket::bind("127.0.0.1:0").unwrap();
        srt.set_nonblocking(true).unwrap();
        let whip = TcpListener::bind("127.0.0.1:0").unwrap();
        whip.set_nonblocking(true).unwrap();
        Self { srt, whip }
    }

    fn srt_url(&self) -> String {
        format!("srt://127.0.0.1:{}", self.srt.local_addr().unwrap().port())
    }

    fn whip_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/inputs/srt-print/whip",
            self.whip.local_addr().unwrap().port()
        )
    }

    fn assert_untouched(&self) {
        let mut buffer = [0u8; 2048];
        let datagram = self.srt.recv_from(&mut buffer);
        assert!(
            matches!(&datagram, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "the SRT listener got a datagram: {datagram:?}"
        );
        let connection = self.whip.accept();
        assert!(
            matches!(&connection, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "the WHIP listener got a connection: {connection:?}"
        );
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn srt_output_prints_test_x264_reference() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let output = bridge(&[
        "--device",
        "test",
        "--encoder",
        "x264",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--print-pipeline",
    ]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(description(&text), reference("test-x264.pipeline"));
    assert!(text.contains("# encoder: x264enc (x264)"), "{text}");
    assert!(text.contains("# source: test pattern"), "{text}");
    assert!(!text.contains("opus:"), "{text}");
    listeners.assert_untouched();
}

#[test]
fn whip_output_adds_opus_branch() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let whip = listeners.whip_url();
    let output = bridge(&[
        "--device",
        "test",
        "--encoder",
        "x264",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--output",
        &whip,
        "--print-pipeline",
    ]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(description(&text), reference("test-x264-whip.pipeline"));
    assert!(text.contains("opus: (the audio tee)"), "{text}");
    assert!(text.contains("profile constrained-baseline"), "{text}");
    listeners.assert_untouched();
}

/// With `--encoder auto` the printed encoder is the one `bridge encoders`
/// marks as picked, and every candidate before it is listed as skipped.
#[test]
fn auto_encoder_matches_encoder_survey() {
    let survey = stdout(&bridge(&["encoders", "--json"]));
    let survey: serde_json::Value = serde_json::from_str(&survey).unwrap();
    let statuses = survey.as_array().unwrap();
    let picked = statuses
        .iter()
        .position(|s| s["selected"] == true)
        .expect("an encoder passes here");

    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let output = bridge(&[
        "--device",
        "test",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--print-pipeline",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let element = statuses[picked]["element"].as_str().unwrap();
    assert!(
        text.contains(&format!("# encoder: {element} (auto)")),
        "{element}: {text}"
    );
    for skipped in &statuses[..picked] {
        let name = skipped["element"].as_str().unwrap();
        assert!(
            text.contains(&format!("#   skipped {name}: ")),
            "{name}: {text}"
        );
    }
    listeners.assert_untouched();
}

#[test]
fn missing_device_fails_with_device_error() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let output = bridge(&[
        "--device",
        "/dev/video99",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--print-pipeline",
    ]);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/dev/video99"), "{stderr}");
    assert!(stdout(&output).is_empty());
    listeners.assert_untouched();
}

#[test]
fn status_listen_adds_preview_branch() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let status = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = status.local_addr().unwrap().to_string();
    drop(status);
    let output = bridge(&[
        "--device",
        "test",
        "--encoder",
        "x264",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--status-listen",
        &address,
        "--print-pipeline",
    ]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let preview = text
        .lines()
        .find(|line| line.starts_with("preview: "))
        .unwrap_or_else(|| panic!("no preview line with --status-listen: {text}"));
    assert!(preview.contains("queue"), "{preview}");
    assert!(preview.contains("leaky=downstream"), "{preview}");
    assert!(preview.contains("width=320"), "{preview}");
    assert!(preview.contains("jpegenc"), "{preview}");
    assert!(preview.ends_with("appsink"), "{preview}");
    listeners.assert_untouched();
}

#[test]
fn taken_status_port_is_reported() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = holder.local_addr().unwrap().to_string();
    let output = bridge(&[
        "--device",
        "test",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--status-listen",
        &address,
        "--print-pipeline",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A run streams without the status page while the port is taken, so
    // the pipeline is printed, with the error beside it.
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(!stdout(&output).is_empty());
    listeners.assert_untouched();
}

#[test]
fn output_checks_fail_like_run() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let record = tempfile::tempdir().unwrap();
    let missing = record.path().join("missing");
    // Each case fails a check that a run makes before capture.
    let cases: [(Vec<&str>, i32, &str); 4] = [
        (
            vec!["--output", &srt, "--path", "inputs:print"],
            2,
            "contains ':'",
        ),
        (
            vec!["--output", &srt, "--path", "inputs/other"],
            3,
            "request a token for 'inputs/other'",
        ),
        (
            vec!["--output", &srt, "--path", "inputs/print", "--output", &srt],
            2,
            "given twice",
        ),
        (vec!["--record", missing.to_str().unwrap()], 2, "mkdir -p"),
    ];
    for (extra, code, message) in cases {
        let mut args = vec!["--device", "test", "--encoder", "x264"];
        args.extend(&extra);
        args.push("--print-pipeline");
        let output = bridge(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(stdout(&output).is_empty(), "{extra:?}");
    }
    listeners.assert_untouched();
}

#[test]
fn audio_none_says_no_audio() {
    let listeners = Listeners::new();
    let srt = listeners.srt_url();
    let whip = listeners.whip_url();
    let output = bridge(&[
        "--device",
        "test",
        "--encoder",
        "x264",
        "--audio",
        "none",
        "--output",
        &srt,
        "--path",
        "inputs/srt-print",
        "--output",
        &whip,
        "--print-pipeline",
    ]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("\naudio: none\n"), "{text}");

    let outputs = text
        .lines()
        .find(|line| line.starts_with("# outputs: "))
        .unwrap_or_else(|| panic!("no '# outputs' line: {text}"));
    assert!(outputs.ends_with("; no audio"), "{outputs}");
    assert!(!outputs.contains("AAC"), "{outputs}");
    assert!(!outputs.contains("Opus"), "{outputs}");
    listeners.assert_untouched();
}
