//! The SRT output against real peers on loopback: the GStreamer `srtsrc`
//! receiver in `tests/peers/srt_receiver.py`, fed by a real x264/AAC encode.

mod support;

use bridge::config::Secret;
use bridge::exit::ExitStatus;
use bridge::output::srt::{SrtOutput, SrtSettings};
use bridge::output::{Output, OutputError, Session};
use bridge::pipeline::fanout::Fanout;
use bridge::pipeline::KeyframeRequester;
use bridge::telemetry::status::OutputStatus;
use bridge::trax::credential::Credential;
use bridge::trax::provider::StaticCredentials;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use support::encoder::{EncoderSettings, TestEncoder};
use support::media::{decode_errors, ffprobe_streams};
use support::receiver::{free_udp_port, Receiver};
use support::{captured_logs, mint_token, setup};

const PATH: &str = "live/cam1";
const EOS_TIMEOUT: Duration = Duration::from_secs(10);

fn token(value: &str) -> Credential {
    Credential::SessionToken(Secret::new("session token", value))
}

fn stream_key(value: &str) -> Credential {
    Credential::StreamKey(Secret::new("stream key", value))
}

fn settings(port: u16, path: &str, credential: Credential) -> SrtSettings {
    SrtSettings {
        host: "127.0.0.1".to_string(),
        port,
        credentials: StaticCredentials::new(path, credential),
        latency_ms: 120,
        passphrase: None,
        pbkeylen: 0,
        connect_timeout_ms: 1500,
    }
}

struct Outcome {
    output: SrtOutput,
    result: Result<(), OutputError>,
    frames_dropped: u64,
}

/// Runs one session fed by `encoder` for `duration` (or until it fails),
/// then stops the encoder cleanly and returns what the session returned.
fn stream_for(
    mut output: SrtOutput,
    encoder: TestEncoder,
    has_audio: bool,
    duration: Duration,
) -> Outcome {
    let frames = encoder.fanout.add_output();
    let keyframes = encoder.keyframes.clone();
    let handle = thread::spawn(move || {
        let result = output.run_session(Session {
            frames: &frames,
            keyframes: &keyframes,
            has_audio,
            status: &OutputStatus::detached("test"),
        });
        (output, result, frames.dropped())
    });
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline && !handle.is_finished() {
        thread::sleep(Duration::from_millis(50));
    }
    encoder.stop();
    let (output, result, frames_dropped) = handle.join().unwrap();
    Outcome {
        output,
        result,
        frames_dropped,
    }
}

/// Runs one session whose frame channel is already closed: it dials, and
/// on success stops cleanly at once.
fn dial_once(output: &mut SrtOutput) -> Result<(), OutputError> {
    let fanout = Fanout::new();
    let frames = fanout.add_output();
    fanout.close();
    output.run_session(Session {
        frames: &frames,
        keyframes: &KeyframeRequester::default(),
        has_audio: false,
        status: &OutputStatus::detached("test"),
    })
}

fn assert_secret_hidden(secret: &str, texts: &[String]) {
    let signature = secret.rsplit('.').next().unwrap();
    let logs = captured_logs();
    assert!(!logs.contains(secret), "the secret appears in the logs");
    assert!(
        !logs.contains(signature),
        "part of the secret appears in the logs"
    );
    for text in texts {
        assert!(!text.contains(secret), "the secret appears in: {text}");
    }
}

fn message_sizes(path: &Path) -> Vec<usize> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

fn fatal_parts(result: Result<(), OutputError>) -> (ExitStatus, String) {
    match result {
        Err(OutputError::Fatal { status, message }) => (status, message),
        other => panic!("expected a pre-dial refusal, got {other:?}"),
    }
}

#[test]
fn streamid_arrives_byte_for_byte() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public_key = dir.path().join("public.pem");
    let secret = mint_token(&[
        "--key",
        key.to_str().unwrap(),
        "--public-key-out",
        public_key.to_str().unwrap(),
        "--path",
        PATH,
    ]);
    let streamid_file = dir.path().join("streamid");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--public-key",
            public_key.to_str().unwrap(),
            "--streamid-file",
            streamid_file.to_str().unwrap(),
        ],
    );

    let mut output = SrtOutput::new(settings(port, PATH, token(&secret)));
    let result = dial_once(&mut output);
    receiver.wait_for("eos", EOS_TIMEOUT);
    let events = receiver.stop();

    assert!(result.is_ok(), "{result:?}");
    let sent = format!("publish:{PATH}:trax:{secret}");
    assert_eq!(std::fs::read(&streamid_file).unwrap(), sent.as_bytes());
    let connecting: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "connecting")
        .collect();
    assert_eq!(connecting.len(), 1, "{events:?}");
    assert_eq!(connecting[0]["accepted"], true, "{events:?}");
    assert_eq!(connecting[0]["form"], "token");
    assert_secret_hidden(&secret, &[output.label()]);
}

