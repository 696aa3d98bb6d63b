//! The publishing side of RTMP's command exchange, free of I/O: bytes from
//! the server go in, bytes for the server come out.
//!
//! ```text
//! connect(app, tcUrl)        ─►  _result
//! releaseStream, FCPublish,
//! createStream               ─►  _result(stream id)
//! publish(name, "live")      ─►  onStatus NetStream.Publish.Start
//! @setDataFrame, audio, video ─►
//! FCUnpublish, deleteStream  ─►
//! ```
//!
//! Chunking and AMF0 come from `rml_rtmp`. Its `ClientSession` is not used
//! because it cannot send `FCUnpublish` and reduces a rejected `publish` to
//! a status code without level or description.

use super::target::PublishNames;
use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

/// Maximum chunk size the client sends, in bytes (the value OBS and
/// FFmpeg use).
pub const CHUNK_SIZE_BYTES: u32 = 4096;

/// `flashVer` of the `connect` command. "FMLE/3.0" marks an encoder that
/// publishes, which some servers check.
const FLASH_VERSION: &str = "FMLE/3.0 (compatible; bridge)";

/// Maximum length of a server's status description kept for messages,
/// in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// How far the exchange has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `connect` sent, waiting for its response.
    Connecting,
    /// `createStream` sent, waiting for the stream id.
    CreatingStream,
    /// `publish` sent, waiting for `NetStream.Publish.Start`.
    AwaitingPublish,
    Publishing,
    /// `FCUnpublish` and `deleteStream` sent.
    Stopped,
}

impl Stage {
    /// Returns the command whose response this stage waits for, for
    /// messages.
    pub fn awaited_command(self) -> &'static str {
        match self {
            Self::Connecting => "connect",
            Self::CreatingStream => "createStream",
            Self::AwaitingPublish => "publish",
            Self::Publishing | Self::Stopped => "(none)",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The server rejected a command with an error status.
    #[error(
        "the RTMP server rejected {command}: {code} ({level}){}",
        description_text(.description)
    )]
    Rejected {
        command: &'static str,
        level: String,
        code: String,
        /// The server's text, with credentials cut out.
        description: String,
        /// Whether the code marks the credentials as rejected.
        credentials: bool,
    },

    #[error(
        "the RTMP server sent data that cannot be read ({reason}): it may not be an RTMP server"
    )]
    Malformed { reason: String },

    #[error("cannot encode an RTMP message: {reason}")]
    Encode { reason: String },

    #[error("the RTMP server's answer to createStream carries no stream id")]
    NoStreamId,
}

impl ProtocolError {
    fn encode(error: impl std::fmt::Display) -> Self {
        Self::Encode {
            reason: error.to_string(),
        }
    }

    fn malformed(error: impl std::fmt::Display) -> Self {
        Self::Malformed {
            reason: error.to_string(),
        }
    }
}

fn description_text(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": \"{description}\"")
    }
}

/// Meaning of an `onStatus` or `_error` response for a publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMeaning {
    PublishStarted,
    /// The credentials were rejected: a new token may help.
    CredentialsRejected,
    /// Any other error status.
    Failed,
    /// Information that needs no action.
    Info,
}

/// Classifies a status by its `level` and `code`. Codes are compared without
/// case, because servers differ: MediaMTX (1.20.1 and later) sends
/// `NetStream.Publish.Unauthorized`, node-media-server
/// `NetStream.publish.Unauthorized`.
pub fn classify_status(level: &str, code: &str) -> StatusMeaning {
    let code = code.to_ascii_lowercase();
    if code == "netstream.publish.start" {
        return StatusMeaning::PublishStarted;
    }
    let credentials = code.ends_with(".unauthorized")
        || code == "netstream.publish.denied"
        || code == "netconnection.connect.rejected";
    if credentials {
        StatusMeaning::CredentialsRejected
    } else if level.eq_ignore_ascii_case("error")
        || [".failed", ".badname", ".rejected", ".denied", ".invalid"]
            .iter()
            .any(|suffix| code.ends_with(suffix))
    {
        StatusMeaning::Failed
    } else {
        StatusMeaning::Info
    }
}

/// One publishing connection's command exchange.
pub struct Publisher {
    serializer: ChunkSerializer,
    deserializer: ChunkDeserializer,
    names: PublishNames,
    /// Strings cut out of server descriptions before they reach a message.
    redactions: Vec<String>,
    stage: Stage,
    next_transaction_id: u32,
    connect_id: u32,
    create_stream_id: u32,
    stream_id: u32,
    bytes_received: u64,
    acknowledged_bytes: u64,
    window_ack_bytes: Option<u32>,
}

