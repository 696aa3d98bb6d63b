use super::*;
use crate::config::Secret;

const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJ0ZXN0Ijp0cnVlfQ.c2lnbmF0dXJl";
const STREAM_ID: u32 = 7;

fn names() -> PublishNames {
    PublishNames {
        app: "inputs".to_string(),
        stream_name: "rtmp-1234".to_string(),
        tc_url: Secret::new(
            "RTMP tcUrl",
            format!("rtmp://trax:{TOKEN}@127.0.0.1:1935/inputs"),
        ),
        publish_name: Secret::new(
            "RTMP publish name",
            format!("rtmp-1234?user=trax&pass={TOKEN}"),
        ),
    }
}

/// The server's end: serializes the server's messages and decodes what the
/// publisher sent.
struct Server {
    serializer: ChunkSerializer,
    deserializer: ChunkDeserializer,
    /// Bytes serialized for the publisher so far.
    sent_bytes: u64,
}

impl Server {
    fn new() -> Self {
        Self {
            serializer: ChunkSerializer::new(),
            deserializer: ChunkDeserializer::new(),
            sent_bytes: 0,
        }
    }

    fn read(&mut self, bytes: &[u8]) -> Vec<(MessagePayload, RtmpMessage)> {
        let mut messages = Vec::new();
        let mut input = bytes;
        while let Some(payload) = self.deserializer.get_next_message(input).unwrap() {
            input = &[];
            let message = payload.to_rtmp_message().unwrap();
            if let RtmpMessage::SetChunkSize { size } = message {
                self.deserializer.set_max_chunk_size(size as usize).unwrap();
            }
            messages.push((payload, message));
        }
        messages
    }

    fn send(&mut self, message: RtmpMessage, stream_id: u32) -> Vec<u8> {
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .unwrap();
        let bytes = self
            .serializer
            .serialize(&payload, false, false)
            .unwrap()
            .bytes;
        self.sent_bytes += bytes.len() as u64;
        bytes
    }

    fn answer(&mut self, name: &str, transaction_id: u32, arguments: Vec<Amf0Value>) -> Vec<u8> {
        self.send(command(name, transaction_id, Amf0Value::Null, arguments), 0)
    }

    fn status(&mut self, level: &str, code: &str, description: &str) -> Vec<u8> {
        let object = status(level, code, description);
        self.send(
            command("onStatus", 0, Amf0Value::Null, vec![object]),
            STREAM_ID,
        )
    }
}

fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    let mut properties = HashMap::new();
    for (name, value) in [
        ("level", level),
        ("code", code),
        ("description", description),
    ] {
        properties.insert(name.to_string(), Amf0Value::Utf8String(value.to_string()));
    }
    Amf0Value::Object(properties)
}

