//! An RTMP server for tests, on 127.0.0.1, plain or TLS (certificates made
//! by rcgen). It records what each publisher sends: tcUrl, app, the full
//! publish name with its query, every command, the metadata, and each
//! audio and video message's timestamp and first bytes. A callback decides
//! its response to `publish`: accept, `NetStream.Publish.Unauthorized`, any
//! other status, or a bare close.
//!
//! Chunking, AMF0 and the handshake come from `rml_rtmp`. Its
//! `ServerSession` is not used because it keeps the tcUrl to itself and
//! can refuse a publish only with `_error`, not with the `onStatus` that
//! MediaMTX sends. Nothing is truncated, unlike nginx-rtmp, which cuts
//! tcUrl and query at 256 bytes.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{PeerBandwidthLimitType, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The stream id the server hands out for `createStream`.
pub const STREAM_ID: u32 = 1;

/// The number of first bytes kept of each audio and video message.
pub const HEAD_BYTES: usize = 128;

/// What the publisher asked for, given to the verdict callback.
#[derive(Clone, Debug, Default)]
pub struct Attempt {
    pub tc_url: Option<String>,
    pub app: Option<String>,
    pub publish_name: String,
}

/// The server's response to `publish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// `onStatus` error `NetStream.Publish.Unauthorized`, then close, as
    /// MediaMTX 1.20.1 and later do.
    Unauthorized,
    /// An `onStatus` with this level and code, then close.
    Status {
        level: String,
        code: String,
    },
    /// Close the connection without a response, as older MediaMTX does and
    /// nginx-rtmp does when its `on_publish` hook rejects the stream.
    Close,
    /// Accept, then close after this many audio and video messages, as a
    /// server that restarts or drops the publisher does.
    AcceptThenClose {
        after_tags: usize,
    },
}

pub type VerdictFn = Arc<dyn Fn(&Attempt) -> Verdict + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
}

/// One audio or video message as received.
#[derive(Clone, Debug)]
pub struct ReceivedTag {
    pub kind: MediaKind,
    pub timestamp_ms: u32,
    pub length: usize,
    /// The first `HEAD_BYTES` bytes of the FLV tag body.
    pub head: Vec<u8>,
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The client closed its side.
    ClientClosed,
    /// The server closed it, after rejecting `publish` or after the media
    /// messages that `Verdict::AcceptThenClose` allows.
    ServerClosed,
    Error(String),
}

/// Everything recorded on one connection.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub tc_url: Option<String>,
    pub app: Option<String>,
    pub publish_name: Option<String>,
    /// Every command name in arrival order.
    pub commands: Vec<String>,
    /// Arguments of `FCUnpublish` and `deleteStream`, and the rest.
    pub arguments: HashMap<String, Vec<Amf0Value>>,
    pub metadata: Option<HashMap<String, Amf0Value>>,
    pub tags: Vec<ReceivedTag>,
    pub end: Option<End>,
}

impl Recorded {
    pub fn tags_of(&self, kind: MediaKind) -> Vec<&ReceivedTag> {
        self.tags.iter().filter(|tag| tag.kind == kind).collect()
    }
}