#[test]
fn stream_key_streamid_arrives_byte_for_byte() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let streamid_file = dir.path().join("streamid");
    let port = free_udp_port();
    let key = "sk_4f9a-Zq.81";
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--stream-key",
            key,
            "--streamid-file",
            streamid_file.to_str().unwrap(),
        ],
    );

    let mut output = SrtOutput::new(settings(port, PATH, stream_key(key)));
    let result = dial_once(&mut output);
    receiver.wait_for("eos", EOS_TIMEOUT);
    let events = receiver.stop();

    assert!(result.is_ok(), "{result:?}");
    let sent = format!("publish:{PATH}:{key}:{key}");
    assert_eq!(std::fs::read(&streamid_file).unwrap(), sent.as_bytes());
    assert_eq!(events.iter().filter(|e| e["accepted"] == true).count(), 1);
}

#[test]
fn streamid_of_500_bytes_arrives() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let streamid_file = dir.path().join("streamid");
    // base64url never has a length of 4k+1, so one of two paths whose
    // lengths differ by one reaches exactly 500 bytes.
    let (path, secret) = ["live/cam1", "live/cam12", "live/cam123"]
        .iter()
        .find_map(|path| {
            support::try_mint_token(&["--path", path, "--streamid-bytes", "500"])
                .map(|secret| (path.to_string(), secret))
        })
        .expect("no path reaches a 500-byte streamid");
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            &path,
            "--streamid-file",
            streamid_file.to_str().unwrap(),
        ],
    );

    let mut output = SrtOutput::new(settings(port, &path, token(&secret)));
    let result = dial_once(&mut output);
    receiver.wait_for("eos", EOS_TIMEOUT);
    receiver.stop();

    assert!(result.is_ok(), "{result:?}");
    let received = std::fs::read(&streamid_file).unwrap();
    assert_eq!(received.len(), 500);
    assert_eq!(received, format!("publish:{path}:trax:{secret}").as_bytes());
}

#[test]
fn rejecting_receiver_gives_rejected() {
    let _serial = setup();
    let secret = mint_token(&["--path", PATH]);
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--reject-all"]);

    let mut output = SrtOutput::new(settings(port, PATH, token(&secret)));
    let result = dial_once(&mut output);
    let events = receiver.stop();

    let message = match result {
        Err(OutputError::Rejected(message)) => message,
        other => panic!("expected Rejected, got {other:?}"),
    };
    let expected = format!(
        "session token, path or passphrase rejected by 127.0.0.1:{port} (SRT reject reason "
    );
    assert!(message.starts_with(&expected), "{message}");
    let connecting: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "connecting")
        .collect();
    assert_eq!(connecting.len(), 1, "{events:?}");
    assert_eq!(connecting[0]["accepted"], false);
    assert_secret_hidden(&secret, &[message]);
}