fn commands(messages: &[(MessagePayload, RtmpMessage)]) -> Vec<(String, u32, Vec<Amf0Value>)> {
    messages
        .iter()
        .filter_map(|(payload, message)| match message {
            RtmpMessage::Amf0Command {
                command_name,
                additional_arguments,
                ..
            } => Some((
                command_name.clone(),
                payload.message_stream_id,
                additional_arguments.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn text(value: &str) -> Amf0Value {
    Amf0Value::Utf8String(value.to_string())
}

/// Runs the exchange up to the `publish` command and returns the parts.
fn until_publish() -> (Publisher, Server) {
    let mut publisher = Publisher::new(names(), vec![TOKEN.to_string()]);
    let mut server = Server::new();
    server.read(&publisher.start().unwrap());
    let connected = server.answer(
        "_result",
        1,
        vec![status("status", "NetConnection.Connect.Success", "")],
    );
    server.read(&publisher.receive(&connected).unwrap());
    let created = server.answer("_result", 4, vec![Amf0Value::Number(f64::from(STREAM_ID))]);
    server.read(&publisher.receive(&created).unwrap());
    assert_eq!(publisher.stage(), Stage::AwaitingPublish);
    (publisher, server)
}

fn publishing() -> (Publisher, Server) {
    let (mut publisher, mut server) = until_publish();
    let started = server.status("status", "NetStream.Publish.Start", "started");
    assert!(publisher.receive(&started).unwrap().is_empty());
    assert_eq!(publisher.stage(), Stage::Publishing);
    (publisher, server)
}

#[test]
fn start_sends_chunk_size_then_connect() {
    let mut publisher = Publisher::new(names(), vec![]);
    let mut server = Server::new();
    let messages = server.read(&publisher.start().unwrap());

    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].1,
        RtmpMessage::SetChunkSize {
            size: CHUNK_SIZE_BYTES
        }
    );
    let RtmpMessage::Amf0Command {
        command_name,
        transaction_id,
        command_object: Amf0Value::Object(properties),
        ..
    } = &messages[1].1
    else {
        panic!("{:?}", messages[1]);
    };
    assert_eq!(command_name, "connect");
    assert_eq!(*transaction_id, 1.0);
    assert_eq!(properties["app"], text("inputs"));
    assert_eq!(
        properties["tcUrl"],
        text(&format!("rtmp://trax:{TOKEN}@127.0.0.1:1935/inputs"))
    );
    assert_eq!(properties["type"], text("nonprivate"));
    assert_eq!(properties["flashVer"], text(FLASH_VERSION));
    assert_eq!(publisher.stage(), Stage::Connecting);
}

#[test]
fn exchange_reaches_publishing() {
    let mut publisher = Publisher::new(names(), vec![]);
    let mut server = Server::new();
    server.read(&publisher.start().unwrap());

    let connected = server.answer("_result", 1, vec![]);
    let sent = commands(&server.read(&publisher.receive(&connected).unwrap()));
    let name = text(&format!("rtmp-1234?user=trax&pass={TOKEN}"));
    assert_eq!(
        sent,
        vec![
            ("releaseStream".to_string(), 0, vec![name.clone()]),
            ("FCPublish".to_string(), 0, vec![name.clone()]),
            ("createStream".to_string(), 0, vec![]),
        ]
    );
    assert_eq!(publisher.stage(), Stage::CreatingStream);

    // Responses to releaseStream and FCPublish change nothing.
    let ignored = server.answer("_error", 2, vec![status("error", "x", "")]);
    assert!(publisher.receive(&ignored).unwrap().is_empty());
    let bandwidth_done = server.answer("onBWDone", 0, vec![]);
    assert!(publisher.receive(&bandwidth_done).unwrap().is_empty());

    let created = server.answer("_result", 4, vec![Amf0Value::Number(f64::from(STREAM_ID))]);
    let sent = commands(&server.read(&publisher.receive(&created).unwrap()));
    assert_eq!(
        sent,
        vec![("publish".to_string(), STREAM_ID, vec![name, text("live")])]
    );

    let started = server.status("status", "NetStream.Publish.Start", "");
    publisher.receive(&started).unwrap();
    assert_eq!(publisher.stage(), Stage::Publishing);
}

#[test]
fn unauthorized_status_is_credentials_rejection() {
    let (mut publisher, mut server) = until_publish();
    let rejection = server.status(
        "error",
        "NetStream.Publish.Unauthorized",
        &format!("token {TOKEN} rejected"),
    );
    let error = publisher.receive(&rejection).unwrap_err();

    let ProtocolError::Rejected {
        command,
        code,
        description,
        credentials,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*command, "publish");
    assert_eq!(code, "NetStream.Publish.Unauthorized");
    assert!(credentials);
    assert_eq!(description, "token <redacted> rejected");
    assert_eq!(
        error.to_string(),
        "the RTMP server rejected publish: NetStream.Publish.Unauthorized (error): \"token \
         <redacted> rejected\""
    );
}

#[test]
fn bad_name_status_is_failure() {
    let (mut publisher, mut server) = until_publish();
    let rejection = server.status("error", "NetStream.Publish.BadName", "already publishing");
    let error = publisher.receive(&rejection).unwrap_err();
    let ProtocolError::Rejected {
        credentials, code, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(!credentials);
    assert_eq!(code, "NetStream.Publish.BadName");
}

#[test]
fn error_answer_to_publish_is_refusal() {
    let (mut publisher, mut server) = until_publish();
    let rejection = server.answer(
        "_error",
        0,
        vec![status(
            "_error",
            "NetStream.Publish.Start",
            "Invalid publish mode",
        )],
    );
    let error = publisher.receive(&rejection).unwrap_err();
    assert!(
        matches!(
            &error,
            ProtocolError::Rejected {
                command: "publish",
                credentials: false,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn rejected_connect_is_credentials_rejection() {
    let mut publisher = Publisher::new(names(), vec![]);
    let mut server = Server::new();
    server.read(&publisher.start().unwrap());
    let rejection = server.answer(
        "_error",
        1,
        vec![status("error", "NetConnection.Connect.Rejected", "")],
    );
    let error = publisher.receive(&rejection).unwrap_err();
    assert!(
        matches!(
            &error,
            ProtocolError::Rejected {
                command: "connect",
                credentials: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the RTMP server rejected connect: NetConnection.Connect.Rejected (error)"
    );
}

#[test]
fn description_with_publish_name_is_redacted() {
    let (mut publisher, mut server) = until_publish();
    let echoed = format!("bad stream rtmp-1234?user=trax&pass={TOKEN}");
    let rejection = server.status("error", "NetStream.Publish.BadName", &echoed);
    let error = publisher.receive(&rejection).unwrap_err().to_string();
    assert!(!error.contains(TOKEN), "{error}");
    assert!(error.contains("bad stream <redacted>"), "{error}");
}

#[test]
fn create_stream_without_id_fails() {
    let mut publisher = Publisher::new(names(), vec![]);
    let mut server = Server::new();
    server.read(&publisher.start().unwrap());
    let connected = server.answer("_result", 1, vec![]);
    server.read(&publisher.receive(&connected).unwrap());
    let created = server.answer("_result", 4, vec![Amf0Value::Null]);
    assert_eq!(
        publisher.receive(&created).unwrap_err(),
        ProtocolError::NoStreamId
    );
}

#[test]
fn ping_gets_pong_with_same_timestamp() {
    let (mut publisher, mut server) = publishing();
    let ping = server.send(
        RtmpMessage::UserControl {
            event_type: UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(123_456)),
        },
        0,
    );
    let answer = server.read(&publisher.receive(&ping).unwrap());
    assert_eq!(
        answer[0].1,
        RtmpMessage::UserControl {
            event_type: UserControlEventType::PingResponse,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(123_456)),
        }
    );
}

#[test]
fn acknowledgement_after_window_of_bytes() {
    let (mut publisher, mut server) = publishing();
    let window = server.send(RtmpMessage::WindowAcknowledgement { size: 100 }, 0);
    assert!(publisher.receive(&window).unwrap().is_empty());

    let mut acks = Vec::new();
    for _ in 0..10 {
        let info = server.status("status", "NetStream.Info", "padding to fill the window");
        for (_, message) in server.read(&publisher.receive(&info).unwrap()) {
            let RtmpMessage::Acknowledgement { sequence_number } = message else {
                panic!("{message:?}");
            };
            acks.push(u64::from(sequence_number));
        }
    }
    assert!(acks.len() >= 2, "{acks:?}");
    assert!(
        acks.windows(2).all(|pair| pair[1] - pair[0] >= 100),
        "{acks:?}"
    );
    let last = *acks.last().unwrap();
    assert!(last <= server.sent_bytes, "{acks:?}");
    assert!(last + 100 > server.sent_bytes, "{acks:?}");
}

#[test]
fn stop_sends_fcunpublish_and_delete_stream() {
    let (mut publisher, mut server) = publishing();
    let sent = commands(&server.read(&publisher.stop().unwrap()));
    assert_eq!(
        sent,
        vec![
            (
                "FCUnpublish".to_string(),
                0,
                vec![text(&format!("rtmp-1234?user=trax&pass={TOKEN}"))]
            ),
            (
                "deleteStream".to_string(),
                0,
                vec![Amf0Value::Number(f64::from(STREAM_ID))]
            ),
        ]
    );
    assert_eq!(publisher.stage(), Stage::Stopped);
}

#[test]
fn media_goes_to_the_published_stream() {
    let (mut publisher, mut server) = publishing();
    let mut bytes = publisher.metadata(HashMap::new()).unwrap();
    bytes.extend(publisher.video(40, Bytes::from_static(&[0x17, 0])).unwrap());
    bytes.extend(publisher.audio(41, Bytes::from_static(&[0xaf, 0])).unwrap());
    let messages = server.read(&bytes);

    assert_eq!(messages.len(), 3);
    for (payload, _) in &messages {
        assert_eq!(payload.message_stream_id, STREAM_ID);
    }
    assert_eq!(messages[1].0.timestamp, RtmpTimestamp::new(40));
    assert_eq!(messages[2].0.timestamp, RtmpTimestamp::new(41));
    let RtmpMessage::Amf0Data { values } = &messages[0].1 else {
        panic!("{:?}", messages[0]);
    };
    assert_eq!(values[0], text("@setDataFrame"));
    assert_eq!(values[1], text("onMetaData"));
}

/// Checks the chunk bytes for a timestamp past 2^24 ms against the RTMP
/// specification (5.3.1.2 and 5.3.1.3), decoded by hand here rather than
/// by the library that wrote them.
#[test]
fn extended_timestamp_on_the_wire() {
    let (mut publisher, _) = publishing();
    let timestamp_ms: u32 = 0x0100_0010;
    let body = vec![0x27; CHUNK_SIZE_BYTES as usize + 10];
    let bytes = publisher
        .video(timestamp_ms, Bytes::from(body.clone()))
        .unwrap();

    // Type 0 header on chunk stream 4: timestamp field 0xffffff, length,
    // type 9, stream id (little endian), then the extended timestamp.
    let length = (body.len() as u32).to_be_bytes();
    let mut expected = vec![0x04, 0xff, 0xff, 0xff, length[1], length[2], length[3], 9];
    expected.extend_from_slice(&STREAM_ID.to_le_bytes());
    expected.extend_from_slice(&timestamp_ms.to_be_bytes());
    let header_end = expected.len();
    assert_eq!(&bytes[..header_end], &expected[..]);

    // The continuation chunk (type 3) repeats the extended timestamp.
    let continuation = header_end + CHUNK_SIZE_BYTES as usize;
    assert_eq!(bytes[continuation], 0xc4);
    assert_eq!(
        &bytes[continuation + 1..continuation + 5],
        &timestamp_ms.to_be_bytes()
    );
    assert_eq!(bytes.len(), continuation + 5 + 10);

    // The next message carries a 33 ms delta in a type 1 header, without an
    // extended field.
    let next = publisher
        .video(timestamp_ms + 33, Bytes::from_static(&[0x27, 1, 0]))
        .unwrap();
    assert_eq!(&next[..8], &[0x44, 0, 0, 33, 0, 0, 3, 9]);
    assert_eq!(next.len(), 8 + 3);
}

#[test]
fn extended_timestamp_round_trips() {
    let (mut publisher, mut server) = publishing();
    let mut bytes = Vec::new();
    let start: u32 = 0x00ff_ff00;
    let times: Vec<u32> = (0..20).map(|i| start + i * 33).collect();
    for &time in &times {
        let body = vec![0x27; 5000];
        bytes.extend(publisher.video(time, Bytes::from(body)).unwrap());
    }
    let received: Vec<u32> = server
        .read(&bytes)
        .iter()
        .map(|(payload, _)| payload.timestamp.value)
        .collect();
    assert_eq!(received, times);
}

#[test]
fn status_classification() {
    let cases = [
        (
            "status",
            "NetStream.Publish.Start",
            StatusMeaning::PublishStarted,
        ),
        (
            "error",
            "NetStream.Publish.Unauthorized",
            StatusMeaning::CredentialsRejected,
        ),
        (
            "error",
            "NetStream.publish.Unauthorized",
            StatusMeaning::CredentialsRejected,
        ),
        (
            "error",
            "NetStream.Publish.Denied",
            StatusMeaning::CredentialsRejected,
        ),
        (
            "error",
            "NetConnection.Connect.Rejected",
            StatusMeaning::CredentialsRejected,
        ),
        ("error", "NetStream.Publish.BadName", StatusMeaning::Failed),
        ("status", "NetStream.Publish.BadName", StatusMeaning::Failed),
        (
            "error",
            "NetStream.Publish.BadConnection",
            StatusMeaning::Failed,
        ),
        (
            "error",
            "NetConnection.Connect.Failed",
            StatusMeaning::Failed,
        ),
        ("status", "NetStream.Unpublish.Success", StatusMeaning::Info),
        ("status", "NetStream.Publish.Idle", StatusMeaning::Info),
    ];
    for (level, code, expected) in cases {
        assert_eq!(classify_status(level, code), expected, "{level} {code}");
    }
}

#[test]
fn command_without_object_is_read() {
    let (mut publisher, mut server) = until_publish();
    // FFmpeg's server sends commands of name and transaction id only, which
    // rml_rtmp 0.8 panics on.
    let values = vec![text("onFCPublish"), Amf0Value::Number(0.0)];
    let payload = MessagePayload {
        timestamp: RtmpTimestamp::new(0),
        message_stream_id: 0,
        type_id: AMF0_COMMAND,
        data: Bytes::from(rml_rtmp::rml_amf0::serialize(&values).unwrap()),
    };
    let bytes = server
        .serializer
        .serialize(&payload, false, false)
        .unwrap()
        .bytes;
    assert!(publisher.receive(&bytes).unwrap().is_empty());

    let started = server.status("status", "NetStream.Publish.Start", "");
    publisher.receive(&started).unwrap();
    assert_eq!(publisher.stage(), Stage::Publishing);
}

#[test]
fn zero_chunk_size_is_malformed() {
    let (mut publisher, mut server) = publishing();
    let zero = server.send(RtmpMessage::SetChunkSize { size: 0 }, 0);
    let error = publisher.receive(&zero).unwrap_err();
    assert!(
        matches!(error, ProtocolError::Malformed { .. }),
        "{error:?}"
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let mut publisher = Publisher::new(names(), vec![]);
    publisher.start().unwrap();
    // A type 1 header on a chunk stream that never had a type 0 header.
    let error = publisher
        .receive(&[0x43, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4])
        .unwrap_err();
    assert!(
        matches!(error, ProtocolError::Malformed { .. }),
        "{error:?}"
    );
}
