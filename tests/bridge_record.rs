//! The bridge binary's local recording (`--record DIR`): segments cut at
//! keyframes, what a killed bridge leaves, the size and age limits, the
//! directory checks, a full disk next to a live SRT output, and the end of
//! the recording when every live output gives up. Segments are checked with
//! ffprobe and decoded with ffmpeg.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::media::{decode_errors, ffprobe_streams, output_text};
use support::receiver::{free_udp_port, Receiver};

const SRT_PATH: &str = "inputs/srt-record-test";

fn bridge_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("TRAX_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_LOG", "bridge=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run_bridge(args: &[&str]) -> Output {
    bridge_command(args)
        .output()
        .expect("the bridge binary runs")
}

/// Returns the bridge's segment files in `directory`, sorted by name.
fn segments(directory: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| is_segment_name(&file_name(path)))
        .collect();
    found.sort();
    found
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks the documented pattern `bridge-YYYYMMDDTHHMMSSZ-NNNNNN.ts`.
fn is_segment_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_prefix("bridge-")
        .and_then(|rest| rest.strip_suffix(".ts"))
    else {
        return false;
    };
    let bytes = stem.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    bytes.len() == 23
        && digits(0..8)
        && bytes[8] == b'T'
        && digits(9..15)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
        && digits(17..23)
}

fn sequence(path: &Path) -> u64 {
    let name = file_name(path);
    name[name.len() - 9..name.len() - 3].parse().unwrap()
}

fn format_number(file: &Path, entry: &str) -> f64 {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg(format!("format={entry}"))
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no {entry} for {}: '{text}'", file.display()))
}

fn codecs(file: &Path) -> Vec<String> {
    let mut names: Vec<String> = ffprobe_streams(file)
        .iter()
        .filter_map(|stream| stream["codec_name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Returns the NAL unit types of the first video access unit, in order.
fn first_access_unit_nal_types(file: &Path) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-map",
            "0:v",
            "-c",
            "copy",
            "-frames:v",
            "1",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "ffmpeg cannot extract the H.264 stream of {}",
        file.display()
    );
    let data = output.stdout;
    let mut types = Vec::new();
    let mut index = 0;
    while index + 3 < data.len() {
        if data[index..index + 3] == [0, 0, 1] {
            types.push(data[index + 3] & 0x1f);
            index += 3;
        } else {
            index += 1;
        }
    }
    types
}

/// Asserts that `file` starts with SPS and PPS and then an IDR slice.
fn assert_starts_with_idr(file: &Path) {
    const SPS: u8 = 7;
    const PPS: u8 = 8;
    const IDR: u8 = 5;
    const NON_IDR: u8 = 1;
    let types = first_access_unit_nal_types(file);
    let name = file.display();
    let idr = types.iter().position(|&t| t == IDR);
    assert!(idr.is_some(), "{name}: no IDR in {types:?}");
    let before_idr = &types[..idr.unwrap()];
    assert!(
        before_idr.contains(&SPS),
        "{name}: no SPS before the IDR: {types:?}"
    );
    assert!(
        before_idr.contains(&PPS),
        "{name}: no PPS before the IDR: {types:?}"
    );
    assert!(
        !before_idr.contains(&NON_IDR),
        "{name}: a non-IDR slice comes first: {types:?}"
    );
}

fn assert_decodes(file: &Path) {
    assert_eq!(codecs(file), ["aac", "h264"], "{}", file.display());
    let errors = decode_errors(file);
    assert!(
        errors.trim().is_empty(),
        "{}: decode errors: {errors}",
        file.display()
    );
}

fn total_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .sum()
}

/// A tmpfs mounted for one test and unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, options: &str) -> Self {
        std::fs::create_dir_all(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "cannot mount a tmpfs ({options}) at {}; the test needs root: {}",
            path.display(),
            output_text(&output)
        );
        Self { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn segments_rotate_at_keyframes() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().to_str().unwrap();
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--gop",
        "1",
        "--record",
        record,
        "--record-segment",
        "2",
        "--duration",
        "7",
    ];
    let output = run_bridge(&args);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    let files = segments(directory.path());
    let names: Vec<String> = files.iter().map(|file| file_name(file)).collect();
    assert!((4..=5).contains(&files.len()), "{names:?}\n{log}");
    let sequences: Vec<u64> = files.iter().map(|file| sequence(file)).collect();
    let expected: Vec<u64> = (1..=files.len() as u64).collect();
    assert_eq!(sequences, expected, "{names:?}");

    let mut total_seconds = 0.0;
    for (index, file) in files.iter().enumerate() {
        assert_decodes(file);
        assert_starts_with_idr(file);
        let seconds = format_number(file, "duration");
        total_seconds += seconds;
        let is_last = index + 1 == files.len();
        if !is_last {
            assert!(
                (1.9..2.2).contains(&seconds),
                "{}: {seconds} s, expected about 2",
                file.display()
            );
        }
    }
    assert!(
        (6.3..7.6).contains(&total_seconds),
        "{total_seconds} s recorded in a 7 s run"
    );

    // Each segment continues where the one before ended.
    for pair in files.windows(2) {
        let end = format_number(&pair[0], "start_time") + format_number(&pair[0], "duration");
        let next_start = format_number(&pair[1], "start_time");
        assert!(
            (end - next_start).abs() < 0.1,
            "{} ends at {end}, {} starts at {next_start}",
            pair[0].display(),
            pair[1].display()
        );
    }
    assert!(log.contains("segment closed"), "{log}");
}