#[test]
fn missing_listener_gives_transient_timeout() {
    let _serial = setup();
    let port = free_udp_port();
    let mut output = SrtOutput::new(SrtSettings {
        connect_timeout_ms: 1000,
        ..settings(port, PATH, stream_key("k3y"))
    });

    let started = Instant::now();
    let result = dial_once(&mut output);
    let waited = started.elapsed();

    let message = match result {
        Err(OutputError::Transient(message)) => message,
        other => panic!("expected Transient, got {other:?}"),
    };
    assert_eq!(
        message,
        format!(
            "no SRT listener answered at 127.0.0.1:{port} within 1000 ms: check the host, port \
             and firewall"
        )
    );
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn ipv6_and_host_name_connect() {
    let _serial = setup();
    for (listen, dial) in [("::1", "::1"), ("127.0.0.1", "localhost")] {
        let port = free_udp_port();
        let receiver = Receiver::start(port, &["--host", listen]);
        let mut output = SrtOutput::new(SrtSettings {
            host: dial.to_string(),
            ..settings(port, PATH, stream_key("k3y"))
        });
        let result = dial_once(&mut output);
        receiver.wait_for("eos", EOS_TIMEOUT);
        let events = receiver.stop();
        assert!(result.is_ok(), "{dial}: {result:?}");
        assert_eq!(
            events.iter().filter(|e| e["accepted"] == true).count(),
            1,
            "{dial}: {events:?}"
        );
    }
}

#[test]
fn pre_dial_refusals_send_no_handshake() {
    let _serial = setup();
    let port = free_udp_port();
    let receiver = Receiver::start(port, &[]);

    let (long_secret, over_bytes) = (530..534)
        .find_map(|length: usize| {
            let length_text = length.to_string();
            support::try_mint_token(&["--path", PATH, "--streamid-bytes", &length_text])
                .map(|secret| (secret, length - 512))
        })
        .expect("no streamid length between 530 and 533 is reachable");
    let good = |extra: &[&str]| {
        let mut args = vec!["--path", PATH];
        args.extend_from_slice(extra);
        mint_token(&args)
    };
    let cases: Vec<(&str, &str, Credential, ExitStatus, String)> = vec![
        (
            "streamid too long",
            PATH,
            token(&long_secret),
            ExitStatus::Usage,
            format!("bytes, {over_bytes} over libsrt's 512-byte budget"),
        ),
        (
            "colon in path",
            "live:cam1",
            stream_key("k3y"),
            ExitStatus::Usage,
            "the SRT path 'live:cam1' contains ':'".to_string(),
        ),
        (
            "colon in key",
            PATH,
            stream_key("ab:cd"),
            ExitStatus::Usage,
            "the stream key contains ':' at byte 2".to_string(),
        ),
        (
            "action read",
            PATH,
            token(&good(&["--action", "read"])),
            ExitStatus::Credentials,
            "is for action 'read', not 'publish'".to_string(),
        ),
        (
            "other path",
            PATH,
            token(&mint_token(&["--path", "live/cam2"])),
            ExitStatus::Credentials,
            "is for path 'live/cam2', not 'live/cam1'".to_string(),
        ),
        (
            "path differs by case",
            PATH,
            token(&mint_token(&["--path", "Live/Cam1"])),
            ExitStatus::Credentials,
            "(they differ only by case, and paths are case-sensitive)".to_string(),
        ),
        (
            "path with trailing slash",
            PATH,
            token(&mint_token(&["--path", "live/cam1/"])),
            ExitStatus::Credentials,
            "(they differ only by a trailing slash)".to_string(),
        ),
        (
            "other audience",
            PATH,
            token(&good(&["--aud", "trax-whip"])),
            ExitStatus::Credentials,
            "audience ['trax-whip'] does not include 'trax-mediamtx'".to_string(),
        ),
        (
            "expired",
            PATH,
            token(&good(&["--exp-in-s", "-90"])),
            ExitStatus::Credentials,
            "the session token expired 1m 3".to_string(),
        ),
        (
            "not a JWT",
            PATH,
            token("sk_live_not_a_jwt"),
            ExitStatus::Credentials,
            "the session token is not a JWT".to_string(),
        ),
    ];

    for (name, path, credential, expected_status, expected_text) in cases {
        let secret = credential.secret().expose().to_string();
        let mut output = SrtOutput::new(settings(port, path, credential));
        let preflight = output.preflight();
        let (status, message) = fatal_parts(dial_once(&mut output));
        assert_eq!(status, expected_status, "{name}: {message}");
        assert!(message.contains(&expected_text), "{name}: {message}");
        assert!(
            !message.contains(&secret),
            "{name}: the message shows the secret"
        );
        assert!(preflight.is_err(), "{name}: preflight passed");
        assert_secret_hidden(&secret, &[message]);
    }

    // A valid dial to the same receiver shows that it logs handshakes.
    let mut output = SrtOutput::new(settings(port, PATH, stream_key("k3y")));
    let control = dial_once(&mut output);
    receiver.wait_for("eos", EOS_TIMEOUT);
    let events = receiver.stop();
    assert!(control.is_ok(), "{control:?}");
    let connecting: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "connecting")
        .collect();
    assert_eq!(
        connecting.len(),
        1,
        "only the control dial may reach it: {events:?}"
    );
    assert_eq!(
        connecting[0]["streamid_bytes"],
        "publish:live/cam1:k3y:k3y".len()
    );
}

