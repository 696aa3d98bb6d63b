//! The bridge binary publishing over WHIP to the two receivers on
//! 127.0.0.1: the aiortc peer, which checks the talk token against the /v1
//! stand-in's JWKS, and the webrtcbin receiver. What arrived is checked
//! with ffprobe and ffmpeg and with the receivers' reports: codecs, size,
//! profile, frames decoded, audio level, keyframes on connect and on PLI,
//! and one DELETE at the end.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::media::{decode_errors, ffprobe_streams};
use support::standin::Standin;
use support::whip_bridge::{run_bridge, standin_talk_credentials, token_file, BridgeRun};
use support::whip_receiver::{AiortcReceiver, AiortcToken};
use support::whip_token::{TokenPolicy, WHIP_AUDIENCE};
use support::whip_webrtcbin::{WebrtcbinOptions, WebrtcbinReceiver};

const CLIP: &str = concat!(
    "file:",
    env!("CARGO_MANIFEST_DIR"),
    "/media/bigbuckbunny.mp4"
);
const WIDTH: u64 = 640;
const HEIGHT: u64 = 360;
const SIZE: &str = "640x360";

/// A receiver, the stand-in that issued its token, and where it records.
struct Setup {
    standin: Standin,
    path: String,
    token: String,
    directory: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let standin = Standin::start(&[]);
        let (path, token) = standin_talk_credentials(&standin);
        Self {
            standin,
            path,
            token,
            directory: tempfile::tempdir().unwrap(),
        }
    }

    fn aiortc(&self, extra: &[&str]) -> AiortcReceiver {
        AiortcReceiver::start(
            &self.directory.path().join("aiortc"),
            AiortcToken::Jwks(&self.standin.jwks_url()),
            extra,
        )
    }

    /// Runs the bridge against `url` with the talk token and `args`.
    fn publish(&self, url: &str, args: &[&str], duration_s: u64) -> BridgeRun {
        let token_path = token_file(self.directory.path(), &self.token);
        let duration = duration_s.to_string();
        let mut all = vec!["--output", url, "--token-file"];
        all.push(token_path.to_str().unwrap());
        all.extend(["--duration", &duration]);
        all.extend(args);
        let run = run_bridge(&all, &[], duration_s);
        run.assert_hides(&self.token, "session token");
        run
    }
}

/// Stops the receiver, so its reports are final, and returns session 1's.
fn final_report(receiver: AiortcReceiver) -> (Value, Vec<Value>, String) {
    let events = receiver.events();
    let log = receiver.log();
    let directory = receiver.session_dir(1);
    receiver.stop();
    let text = std::fs::read_to_string(directory.join("report.json"))
        .unwrap_or_else(|error| panic!("no report of session 1 ({error}); log:\n{log}"));
    (serde_json::from_str(&text).unwrap(), events, log)
}

fn count_events(events: &[Value], name: &str) -> usize {
    events.iter().filter(|event| event["event"] == name).count()
}