#[test]
fn killed_bridge_leaves_readable_segment() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().to_str().unwrap();
    let args = [
        "--device",
        "file:media/bigbuckbunny.mp4",
        "--loop",
        "--size",
        "640x360",
        "--record",
        record,
    ];
    let mut child = bridge_command(&args).spawn().unwrap();
    wait_for_bytes(
        &mut child,
        directory.path(),
        150_000,
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = output_text(&output);

    let files = segments(directory.path());
    assert_eq!(files.len(), 1, "{log}");
    let segment = &files[0];
    assert_eq!(codecs(segment), ["aac", "h264"], "{log}");
    assert_starts_with_idr(segment);
    let seconds = format_number(segment, "duration");
    assert!(seconds >= 2.0, "only {seconds} s readable after the kill");
    // The file ends at a whole MPEG-TS packet, but the last audio or video
    // frame in it may be cut short, which ffmpeg reports.
    let errors = decode_errors(segment);
    let error_lines = errors.lines().count();
    assert!(error_lines <= 3, "decode errors: {errors}");
}

/// Waits until the segments in `directory` hold at least `bytes`.
fn wait_for_bytes(child: &mut Child, directory: &Path, bytes: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if total_bytes(&segments(directory)) >= bytes {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the bridge exited with {status} before recording {bytes} bytes");
        }
        assert!(
            Instant::now() < deadline,
            "the recording did not reach {bytes} bytes in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn size_limit_deletes_oldest_own_segments() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().to_str().unwrap();
    let foreign = directory.path().join("notes.ts");
    std::fs::write(&foreign, vec![7u8; 400_000]).unwrap();
    let old_own = directory.path().join("bridge-20200101T000000Z-000001.ts");
    std::fs::write(&old_own, vec![0u8; 300_000]).unwrap();

    let max_size: u64 = 200 * 1024;
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--gop",
        "1",
        "--record",
        record,
        "--record-segment",
        "1",
        "--record-max-size",
        "200K",
        "--duration",
        "8",
    ];
    let output = run_bridge(&args);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    assert!(!old_own.exists(), "the oldest own segment is still there");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        vec![7u8; 400_000],
        "a foreign file was changed"
    );
    assert!(log.contains("deleted an old segment"), "{log}");

    let files = segments(directory.path());
    let sequences: Vec<u64> = files.iter().map(|file| sequence(file)).collect();
    assert!(files.len() >= 2, "{sequences:?}");
    // The numbering continues after the segment that was there, and only
    // the oldest went: what is left is the newest, without a hole.
    assert!(sequences[0] > 2, "{sequences:?}");
    let contiguous: Vec<u64> = (sequences[0]..sequences[0] + files.len() as u64).collect();
    assert_eq!(sequences, contiguous);

    // When the newest segment opened, the older ones were cut to the limit.
    let (newest, older) = files.split_last().unwrap();
    let older_bytes = total_bytes(older);
    assert!(
        older_bytes <= max_size,
        "{older_bytes} bytes before {}",
        newest.display()
    );
    for file in &files {
        assert_decodes(file);
    }
}

#[test]
fn age_limit_spares_foreign_files() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().to_str().unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    let old_file = |name: &str| {
        let path = directory.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(two_days_ago).unwrap();
        path
    };
    let old_own = old_file("bridge-20200101T000000Z-000041.ts");
    let foreign = [
        old_file("notes.txt"),
        old_file("bridge-20200101T000000Z-000042.mp4"),
        old_file("bridge-manual-copy.ts"),
    ];

    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--record",
        record,
        "--record-max-age",
        "24h",
        "--duration",
        "3",
    ];
    let output = run_bridge(&args);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    assert!(!old_own.exists(), "the old own segment is still there");
    for file in &foreign {
        assert!(file.exists(), "{} was deleted", file.display());
    }
    let files = segments(directory.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(sequence(&files[0]), 42);
    assert_decodes(&files[0]);
}

