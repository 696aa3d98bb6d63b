//! The RTMP peers on their own, with ffmpeg as the publisher. nginx-rtmp
//! records what the /v1 stand-in's on_publish check accepts and drops the
//! rest, and nginx's stream module serves RTMPS in front of it.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::media::decode_errors;
use support::nginx::{redact_log, Nginx, RtmpsCertificate, TlsFiles};
use support::standin::Standin;

const PUBLISH_SECONDS: &str = "2";
const HOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// RTMP credentials that the stand-in issued for one source.
struct Issued {
    path: String,
    token: String,
}

fn issue_rtmp(standin: &Standin, source_id: &str) -> Issued {
    let response: Value = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/sources/{source_id}/publish-credentials",
            standin.origin
        ))
        .bearer_auth(&standin.key)
        .json(&json!({"protocol": "rtmp"}))
        .send()
        .expect("the stand-in issues credentials")
        .json()
        .unwrap();
    Issued {
        path: response["path"].as_str().unwrap().to_string(),
        token: response["token"].as_str().unwrap().to_string(),
    }
}

/// Publishes a test pattern with a tone (H.264 and AAC in FLV) to `url`.
/// `extra` goes before the output URL, e.g. `-rtmp_tcurl` or TLS options.
fn ffmpeg_publish(url: &str, extra: &[&str]) -> Output {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", PUBLISH_SECONDS])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(extra)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ffmpeg; run scripts/install-deps.sh")
}

/// Returns ffmpeg's stderr with `secret` replaced, because ffmpeg prints the
/// output URL, credentials included, in its errors.
fn ffmpeg_errors(output: &Output, secret: &str) -> String {
    String::from_utf8_lossy(&output.stderr).replace(secret, "<redacted>")
}

fn hook_events(standin: &Standin, call: &str) -> Vec<Value> {
    standin.stats()["hooks"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["call"] == call)
        .cloned()
        .collect()
}

/// Waits until the stand-in has received `count` hook calls named `call`.
fn wait_for_hooks(standin: &Standin, call: &str, count: usize, nginx: &Nginx) -> Vec<Value> {
    let deadline = Instant::now() + HOOK_TIMEOUT;
    loop {
        let events = hook_events(standin, call);
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} '{call}' hook calls within {HOOK_TIMEOUT:?}; hooks: {}; nginx log:\n{}",
            standin.stats()["hooks"],
            nginx.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn codec_names(recording: &Path) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(recording)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    assert!(output.status.success(), "ffprobe failed on {recording:?}");
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect();
    names.sort();
    names
}

/// Checks one accepted publish: its hook verdict and its recording.
fn assert_recorded(standin: &Standin, nginx: &Nginx, issued: &Issued, placement: &str) {
    let publishes = wait_for_hooks(standin, "publish", 1, nginx);
    assert_eq!(publishes.len(), 1, "{publishes:?}");
    assert_eq!(publishes[0]["accepted"], true, "{}", publishes[0]);
    assert_eq!(publishes[0]["path"], issued.path.as_str());
    assert_eq!(
        publishes[0]["checks"][placement], "prefix",
        "a full-length token arrives cut: {}",
        publishes[0]
    );

    let done = wait_for_hooks(standin, "record_done", 1, nginx);
    let recordings = nginx.recordings();
    assert_eq!(recordings.len(), 1, "recordings: {recordings:?}");
    assert_eq!(
        done[0]["recording"],
        recordings[0].to_str().unwrap(),
        "on_record_done names the recorded file"
    );
    let stream_name = issued.path.rsplit('/').next().unwrap();
    let file_name = recordings[0].file_name().unwrap().to_str().unwrap();
    assert!(
        file_name.starts_with(&format!("{stream_name}-")),
        "{file_name} is not named after the stream {stream_name}"
    );
    assert_eq!(codec_names(&recordings[0]), ["aac", "h264"]);
    assert_eq!(decode_errors(&recordings[0]), "");
    let log = nginx.error_log();
    assert!(
        !log.contains(&issued.token[..100]),
        "nginx's redacted log shows the token"
    );
}

#[test]
fn query_credentials_publish_and_record() {
    let _guard = support::setup();
    let standin = Standin::start(&["--rtmp-placement", "query"]);
    let nginx = Nginx::start(&standin.origin);
    let issued = issue_rtmp(&standin, "src_desk");

    let url = format!(
        "{}?user=trax&pass={}",
        nginx.rtmp_url(&issued.path),
        issued.token
    );
    let output = ffmpeg_publish(&url, &[]);
    assert!(
        output.status.success(),
        "ffmpeg: {}\nnginx:\n{}",
        ffmpeg_errors(&output, &issued.token),
        nginx.error_log()
    );
    assert_recorded(&standin, &nginx, &issued, "query");
}

#[test]
fn tcurl_credentials_publish_and_record() {
    let _guard = support::setup();
    let standin = Standin::start(&["--rtmp-placement", "tcurl"]);
    let nginx = Nginx::start(&standin.origin);
    let issued = issue_rtmp(&standin, "src_desk");

    let tc_url = format!(
        "rtmp://trax:{}@127.0.0.1:{}/inputs",
        issued.token,
        nginx.rtmp_port()
    );
    let output = ffmpeg_publish(&nginx.rtmp_url(&issued.path), &["-rtmp_tcurl", &tc_url]);
    assert!(
        output.status.success(),
        "ffmpeg: {}\nnginx:\n{}",
        ffmpeg_errors(&output, &issued.token),
        nginx.error_log()
    );
    assert_recorded(&standin, &nginx, &issued, "tcurl");
}