/// Returns the picture type (I, P or B) of every frame in `file`.
fn picture_types(file: &Path) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_frames"])
        .args(["-show_entries", "frame=pict_type", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    assert!(output.status.success(), "ffprobe -show_frames failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().trim_end_matches(',').to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Returns each (from, to) pair of packet timestamps (milliseconds, the
/// Matroska time base) where
/// stream `index` of `file` goes back in time.
fn backward_jumps(file: &Path, index: u32) -> Vec<(i64, i64)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &index.to_string()])
        .args(["-show_entries", "packet=pts", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    let times: Vec<i64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .collect();
    times
        .windows(2)
        .filter(|pair| pair[1] < pair[0])
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

fn seconds(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a time, got {value}"))
}

#[test]
fn aiortc_receives_baseline_video_and_opus() {
    let _guard = support::setup();
    let setup = Setup::new();
    let receiver = setup.aiortc(&[]);
    let url = receiver.url_for(&setup.path);
    let duration_s = 6;

    let run = setup.publish(
        &url,
        &["--device", CLIP, "--loop", "--size", SIZE],
        duration_s,
    );
    let (report, events, log) = final_report(receiver);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(count_events(&events, "session"), 1, "{events:?}");
    assert_eq!(count_events(&events, "deleted"), 1, "{events:?}");
    assert_eq!(log.matches("DELETE ").count(), 1, "{log}");
    assert_eq!(report["delete_received"], true, "{report:#}");

    let recording = setup.directory.path().join("aiortc/session-1/video.h264");
    let streams = ffprobe_streams(&recording);
    assert_eq!(streams.len(), 1, "{streams:?}");
    let video = &streams[0];
    assert_eq!(video["codec_name"], "h264", "{video:#}");
    assert_eq!(video["width"], WIDTH, "{video:#}");
    assert_eq!(video["height"], HEIGHT, "{video:#}");
    assert_eq!(video["profile"], "Constrained Baseline", "{video:#}");
    assert_eq!(video["has_b_frames"], 0, "{video:#}");
    let types = picture_types(&recording);
    assert!(!types.is_empty(), "ffprobe found no frames");
    assert!(
        !types.iter().any(|kind| kind == "B"),
        "B-frames in {types:?}"
    );

    // The clip is 25 fps: well over half the run's frames must decode.
    let video = &report["video"];
    let frames = video["frames_decoded"].as_u64().unwrap();
    assert!(
        frames >= 25 * duration_s * 6 / 10,
        "{frames} frames decoded"
    );
    assert_eq!(video["width"], WIDTH, "{video:#}");
    assert_eq!(video["height"], HEIGHT, "{video:#}");

    let audio = &report["audio"];
    assert_eq!(audio["codec"], "audio/opus", "{audio:#}");
    assert!(audio["frames_decoded"].as_u64().unwrap() > 0, "{audio:#}");
    let level = audio["rms_dbfs"].as_f64().unwrap();
    assert!(level > -60.0, "audio level {level} dBFS: silence");
}

#[test]
fn webrtcbin_receives_decodable_recording() {
    let _guard = support::setup();
    let setup = Setup::new();
    let receiver = WebrtcbinReceiver::start(WebrtcbinOptions {
        record_dir: setup.directory.path().join("webrtcbin"),
        token: TokenPolicy::Jwks {
            url: setup.standin.jwks_url(),
            audience: WHIP_AUDIENCE.to_string(),
        },
    })
    .expect("the webrtcbin receiver starts");
    let url = receiver.url_for(&setup.path);

    let run = setup.publish(&url, &["--device", "test", "--size", SIZE], 5);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(receiver.session_count(), 1);
    let report = receiver.report(1).unwrap();
    assert!(report.delete_received, "{report:?}");
    assert!(report.video_buffers > 0, "{report:?}");
    assert!(report.audio_buffers > 0, "{report:?}");
    drop(receiver);

    let streams = ffprobe_streams(&report.recording);
    let video = streams
        .iter()
        .find(|stream| stream["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream: {streams:?}"));
    assert_eq!(video["codec_name"], "h264", "{video:#}");
    assert_eq!(video["width"], WIDTH, "{video:#}");
    assert_eq!(video["height"], HEIGHT, "{video:#}");
    let audio = streams
        .iter()
        .find(|stream| stream["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio stream: {streams:?}"));
    assert_eq!(audio["codec_name"], "opus", "{audio:#}");

    // Media starts at the IDR requested on connect, audio with it, so the
    // timestamps never step back. NOTE: under CPU load the receiver's
    // jitter buffer can give two frames the same millisecond, which
    // Matroska's muxer reports as non-monotonic DTS; that is the
    // receiver's rounding, not a decoding error, so a few are let through.
    let errors = decode_errors(&report.recording);
    let (timestamp_errors, other_errors): (Vec<&str>, Vec<&str>) =
        errors.lines().partition(|line| {
            line.contains("non monotonically increasing dts")
                || line.trim().starts_with("Last message repeated")
        });
    assert!(other_errors.is_empty(), "decode errors: {other_errors:?}");
    assert!(
        timestamp_errors.len() <= 3,
        "timestamp complaints: {timestamp_errors:?}"
    );
    let jumps = backward_jumps(&report.recording, 1);
    assert!(jumps.is_empty(), "audio timestamps went back: {jumps:?}");
}

#[test]
fn keyframes_follow_connect_and_pli() {
    let _guard = support::setup();
    let setup = Setup::new();
    let pli_after_s = 2.5;
    let receiver = setup.aiortc(&["--pli-after-s", &pli_after_s.to_string()]);
    let url = receiver.url_for(&setup.path);

    let args = ["--device", "test", "--size", SIZE, "--gop", "10"];
    let run = setup.publish(&url, &args, 7);
    let (report, _, _) = final_report(receiver);
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // With a 10 s GOP only the IDR requested at connect lets the receiver
    // decode this early.
    let video = &report["video"];
    let first_frame = seconds(&video["first_frame_s"]) - run.started_unix_s;
    eprintln!("WHIP time to first decoded frame with a 10 s GOP: {first_frame:.2} s");
    assert!(first_frame < 6.0, "first frame after {first_frame:.2} s");

    let connected = seconds(&report["connected_s"]);
    let requested = report["pli_sent_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(seconds)
        .find(|sent| *sent >= connected + pli_after_s - 0.1)
        .unwrap_or_else(|| panic!("the requested PLI was not sent: {report:#}"));
    let idr = video["idr_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(seconds)
        .find(|arrived| *arrived > requested)
        .unwrap_or_else(|| panic!("no IDR after the PLI: {report:#}"));
    let delay = idr - requested;
    assert!(delay < 2.0, "the IDR came {delay:.2} s after the PLI");
}

#[test]
fn high_profile_offer_rejected_by_aiortc() {
    let _guard = support::setup();
    let setup = Setup::new();
    let receiver = setup.aiortc(&["--debug"]);
    let url = receiver.url_for(&setup.path);

    let args = ["--device", "test", "--size", SIZE, "--profile", "high"];
    let run = setup.publish(&url, &args, 4);
    let events = receiver.events();
    let log = receiver.log();
    receiver.stop();

    // aiortc 1.16 receives H.264 only as 42001f or 42e01f (Baseline and
    // Constrained Baseline), so it rejects the High offer with 406, which
    // the bridge treats as a configuration error.
    assert!(
        log.contains("profile-level-id=6400"),
        "the offer does not state High: {log}"
    );
    assert!(log.contains(" 406 "), "{log}");
    assert_eq!(count_events(&events, "session"), 0, "{events:?}");
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("406"), "{}", run.stderr);
    assert!(
        run.stderr.contains("offer not acceptable"),
        "the server's text is missing: {}",
        run.stderr
    );
}
