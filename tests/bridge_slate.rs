//! Input trouble end to end: the bridge binary streams the test pattern with
//! faults on a timetable (`--device test-faults:…`) to the libsrt receiver,
//! and the recorded MPEG-TS is checked with ffprobe and ffmpeg. Receivers
//! must see one stream at one size and rate, with timestamps that keep
//! increasing, through stalls, size changes, source errors and encoder
//! errors.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::media::{decode_errors, output_text};
use support::receiver::{free_udp_port, Receiver};

const PATH: &str = "inputs/srt-slate-test";
const FPS: f64 = 25.0;
const WIDTH: u64 = 640;
const HEIGHT: u64 = 360;

/// Largest step between consecutive timestamps a receiver may see.
const MAX_GAP_S: f64 = 1.0;

/// A run of the bridge with one fault script, and what the receiver got.
struct Run {
    log: String,
    output: Output,
    received: PathBuf,
    _directory: tempfile::TempDir,
}

/// Streams `--device test-faults:<script>` at 640x360, 25 fps, for
/// `seconds`, to the libsrt receiver, with `extra` arguments.
fn run(script: &str, seconds: u32, extra: &[&str]) -> Run {
    let directory = tempfile::tempdir().unwrap();
    let key = directory.path().join("key.pem");
    let public = directory.path().join("key.pub.pem");
    let token = support::mint_token(&[
        "--key",
        key.to_str().unwrap(),
        "--public-key-out",
        public.to_str().unwrap(),
        "--path",
        PATH,
    ]);
    let received = directory.path().join("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--public-key",
            public.to_str().unwrap(),
            "--output",
            received.to_str().unwrap(),
        ],
    );

    let device = format!("test-faults:{script}");
    let url = format!("srt://127.0.0.1:{port}");
    let duration = seconds.to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", &device, "--size", "640x360", "--fps", "25"])
        .args(["--output", &url, "--path", PATH, "--duration", &duration])
        .args(extra)
        .env("TRAX_SESSION_TOKEN", &token)
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_LOG", "bridge=debug")
        .stdin(Stdio::null())
        .output()
        .expect("the bridge binary runs");
    receiver.stop();
    Run {
        log: output_text(&output),
        output,
        received,
        _directory: directory,
    }
}

/// Returns the PTS of every packet of one stream (`v` or `a`), in seconds.
fn packet_times(file: &Path, stream: &str) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "ffprobe failed on {}",
        file.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Returns the size of every decoded video frame, as `(width, height)`.
fn frame_sizes(file: &Path) -> Vec<(u64, u64)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "ffprobe failed on {}",
        file.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().trim_end_matches(',').split(',');
            let width = fields.next()?.parse().ok()?;
            let height = fields.next()?.parse().ok()?;
            Some((width, height))
        })
        .collect()
}

/// Returns the largest step between consecutive sorted timestamps, and
/// the number of steps that do not increase in arrival order.
fn gaps(times: &[f64]) -> (f64, usize) {
    let backwards = times.windows(2).filter(|pair| pair[1] <= pair[0]).count();
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let largest = sorted
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .fold(0.0, f64::max);
    (largest, backwards)
}

/// Checks what every test requires of the received stream: clean exit
/// with no GStreamer CRITICAL in the log, one size, no gap over `MAX_GAP_S`, at least 90 % of the nominal frames,
/// increasing timestamps and a clean decode.
fn assert_continuous(run: &Run) {
    assert_eq!(run.output.status.code(), Some(0), "{}", run.log);
    assert!(!run.log.contains("CRITICAL"), "{}", run.log);

    let video = packet_times(&run.received, "v");
    assert!(video.len() > 10, "only {} video packets", video.len());
    let (video_gap, video_backwards) = gaps(&video);
    assert!(
        video_gap <= MAX_GAP_S,
        "a {video_gap:.3} s gap in the video"
    );
    assert_eq!(video_backwards, 0, "video PTS stepped back");

    let span = video.last().unwrap() - video.first().unwrap();
    let nominal = span * FPS;
    assert!(
        video.len() as f64 >= 0.9 * nominal,
        "{} video frames over {span:.2} s, nominal {nominal:.0}",
        video.len()
    );

    let audio = packet_times(&run.received, "a");
    assert!(audio.len() > 10, "only {} audio packets", audio.len());
    let (audio_gap, audio_backwards) = gaps(&audio);
    assert!(
        audio_gap <= MAX_GAP_S,
        "a {audio_gap:.3} s gap in the audio"
    );
    assert_eq!(audio_backwards, 0, "audio PTS stepped back");

    let sizes = frame_sizes(&run.received);
    assert!(!sizes.is_empty(), "no decoded frames");
    let other: Vec<_> = sizes
        .iter()
        .filter(|size| **size != (WIDTH, HEIGHT))
        .collect();
    assert!(other.is_empty(), "frames not at 640x360: {other:?}");

    let errors = decode_errors(&run.received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
}

/// Returns the position of `needle` in the log, failing when it is absent.
fn position(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("the log lacks '{needle}':\n{log}"))
}