#[test]
fn token_from_another_key_is_refused() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let nginx = Nginx::start(&standin.origin);
    let issued = issue_rtmp(&standin, "src_desk");
    let forged = support::mint_token(&["--kid-thumbprint", "--path", &issued.path]);

    let url = format!("{}?user=trax&pass={forged}", nginx.rtmp_url(&issued.path));
    let output = ffmpeg_publish(&url, &[]);
    assert!(
        !output.status.success(),
        "ffmpeg published with a forged token"
    );
    let stderr = ffmpeg_errors(&output, &forged);
    assert!(
        stderr.contains("Input/output error"),
        "ffmpeg's error: {stderr}"
    );

    let publishes = wait_for_hooks(&standin, "publish", 1, &nginx);
    assert_eq!(publishes[0]["accepted"], false);
    assert_eq!(publishes[0]["status"], 403);
    let reason = publishes[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("query: cut token"), "reason: {reason}");
    assert!(!reason.contains(&forged[..100]), "reason: {reason}");
    assert_eq!(standin.stats()["hooks"]["refused"], 1);
    assert!(nginx.recordings().is_empty(), "{:?}", nginx.recordings());
    assert!(hook_events(&standin, "publish_done").is_empty());
}

#[test]
fn rtmps_publish_verifies_the_ca() {
    let _guard = support::setup();
    let pki = tempfile::tempdir().unwrap();
    let tls = TlsFiles::write(pki.path());
    let standin = Standin::start(&["--rtmp-placement", "query"]);
    let certificate = RtmpsCertificate {
        cert: tls.server_cert.clone(),
        key: tls.server_key.clone(),
    };
    let nginx = Nginx::start_with_rtmps(&standin.origin, &certificate);
    let issued = issue_rtmp(&standin, "src_desk");

    let url = format!(
        "{}?user=trax&pass={}",
        nginx.rtmps_url(&issued.path),
        issued.token
    );
    let ca = tls.ca.to_str().unwrap();
    let output = ffmpeg_publish(&url, &["-tls_verify", "1", "-ca_file", ca]);
    assert!(
        output.status.success(),
        "ffmpeg: {}\nnginx:\n{}",
        ffmpeg_errors(&output, &issued.token),
        nginx.error_log()
    );
    assert_recorded(&standin, &nginx, &issued, "query");
}

#[test]
fn rtmps_wrong_host_certificate_fails_verification() {
    let _guard = support::setup();
    let pki = tempfile::tempdir().unwrap();
    let tls = TlsFiles::write(pki.path());
    let standin = Standin::start(&[]);
    let certificate = RtmpsCertificate {
        cert: tls.wrong_host_cert.clone(),
        key: tls.wrong_host_key.clone(),
    };
    let nginx = Nginx::start_with_rtmps(&standin.origin, &certificate);
    let issued = issue_rtmp(&standin, "src_desk");

    let url = format!(
        "{}?user=trax&pass={}",
        nginx.rtmps_url(&issued.path),
        issued.token
    );
    let ca = tls.ca.to_str().unwrap();
    let output = ffmpeg_publish(&url, &["-tls_verify", "1", "-ca_file", ca]);
    assert!(
        !output.status.success(),
        "ffmpeg trusted a certificate for wrong-host.invalid"
    );
    // The message is GnuTLS's, as Debian's ffmpeg 5.1 links it.
    let stderr = ffmpeg_errors(&output, &issued.token);
    assert!(
        stderr.contains("does not match hostname 127.0.0.1"),
        "ffmpeg's error: {stderr}"
    );
    assert!(hook_events(&standin, "publish").is_empty());
    assert!(nginx.recordings().is_empty());
}

#[test]
fn nginx_config_listens_on_loopback_only() {
    let standin = Standin::start(&[]);
    let pki = tempfile::tempdir().unwrap();
    let tls = TlsFiles::write(pki.path());
    let certificate = RtmpsCertificate {
        cert: tls.server_cert,
        key: tls.server_key,
    };
    let nginx = Nginx::start_with_rtmps(&standin.origin, &certificate);
    let config = nginx.config();
    let listens: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("listen "))
        .collect();
    assert_eq!(listens.len(), 2, "{config}");
    assert_eq!(
        listens[0],
        format!("listen 127.0.0.1:{};", nginx.rtmp_port())
    );
    assert_eq!(
        listens[1],
        format!("listen 127.0.0.1:{} ssl;", nginx.rtmps_port())
    );
    assert!(config.contains("access_log off;"), "{config}");
}

#[test]
fn redact_log_hides_tcurl_and_query() {
    let cases = [
        (
            "connect: app='inputs' args='' tc_url='rtmp://trax:eyJhb@h:1/inputs' page_url=''\n",
            "connect: app='inputs' args='<redacted>' tc_url='<redacted>' page_url=''\n",
        ),
        (
            "publish: name='rtmp-1' args='user=trax&pass=eyJhb' type=live\n",
            "publish: name='rtmp-1' args='<redacted>' type=live\n",
        ),
        (
            "publish: name='rtmp-1' args='user=trax&pass=eyJhb\nnext line\n",
            "publish: name='rtmp-1' args='<redacted>\nnext line\n",
        ),
        ("nothing secret here\n", "nothing secret here\n"),
    ];
    for (line, expected) in cases {
        assert_eq!(redact_log(line), expected, "input: {line}");
    }
}

#[test]
fn peers_pass_rtmp_self_check() {
    let _guard = support::setup();
    let output = Command::new(support::receiver::PYTHON)
        .arg(support::receiver::peer_script("check_rtmp_peers.py"))
        .output()
        .expect("cannot run /usr/bin/python3 tests/peers/check_rtmp_peers.py");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