#[test]
fn received_ts_decodes_with_both_streams() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("received.ts");
    let sizes = dir.path().join("sizes");
    let secret = mint_token(&["--path", PATH]);
    let port = free_udp_port();
    let receiver = Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--output",
            ts.to_str().unwrap(),
            "--sizes-file",
            sizes.to_str().unwrap(),
        ],
    );
    let encoder = TestEncoder::start(&EncoderSettings::default());

    let output = SrtOutput::new(settings(port, PATH, token(&secret)));
    let outcome = stream_for(output, encoder, true, Duration::from_secs(4));
    receiver.wait_for("eos", EOS_TIMEOUT);
    receiver.stop();

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let stats = outcome.output.last_session();
    let received_bytes = std::fs::metadata(&ts).unwrap().len();
    assert!(stats.bytes_sent > 100_000, "{stats:?}");
    assert_eq!(received_bytes, stats.bytes_sent);

    let sizes = message_sizes(&sizes);
    assert_eq!(sizes.len() as u64, stats.messages_sent);
    assert!(
        sizes.iter().all(|size| size % 188 == 0),
        "a message is not whole packets"
    );
    assert!(
        sizes.iter().all(|&size| size <= 1316),
        "a message is over 1316 bytes"
    );
    assert_eq!(sizes.iter().sum::<usize>() as u64, received_bytes);

    let streams = ffprobe_streams(&ts);
    let video: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    let audio: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(video.len(), 1, "{streams:?}");
    assert_eq!(video[0]["codec_name"], "h264");
    assert_eq!(video[0]["width"], 640);
    assert_eq!(video[0]["height"], 360);
    assert_eq!(audio.len(), 1, "{streams:?}");
    assert_eq!(audio[0]["codec_name"], "aac");
    assert_eq!(decode_errors(&ts), "");
    assert_secret_hidden(&secret, &[]);
}

#[test]
fn keyframe_heavy_stream_arrives_complete() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--output", ts.to_str().unwrap()]);
    let encoder = TestEncoder::start(&EncoderSettings {
        width: 1920,
        height: 1080,
        framerate: 30,
        bitrate_kbps: 8000,
        key_int_max: 30,
        speed_preset: "ultrafast",
        audio: true,
    });

    let output = SrtOutput::new(settings(port, PATH, stream_key("k3y")));
    let outcome = stream_for(output, encoder, true, Duration::from_secs(20));
    receiver.wait_for("eos", EOS_TIMEOUT);
    receiver.stop();

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let stats = outcome.output.last_session();
    // 8000 kb/s for 20 s is 20 MB; half of it shows the encode kept up.
    assert!(stats.bytes_sent > 10_000_000, "{stats:?}");
    assert_eq!(std::fs::metadata(&ts).unwrap().len(), stats.bytes_sent);
    assert_eq!(outcome.frames_dropped, 0);
    let streams = ffprobe_streams(&ts);
    assert!(streams
        .iter()
        .any(|s| s["width"] == 1920 && s["height"] == 1080));
}

#[test]
fn passphrase_right_works_wrong_is_rejected() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("received.ts");
    let port = free_udp_port();
    let passphrase = "correct horse battery";
    let passphrase_file = dir.path().join("passphrase");
    std::fs::write(&passphrase_file, passphrase).unwrap();
    let receiver = Receiver::start(
        port,
        &[
            "--passphrase-file",
            passphrase_file.to_str().unwrap(),
            "--pbkeylen",
            "16",
            "--output",
            ts.to_str().unwrap(),
        ],
    );
    let with_passphrase = |value: &str| SrtSettings {
        passphrase: Some(Secret::new("SRT passphrase", value)),
        pbkeylen: 16,
        ..settings(port, PATH, stream_key("k3y"))
    };

    let mut wrong = SrtOutput::new(with_passphrase("wrong horse battery"));
    let rejected = dial_once(&mut wrong);
    let message = match rejected {
        Err(OutputError::Rejected(message)) => message,
        other => panic!("expected Rejected, got {other:?}"),
    };
    assert!(
        message.starts_with(&format!(
            "stream key, path or passphrase rejected by 127.0.0.1:{port}"
        )),
        "{message}"
    );
    // libsrt's SRT_REJ_BADSECRET, kept with its text.
    assert!(message.contains("(SRT reject reason 10: "), "{message}");

    let encoder = TestEncoder::start(&EncoderSettings::default());
    let right = SrtOutput::new(with_passphrase(passphrase));
    let outcome = stream_for(right, encoder, true, Duration::from_secs(3));
    receiver.wait_for("eos", EOS_TIMEOUT);
    receiver.stop();

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let stats = outcome.output.last_session();
    assert!(stats.bytes_sent > 0);
    assert_eq!(std::fs::metadata(&ts).unwrap().len(), stats.bytes_sent);
    assert_secret_hidden(passphrase, &[message]);
    assert_secret_hidden("wrong horse battery", &[]);
}