#[test]
fn unusable_directory_exits_2() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let read_only = Tmpfs::mount(directory.path().join("read-only"), "ro,size=1m");
    let cases = [
        (directory.path().join("missing"), "does not exist"),
        (file.clone(), "is not a directory"),
        (file.join("sub"), "Not a directory"),
        (read_only.path.clone(), "Read-only file system"),
    ];
    for (path, cause) in cases {
        let record = path.to_str().unwrap();
        let started = Instant::now();
        let output = run_bridge(&["--device", "test", "--record", record]);
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{record}: {text}");
        assert!(text.contains(record), "{record}: {text}");
        assert!(text.contains(cause), "{record}: {text}");
        assert!(
            !text.contains("streaming"),
            "{record}: capture started: {text}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let missing = output_text(&run_bridge(&[
        "--device",
        "test",
        "--record",
        directory.path().join("missing").to_str().unwrap(),
    ]));
    assert!(missing.contains("mkdir -p"), "{missing}");
}

#[test]
fn invalid_record_options_exit_2() {
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--record-segment", "0"], "invalid --record-segment 0"),
        (&["--record-max-size", "20X"], "invalid size '20X'"),
        (&["--record-max-size", "0"], "invalid size '0'"),
        (&["--record-max-size", "20"], "invalid size '20'"),
        (&["--record-max-age", "24"], "invalid duration '24'"),
        (&["--record-max-age", "5w"], "invalid duration '5w'"),
        (&["--record-segment", "-2"], "invalid --record-segment -2"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--device", "test", "--record", record];
        args.extend_from_slice(extra);
        let output = run_bridge(&args);
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    }

    let output = run_bridge(&["--device", "test", "--record-max-size", "20G"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("add --record DIR"), "{text}");
}

#[test]
fn full_disk_spares_srt_output() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let keys_dir = directory.path().join("keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let private = keys_dir.join("key.pem").display().to_string();
    let public = keys_dir.join("key.pub.pem").display().to_string();
    let token = support::mint_token(&[
        "--key",
        &private,
        "--public-key-out",
        &public,
        "--path",
        SRT_PATH,
    ]);
    let received = directory.path().join("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            SRT_PATH,
            "--public-key",
            &public,
            "--output",
            received.to_str().unwrap(),
        ],
    );

    // A 2 MiB file system, all but 40 KiB taken by a file that is deleted
    // mid-run.
    let disk = Tmpfs::mount(directory.path().join("disk"), "size=2m");
    let filler = disk.path.join("filler.bin");
    std::fs::write(&filler, vec![0u8; (2048 - 40) * 1024]).unwrap();

    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        "test",
        "--size",
        "640x360",
        "--bitrate",
        "1500",
        "--gop",
        "1",
        "--output",
        &url,
        "--path",
        SRT_PATH,
        "--record",
        disk.path.to_str().unwrap(),
        "--record-segment",
        "2",
        "--duration",
        "14",
    ];
    let started = Instant::now();
    let child = bridge_command(&args)
        .env("TRAX_SESSION_TOKEN", &token)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(&filler).unwrap();
    let output = child.wait_with_output().unwrap();
    let log = output_text(&output);
    receiver.stop();

    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30), "{log}");

    // The live output got the whole run.
    let streams = ffprobe_streams(&received);
    let has_video = streams.iter().any(|stream| stream["codec_type"] == "video");
    assert!(has_video, "{streams:?}");
    let live_seconds = format_number(&received, "duration");
    assert!(live_seconds >= 12.0, "SRT got only {live_seconds} s\n{log}");
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "SRT decode errors: {errors}");

    // The recording reported the full disk once, naming the file.
    let failures: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("recording failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{log}");
    assert!(failures[0].contains("No space left on device"), "{log}");
    assert!(failures[0].contains(disk.path.to_str().unwrap()), "{log}");
    assert!(failures[0].contains("bridge-"), "{log}");
    assert!(log.contains("recording failed again"), "{log}");

    // Once space was freed, the recording went on.
    assert!(log.contains("recording again"), "{log}");
    let files = segments(&disk.path);
    let last = files.last().expect("no segment after space was freed");
    assert_decodes(last);
    assert_starts_with_idr(last);
}

#[test]
fn live_outputs_giving_up_end_recording() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().join("record");
    std::fs::create_dir(&record).unwrap();
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--reject-all"]);

    let url = format!("srt://127.0.0.1:{port}");
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--output",
        &url,
        "--path",
        SRT_PATH,
        "--record",
        record.to_str().unwrap(),
        "--duration",
        "30",
    ];
    let started = Instant::now();
    let output = bridge_command(&args)
        .env("TRAX_STREAM_KEY", "record-test-key")
        .output()
        .unwrap();
    let log = output_text(&output);
    receiver.stop();

    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20), "{log}");
    assert!(log.contains("finishing the recording"), "{log}");
    let files = segments(&record);
    assert_eq!(files.len(), 1, "{log}");
    assert_decodes(&files[0]);
    assert_starts_with_idr(&files[0]);
}
