//! One RTMP session on a current-thread tokio runtime: dial, handshake,
//! command exchange, streaming, clean stop.
//!
//! Frames come from the bridge's blocking channel. A scoped thread moves
//! them into a small async channel, so the session can wait for a frame and
//! for the server's data at once.

use super::caps::{self, CapsError};
use super::flv::{FlvError, FlvMuxer, MediaFrame, Tag};
use super::protocol::{ProtocolError, Publisher, Stage};
use super::transport::{self, Connection, TransportError};
use crate::output::{Frame, MediaKind, Session};
use crate::pipeline::fanout::{FrameReceiver, Received};
use crate::telemetry::status::OutputStatus;
use gstreamer as gst;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rustls::ClientConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};

/// How long the frame thread waits for a frame before checking whether the
/// session still runs.
const FRAME_POLL: Duration = Duration::from_millis(50);

/// Frames between the frame thread and the session. The bridge's channel
/// before it buffers the real backlog.
const PUMP_FRAMES: usize = 4;

/// How long one write may wait for the server to accept data.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a clean stop waits for the server to close after the last
/// commands.
const STOP_DRAIN: Duration = Duration::from_secs(2);

/// Size of the buffer for the server's data, in bytes.
const READ_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Transport(#[from] TransportError),

    #[error("{0} (RTMP server at {1})")]
    Protocol(ProtocolError, String),

    #[error(
        "the RTMP server at {peer} closed the connection after the publish command: servers \
         that send no error status (MediaMTX before 1.20.1, nginx-rtmp's on_publish) reject \
         credentials this way"
    )]
    ClosedAfterPublish { peer: String },

    #[error("the RTMP server at {peer} closed the connection {during}")]
    Closed { peer: String, during: &'static str },

    #[error("the RTMP server at {peer} did not answer {command} within {timeout_ms} ms")]
    NoAnswer {
        peer: String,
        command: &'static str,
        timeout_ms: u64,
    },

    #[error("the RTMP handshake with {peer} failed ({reason}): check that it is an RTMP server")]
    Handshake { peer: String, reason: String },

    #[error("the connection to the RTMP server at {peer} failed: {reason}")]
    Io { peer: String, reason: String },

    #[error(
        "the RTMP server at {peer} accepted no data for {} s: the network or the server cannot \
         keep up",
        WRITE_TIMEOUT.as_secs()
    )]
    WriteStalled { peer: String },

    #[error(transparent)]
    Flv(#[from] FlvError),

    #[error(transparent)]
    Caps(#[from] CapsError),

    #[error("cannot start the RTMP session's runtime: {0}")]
    Runtime(String),
}

/// Destination of a dial and the time allowed for each step.
pub struct Dial {
    pub host: String,
    pub port: u16,
    /// `host:port` for messages.
    pub peer: String,
    pub tls: Option<Arc<ClientConfig>>,
    pub step_timeout: Duration,
}

/// Counters for one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// RTMP bytes written after the handshake, headers included.
    pub bytes_sent: u64,
    pub video_tags: u64,
    pub audio_tags: u64,
    /// Frames skipped because their buffer had no PTS, or one before the
    /// segment start.
    pub frames_without_pts: u64,
}

/// Runs one session: returns `Ok` after a clean stop (the frame channel
/// closed), or the failure.
pub fn run(
    dial: &Dial,
    mut publisher: Publisher,
    mut muxer: FlvMuxer,
    session: &Session<'_>,
    stats: &mut SessionStats,
) -> Result<(), SessionError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| SessionError::Runtime(error.to_string()))?;

    let Some(opened) = open_unless_stopped(&runtime, dial, &mut publisher, session.frames) else {
        tracing::info!("the bridge stopped while the RTMP dial was under way");
        return Ok(());
    };
    let mut connection = opened?;
    tracing::info!(tls = dial.tls.is_some(), "RTMP publishing");
    session.status.live();
    session.frames.start();
    session.frames.mark_streaming();
    session.keyframes.request();

    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel(PUMP_FRAMES);
        scope.spawn(|| pump_frames(session.frames, sender));
        let mut streaming = Streaming {
            connection: &mut connection,
            publisher: &mut publisher,
            muxer: &mut muxer,
            peer: &dial.peer,
            stats,
            status: session.status,
        };
        runtime.block_on(streaming.run(receiver))
    })
}