#[test]
fn video_only_session_ends_cleanly() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("received.ts");
    let port = free_udp_port();
    let receiver = Receiver::start(port, &["--output", ts.to_str().unwrap()]);
    let encoder = TestEncoder::start(&EncoderSettings {
        audio: false,
        ..EncoderSettings::default()
    });

    let output = SrtOutput::new(settings(port, PATH, stream_key("k3y")));
    let outcome = stream_for(output, encoder, false, Duration::from_secs(3));
    receiver.wait_for("eos", EOS_TIMEOUT);
    receiver.stop();

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let stats = outcome.output.last_session();
    assert_eq!(std::fs::metadata(&ts).unwrap().len(), stats.bytes_sent);
    let streams = ffprobe_streams(&ts);
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!(decode_errors(&ts), "");
}

/// Streams to a receiver that goes away after two seconds, by `end`, and
/// returns the session's result and how long it ran after the receiver went.
fn stream_until_receiver_goes(end: fn(Receiver)) -> (Result<(), OutputError>, Duration) {
    let port = free_udp_port();
    let receiver = Receiver::start(port, &[]);
    let encoder = TestEncoder::start(&EncoderSettings::default());
    let frames = encoder.fanout.add_output();
    let keyframes = encoder.keyframes.clone();
    let mut output = SrtOutput::new(settings(port, PATH, stream_key("k3y")));
    let handle = thread::spawn(move || {
        output.run_session(Session {
            frames: &frames,
            keyframes: &keyframes,
            has_audio: true,
            status: &OutputStatus::detached("test"),
        })
    });

    receiver.wait_for("connected", Duration::from_secs(5));
    thread::sleep(Duration::from_secs(2));
    end(receiver);
    let gone = Instant::now();
    while !handle.is_finished() && gone.elapsed() < Duration::from_secs(15) {
        thread::sleep(Duration::from_millis(20));
    }
    let waited = gone.elapsed();
    encoder.stop();
    (handle.join().unwrap(), waited)
}

#[test]
fn receiver_closing_gives_transient() {
    let _serial = setup();
    let (result, waited) = stream_until_receiver_goes(|receiver| {
        receiver.stop();
    });
    match result {
        Err(OutputError::Transient(message)) => {
            assert!(message.contains("127.0.0.1:"), "{message}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn receiver_vanishing_gives_transient() {
    let _serial = setup();
    // SIGKILL: no SRT shutdown reaches the output, which notices when the
    // peer has been silent for libsrt's idle timeout (5 s by default).
    let (result, waited) = stream_until_receiver_goes(drop);
    match result {
        Err(OutputError::Transient(message)) => {
            assert!(message.contains("127.0.0.1:"), "{message}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn missing_audio_gives_transient_stall() {
    let _serial = setup();
    let port = free_udp_port();
    let receiver = Receiver::start(port, &[]);
    let encoder = TestEncoder::start(&EncoderSettings {
        audio: false,
        ..EncoderSettings::default()
    });

    // The session expects audio that never comes, so the muxer waits.
    let output = SrtOutput::new(settings(port, PATH, stream_key("k3y")));
    let started = Instant::now();
    let outcome = stream_for(output, encoder, true, Duration::from_secs(15));
    let waited = started.elapsed();
    receiver.stop();

    match outcome.result {
        Err(OutputError::Transient(message)) => assert!(
            message.starts_with("the MPEG-TS muxer produced nothing for 5 s while frames arrived"),
            "{message}"
        ),
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}
