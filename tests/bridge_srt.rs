//! The bridge binary end to end: a source, the shared encode and an SRT
//! output to the libsrt receiver peer, checked with ffprobe.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::media::{decode_errors, ffprobe_streams, output_text};
use support::receiver::{free_udp_port, Receiver};

const PATH: &str = "inputs/srt-bridge-test";

struct Keys {
    directory: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Self {
            directory: tempfile::tempdir().unwrap(),
        }
    }

    fn private(&self) -> String {
        self.directory.path().join("key.pem").display().to_string()
    }

    fn public(&self) -> String {
        self.directory
            .path()
            .join("key.pub.pem")
            .display()
            .to_string()
    }

    /// Mints a token signed with this key pair.
    fn token(&self, extra: &[&str]) -> String {
        let (private, public) = (self.private(), self.public());
        let mut args = vec!["--key", &private, "--public-key-out", &public];
        args.extend_from_slice(extra);
        support::mint_token(&args)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }
}

fn bridge_command(args: &[&str], token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .args(args)
        .env("TRAX_SESSION_TOKEN", token)
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_LOG", "bridge=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run_bridge(args: &[&str], token: &str) -> Output {
    bridge_command(args, token)
        .output()
        .expect("the bridge binary runs")
}

fn stream_of<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|stream| stream["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

fn start_time(stream: &Value) -> f64 {
    stream["start_time"].as_str().unwrap().parse().unwrap()
}

/// The number after `name=` in the bridge's log, such as `bytes_sent=123`.
fn logged_number(log: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    let start = log.rfind(&key)? + key.len();
    let digits: String = log[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn test_source_arrives_decodable() {
    let _guard = support::setup();
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let received = keys.file("received.ts");
    let sizes = keys.file("sizes.txt");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--public-key",
            &keys.public(),
            "--output",
            received.to_str().unwrap(),
            "--sizes-file",
            sizes.to_str().unwrap(),
        ],
    );

    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        "test",
        "--size",
        "640x360",
        "--fps",
        "25",
        "--output",
        &url,
        "--path",
        PATH,
        "--duration",
        "4",
    ];
    let mut child = bridge_command(&args, &token).spawn().unwrap();
    let cmdline = read_cmdline_while_running(&mut child);
    let output = child.wait_with_output().unwrap();
    let events = receiver.stop();
    let log = output_text(&output);

    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        !cmdline.contains(&token),
        "the token is in the bridge's argv"
    );
    assert!(!log.contains(&token), "the token is in the bridge's output");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature),
        "part of the token is in the output"
    );

    let accepted: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "connecting" && e["accepted"] == true)
        .collect();
    assert_eq!(accepted.len(), 1, "{events:?}");

    let streams = ffprobe_streams(&received);
    let video = stream_of(&streams, "video");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 640);
    assert_eq!(video["height"], 360);
    assert_eq!(video["r_frame_rate"], "25/1");
    assert_eq!(stream_of(&streams, "audio")["codec_name"], "aac");
    assert_eq!(stream_of(&streams, "audio")["sample_rate"], "48000");
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");

    let sizes: Vec<usize> = std::fs::read_to_string(&sizes)
        .unwrap()
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert!(!sizes.is_empty());
    assert!(
        sizes.iter().all(|size| size % 188 == 0 && *size <= 1316),
        "{sizes:?}"
    );

    let sent = logged_number(&log, "bytes_sent").expect("the bridge logs bytes_sent");
    let got = std::fs::metadata(&received).unwrap().len();
    assert_eq!(got, sent, "the receiver holds {got} of {sent} bytes sent");

    let (idrs, idrs_with_headers) = idr_header_counts(&received, &keys.file("video.h264"));
    assert!(idrs >= 2, "only {idrs} IDR frames in 4 s with a 2 s GOP");
    assert_eq!(
        idrs_with_headers, idrs,
        "an IDR arrived without SPS and PPS before it"
    );
}