impl Publisher {
    /// Creates a publisher for `names`. `redactions` are the credential's
    /// forms that a server might echo in a description.
    pub fn new(names: PublishNames, redactions: Vec<String>) -> Self {
        let mut redactions = redactions;
        redactions.push(names.tc_url.expose().to_string());
        redactions.push(names.publish_name.expose().to_string());
        redactions.retain(|text| !text.is_empty());
        // Longest first, so a secret inside a longer one is cut with it.
        redactions.sort_by_key(|text| std::cmp::Reverse(text.len()));
        Self {
            serializer: ChunkSerializer::new(),
            deserializer: ChunkDeserializer::new(),
            names,
            redactions,
            stage: Stage::Connecting,
            next_transaction_id: 1,
            connect_id: 0,
            create_stream_id: 0,
            stream_id: 0,
            bytes_received: 0,
            acknowledged_bytes: 0,
            window_ack_bytes: None,
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Returns the first bytes after the handshake: the chunk size, then
    /// `connect`.
    pub fn start(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = self
            .serializer
            .set_max_chunk_size(CHUNK_SIZE_BYTES, RtmpTimestamp::new(0))
            .map_err(ProtocolError::encode)?
            .bytes;

        let mut properties = HashMap::new();
        let mut text = |name: &str, value: &str| {
            properties.insert(name.to_string(), Amf0Value::Utf8String(value.to_string()));
        };
        text("app", &self.names.app);
        text("type", "nonprivate");
        text("flashVer", FLASH_VERSION);
        text("tcUrl", self.names.tc_url.expose());
        self.connect_id = self.next_id();
        let connect = command(
            "connect",
            self.connect_id,
            Amf0Value::Object(properties),
            vec![],
        );
        out.extend(self.send(connect, 0, 0)?);
        self.stage = Stage::Connecting;
        Ok(out)
    }

    /// Takes bytes from the server and returns the bytes to answer with.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        self.bytes_received += bytes.len() as u64;
        if let Some(window) = self.window_ack_bytes {
            if self.bytes_received - self.acknowledged_bytes >= u64::from(window) {
                self.acknowledged_bytes = self.bytes_received;
                let ack = RtmpMessage::Acknowledgement {
                    // The field counts bytes modulo 2^32.
                    sequence_number: self.bytes_received as u32,
                };
                out.extend(self.send(ack, 0, 0)?);
            }
        }

        let mut input = bytes;
        while let Some(payload) = self.next_message(input)? {
            input = &[];
            out.extend(self.handle(payload)?);
        }
        Ok(out)
    }

    /// Reads the next complete message. A panic inside `rml_rtmp` on odd
    /// input becomes an error, so a server cannot take the output thread
    /// down.
    fn next_message(&mut self, input: &[u8]) -> Result<Option<MessagePayload>, ProtocolError> {
        let deserializer = &mut self.deserializer;
        std::panic::catch_unwind(AssertUnwindSafe(|| deserializer.get_next_message(input)))
            .map_err(|_| ProtocolError::malformed("the chunk reader failed on its input"))?
            .map_err(ProtocolError::malformed)
    }

    /// Returns the `@setDataFrame onMetaData` message.
    pub fn metadata(
        &mut self,
        values: HashMap<String, Amf0Value>,
    ) -> Result<Vec<u8>, ProtocolError> {
        let message = RtmpMessage::Amf0Data {
            values: vec![
                Amf0Value::Utf8String("@setDataFrame".to_string()),
                Amf0Value::Utf8String("onMetaData".to_string()),
                Amf0Value::Object(values),
            ],
        };
        self.send(message, 0, self.stream_id)
    }

    pub fn video(&mut self, timestamp_ms: u32, body: Bytes) -> Result<Vec<u8>, ProtocolError> {
        self.send(
            RtmpMessage::VideoData { data: body },
            timestamp_ms,
            self.stream_id,
        )
    }

    pub fn audio(&mut self, timestamp_ms: u32, body: Bytes) -> Result<Vec<u8>, ProtocolError> {
        self.send(
            RtmpMessage::AudioData { data: body },
            timestamp_ms,
            self.stream_id,
        )
    }

    /// Returns `FCUnpublish` and `deleteStream`, which end the publish.
    pub fn stop(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let name = Amf0Value::Utf8String(self.names.publish_name.expose().to_string());
        let id = self.next_id();
        let mut out = self.send(
            command("FCUnpublish", id, Amf0Value::Null, vec![name]),
            0,
            0,
        )?;
        let id = self.next_id();
        let stream = Amf0Value::Number(f64::from(self.stream_id));
        out.extend(self.send(
            command("deleteStream", id, Amf0Value::Null, vec![stream]),
            0,
            0,
        )?);
        self.stage = Stage::Stopped;
        Ok(out)
    }

    fn next_id(&mut self) -> u32 {
        let id = self.next_transaction_id;
        self.next_transaction_id += 1;
        id
    }

    fn send(
        &mut self,
        message: RtmpMessage,
        timestamp_ms: u32,
        message_stream_id: u32,
    ) -> Result<Vec<u8>, ProtocolError> {
        let payload = message
            .into_message_payload(RtmpTimestamp::new(timestamp_ms), message_stream_id)
            .map_err(ProtocolError::encode)?;
        let packet = self
            .serializer
            .serialize(&payload, false, false)
            .map_err(ProtocolError::encode)?;
        Ok(packet.bytes)
    }

    fn handle(&mut self, payload: MessagePayload) -> Result<Vec<u8>, ProtocolError> {
        if matches!(payload.type_id, AMF0_COMMAND | AMF3_COMMAND) {
            let command = parse_command(&payload)?;
            return self.handle_command(
                &command.name,
                command.transaction_id,
                command.object,
                command.arguments,
            );
        }
        let message = std::panic::catch_unwind(|| payload.to_rtmp_message())
            .map_err(|_| ProtocolError::malformed("a message could not be decoded"))?
            .map_err(ProtocolError::malformed)?;
        match message {
            RtmpMessage::SetChunkSize { size: 0 } => {
                Err(ProtocolError::malformed("the server set a chunk size of 0"))
            }
            RtmpMessage::SetChunkSize { size } => {
                self.deserializer
                    .set_max_chunk_size(size as usize)
                    .map_err(ProtocolError::malformed)?;
                Ok(Vec::new())
            }
            RtmpMessage::WindowAcknowledgement { size } => {
                self.window_ack_bytes = (size > 0).then_some(size);
                Ok(Vec::new())
            }
            RtmpMessage::UserControl {
                event_type: UserControlEventType::PingRequest,
                timestamp,
                ..
            } => {
                let pong = RtmpMessage::UserControl {
                    event_type: UserControlEventType::PingResponse,
                    stream_id: None,
                    buffer_length: None,
                    timestamp,
                };
                self.send(pong, 0, 0)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn handle_command(
        &mut self,
        name: &str,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<Vec<u8>, ProtocolError> {
        let id = transaction_id as u32;
        match name {
            "_result" if self.stage == Stage::Connecting && id == self.connect_id => {
                self.after_connect()
            }
            "_result" if self.stage == Stage::CreatingStream && id == self.create_stream_id => {
                let Some(Amf0Value::Number(stream_id)) = arguments.first() else {
                    return Err(ProtocolError::NoStreamId);
                };
                self.stream_id = *stream_id as u32;
                self.after_create_stream()
            }
            "_error" => self.handle_error(id, command_object, arguments),
            "onStatus" => {
                let status = status_object(command_object, arguments);
                self.handle_status(status, false)?;
                Ok(Vec::new())
            }
            other => {
                tracing::trace!(command = other, transaction_id, "RTMP command ignored");
                Ok(Vec::new())
            }
        }
    }

    /// Sends `releaseStream`, `FCPublish` and `createStream`, as OBS and
    /// FFmpeg do; servers that do not know the first two ignore them.
    fn after_connect(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let name = Amf0Value::Utf8String(self.names.publish_name.expose().to_string());
        let release = command(
            "releaseStream",
            self.next_id(),
            Amf0Value::Null,
            vec![name.clone()],
        );
        let mut out = self.send(release, 0, 0)?;
        let fc_publish = command("FCPublish", self.next_id(), Amf0Value::Null, vec![name]);
        out.extend(self.send(fc_publish, 0, 0)?);
        self.create_stream_id = self.next_id();
        let create = command(
            "createStream",
            self.create_stream_id,
            Amf0Value::Null,
            vec![],
        );
        out.extend(self.send(create, 0, 0)?);
        self.stage = Stage::CreatingStream;
        Ok(out)
    }

    fn after_create_stream(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let arguments = vec![
            Amf0Value::Utf8String(self.names.publish_name.expose().to_string()),
            Amf0Value::Utf8String("live".to_string()),
        ];
        let id = self.next_id();
        let publish = command("publish", id, Amf0Value::Null, arguments);
        let out = self.send(publish, 0, self.stream_id)?;
        self.stage = Stage::AwaitingPublish;
        Ok(out)
    }

    fn handle_error(
        &mut self,
        id: u32,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<Vec<u8>, ProtocolError> {
        let answers_awaited = match self.stage {
            Stage::Connecting => id == self.connect_id,
            Stage::CreatingStream => id == self.create_stream_id,
            // `publish` is often answered with transaction id 0.
            Stage::AwaitingPublish => true,
            Stage::Publishing | Stage::Stopped => false,
        };
        if !answers_awaited {
            // `releaseStream` and `FCPublish` may fail on servers that do not
            // know them.
            tracing::debug!(
                transaction_id = id,
                "RTMP server answered a command with _error"
            );
            return Ok(Vec::new());
        }
        let status = status_object(command_object, arguments);
        self.handle_status(status, true)?;
        Ok(Vec::new())
    }

    /// Acts on a status; `is_error` marks an `_error` answer, which fails
    /// whatever its code.
    fn handle_status(&mut self, status: Status, is_error: bool) -> Result<(), ProtocolError> {
        let meaning = match classify_status(&status.level, &status.code) {
            StatusMeaning::Info | StatusMeaning::PublishStarted if is_error => {
                StatusMeaning::Failed
            }
            meaning => meaning,
        };
        match meaning {
            StatusMeaning::PublishStarted if self.stage == Stage::AwaitingPublish => {
                self.stage = Stage::Publishing;
                Ok(())
            }
            StatusMeaning::CredentialsRejected | StatusMeaning::Failed => {
                Err(ProtocolError::Rejected {
                    command: self.stage.awaited_command(),
                    level: status.level,
                    code: status.code,
                    description: self.redact(&status.description),
                    credentials: meaning == StatusMeaning::CredentialsRejected,
                })
            }
            StatusMeaning::PublishStarted | StatusMeaning::Info => {
                tracing::debug!(code = %status.code, "RTMP status");
                Ok(())
            }
        }
    }

    /// Cuts credentials out of `text` and shortens it.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.redactions {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        if text.chars().count() > MAX_DESCRIPTION_CHARS {
            text = text.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>() + "…";
        }
        text
    }
}

/// RTMP message type ids of commands: AMF0, and AMF3, which Flash-era
/// peers use for AMF0 values behind a leading 0 byte.
const AMF0_COMMAND: u8 = 20;
const AMF3_COMMAND: u8 = 17;

/// A command as received.
struct Command {
    name: String,
    transaction_id: f64,
    object: Amf0Value,
    arguments: Vec<Amf0Value>,
}

/// Decodes a command message. Unlike `rml_rtmp` 0.8, which panics on it,
/// this accepts a command without a command object, as FFmpeg's RTMP
/// server sends.
fn parse_command(payload: &MessagePayload) -> Result<Command, ProtocolError> {
    let mut data: &[u8] = &payload.data;
    if payload.type_id == AMF3_COMMAND && data.first() == Some(&0) {
        data = &data[1..];
    }
    let mut values = rml_rtmp::rml_amf0::deserialize(&mut std::io::Cursor::new(data))
        .map_err(ProtocolError::malformed)?
        .into_iter();
    let Some(Amf0Value::Utf8String(name)) = values.next() else {
        return Err(ProtocolError::malformed("a command has no name"));
    };
    let transaction_id = match values.next() {
        Some(Amf0Value::Number(id)) => id,
        _ => 0.0,
    };
    Ok(Command {
        name,
        transaction_id,
        object: values.next().unwrap_or(Amf0Value::Null),
        arguments: values.collect(),
    })
}

fn command(
    name: &str,
    transaction_id: u32,
    command_object: Amf0Value,
    additional_arguments: Vec<Amf0Value>,
) -> RtmpMessage {
    RtmpMessage::Amf0Command {
        command_name: name.to_string(),
        transaction_id: f64::from(transaction_id),
        command_object,
        additional_arguments,
    }
}

/// The fields of a status object that messages use.
#[derive(Debug, Default)]
struct Status {
    level: String,
    code: String,
    description: String,
}

/// Finds the status object: the first object argument, or the command
/// object where a server puts it there.
fn status_object(command_object: Amf0Value, arguments: Vec<Amf0Value>) -> Status {
    let object = arguments
        .into_iter()
        .chain(std::iter::once(command_object))
        .find_map(|value| match value {
            Amf0Value::Object(properties) => Some(properties),
            _ => None,
        })
        .unwrap_or_default();
    let text = |name: &str| match object.get(name) {
        Some(Amf0Value::Utf8String(value)) => value.clone(),
        _ => String::new(),
    };
    let code = text("code");
    Status {
        level: text("level"),
        code: if code.is_empty() {
            "(no code)".to_string()
        } else {
            code
        },
        description: text("description"),
    }
}

#[cfg(test)]
mod tests;
