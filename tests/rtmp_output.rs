//! The RTMP output against the RTMP test server in
//! `tests/support/rtmp_server.rs` on loopback, fed by a real x264/AAC
//! encode or by x264 frames cut into one buffer per NAL unit.

mod support;

use bridge::config::Secret;
use bridge::exit::ExitStatus;
use bridge::output::rtmp::{Placement, RtmpOutput, RtmpSettings};
use bridge::output::{Frame, MediaKind as FrameKind, Output, OutputError, Session};
use bridge::pipeline::fanout::Fanout;
use bridge::pipeline::KeyframeRequester;
use bridge::telemetry::status::OutputStatus;
use bridge::trax::credential::Credential;
use bridge::trax::provider::{CredentialSource, Publish, StaticCredentials};
use gstreamer as gst;
use rml_rtmp::rml_amf0::Amf0Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::encoder::{EncoderSettings, TestEncoder};
use support::rtmp_server::{
    Certificates, End, MediaKind, Recorded, RtmpServer, Verdict, STREAM_ID,
};
use support::{captured_logs, h264_frames, mint_token, setup};

const PATH: &str = "inputs/rtmp-4f9a2c1e-8d7b-4b1a-9c3e-5f6a7b8c9d0e";
const STREAM_NAME: &str = "rtmp-4f9a2c1e-8d7b-4b1a-9c3e-5f6a7b8c9d0e";
const WAIT: Duration = Duration::from_secs(10);
/// 2^24 - 1 ms: above it, RTMP chunk headers carry an extended timestamp.
const EXTENDED_FROM_MS: u32 = 0x00ff_ffff;

fn token(value: &str) -> Credential {
    Credential::SessionToken(Secret::new("session token", value))
}

fn stream_key(value: &str) -> Credential {
    Credential::StreamKey(Secret::new("stream key", value))
}

/// Mints a token for `PATH` padded past 1 KB, so any cut at 256 or 512
/// bytes shows.
fn long_token() -> String {
    let pad = format!("pad=\"{}\"", "x".repeat(900));
    let secret = mint_token(&["--path", PATH, "--claim", &pad]);
    assert!(secret.len() > 1000, "{}", secret.len());
    secret
}

fn settings(port: u16, credentials: Arc<dyn CredentialSource>) -> RtmpSettings {
    RtmpSettings {
        tls: false,
        host: "127.0.0.1".to_string(),
        port,
        credentials,
        placement: Placement::Tcurl,
        ca_file: None,
        connect_timeout_ms: 2000,
    }
}

/// Static credentials that count how often a server rejected them.
#[derive(Debug)]
struct CountingCredentials {
    publish: Publish,
    invalidated: AtomicU32,
}

impl CountingCredentials {
    fn new(credential: Credential) -> Arc<Self> {
        Arc::new(Self {
            publish: Publish {
                path: PATH.to_string(),
                credential,
            },
            invalidated: AtomicU32::new(0),
        })
    }

    fn invalidated(&self) -> u32 {
        self.invalidated.load(Ordering::SeqCst)
    }
}

impl CredentialSource for CountingCredentials {
    fn current(&self) -> Result<Publish, OutputError> {
        Ok(self.publish.clone())
    }

    fn path(&self) -> String {
        self.publish.path.clone()
    }

    fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }
}

/// Starts the test encode with an IDR every half second, so a session
/// starts within 0.5 s whether or not its keyframe request reaches x264.
fn start_encoder(audio: bool) -> TestEncoder {
    TestEncoder::start(&EncoderSettings {
        key_int_max: 15,
        audio,
        ..EncoderSettings::default()
    })
}