/// Runs `open`, unless the bridge stops first: when the frame channel
/// closes during the dial, the dial gets `STOP_DRAIN` more to finish (so a
/// publish that is nearly up still ends with a clean stop), and is then
/// abandoned. Without this, a stop would wait out each dial step's timeout
/// (`Dial::step_timeout`) with a server that does not respond. Returns
/// `None` when the dial was abandoned.
fn open_unless_stopped(
    runtime: &tokio::runtime::Runtime,
    dial: &Dial,
    publisher: &mut Publisher,
    frames: &FrameReceiver,
) -> Option<Result<Connection, SessionError>> {
    let dialing = AtomicBool::new(true);
    let (stopped, stop_seen) = tokio::sync::oneshot::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| watch_for_stop(frames, &dialing, stopped));
        let result = runtime.block_on(async {
            let stop_grace = async {
                match stop_seen.await {
                    Ok(()) => tokio::time::sleep(STOP_DRAIN).await,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                result = open(dial, publisher) => Some(result),
                () = stop_grace => None,
            }
        });
        dialing.store(false, Ordering::Release);
        result
    })
}

/// Signals `stopped` when the frame channel closes while `dialing` is set.
/// The fanout queues no frames for this output before
/// `FrameReceiver::start`, so this loop discards none.
fn watch_for_stop(
    frames: &FrameReceiver,
    dialing: &AtomicBool,
    stopped: tokio::sync::oneshot::Sender<()>,
) {
    while dialing.load(Ordering::Acquire) {
        if matches!(frames.recv_timeout(FRAME_POLL), Err(Received::Closed)) {
            let _ = stopped.send(());
            return;
        }
    }
}

/// Moves frames from the bridge's channel to the session until the channel
/// closes (dropping `sender` ends the session's frame stream) or the
/// session has ended.
fn pump_frames(frames: &FrameReceiver, sender: mpsc::Sender<Frame>) {
    while !sender.is_closed() {
        match frames.recv_timeout(FRAME_POLL) {
            Ok(frame) => {
                if sender.blocking_send(frame).is_err() {
                    return;
                }
            }
            Err(Received::Timeout | Received::Frame) => {}
            Err(Received::Closed) => return,
        }
    }
}

/// Dials, runs the RTMP handshake and the command exchange up to
/// `NetStream.Publish.Start`.
async fn open(dial: &Dial, publisher: &mut Publisher) -> Result<Connection, SessionError> {
    let mut connection = transport::connect(
        &dial.host,
        dial.port,
        &dial.peer,
        dial.tls.clone(),
        dial.step_timeout,
    )
    .await?;
    let remaining = handshake(&mut connection, dial).await?;
    tracing::debug!("RTMP handshake done");

    let peer = &dial.peer;
    let protocol = |error| SessionError::Protocol(error, peer.clone());
    let start = publisher.start().map_err(protocol)?;
    write(&mut connection, &start, peer).await?;
    let answer = publisher.receive(&remaining).map_err(protocol)?;
    write(&mut connection, &answer, peer).await?;

    let mut buffer = vec![0; READ_BUFFER_BYTES];
    let mut stage = publisher.stage();
    let mut deadline = Instant::now() + dial.step_timeout;
    while publisher.stage() != Stage::Publishing {
        if publisher.stage() != stage {
            stage = publisher.stage();
            deadline = Instant::now() + dial.step_timeout;
        }
        let read = timeout_at(deadline, connection.read(&mut buffer)).await;
        let count = match read {
            Ok(Ok(count)) if count > 0 => count,
            Ok(result) => {
                return Err(closed_while(stage, peer, result.err()));
            }
            Err(_) => {
                return Err(SessionError::NoAnswer {
                    peer: peer.clone(),
                    command: stage.awaited_command(),
                    timeout_ms: dial.step_timeout.as_millis() as u64,
                })
            }
        };
        let answer = publisher.receive(&buffer[..count]).map_err(protocol)?;
        write(&mut connection, &answer, peer).await?;
    }
    Ok(connection)
}