#[derive(Default)]
struct State {
    accepted: usize,
    connections: Vec<Recorded>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct RtmpServer {
    pub port: u16,
    state: Shared,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

/// A CA and a server certificate it signed.
pub struct Certificates {
    pub ca_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Certificates {
    /// Makes a CA and a certificate for `server_names` (DNS names or IP
    /// addresses) signed by it.
    pub fn new(server_names: &[&str]) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let names: Vec<String> = server_names.iter().map(|name| name.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            chain: vec![certificate.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .unwrap();
        Arc::new(config)
    }
}

impl RtmpServer {
    /// Starts a plain RTMP server that responds to `publish` as `verdict`
    /// returns.
    pub fn start(verdict: impl Fn(&Attempt) -> Verdict + Send + Sync + 'static) -> Self {
        Self::start_with(None, Arc::new(verdict))
    }

    /// Starts a plain RTMP server that accepts every publish.
    pub fn accepting() -> Self {
        Self::start(|_| Verdict::Accept)
    }

    /// Starts an RTMPS server with `certificates` that accepts every
    /// publish.
    pub fn start_tls(certificates: &Certificates) -> Self {
        Self::start_with(
            Some(certificates.server_config()),
            Arc::new(|_| Verdict::Accept),
        )
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>, verdict: VerdictFn) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the RTMP server on loopback");
        let port = listener.local_addr().unwrap().port();
        let state: Shared = Arc::default();
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();

        let accept_state = state.clone();
        let accept_streams = streams.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let index = {
                    let mut state = accept_state.0.lock().unwrap();
                    state.accepted += 1;
                    state.connections.push(Recorded::default());
                    state.connections.len() - 1
                };
                accept_streams
                    .lock()
                    .unwrap()
                    .push(stream.try_clone().unwrap());
                let connection = Connection {
                    state: accept_state.clone(),
                    index,
                    verdict: verdict.clone(),
                    close_after_tags: None,
                };
                let tls = tls.clone();
                thread::spawn(move || connection.serve(stream, tls));
            }
        });
        Self {
            port,
            state,
            streams,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.0.lock().unwrap().accepted
    }

    pub fn connections(&self) -> Vec<Recorded> {
        self.state.0.lock().unwrap().connections.clone()
    }

    /// Waits until `done` is true for the recorded connections, and panics
    /// with them after `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let (lock, condvar) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if done(&state.connections) {
                return state.connections.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "the RTMP server did not see the expected state: {:#?}",
                state.connections
            );
            state = condvar.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits until every connection has ended.
    pub fn wait_for_ends(&self, timeout: Duration) -> Vec<Recorded> {
        self.wait_until(timeout, |connections| {
            !connections.is_empty() && connections.iter().all(|c| c.end.is_some())
        })
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        for stream in self.streams.lock().unwrap().iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The transport of one connection.
enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Link {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(stream) => stream,
            Self::Tls(stream) => &stream.sock,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buffer),
            Self::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Link {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(data),
            Self::Tls(stream) => stream.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            Self::Tls(stream) => stream.flush(),
        }
    }
}

struct Connection {
    state: Shared,
    index: usize,
    verdict: VerdictFn,
    /// Media messages after which the server closes, once accepted.
    close_after_tags: Option<usize>,
}

/// Why the message loop stopped.
enum Stop {
    ServerClosed,
}