/// Runs one session whose frame channel is already closed: it dials, and
/// on success stops cleanly at once.
fn dial_once(output: &mut RtmpOutput) -> Result<(), OutputError> {
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

/// Runs one session fed by `encoder` for `duration` (or until it fails),
/// then stops the encoder cleanly and returns the output and the result.
fn stream_for(
    mut output: RtmpOutput,
    encoder: TestEncoder,
    has_audio: bool,
    duration: Duration,
) -> (RtmpOutput, Result<(), OutputError>) {
    let frames = encoder.fanout.add_output();
    let keyframes = encoder.keyframes.clone();
    let handle = thread::spawn(move || {
        let result = output.run_session(Session {
            frames: &frames,
            keyframes: &keyframes,
            has_audio,
            status: &OutputStatus::detached("test"),
        });
        (output, result)
    });
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline && !handle.is_finished() {
        thread::sleep(Duration::from_millis(50));
    }
    encoder.stop();
    handle.join().unwrap()
}

fn assert_secret_hidden(secret: &str, texts: &[String]) {
    let logs = captured_logs();
    assert!(!logs.contains(secret), "the secret appears in the logs");
    let tail = &secret[secret.len() - 16..];
    assert!(
        !logs.contains(tail),
        "part of the secret appears in the logs"
    );
    for text in texts {
        assert!(!text.contains(secret), "the secret appears in: {text}");
        assert!(
            !text.contains(tail),
            "part of the secret appears in: {text}"
        );
    }
}

fn only_connection(server: &RtmpServer) -> Recorded {
    let connections = server.wait_for_ends(WAIT);
    assert_eq!(connections.len(), 1, "{connections:#?}");
    connections.into_iter().next().unwrap()
}

fn rejected_message(result: Result<(), OutputError>) -> String {
    match result {
        Err(OutputError::Rejected(message)) => message,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

fn fatal_parts(result: Result<(), OutputError>) -> (ExitStatus, String) {
    match result {
        Err(OutputError::Fatal { status, message }) => (status, message),
        other => panic!("expected Fatal, got {other:?}"),
    }
}

/// Reads the SPS and PPS lists of an FLV AVC sequence header tag body.
fn parameter_sets(tag_body: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    fn read_sets(record: &[u8], at: &mut usize, count: usize) -> Vec<Vec<u8>> {
        let mut sets = Vec::new();
        for _ in 0..count {
            let length = u16::from_be_bytes([record[*at], record[*at + 1]]) as usize;
            sets.push(record[*at + 2..*at + 2 + length].to_vec());
            *at += 2 + length;
        }
        sets
    }
    let record = &tag_body[5..];
    let mut at = 6;
    let sps = read_sets(record, &mut at, (record[5] & 0x1f) as usize);
    let pps_count = record[at] as usize;
    at += 1;
    let pps = read_sets(record, &mut at, pps_count);
    (sps, pps)
}

#[test]
fn each_placement_delivers_full_token() {
    let _serial = setup();
    let secret = long_token();
    let server = RtmpServer::accepting();
    let port = server.port;
    let with_userinfo = format!("rtmp://trax:{secret}@127.0.0.1:{port}/inputs");
    let without_userinfo = format!("rtmp://127.0.0.1:{port}/inputs");
    let with_query = format!("{STREAM_NAME}?user=trax&pass={secret}");
    let cases = [
        (Placement::Tcurl, &with_userinfo, STREAM_NAME.to_string()),
        (Placement::Query, &without_userinfo, with_query.clone()),
        (Placement::Both, &with_userinfo, with_query.clone()),
    ];

    let mut labels = Vec::new();
    for (placement, _, _) in &cases {
        let mut output = RtmpOutput::new(RtmpSettings {
            placement: *placement,
            ..settings(port, StaticCredentials::new(PATH, token(&secret)))
        });
        let result = dial_once(&mut output);
        assert!(result.is_ok(), "{placement}: {result:?}");
        labels.push(output.label());
    }

    let connections =
        server.wait_until(WAIT, |c| c.len() == 3 && c.iter().all(|c| c.end.is_some()));
    for ((placement, tc_url, publish_name), recorded) in cases.iter().zip(&connections) {
        assert_eq!(recorded.tc_url.as_ref(), Some(*tc_url), "{placement}");
        assert_eq!(recorded.app.as_deref(), Some("inputs"), "{placement}");
        assert_eq!(
            recorded.publish_name.as_ref(),
            Some(publish_name),
            "{placement}"
        );
    }
    assert_eq!(labels[0], format!("rtmp://127.0.0.1:{port} path={PATH}"));
    assert_secret_hidden(&secret, &labels);
}

#[test]
fn stream_key_goes_in_as_user_and_password() {
    let _serial = setup();
    let key = "sk_4f9a-Zq.81:+/&";
    let encoded = "sk_4f9a-Zq.81%3A%2B%2F%26";
    let server = RtmpServer::accepting();
    let port = server.port;

    let mut output = RtmpOutput::new(RtmpSettings {
        placement: Placement::Both,
        ..settings(port, StaticCredentials::new(PATH, stream_key(key)))
    });
    let result = dial_once(&mut output);
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        recorded.tc_url.as_deref(),
        Some(format!("rtmp://{encoded}:{encoded}@127.0.0.1:{port}/inputs").as_str())
    );
    assert_eq!(
        recorded.publish_name.as_deref(),
        Some(format!("{STREAM_NAME}?user={encoded}&pass={encoded}").as_str())
    );
}

#[test]
fn clean_stop_unpublishes_and_closes() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    let mut output = RtmpOutput::new(settings(
        server.port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ));

    let result = dial_once(&mut output);
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        recorded.commands,
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "FCUnpublish",
            "deleteStream"
        ]
    );
    assert_eq!(
        recorded.arguments["FCUnpublish"],
        [Amf0Value::Utf8String(STREAM_NAME.to_string())]
    );
    assert_eq!(
        recorded.arguments["deleteStream"],
        [Amf0Value::Number(f64::from(STREAM_ID))]
    );
    assert_eq!(recorded.end, Some(End::ClientClosed));
}