#[test]
fn stall_sends_slate_then_source() {
    let _guard = support::setup();
    let run = run("stall=3+5", 12, &[]);
    assert_continuous(&run);

    let lost = position(&run.log, "source lost: sending the slate");
    let back = position(&run.log, "source back");
    assert!(lost < back, "the source came back before it was lost");
    assert_eq!(run.log.matches("source lost").count(), 1, "{}", run.log);
}

#[test]
fn size_change_keeps_output_size() {
    let _guard = support::setup();
    let run = run("size=3:320x240", 7, &[]);
    assert_continuous(&run);

    // The source really delivered the new size, which the scaler took in.
    assert!(
        run.log.contains("width=(int)320, height=(int)240"),
        "the source never changed size:\n{}",
        run.log
    );
    assert!(!run.log.contains("source lost"), "{}", run.log);
}

#[test]
fn source_error_reopens_source() {
    let _guard = support::setup();
    let run = run("error=3+3", 12, &[]);
    assert_continuous(&run);

    let failed = position(&run.log, "source failed: sending the slate");
    let retry = position(&run.log, "failed to reopen the source");
    let reopened = position(&run.log, "source reopened");
    let back = position(&run.log, "source back");
    assert!(failed < retry, "{}", run.log);
    assert!(retry < reopened, "{}", run.log);
    assert!(reopened < back, "{}", run.log);
    assert!(run.log.contains("unplugged until 6.0 s"), "{}", run.log);
}

#[test]
fn source_error_before_video_exits_4() {
    let _guard = support::setup();
    let run = run("error=0+60", 10, &[]);
    assert_eq!(run.output.status.code(), Some(4), "{}", run.log);
    assert!(!run.log.contains("source reopened"), "{}", run.log);
}

#[test]
fn encoder_error_switches_encoder() {
    let _guard = support::setup();
    let run = run("encoder-error=3", 10, &[]);
    assert_continuous(&run);

    let failed = position(&run.log, "encoder failed: switching to the next encoder");
    let replaced = position(&run.log, "encoder replaced; the outputs go on");
    assert!(failed < replaced, "{}", run.log);
    let switch_line = run.log[replaced..].lines().next().unwrap();
    assert!(switch_line.contains("failed=\"x264enc\""), "{switch_line}");
    assert!(
        switch_line.contains("encoder=\"openh264enc\""),
        "{switch_line}"
    );
    let failures = run.log.matches("encoder failed: switching").count();
    assert_eq!(failures, 1, "{}", run.log);
}

#[test]
fn stop_on_slate_ends_recording_cleanly() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().join("record");
    std::fs::create_dir(&record).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test-faults:stall=2+60", "--size", "640x360"])
        .args(["--fps", "25", "--record"])
        .arg(&record)
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env("RUST_LOG", "bridge=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary runs");
    // The source stalls at 2 s; the slate is on air from about 3 s.
    std::thread::sleep(std::time::Duration::from_secs(5));
    // SAFETY: kill on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let stopped = std::time::Instant::now();
    let output = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(15),
            "the bridge did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("source lost: sending the slate"), "{log}");

    let mut segments: Vec<PathBuf> = std::fs::read_dir(&record)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ts"))
        .collect();
    segments.sort();
    let last = segments
        .last()
        .unwrap_or_else(|| panic!("no segment: {log}"));
    let errors = decode_errors(last);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let sizes = frame_sizes(last);
    assert!(sizes.len() >= 100, "only {} frames", sizes.len());
    assert!(
        sizes.iter().all(|&size| size == (WIDTH, HEIGHT)),
        "sizes: {sizes:?}"
    );
}