/// Names a close or reset while waiting in `stage`. After `publish`, it is
/// how servers without an error status reject credentials.
fn closed_while(stage: Stage, peer: &str, error: Option<std::io::Error>) -> SessionError {
    if stage == Stage::AwaitingPublish {
        return SessionError::ClosedAfterPublish {
            peer: peer.to_string(),
        };
    }
    match error {
        Some(error) => SessionError::Io {
            peer: peer.to_string(),
            reason: error.to_string(),
        },
        None => SessionError::Closed {
            peer: peer.to_string(),
            during: match stage {
                Stage::Connecting => "after the connect command",
                Stage::CreatingStream => "after the createStream command",
                _ => "while publishing",
            },
        },
    }
}

/// Runs the client side of the RTMP handshake and returns the bytes that
/// followed it.
async fn handshake(connection: &mut Connection, dial: &Dial) -> Result<Vec<u8>, SessionError> {
    let peer = &dial.peer;
    let failed = |error: rml_rtmp::handshake::HandshakeError| SessionError::Handshake {
        peer: peer.clone(),
        reason: error.to_string(),
    };
    let mut handshake = Handshake::new(PeerType::Client);
    let first = handshake.generate_outbound_p0_and_p1().map_err(failed)?;
    write(connection, &first, peer).await?;

    let deadline = Instant::now() + dial.step_timeout;
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        let count = match timeout_at(deadline, connection.read(&mut buffer)).await {
            Ok(Ok(0)) => {
                return Err(SessionError::Closed {
                    peer: peer.clone(),
                    during: "during the RTMP handshake",
                })
            }
            Ok(Ok(count)) => count,
            Ok(Err(error)) => return Err(io_error(peer, &error)),
            Err(_) => {
                return Err(SessionError::NoAnswer {
                    peer: peer.clone(),
                    command: "the RTMP handshake",
                    timeout_ms: dial.step_timeout.as_millis() as u64,
                })
            }
        };
        match handshake.process_bytes(&buffer[..count]).map_err(failed)? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                write(connection, &response_bytes, peer).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                write(connection, &response_bytes, peer).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

async fn write(connection: &mut Connection, bytes: &[u8], peer: &str) -> Result<(), SessionError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let written = timeout(WRITE_TIMEOUT, async {
        connection.write_all(bytes).await?;
        connection.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(io_error(peer, &error)),
        Err(_) => Err(SessionError::WriteStalled {
            peer: peer.to_string(),
        }),
    }
}

/// Returns `time` in nanoseconds of running time when the sample carries a
/// TIME segment, or as it is. Encoders may start their segment elsewhere
/// (x264enc at 1000 hours, to keep DTS positive), and only running time
/// lines audio up with video. A time before the segment start gives `None`.
fn running_time(sample: &gst::Sample, time: gst::ClockTime) -> Option<u64> {
    let segment = sample
        .segment()
        .and_then(|segment| segment.downcast_ref::<gst::ClockTime>());
    match segment {
        Some(segment) => segment.to_running_time(time).map(|time| time.nseconds()),
        None => Some(time.nseconds()),
    }
}

fn io_error(peer: &str, error: &std::io::Error) -> SessionError {
    SessionError::Io {
        peer: peer.to_string(),
        reason: error.to_string(),
    }
}

/// The publishing phase of a session.
struct Streaming<'a> {
    connection: &'a mut Connection,
    publisher: &'a mut Publisher,
    muxer: &'a mut FlvMuxer,
    peer: &'a str,
    stats: &'a mut SessionStats,
    status: &'a OutputStatus,
}