/// Counts the IDR access units in the recording's H.264 stream, and those
/// that SPS and PPS precede since the previous slice.
fn idr_header_counts(recording: &Path, elementary: &Path) -> (usize, usize) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(recording)
        .args(["-map", "0:v", "-c", "copy", "-f", "h264"])
        .arg(elementary)
        .status()
        .expect("ffmpeg runs");
    assert!(
        status.success(),
        "ffmpeg could not extract the H.264 stream"
    );
    let data = std::fs::read(elementary).unwrap();

    let (mut idrs, mut with_headers) = (0, 0);
    let (mut sps, mut pps, mut in_idr) = (false, false, false);
    for index in 0..data.len().saturating_sub(3) {
        if data[index..index + 3] != [0, 0, 1] {
            continue;
        }
        match data[index + 3] & 0x1f {
            7 => (sps, in_idr) = (true, false),
            8 => pps = true,
            5 if !in_idr => {
                idrs += 1;
                if sps && pps {
                    with_headers += 1;
                }
                (sps, pps, in_idr) = (false, false, true);
            }
            1 => (sps, pps, in_idr) = (false, false, false),
            9 => in_idr = false,
            _ => {}
        }
    }
    (idrs, with_headers)
}

/// Reads `/proc/PID/cmdline` once the process has run a moment.
fn read_cmdline_while_running(child: &mut Child) -> String {
    std::thread::sleep(Duration::from_millis(500));
    let path = format!("/proc/{}/cmdline", child.id());
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[test]
fn looped_clip_keeps_timestamps_rising() {
    let _guard = support::setup();
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/bigbuckbunny.mp4");
    assert!(
        clip.exists(),
        "{} is missing: run scripts/fetch-sample.sh",
        clip.display()
    );
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let received = keys.file("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--output",
            received.to_str().unwrap(),
        ],
    );

    let device = format!("file:{}", clip.display());
    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        &device,
        "--loop",
        "--output",
        &url,
        "--path",
        PATH,
        "--duration",
        "12",
    ];
    let output = run_bridge(&args, &token);
    receiver.stop();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));

    let streams = ffprobe_streams(&received);
    let video = stream_of(&streams, "video");
    assert_eq!(video["width"], 1280);
    assert_eq!(video["height"], 720);
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");

    // A stop ends video and audio together: no still frames after the audio.
    let video_end = *packet_times(&received, "v").last().unwrap();
    let audio_end = *packet_times(&received, "a").last().unwrap();
    assert!(
        (video_end - audio_end).abs() < 0.25,
        "video ends at {video_end:.3} s, audio at {audio_end:.3} s"
    );

    for kind in ["v", "a"] {
        let times = packet_times(&received, kind);
        assert!(times.len() > 50, "{kind}: {} packets", times.len());
        let span = times.last().unwrap() - times.first().unwrap();
        assert!(span > 10.0, "{kind}: only {span:.2} s arrived for 12 s");
        for pair in times.windows(2) {
            assert!(
                pair[1] > pair[0],
                "{kind}: DTS {} then {}",
                pair[0],
                pair[1]
            );
            assert!(
                pair[1] - pair[0] < 0.25,
                "{kind}: gap from {} to {}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// DTS of every packet of one stream (`v` or `a`), in seconds.
fn packet_times(file: &Path, stream: &str) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=dts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn audio_offset_moves_audio_later() {
    let _guard = support::setup();
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let mut starts = Vec::new();
    for offset in ["0", "400"] {
        let received = keys.file(&format!("offset-{offset}.ts"));
        let port = free_udp_port();
        let receiver = Receiver::start(port, &["--output", received.to_str().unwrap()]);
        let url = format!("srt://127.0.0.1:{port}");
        let args = [
            "--device",
            "test",
            "--size",
            "320x240",
            "--output",
            &url,
            "--path",
            PATH,
            "--duration",
            "3",
            "--av-offset-ms",
            offset,
        ];
        let output = run_bridge(&args, &token);
        receiver.stop();
        assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
        let streams = ffprobe_streams(&received);
        let lead =
            start_time(stream_of(&streams, "audio")) - start_time(stream_of(&streams, "video"));
        starts.push(lead);
    }
    let moved = starts[1] - starts[0];
    assert!(
        (0.3..=0.5).contains(&moved),
        "audio start moved {moved:.3} s against video for a 400 ms offset ({starts:?})"
    );
}

#[test]
fn rejected_twice_exits_3() {
    let _guard = support::setup();
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--reject-all"]);
    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device", "test", "--size", "320x240", "--output", &url, "--path", PATH,
    ];

    let started = Instant::now();
    let output = run_bridge(&args, &token);
    let events = receiver.stop();
    let log = output_text(&output);

    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(log.contains("token, path or passphrase rejected"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let handshakes = events.iter().filter(|e| e["event"] == "connecting").count();
    assert_eq!(handshakes, 2, "{events:?}");
    assert!(!log.contains(&token));
}

#[test]
fn refusals_reach_no_receiver() {
    let _guard = support::setup();
    let keys = Keys::new();
    let port = free_udp_port();
    let receiver = Receiver::start(port, &[]);
    let url = format!("srt://127.0.0.1:{port}");

    let long = support::mint_token(&["--path", PATH, "--streamid-bytes", "530"]);
    let expired = keys.token(&["--path", PATH, "--exp-in-s", "-30"]);
    let other_path = keys.token(&["--path", "inputs/SRT-bridge-test"]);
    let reader = keys.token(&["--path", PATH, "--action", "read"]);
    let cases = [
        (long.as_str(), PATH, 2, "18 over libsrt's 512-byte budget"),
        (expired.as_str(), PATH, 3, "expired"),
        (other_path.as_str(), PATH, 3, "differ only by case"),
        (reader.as_str(), PATH, 3, "not 'publish'"),
        (expired.as_str(), "inputs:srt", 2, "':'"),
    ];
    for (token, path, code, expected) in cases {
        let args = ["--device", "test", "--output", &url, "--path", path];
        let output = run_bridge(&args, token);
        let log = output_text(&output);
        assert_eq!(output.status.code(), Some(code), "{expected}: {log}");
        assert!(log.contains(expected), "expected '{expected}' in: {log}");
        assert!(!log.contains(token), "token in: {log}");
    }
    let events = receiver.stop();
    let handshakes = events.iter().filter(|e| e["event"] == "connecting").count();
    assert_eq!(handshakes, 0, "{events:?}");
}

#[test]
fn reconnect_starts_on_requested_keyframe() {
    let _guard = support::setup();
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let received = keys.file("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--reject-first",
            "1",
            "--output",
            received.to_str().unwrap(),
        ],
    );
    let url = format!("srt://127.0.0.1:{port}");
    // With a 20 s GOP the second connection would see no IDR for the whole
    // run unless the bridge requests one from the encoder.
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--gop",
        "20",
        "--output",
        &url,
        "--path",
        PATH,
        "--duration",
        "5",
    ];
    let output = run_bridge(&args, &token);
    let events = receiver.stop();
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("connection failed; reconnecting"), "{log}");
    let accepted = events
        .iter()
        .filter(|e| e["event"] == "connecting" && e["accepted"] == true)
        .count();
    assert_eq!(accepted, 1, "{events:?}");

    let times = packet_times(&received, "v");
    assert!(!times.is_empty(), "no video arrived after the reconnect");
    let span = times.last().unwrap() - times.first().unwrap();
    assert!(
        span > 3.0,
        "only {span:.2} s of video arrived after the reconnect"
    );
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
}

#[test]
fn audio_stays_in_sync_across_loops() {
    let _guard = support::setup();
    let keys = Keys::new();
    let clip = keys.file("flash-and-beep.mp4");
    let avsync = support::receiver::peer_script("avsync.py");
    let made = Command::new(support::receiver::PYTHON)
        .arg(&avsync)
        .args(["make", clip.to_str().unwrap(), "4"])
        .status()
        .expect("avsync.py runs");
    assert!(made.success(), "avsync.py could not make the clip");

    let token = keys.token(&["--path", PATH]);
    let received = keys.file("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--output", received.to_str().unwrap()]);
    let device = format!("file:{}", clip.display());
    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        &device,
        "--loop",
        "--output",
        &url,
        "--path",
        PATH,
        "--duration",
        "11",
    ];
    let output = run_bridge(&args, &token);
    receiver.stop();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));

    let measured = Command::new(support::receiver::PYTHON)
        .arg(&avsync)
        .args(["measure", received.to_str().unwrap()])
        .output()
        .expect("avsync.py runs");
    assert!(
        measured.status.success(),
        "{}",
        String::from_utf8_lossy(&measured.stderr)
    );
    let report: Value = serde_json::from_slice(&measured.stdout).unwrap();
    let offsets: Vec<f64> = report["offsets_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Two loop points of the 4 s clip lie inside the 11 s run.
    assert!(
        offsets.len() >= 8,
        "only {} beeps paired with flashes: {report}",
        offsets.len()
    );
    for offset in &offsets {
        assert!(
            offset.abs() <= 5.0,
            "audio off by {offset} ms against video: {report}"
        );
    }
}

