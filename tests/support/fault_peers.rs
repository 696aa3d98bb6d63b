//! The receivers of the fault tests, one per protocol, each checking the
//! tokens that the /v1 stand-in issues, and the checks of what each one
//! got across a fault.

use super::bridge_process::BridgeProcess;
use super::media::decode_errors;
use super::nginx::Nginx;
use super::receiver::{free_udp_port, Receiver};
use super::standin::Standin;
use super::timeline::{max_gap, rtp_seconds, sorted_times, span, video_packets};
use super::whip_receiver::{read_video_times, AiortcReceiver, AiortcToken};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest step allowed between neighbouring video timestamps.
pub const MAX_GAP_S: f64 = 1.0;

/// The source every fault test encodes: small, to spare the machine's
/// two cores.
pub const SOURCE_ARGS: [&str; 6] = ["--device", "test", "--size", "320x240", "--fps", "30"];

/// The TRaX source whose credentials the stand-in issues.
pub const SOURCE_ID: &str = "src_cam1";

/// Starts the libsrt receiver on `port`, checking tokens against the
/// stand-in's JWKS and writing what it gets to `file`.
pub fn start_srt_receiver(standin: &Standin, port: u16, file: &Path) -> Receiver {
    Receiver::start(
        port,
        &[
            "--jwks-url",
            &standin.jwks_url(),
            "--output",
            file.to_str().unwrap(),
        ],
    )
}

/// Starts the aiortc WHIP receiver on `port` (0: a free one), recording
/// into `directory`.
pub fn start_whip_receiver(standin: &Standin, port: u16, directory: &Path) -> AiortcReceiver {
    let port = port.to_string();
    AiortcReceiver::start(
        directory,
        AiortcToken::Jwks(&standin.jwks_url()),
        &["--port", &port],
    )
}

/// Waits until `done` returns true and returns how long that took; panics
/// naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Waits until nginx has `count` recordings and the last has media in it,
/// and returns how long that took.
pub fn wait_for_rtmp_recording(nginx: &Nginx, count: usize, timeout: Duration) -> Duration {
    wait_until(&format!("nginx recording {count}"), timeout, || {
        let recordings = nginx.recordings();
        recordings.len() >= count
            && std::fs::metadata(&recordings[count - 1]).is_ok_and(|meta| meta.len() > 20_000)
    })
}

/// Returns the bridge's arguments for the small test source and the three
/// outputs.
pub fn output_args(srt_port: u16, nginx: &Nginx, whip_port: u16) -> Vec<String> {
    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{srt_port}"),
        "--output".to_string(),
        nginx.rtmp_url(""),
        "--output".to_string(),
        format!("http://127.0.0.1:{whip_port}"),
        "--ice-address".to_string(),
        "127.0.0.1".to_string(),
    ]);
    args
}

/// Starts the bridge with `args`.
pub fn start_bridge(args: &[String], standin: &Standin) -> BridgeProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    BridgeProcess::start(&args, standin)
}

/// Asserts that the sorted video `times` of `name` step by at most
/// `MAX_GAP_S` and span at least `min_span_s`.
pub fn assert_no_gap(name: &str, times: &[f64], min_span_s: f64) {
    let (gap, at) = max_gap(times);
    eprintln!(
        "{name}: {} video frames over {:.1} s, largest step {gap:.3} s",
        times.len(),
        span(times)
    );
    assert!(
        gap <= MAX_GAP_S,
        "{name}: {gap:.3} s without video from {at:.3} s"
    );
    assert!(
        span(times) >= min_span_s,
        "{name}: video spans only {:.1} s, expected at least {min_span_s} s",
        span(times)
    );
}

/// Checks an MPEG-TS or FLV recording: no step over `MAX_GAP_S` in its
/// video timestamps, a span of at least `min_span_s`, and, when
/// `complete`, a first video packet that is a keyframe and no decode
/// errors. A recording cut by a killed receiver is not complete.
pub fn check_recording(name: &str, file: &Path, min_span_s: f64, complete: bool) {
    let packets = video_packets(file);
    assert!(
        !packets.is_empty(),
        "{name}: no video in {}",
        file.display()
    );
    assert_no_gap(name, &sorted_times(&packets), min_span_s);
    if complete {
        assert!(
            packets[0].keyframe,
            "{name}: the first video packet is not a keyframe"
        );
        let errors = decode_errors(file);
        assert!(errors.trim().is_empty(), "{name}: decode errors: {errors}");
    }
}

/// Checks a WHIP session's recording in `session_dir` as
/// `check_recording` does, with RTP timestamps. When `complete`, the first
/// access unit must be an IDR and the H.264 must decode without errors.
pub fn check_whip_session(name: &str, session_dir: &Path, min_span_s: f64, complete: bool) {
    let units = read_video_times(session_dir);
    assert!(!units.is_empty(), "{name}: no video access unit arrived");
    let timestamps: Vec<u32> = units.iter().map(|unit| unit.1).collect();
    let mut times = rtp_seconds(&timestamps);
    times.sort_by(f64::total_cmp);
    assert_no_gap(name, &times, min_span_s);
    if complete {
        assert!(units[0].2, "{name}: the first access unit is not an IDR");
        let errors = decode_errors(&session_dir.join("video.h264"));
        assert!(errors.trim().is_empty(), "{name}: decode errors: {errors}");
    }
}

/// Lists the bridge's own recorded segments in `directory`, sorted.
pub fn segments(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "ts"))
        .collect();
    files.sort();
    files
}

/// Checks the bridge's own recording in `directory` as one timeline.
pub fn check_segments(directory: &Path, min_span_s: f64) {
    let files = segments(directory);
    assert!(!files.is_empty(), "the bridge recorded no segment");
    let packets: Vec<_> = files.iter().flat_map(|file| video_packets(file)).collect();
    assert_no_gap(
        "the bridge's recording",
        &sorted_times(&packets),
        min_span_s,
    );
}

/// Returns a UDP port for the SRT receiver.
pub fn srt_port() -> u16 {
    free_udp_port()
}