impl Streaming<'_> {
    async fn run(&mut self, mut frames: mpsc::Receiver<Frame>) -> Result<(), SessionError> {
        let mut buffer = vec![0; READ_BUFFER_BYTES];
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(frame) => self.send_frame(&frame).await?,
                    None => break,
                },
                read = self.connection.read(&mut buffer) => match read {
                    Ok(0) => return Err(closed_while(Stage::Publishing, self.peer, None)),
                    Ok(count) => self.answer(&buffer[..count]).await?,
                    Err(error) => return Err(io_error(self.peer, &error)),
                },
            }
        }
        drop(frames);
        self.stop().await;
        Ok(())
    }

    async fn answer(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let answer = self
            .publisher
            .receive(bytes)
            .map_err(|error| SessionError::Protocol(error, self.peer.to_string()))?;
        self.write(&answer).await
    }

    async fn send_frame(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let Some(buffer) = frame.sample.buffer() else {
            return Ok(());
        };
        let Some(pts) = buffer
            .pts()
            .and_then(|pts| running_time(&frame.sample, pts))
        else {
            self.stats.frames_without_pts += 1;
            if self.stats.frames_without_pts == 1 {
                tracing::warn!(kind = ?frame.kind, "RTMP output skips frames without a PTS");
            }
            return Ok(());
        };
        let map = buffer.map_readable().map_err(|_| SessionError::Io {
            peer: self.peer.to_string(),
            reason: "cannot read an encoded frame's buffer".to_string(),
        })?;
        let media = MediaFrame {
            data: map.as_slice(),
            pts_ns: pts,
            dts_ns: buffer
                .dts()
                .and_then(|dts| running_time(&frame.sample, dts)),
        };
        let caps = frame.sample.caps();
        let tags = match frame.kind {
            MediaKind::Video => self.muxer.push_video(media, caps::video_format(caps)?)?,
            MediaKind::Audio => self.muxer.push_audio(media, caps::audio_format(caps)?)?,
        };
        // A video frame's own tag comes last: frames held until the stream
        // starts go out before it and are not timed.
        let has_video_tag = tags.iter().any(|tag| matches!(tag, Tag::Video { .. }));
        for tag in tags {
            self.send_tag(tag).await?;
        }
        if frame.kind == MediaKind::Video && has_video_tag {
            self.status.latency().record(frame.captured);
        }
        Ok(())
    }

    async fn send_tag(&mut self, tag: Tag) -> Result<(), SessionError> {
        let protocol = |error| SessionError::Protocol(error, self.peer.to_string());
        let bytes = match tag {
            Tag::Metadata(values) => {
                tracing::debug!(fields = values.len(), "RTMP metadata sent");
                self.publisher.metadata(values).map_err(protocol)?
            }
            Tag::Video { timestamp_ms, body } => {
                self.stats.video_tags += 1;
                self.publisher.video(timestamp_ms, body).map_err(protocol)?
            }
            Tag::Audio { timestamp_ms, body } => {
                self.stats.audio_tags += 1;
                self.publisher.audio(timestamp_ms, body).map_err(protocol)?
            }
        };
        self.write(&bytes).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        write(self.connection, bytes, self.peer).await?;
        self.stats.bytes_sent += bytes.len() as u64;
        self.status.add_bytes(bytes.len() as u64);
        Ok(())
    }

    /// Ends the publish with `FCUnpublish` and `deleteStream`, closes the
    /// sending side and waits briefly for the server to close, so it reads
    /// everything before the connection goes. Failures here are logged: the
    /// stream itself has been delivered.
    async fn stop(&mut self) {
        let result = async {
            let bytes = self
                .publisher
                .stop()
                .map_err(|error| SessionError::Protocol(error, self.peer.to_string()))?;
            self.write(&bytes).await?;
            timeout(WRITE_TIMEOUT, self.connection.shutdown())
                .await
                .map_err(|_| SessionError::WriteStalled {
                    peer: self.peer.to_string(),
                })?
                .map_err(|error| io_error(self.peer, &error))
        }
        .await;
        if let Err(error) = result {
            tracing::debug!(%error, "RTMP clean stop incomplete");
            return;
        }

        let deadline = Instant::now() + STOP_DRAIN;
        let mut buffer = vec![0; READ_BUFFER_BYTES];
        loop {
            match timeout_at(deadline, self.connection.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
                Err(_) => {
                    tracing::debug!(
                        waited_ms = STOP_DRAIN.as_millis() as u64,
                        "RTMP server kept the connection open after deleteStream"
                    );
                    break;
                }
            }
        }
    }
}
