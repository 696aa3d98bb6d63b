//! `bridge devices` and `bridge encoders` as a user runs them: the real
//! binary with GStreamer's device monitor and real test encodes.

use std::process::{Command, Output};

fn bridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .output()
        .expect("the bridge binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns whether this machine has a V4L2 node at all. Without one (and without
/// a DeckLink driver, AVFoundation or libcamera, none of which Debian 12
/// CI has), the device monitor must find nothing.
fn has_video_nodes() -> bool {
    std::fs::read_dir("/dev").is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().starts_with("video"))
    })
}

#[test]
fn devices_json_is_an_array_of_devices() {
    let output = bridge(&["devices", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let devices = json.as_array().expect("a JSON array");
    if !has_video_nodes() {
        assert_eq!(stdout(&output).trim(), "[]");
    }
    for device in devices {
        for field in ["kind", "name", "device", "stable_names", "modes"] {
            assert!(device.get(field).is_some(), "{field} missing: {device}");
        }
    }
}

#[test]
fn devices_table_without_devices() {
    let json = stdout(&bridge(&["devices", "--json"]));
    let output = bridge(&["devices"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text.contains("--device test"), "{text}");
    if json.trim() == "[]" {
        assert!(
            text.starts_with("no capture devices found\n"),
            "the table must say so when JSON is empty: {text}"
        );
    } else {
        assert!(!text.contains("no capture devices found"), "{text}");
    }
    if !has_video_nodes() {
        assert_eq!(json.trim(), "[]");
    }
}

#[test]
fn encoders_json_reports_every_candidate() {
    gstreamer::init().unwrap();
    let output = bridge(&["encoders", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let statuses = json.as_array().unwrap();
    let elements: Vec<&str> = statuses
        .iter()
        .map(|s| s["element"].as_str().unwrap())
        .collect();
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(
            elements,
            [
                "vah264enc",
                "vaapih264enc",
                "qsvh264enc",
                "nvh264enc",
                "x264enc",
                "openh264enc"
            ]
        );
    }

    for status in statuses {
        let element = status["element"].as_str().unwrap();
        let registered = gstreamer::ElementFactory::find(element).is_some();
        assert_eq!(status["registered"], registered, "{status}");
        if !registered {
            assert_eq!(status["test_encode"], "not-run", "{status}");
            assert!(
                status["reason"]
                    .as_str()
                    .unwrap()
                    .contains("not registered"),
                "{status}"
            );
            assert!(
                status["provided_by"]
                    .as_str()
                    .unwrap()
                    .contains("gstreamer1.0-")
                    || status["provided_by"]
                        .as_str()
                        .unwrap()
                        .contains("applemedia"),
                "{status}"
            );
        }
    }
    for software in ["x264enc", "openh264enc"] {
        let status = statuses.iter().find(|s| s["element"] == software).unwrap();
        assert_eq!(status["registered"], true, "{status}");
        assert_eq!(status["test_encode"], "passed", "{status}");
        assert!(status["reason"].is_null(), "{status}");
    }
    let selected: Vec<&serde_json::Value> =
        statuses.iter().filter(|s| s["selected"] == true).collect();
    assert_eq!(selected.len(), 1, "{json}");
    let first_passing = statuses
        .iter()
        .find(|s| s["test_encode"] == "passed")
        .unwrap();
    assert_eq!(selected[0], first_passing);
}

#[test]
fn encoders_table_explains_unregistered() {
    let output = bridge(&["encoders"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("test encode: 1280x720 at 30 fps"),
        "{text}"
    );
    let x264 = text
        .lines()
        .find(|line| line.contains("x264enc"))
        .expect("an x264enc row");
    assert!(x264.contains("passed"), "{x264}");
    let rows: Vec<&str> = text.lines().collect();
    for (index, row) in rows.iter().enumerate() {
        if row.contains(" no ") && row.contains("not run") {
            assert!(
                rows[index + 1].starts_with("    provided by: "),
                "{row} lacks what provides it:\n{text}"
            );
        }
    }
}

#[test]
fn encoders_rejects_bad_size() {
    let output = bridge(&["encoders", "--size", "wide"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("wide"), "{text}");
}

/// Runs the bridge with `args` and its standard output on `stdout`, and
/// returns its exit code and standard error.
fn run_with_stdout(args: &[&str], stdout: std::process::Stdio) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the bridge binary runs");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn closed_stdout_is_no_panic() {
    for args in [
        vec!["devices"],
        vec!["devices", "--json"],
        vec!["encoders", "--json"],
        vec!["--device", "test", "--record", "/tmp", "--print-pipeline"],
    ] {
        // A pipe whose reader is gone, as with `bridge encoders --json | head -c 10`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let (code, stderr) = run_with_stdout(&args, writer.into());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn full_stdout_is_error() {
    for args in [
        vec!["devices", "--json"],
        vec!["encoders", "--json"],
        vec!["--device", "test", "--record", "/tmp", "--print-pipeline"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (code, stderr) = run_with_stdout(&args, full.into());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("failed to write to standard output"),
            "{args:?}: {stderr}"
        );
    }
}