#[test]
fn encoded_stream_arrives_in_order() {
    let _serial = setup();
    let secret = mint_token(&["--path", PATH]);
    let server = RtmpServer::accepting();
    let output = RtmpOutput::new(RtmpSettings {
        placement: Placement::Query,
        ..settings(server.port, StaticCredentials::new(PATH, token(&secret)))
    })
    .with_start_timestamp_ms(EXTENDED_FROM_MS - 1500);
    let encoder = start_encoder(true);

    let (output, result) = stream_for(output, encoder, true, Duration::from_secs(4));
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    let metadata = recorded.metadata.as_ref().expect("no onMetaData");
    let number = |name: &str| match metadata.get(name) {
        Some(Amf0Value::Number(value)) => *value,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(number("width"), 640.0);
    assert_eq!(number("height"), 360.0);
    assert_eq!(number("framerate"), 30.0);
    assert_eq!(number("videocodecid"), 7.0);
    assert_eq!(number("audiocodecid"), 10.0);
    assert_eq!(number("audiosamplerate"), 48000.0);
    assert_eq!(number("audiochannels"), 2.0);

    let video = recorded.tags_of(MediaKind::Video);
    let audio = recorded.tags_of(MediaKind::Audio);
    assert!(video.len() > 60, "{} video tags", video.len());
    assert!(audio.len() > 100, "{} audio tags", audio.len());
    assert_eq!(
        &video[0].head[..2],
        &[0x17, 0],
        "first video tag: AVC sequence header"
    );
    let (sps, pps) = parameter_sets(&video[0].head);
    assert!(!sps.is_empty(), "no SPS in the sequence header");
    assert!(!pps.is_empty(), "no PPS in the sequence header");
    assert_eq!(sps[0][0] & 0x1f, 7);
    assert_eq!(pps[0][0] & 0x1f, 8);
    assert_eq!(&video[1].head[..2], &[0x17, 1], "first frame: a keyframe");
    assert_eq!(
        &audio[0].head[..2],
        &[0xaf, 0],
        "first audio tag: AAC sequence header"
    );
    assert!(audio[1..].iter().all(|tag| tag.head[..2] == [0xaf, 1]));
    assert!(video[1..].iter().all(|tag| tag.head[1] == 1));

    let first_media = recorded
        .tags
        .iter()
        .position(|tag| tag.head[1] == 1)
        .unwrap();
    assert_eq!(
        first_media, 2,
        "both sequence headers come before any frame"
    );
    for (kind, tags) in [("video", &video), ("audio", &audio)] {
        let times: Vec<u32> = tags.iter().map(|tag| tag.timestamp_ms).collect();
        assert_eq!(
            times[0],
            EXTENDED_FROM_MS - 1500,
            "{kind} starts at the offset"
        );
        assert!(
            times.windows(2).all(|pair| pair[0] <= pair[1]),
            "{kind} timestamps go back: {times:?}"
        );
        assert!(
            *times.last().unwrap() > EXTENDED_FROM_MS + 1000,
            "{kind} timestamps stop at {}",
            times.last().unwrap()
        );
        assert!(
            times.windows(2).all(|pair| pair[1] - pair[0] < 200),
            "{kind} timestamps jump: {times:?}"
        );
    }
    let stats = output.last_session();
    assert_eq!(stats.video_tags, video.len() as u64);
    assert_eq!(stats.audio_tags, audio.len() as u64);
    assert_eq!(
        recorded.commands.last().map(String::as_str),
        Some("deleteStream")
    );
    assert_secret_hidden(&secret, &[output.label()]);
}

#[test]
fn session_starting_past_extended_timestamp_arrives() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    // Every first message of a chunk stream has a full header, so with the
    // clock already past 2^24 ms each carries an extended timestamp.
    let start_ms = EXTENDED_FROM_MS + 500_000;
    let output = RtmpOutput::new(settings(
        server.port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ))
    .with_start_timestamp_ms(start_ms);
    let encoder = start_encoder(true);

    let (_, result) = stream_for(output, encoder, true, Duration::from_secs(2));
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let times: Vec<u32> = recorded
            .tags_of(kind)
            .iter()
            .map(|t| t.timestamp_ms)
            .collect();
        assert!(times.len() > 20, "{kind:?}: {} tags", times.len());
        assert_eq!(times[0], start_ms, "{kind:?}");
        assert!(
            times.windows(2).all(|pair| pair[0] <= pair[1]),
            "{kind:?}: {times:?}"
        );
        assert!(
            times.windows(2).all(|pair| pair[1] - pair[0] < 200),
            "{kind:?}: {times:?}"
        );
    }
}