impl Connection {
    fn serve(mut self, stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
        let link = match tls {
            None => Link::Plain(stream),
            Some(config) => {
                let session = rustls::ServerConnection::new(config).unwrap();
                Link::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
            }
        };
        let (result, link) = self.run(link);
        // The server keeps a clone of the socket for its Drop, so closing
        // takes an explicit shutdown.
        let _ = link.tcp().shutdown(Shutdown::Both);
        let end = match result {
            Ok(Stop::ServerClosed) => End::ServerClosed,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => End::ClientClosed,
            Err(error) => End::Error(error.to_string()),
        };
        self.record(|recorded| recorded.end = Some(end));
    }

    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        let (lock, condvar) = &*self.state;
        change(&mut lock.lock().unwrap().connections[self.index]);
        condvar.notify_all();
    }

    fn run(&mut self, mut link: Link) -> (std::io::Result<Stop>, Link) {
        let result = self.exchange(&mut link);
        (result, link)
    }

    fn exchange(&mut self, link: &mut Link) -> std::io::Result<Stop> {
        let remaining = server_handshake(link)?;
        let mut session = ServerChunks::new();
        let mut greeting = session.send(RtmpMessage::WindowAcknowledgement { size: 5_000_000 }, 0);
        greeting.extend(session.send(
            RtmpMessage::SetPeerBandwidth {
                size: 5_000_000,
                limit_type: PeerBandwidthLimitType::Dynamic,
            },
            0,
        ));
        greeting.extend(session.set_chunk_size(4096));
        link.write_all(&greeting)?;

        let mut input = remaining;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let mut bytes: &[u8] = &input;
            while let Some(payload) = session
                .deserializer
                .get_next_message(bytes)
                .map_err(invalid)?
            {
                bytes = &[];
                let timestamp_ms = payload.timestamp.value;
                let message = payload.to_rtmp_message().map_err(invalid)?;
                if let Some(stop) = self.handle(message, timestamp_ms, &mut session, link)? {
                    return Ok(stop);
                }
            }
            let count = link.read(&mut buffer)?;
            if count == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            input = buffer[..count].to_vec();
        }
    }

    fn handle(
        &mut self,
        message: RtmpMessage,
        timestamp_ms: u32,
        session: &mut ServerChunks,
        link: &mut Link,
    ) -> std::io::Result<Option<Stop>> {
        match message {
            RtmpMessage::SetChunkSize { size } => {
                session
                    .deserializer
                    .set_max_chunk_size(size as usize)
                    .map_err(invalid)?;
            }
            RtmpMessage::VideoData { data } | RtmpMessage::AudioData { data }
                if data.is_empty() => {}
            RtmpMessage::VideoData { data } => {
                return Ok(self.record_tag(MediaKind::Video, timestamp_ms, &data))
            }
            RtmpMessage::AudioData { data } => {
                return Ok(self.record_tag(MediaKind::Audio, timestamp_ms, &data))
            }
            RtmpMessage::Amf0Data { values } => self.record_data(values),
            RtmpMessage::Amf0Command {
                command_name,
                transaction_id,
                command_object,
                additional_arguments,
            } => {
                return self.handle_command(
                    &command_name,
                    transaction_id,
                    command_object,
                    additional_arguments,
                    session,
                    link,
                )
            }
            _ => {}
        }
        Ok(None)
    }

    /// Records a media message and returns `Some` when the server should
    /// close now.
    fn record_tag(&self, kind: MediaKind, timestamp_ms: u32, data: &[u8]) -> Option<Stop> {
        let tag = ReceivedTag {
            kind,
            timestamp_ms,
            length: data.len(),
            head: data[..data.len().min(HEAD_BYTES)].to_vec(),
        };
        let mut count = 0;
        self.record(|recorded| {
            recorded.tags.push(tag);
            count = recorded.tags.len();
        });
        self.close_after_tags
            .is_some_and(|limit| count >= limit)
            .then_some(Stop::ServerClosed)
    }

    fn record_data(&self, values: Vec<Amf0Value>) {
        let text = |index: usize| match values.get(index) {
            Some(Amf0Value::Utf8String(text)) => text.as_str(),
            _ => "",
        };
        let is_metadata = text(0) == "@setDataFrame" && text(1) == "onMetaData";
        if let (true, Some(Amf0Value::Object(properties))) = (is_metadata, values.get(2)) {
            let properties = properties.clone();
            self.record(|recorded| recorded.metadata = Some(properties));
        }
    }

    fn handle_command(
        &mut self,
        name: &str,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
        session: &mut ServerChunks,
        link: &mut Link,
    ) -> std::io::Result<Option<Stop>> {
        self.record(|recorded| {
            recorded.commands.push(name.to_string());
            recorded
                .arguments
                .insert(name.to_string(), arguments.clone());
        });
        match name {
            "connect" => {
                let text = |field: &str| match &command_object {
                    Amf0Value::Object(properties) => match properties.get(field) {
                        Some(Amf0Value::Utf8String(value)) => Some(value.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let (tc_url, app) = (text("tcUrl"), text("app"));
                self.record(|recorded| {
                    recorded.tc_url = tc_url;
                    recorded.app = app;
                });
                let mut properties = HashMap::new();
                properties.insert(
                    "fmsVer".to_string(),
                    Amf0Value::Utf8String("FMS/3,0,1,123".into()),
                );
                properties.insert("capabilities".to_string(), Amf0Value::Number(31.0));
                let info = status_object(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                let mut out = session.command(
                    "_result",
                    transaction_id,
                    Amf0Value::Object(properties),
                    vec![info],
                    0,
                );
                out.extend(session.command("onBWDone", 0.0, Amf0Value::Null, vec![], 0));
                link.write_all(&out)?;
            }
            "createStream" => {
                let out = session.command(
                    "_result",
                    transaction_id,
                    Amf0Value::Null,
                    vec![Amf0Value::Number(f64::from(STREAM_ID))],
                    0,
                );
                link.write_all(&out)?;
            }
            "publish" => return self.answer_publish(arguments, session, link),
            _ => {}
        }
        Ok(None)
    }

    fn answer_publish(
        &mut self,
        arguments: Vec<Amf0Value>,
        session: &mut ServerChunks,
        link: &mut Link,
    ) -> std::io::Result<Option<Stop>> {
        let publish_name = match arguments.first() {
            Some(Amf0Value::Utf8String(name)) => name.clone(),
            _ => String::new(),
        };
        let attempt = {
            let state = self.state.0.lock().unwrap();
            let recorded = &state.connections[self.index];
            Attempt {
                tc_url: recorded.tc_url.clone(),
                app: recorded.app.clone(),
                publish_name: publish_name.clone(),
            }
        };
        self.record(|recorded| recorded.publish_name = Some(publish_name));

        let status = |level: &str, code: &str, description: &str, session: &mut ServerChunks| {
            let info = status_object(level, code, description);
            session.command("onStatus", 0.0, Amf0Value::Null, vec![info], STREAM_ID)
        };
        let verdict = (self.verdict)(&attempt);
        if let Verdict::AcceptThenClose { after_tags } = verdict {
            self.close_after_tags = Some(after_tags);
        }
        match verdict {
            Verdict::Accept | Verdict::AcceptThenClose { .. } => {
                let mut out = session.send(
                    RtmpMessage::UserControl {
                        event_type: UserControlEventType::StreamBegin,
                        stream_id: Some(STREAM_ID),
                        buffer_length: None,
                        timestamp: None,
                    },
                    0,
                );
                out.extend(status(
                    "status",
                    "NetStream.Publish.Start",
                    "publishing",
                    session,
                ));
                link.write_all(&out)?;
                Ok(None)
            }
            Verdict::Unauthorized => {
                let out = status(
                    "error",
                    "NetStream.Publish.Unauthorized",
                    "authentication failed",
                    session,
                );
                link.write_all(&out)?;
                link.flush()?;
                Ok(Some(Stop::ServerClosed))
            }
            Verdict::Status { level, code } => {
                let out = status(&level, &code, "refused by the test server", session);
                link.write_all(&out)?;
                link.flush()?;
                Ok(Some(Stop::ServerClosed))
            }
            Verdict::Close => Ok(Some(Stop::ServerClosed)),
        }
    }
}

fn invalid(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
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

/// Runs the server side of the handshake and returns the bytes after it.
fn server_handshake(link: &mut Link) -> std::io::Result<Vec<u8>> {
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buffer = vec![0; 8192];
    loop {
        let count = link.read(&mut buffer)?;
        if count == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match handshake.process_bytes(&buffer[..count]).map_err(invalid)? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                link.write_all(&response_bytes)?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                link.write_all(&response_bytes)?;
                return Ok(remaining_bytes);
            }
        }
    }
}

/// The server's chunk state in both directions.
struct ServerChunks {
    serializer: ChunkSerializer,
    deserializer: ChunkDeserializer,
}

impl ServerChunks {
    fn new() -> Self {
        Self {
            serializer: ChunkSerializer::new(),
            deserializer: ChunkDeserializer::new(),
        }
    }

    fn send(&mut self, message: RtmpMessage, stream_id: u32) -> Vec<u8> {
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .unwrap();
        self.serializer
            .serialize(&payload, false, false)
            .unwrap()
            .bytes
    }

    fn set_chunk_size(&mut self, size: u32) -> Vec<u8> {
        self.serializer
            .set_max_chunk_size(size, RtmpTimestamp::new(0))
            .unwrap()
            .bytes
    }

    fn command(
        &mut self,
        name: &str,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
        stream_id: u32,
    ) -> Vec<u8> {
        self.send(
            RtmpMessage::Amf0Command {
                command_name: name.to_string(),
                transaction_id,
                command_object,
                additional_arguments: arguments,
            },
            stream_id,
        )
    }
}