/// Wall time of the drift run: the source is live, so it cannot run
/// faster than real time.
const DRIFT_RUN_S: u64 = 180;

/// One frame at the 25 fps of the drift run: the largest A/V offset a
/// viewer must not see grow past.
const FRAME_MS: f64 = 40.0;

/// Pairs every beep onset with the nearest flash within half a second and
/// returns (onset time in seconds, audio lateness in ms).
fn paired_offsets(report: &Value) -> Vec<(f64, f64)> {
    let times = |key: &str| -> Vec<f64> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let flashes = times("flashes");
    times("onsets")
        .into_iter()
        .filter_map(|onset| {
            let nearest = flashes
                .iter()
                .copied()
                .min_by(|a, b| (a - onset).abs().total_cmp(&(b - onset).abs()))?;
            ((nearest - onset).abs() < 0.5).then_some((onset, (onset - nearest) * 1000.0))
        })
        .collect()
}

#[test]
fn drifting_audio_stays_locked_to_video() {
    let _guard = support::setup();
    let keys = Keys::new();
    let token = keys.token(&["--path", PATH]);
    let received = keys.file("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--output", received.to_str().unwrap()]);
    let url = format!("srt://127.0.0.1:{port}");
    let duration = DRIFT_RUN_S.to_string();
    let args = [
        "--device",
        "test-faults:audio-drift=+0.1%",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--output",
        &url,
        "--path",
        PATH,
        "--duration",
        &duration,
    ];
    let output = run_bridge(&args, &token);
    receiver.stop();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));

    let measured = Command::new(support::receiver::PYTHON)
        .arg(support::receiver::peer_script("avsync.py"))
        .args(["measure", received.to_str().unwrap()])
        .output()
        .expect("avsync.py runs");
    assert!(
        measured.status.success(),
        "{}",
        String::from_utf8_lossy(&measured.stderr)
    );
    let report: Value = serde_json::from_slice(&measured.stdout).unwrap();
    let offsets = paired_offsets(&report);
    let run_s = DRIFT_RUN_S as f64;
    assert!(
        offsets.len() as f64 >= run_s * 0.9,
        "only {} beeps paired with flashes in {run_s} s",
        offsets.len()
    );
    // MPEG-TS timestamps start at an arbitrary point, so windows count from
    // the first paired beep.
    let start = offsets[0].0;
    let window = |from: f64, to: f64| -> Vec<f64> {
        offsets
            .iter()
            .filter(|(time, _)| (from..to).contains(&(time - start)))
            .map(|(_, offset)| *offset)
            .collect()
    };
    let first = window(0.0, 10.0);
    let last = window(run_s - 10.0, run_s);
    eprintln!("A/V offsets (ms, audio late) in the first 10 s: {first:?}");
    eprintln!("A/V offsets (ms, audio late) in the last 10 s: {last:?}");
    assert!(!first.is_empty(), "no beep paired in the first 10 s");
    assert!(!last.is_empty(), "no beep paired in the last 10 s");
    for offset in first.iter().chain(&last) {
        assert!(
            offset.abs() <= FRAME_MS,
            "audio off by {offset} ms against video, more than a frame"
        );
    }
}