#[test]
fn video_only_session_has_no_audio_tags() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    let output = RtmpOutput::new(settings(
        server.port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ));
    let encoder = start_encoder(false);

    let (_, result) = stream_for(output, encoder, false, Duration::from_secs(2));
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    assert!(recorded.tags_of(MediaKind::Video).len() > 20);
    assert!(recorded.tags_of(MediaKind::Audio).is_empty());
    let metadata = recorded.metadata.unwrap();
    assert!(!metadata.contains_key("audiocodecid"), "{metadata:?}");
}

#[test]
fn parameter_sets_in_separate_buffers_make_header() {
    let _serial = setup();
    let access_units = h264_frames::encode_access_units(30, 10);
    let gop_duration = gst::ClockTime::from_seconds(1);
    let server = RtmpServer::accepting();
    let mut output = RtmpOutput::new(settings(
        server.port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ));
    let fanout = Fanout::new();
    let frames = fanout.add_output();
    let handle = thread::spawn(move || {
        output.run_session(Session {
            frames: &frames,
            keyframes: &KeyframeRequester::default(),
            has_audio: false,
            status: &OutputStatus::detached("test"),
        })
    });

    // Feeds the encode again and again, later each time, until the server
    // has frames: the session only takes frames once it is publishing.
    let mut pass = 0;
    let enough = |connections: &[Recorded]| {
        connections
            .first()
            .is_some_and(|c| c.tags_of(MediaKind::Video).len() >= 40)
    };
    while !enough(&server.connections()) {
        assert!(
            pass < 20,
            "the server got too few frames: {:#?}",
            server.connections()
        );
        for access_unit in &access_units {
            let access_unit = h264_frames::shifted(access_unit, gop_duration * pass);
            for part in h264_frames::split_per_nal_unit(&access_unit) {
                fanout.publish(Frame::new(FrameKind::Video, part));
            }
            thread::sleep(Duration::from_millis(5));
        }
        pass += 1;
    }
    fanout.close();
    let result = handle.join().unwrap();
    let recorded = only_connection(&server);

    assert!(result.is_ok(), "{result:?}");
    let video = recorded.tags_of(MediaKind::Video);
    assert_eq!(
        &video[0].head[..2],
        &[0x17, 0],
        "first video tag: AVC sequence header"
    );
    let (sps, pps) = parameter_sets(&video[0].head);
    assert_eq!(sps.len(), 1);
    assert_eq!(pps.len(), 1);
    let first_units = h264_frames::nal_units(
        access_units[0]
            .buffer()
            .unwrap()
            .map_readable()
            .unwrap()
            .as_slice(),
    );
    assert!(
        first_units.contains(&sps[0]),
        "the SPS is not the encoder's"
    );
    assert!(
        first_units.contains(&pps[0]),
        "the PPS is not the encoder's"
    );
    assert_eq!(&video[1].head[..2], &[0x17, 1], "first frame: a keyframe");
    // The keyframe tag contains the IDR slice alone, length-prefixed.
    assert_eq!(video[1].head[9] & 0x1f, 5);
}

