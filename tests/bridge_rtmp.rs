//! The bridge binary publishing over RTMP and RTMPS to nginx-rtmp, whose
//! on_publish hook has the /v1 stand-in check the credentials where the
//! chosen placement puts them. What nginx records is checked with ffprobe.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::media::{decode_errors, output_text};
use support::nginx::{Nginx, RtmpsCertificate, TlsFiles};
use support::receiver::{free_udp_port, Receiver};
use support::standin::Standin;
use support::whip_receiver::{AiortcReceiver, AiortcToken};

fn bridge(args: &[&str], standin: &Standin) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .args(["--api-url", &standin.origin, "--api-key-file"])
        .arg(standin.key_path())
        .env_remove("TRAX_API_KEY")
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("the bridge binary runs")
}

fn codecs(file: &Path) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().trim_end_matches(',').to_string())
        .filter(|line| !line.is_empty())
        .collect();
    // MPEG-TS lists each stream again under its program.
    names.sort();
    names.dedup();
    names
}

fn media_seconds(file: &Path) -> f64 {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

fn hook_results(standin: &Standin) -> Vec<Value> {
    standin.stats()["hooks"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|event| event["call"] == "publish")
        .collect()
}

fn assert_recorded(nginx: &Nginx, min_seconds: f64) {
    let recordings = nginx.recordings();
    assert_eq!(
        recordings.len(),
        1,
        "recordings: {recordings:?}\n{}",
        nginx.error_log()
    );
    let recording = &recordings[0];
    assert_eq!(codecs(recording), ["aac", "h264"]);
    let errors = decode_errors(recording);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let seconds = media_seconds(recording);
    assert!(seconds >= min_seconds, "only {seconds} s recorded");
}

#[test]
fn each_placement_publishes_and_records() {
    let _guard = support::setup();
    for placement in ["tcurl", "query", "both"] {
        let standin = Standin::start(&["--rtmp-placement", placement]);
        let nginx = Nginx::start(&standin.origin);
        let url = nginx.rtmp_url("");
        let args = [
            "--device",
            "test",
            "--size",
            "320x240",
            "--source",
            "src_desk",
            "--output",
            &url,
            "--rtmp-credentials",
            placement,
            "--duration",
            "3",
        ];
        let output = bridge(&args, &standin);
        let log = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{placement}: {log}");
        assert!(
            !log.contains("eyJ"),
            "{placement}: something JWT-shaped in: {log}"
        );
        let hooks = hook_results(&standin);
        assert_eq!(hooks.len(), 1, "{placement}: {hooks:?}");
        assert_eq!(hooks[0]["accepted"], true, "{placement}: {hooks:?}");
        assert_recorded(&nginx, 2.0);
    }
}

#[test]
fn wrong_placement_is_rejected_with_exit_3() {
    let _guard = support::setup();
    let standin = Standin::start(&["--rtmp-placement", "query"]);
    let nginx = Nginx::start(&standin.origin);
    let url = nginx.rtmp_url("");
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--source",
        "src_desk",
        "--output",
        &url,
        "--rtmp-credentials",
        "tcurl",
    ];
    let output = bridge(&args, &standin);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(log.contains("rejected"), "{log}");
    let hooks = hook_results(&standin);
    assert_eq!(hooks.len(), 2, "two attempts reach the hook: {hooks:?}");
    assert!(hooks.iter().all(|hook| hook["accepted"] == false));
    assert!(nginx.recordings().is_empty());
}

#[test]
fn rtmps_verifies_the_certificate() {
    let _guard = support::setup();
    let pki = tempfile::tempdir().unwrap();
    let tls = TlsFiles::write(pki.path());
    let standin = Standin::start(&[]);

    let certificate = RtmpsCertificate {
        cert: tls.server_cert.clone(),
        key: tls.server_key.clone(),
    };
    let nginx = Nginx::start_with_rtmps(&standin.origin, &certificate);
    let url = nginx.rtmps_url("");
    let base = [
        "--device", "test", "--size", "320x240", "--source", "src_desk", "--output", &url,
    ];

    let ca = tls.ca.display().to_string();
    let trusted: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--ca-file", &ca, "--duration", "3"])
        .collect();
    let output = bridge(&trusted, &standin);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    assert_recorded(&nginx, 2.0);

    let output = bridge(&base, &standin);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("TLS"), "{log}");
    assert!(log.contains("--ca-file"), "{log}");

    let wrong_host = RtmpsCertificate {
        cert: tls.wrong_host_cert.clone(),
        key: tls.wrong_host_key.clone(),
    };
    let nginx = Nginx::start_with_rtmps(&standin.origin, &wrong_host);
    let url = nginx.rtmps_url("");
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--source",
        "src_desk",
        "--output",
        &url,
        "--ca-file",
        &ca,
    ];
    let output = bridge(&args, &standin);
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("TLS"), "{log}");
    assert!(nginx.recordings().is_empty());
}

#[test]
fn srt_rtmp_and_whip_from_one_encode() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let nginx = Nginx::start(&standin.origin);
    let whip_dir = tempfile::tempdir().unwrap();
    let whip = AiortcReceiver::start(whip_dir.path(), AiortcToken::Jwks(&standin.jwks_url()), &[]);
    // The path comes from /v1: the URL gives only the receiver's origin.
    let whip_origin = format!("http://127.0.0.1:{}", whip.port);
    let port = free_udp_port();
    let directory = tempfile::tempdir().unwrap();
    let received = directory.path().join("received.ts");
    let receiver = Receiver::start(
        port,
        &[
            "--jwks-url",
            &standin.jwks_url(),
            "--output",
            received.to_str().unwrap(),
        ],
    );
    let srt = format!("srt://127.0.0.1:{port}");
    let rtmp = nginx.rtmp_url("");
    let args = [
        "--device",
        "test",
        "--size",
        "320x240",
        "--source",
        "src_cam1",
        "--output",
        &srt,
        "--output",
        &rtmp,
        "--output",
        &whip_origin,
        "--ice-address",
        "127.0.0.1",
        "--duration",
        "5",
    ];
    let output = bridge(&args, &standin);
    let events = receiver.stop();
    let log = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("constrained-baseline"), "{log}");
    whip.wait_for("deleted", 1, Duration::from_secs(5));
    let report = whip.report(1).expect("the WHIP receiver wrote a report");
    whip.stop();
    assert_eq!(report["video"]["codec"], "video/H264", "{report}");
    assert_eq!(report["video"]["width"], 320, "{report}");
    assert!(
        report["video"]["frames_decoded"].as_u64().unwrap_or(0) > 50,
        "{report}"
    );
    assert_eq!(report["audio"]["codec"], "audio/opus", "{report}");
    assert!(
        report["audio"]["rms_dbfs"].as_f64().unwrap_or(-200.0) > -60.0,
        "{report}"
    );
    assert!(events
        .iter()
        .any(|e| e["event"] == "connecting" && e["accepted"] == true));
    assert_recorded(&nginx, 4.0);
    assert_eq!(codecs(&received), ["aac", "h264"]);
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    assert!(media_seconds(&received) >= 4.0);
    let operation = "POST /v1/sources/{sourceId}/publish-credentials";
    assert_eq!(standin.count(operation), 3, "one acquisition per output");
}