#[test]
fn server_closing_mid_stream_gives_transient() {
    let _serial = setup();
    let server = RtmpServer::start(|_| Verdict::AcceptThenClose { after_tags: 30 });
    let credentials = CountingCredentials::new(stream_key("k3y"));
    let output = RtmpOutput::new(settings(server.port, credentials.clone()));

    let started = Instant::now();
    let (_, result) = stream_for(output, start_encoder(true), true, Duration::from_secs(10));
    let waited = started.elapsed();
    let recorded = only_connection(&server);

    // The close shows as the end of the server's data or, when a write
    // comes first, as a reset.
    let closed = format!(
        "the RTMP server at 127.0.0.1:{} closed the connection while publishing",
        server.port
    );
    let reset = format!(
        "the connection to the RTMP server at 127.0.0.1:{} failed: ",
        server.port
    );
    match result {
        Err(OutputError::Transient(message)) => assert!(
            message == closed || message.starts_with(&reset),
            "{message}"
        ),
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(recorded.end, Some(End::ServerClosed));
    assert_eq!(recorded.tags.len(), 30);
    assert_eq!(credentials.invalidated(), 0);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn unauthorized_status_gives_rejected() {
    let _serial = setup();
    let secret = mint_token(&["--path", PATH]);
    let server = RtmpServer::start(|_| Verdict::Unauthorized);
    let credentials = CountingCredentials::new(token(&secret));
    let mut output = RtmpOutput::new(settings(server.port, credentials.clone()));

    let started = Instant::now();
    let message = rejected_message(dial_once(&mut output));
    let waited = started.elapsed();
    only_connection(&server);

    assert!(message.starts_with("session token rejected: "), "{message}");
    assert!(
        message.contains("NetStream.Publish.Unauthorized"),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert_eq!(credentials.invalidated(), 1);
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_secret_hidden(&secret, &[message]);
}

#[test]
fn close_after_publish_gives_rejected() {
    let _serial = setup();
    let secret = mint_token(&["--path", PATH]);
    let server = RtmpServer::start(|_| Verdict::Close);
    let credentials = CountingCredentials::new(token(&secret));
    let mut output = RtmpOutput::new(settings(server.port, credentials.clone()));

    let message = rejected_message(dial_once(&mut output));
    let recorded = only_connection(&server);

    assert!(
        message.contains("closed the connection after the publish command"),
        "{message}"
    );
    assert_eq!(recorded.end, Some(End::ServerClosed));
    assert_eq!(credentials.invalidated(), 1);
    assert_secret_hidden(&secret, &[message]);
}

#[test]
fn bad_name_status_gives_transient_with_code() {
    let _serial = setup();
    let server = RtmpServer::start(|_| Verdict::Status {
        level: "error".to_string(),
        code: "NetStream.Publish.BadName".to_string(),
    });
    let credentials = CountingCredentials::new(stream_key("k3y"));
    let mut output = RtmpOutput::new(settings(server.port, credentials.clone()));

    let result = dial_once(&mut output);
    only_connection(&server);

    match result {
        Err(OutputError::Transient(message)) => {
            assert!(message.contains("NetStream.Publish.BadName"), "{message}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(credentials.invalidated(), 0);
}

#[test]
fn verdict_sees_full_publish_request() {
    let _serial = setup();
    let secret = long_token();
    let expected_name = format!("{STREAM_NAME}?user=trax&pass={secret}");
    let expected = expected_name.clone();
    let server = RtmpServer::start(move |attempt| {
        if attempt.publish_name == expected {
            Verdict::Accept
        } else {
            Verdict::Unauthorized
        }
    });
    let mut output = RtmpOutput::new(RtmpSettings {
        placement: Placement::Query,
        ..settings(server.port, StaticCredentials::new(PATH, token(&secret)))
    });
    let result = dial_once(&mut output);
    only_connection(&server);
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn unreachable_server_gives_transient() {
    let _serial = setup();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut output = RtmpOutput::new(settings(
        port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ));

    match dial_once(&mut output) {
        Err(OutputError::Transient(message)) => assert_eq!(
            message,
            format!(
                "cannot connect to the RTMP server at 127.0.0.1:{port}: connection refused: \
                 check the host and port"
            )
        ),
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[test]
fn silent_server_gives_transient_timeout() {
    let _serial = setup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut output = RtmpOutput::new(RtmpSettings {
        connect_timeout_ms: 500,
        ..settings(port, StaticCredentials::new(PATH, stream_key("k3y")))
    });

    let started = Instant::now();
    let result = dial_once(&mut output);
    let waited = started.elapsed();
    drop(listener);

    match result {
        Err(OutputError::Transient(message)) => assert_eq!(
            message,
            format!(
                "the RTMP server at 127.0.0.1:{port} did not answer the RTMP handshake within \
                 500 ms"
            )
        ),
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn stop_while_dialing_a_silent_server_ends_promptly() {
    let _serial = setup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut output = RtmpOutput::new(RtmpSettings {
        connect_timeout_ms: 20_000,
        ..settings(port, StaticCredentials::new(PATH, stream_key("k3y")))
    });
    let fanout = Arc::new(Fanout::new());
    let frames = fanout.add_output();
    let closer = {
        let fanout = Arc::clone(&fanout);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            fanout.close();
        })
    };

    let started = Instant::now();
    let result = output.run_session(Session {
        frames: &frames,
        keyframes: &KeyframeRequester::default(),
        has_audio: false,
        status: &OutputStatus::detached("test"),
    });
    let waited = started.elapsed();
    closer.join().unwrap();
    drop(listener);

    assert!(result.is_ok(), "{result:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

fn tls_settings(port: u16, host: &str, ca_file: Option<std::path::PathBuf>) -> RtmpSettings {
    RtmpSettings {
        tls: true,
        host: host.to_string(),
        ca_file,
        ..settings(port, StaticCredentials::new(PATH, stream_key("k3y")))
    }
}

#[test]
fn tls_untrusted_certificate_is_fatal() {
    let _serial = setup();
    let certificates = Certificates::new(&["127.0.0.1"]);
    let server = RtmpServer::start_tls(&certificates);
    let mut output = RtmpOutput::new(tls_settings(server.port, "127.0.0.1", None));

    let (status, message) = fatal_parts(dial_once(&mut output));
    let recorded = only_connection(&server);

    assert_eq!(status, ExitStatus::Other);
    assert!(
        message.starts_with("TLS: the server's certificate is not trusted"),
        "{message}"
    );
    assert!(message.contains("--ca-file"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(recorded.commands.is_empty(), "{recorded:?}");
}

#[test]
fn tls_with_ca_file_publishes() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let certificates = Certificates::new(&["127.0.0.1", "localhost"]);
    std::fs::write(&ca_file, &certificates.ca_pem).unwrap();
    let server = RtmpServer::start_tls(&certificates);
    let port = server.port;

    for host in ["127.0.0.1", "localhost"] {
        let mut output = RtmpOutput::new(tls_settings(port, host, Some(ca_file.clone())));
        let result = dial_once(&mut output);
        assert!(result.is_ok(), "{host}: {result:?}");
        assert_eq!(output.label(), format!("rtmps://{host}:{port} path={PATH}"));
    }
    let connections =
        server.wait_until(WAIT, |c| c.len() == 2 && c.iter().all(|c| c.end.is_some()));
    assert_eq!(
        connections[0].tc_url.as_deref(),
        Some(format!("rtmps://k3y:k3y@127.0.0.1:{port}/inputs").as_str())
    );
    assert_eq!(
        connections[1].tc_url.as_deref(),
        Some(format!("rtmps://k3y:k3y@localhost:{port}/inputs").as_str())
    );
    for recorded in &connections {
        assert_eq!(
            recorded.commands.last().map(String::as_str),
            Some("deleteStream")
        );
        assert_eq!(recorded.end, Some(End::ClientClosed));
    }
}

#[test]
fn tls_wrong_host_name_is_fatal() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let certificates = Certificates::new(&["rtmp.example.test"]);
    std::fs::write(&ca_file, &certificates.ca_pem).unwrap();
    let server = RtmpServer::start_tls(&certificates);
    let mut output = RtmpOutput::new(tls_settings(server.port, "127.0.0.1", Some(ca_file)));

    let (status, message) = fatal_parts(dial_once(&mut output));
    let recorded = only_connection(&server);

    assert_eq!(status, ExitStatus::Other);
    assert!(
        message.starts_with("TLS: the server's certificate is not valid for host name '127.0.0.1'"),
        "{message}"
    );
    assert!(recorded.commands.is_empty(), "{recorded:?}");
}

#[test]
fn plain_rtmp_on_tls_port_is_transient() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    let mut output = RtmpOutput::new(RtmpSettings {
        connect_timeout_ms: 1000,
        ..tls_settings(server.port, "127.0.0.1", None)
    });

    match dial_once(&mut output) {
        Err(OutputError::Transient(message)) => {
            assert!(
                message.starts_with("TLS handshake with 127.0.0.1:"),
                "{message}"
            );
            assert!(
                message.contains("check that the port serves RTMPS"),
                "{message}"
            );
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[test]
fn claim_checks_refuse_before_dialing() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    let good = |extra: &[&str]| {
        let mut args = vec!["--path", PATH];
        args.extend_from_slice(extra);
        mint_token(&args)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "other path",
            mint_token(&["--path", "inputs/rtmp-other"]),
            "is for path 'inputs/rtmp-other', not 'inputs/rtmp-",
        ),
        (
            "expired",
            good(&["--exp-in-s", "-90"]),
            "the session token expired 1m 3",
        ),
        (
            "action read",
            good(&["--action", "read"]),
            "is for action 'read', not 'publish'",
        ),
        (
            "other audience",
            good(&["--aud", "trax-whip"]),
            "audience ['trax-whip'] does not include 'trax-mediamtx'",
        ),
    ];

    for (name, secret, expected) in cases {
        for placement in [Placement::Tcurl, Placement::Query] {
            let mut output = RtmpOutput::new(RtmpSettings {
                placement,
                ..settings(server.port, StaticCredentials::new(PATH, token(&secret)))
            });
            let preflight = output.preflight();
            let (status, message) = fatal_parts(dial_once(&mut output));
            assert_eq!(status, ExitStatus::Credentials, "{name}: {message}");
            assert!(message.contains(expected), "{name}: {message}");
            assert!(preflight.is_err(), "{name}: preflight passed");
            assert_secret_hidden(&secret, &[message]);
        }
    }
    assert_eq!(
        server.accepted(),
        0,
        "an output that failed its checks reached the server"
    );

    let mut control = RtmpOutput::new(settings(
        server.port,
        StaticCredentials::new(PATH, token(&good(&[]))),
    ));
    assert!(dial_once(&mut control).is_ok());
    assert_eq!(server.accepted(), 1);
}

#[test]
fn bad_path_is_usage_error_before_dialing() {
    let _serial = setup();
    let server = RtmpServer::accepting();
    for (path, expected) in [
        ("rtmp-1234", "has no '/'"),
        ("inputs/rtmp 1", "contains ' '"),
    ] {
        let mut output = RtmpOutput::new(settings(
            server.port,
            StaticCredentials::new(path, stream_key("k3y")),
        ));
        let (status, message) = fatal_parts(dial_once(&mut output));
        assert_eq!(status, ExitStatus::Usage, "{path}: {message}");
        assert!(message.contains(expected), "{path}: {message}");
    }
    assert_eq!(server.accepted(), 0);
}

/// Returns whether something listens on TCP `port` of 127.0.0.1, from
/// /proc/net/tcp, without connecting (a connection would use up the one
/// that `ffmpeg -listen 1` accepts).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
    })
}

/// FFmpeg's own RTMP server (`-listen 1`), an implementation apart from
/// the `rml_rtmp` chunking both ends of the other tests share, writes what
/// it receives to FLV. The clock starts a second before 2^24 ms, so a
/// misread extended timestamp would show as a jump of hours.
#[test]
fn ffmpeg_server_receives_decodable_stream() {
    let _serial = setup();
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("received.flv");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/inputs/{STREAM_NAME}"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(&flv)
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is missing");
    let deadline = Instant::now() + WAIT;
    while !listening(port) {
        assert!(
            Instant::now() < deadline,
            "ffmpeg does not listen on {port}"
        );
        thread::sleep(Duration::from_millis(50));
    }

    let output = RtmpOutput::new(settings(
        port,
        StaticCredentials::new(PATH, stream_key("k3y")),
    ))
    .with_start_timestamp_ms(EXTENDED_FROM_MS - 1000);
    let (_, result) = stream_for(output, start_encoder(true), true, Duration::from_secs(4));
    let status = ffmpeg.wait().unwrap();
    let mut stderr = String::new();
    ffmpeg
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();

    assert!(result.is_ok(), "{result:?}");
    assert!(status.success(), "ffmpeg failed: {stderr}");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args([
            "stream=codec_name,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(&flv)
        .output()
        .expect("ffprobe is missing");
    assert!(probe.status.success(), "ffprobe failed");
    let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{probe}");
    assert_eq!(streams[0]["codec_name"], "h264", "{probe}");
    assert_eq!(streams[0]["width"], 640, "{probe}");
    assert_eq!(streams[0]["height"], 360, "{probe}");
    assert_eq!(streams[1]["codec_name"], "aac", "{probe}");
    let duration_s: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(duration_s > 2.0, "{duration_s} s received");
    assert!(duration_s < 6.0, "{duration_s} s: the timestamps jumped");

    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&flv)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is missing");
    assert!(decode.status.success(), "ffmpeg failed to decode");
    assert_eq!(String::from_utf8_lossy(&decode.stderr), "");
}
