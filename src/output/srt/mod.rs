//! SRT output: MPEG-TS over libsrt in caller mode.
//!
//! Muxing stays in GStreamer (`mpegtsmux`, see `output::mpegts`). Sending
//! goes through libsrt's C API (see `socket`) rather than `srtsink`, because
//! the output must tell a rejected handshake from an unreachable listener
//! and drain the send buffer before closing. `srtsink` (GStreamer 1.22)
//! reports both failures with the same error and closes with `SRTO_LINGER`
//! at 0.
//!
//! Each session dials once, streams until the frame channel closes or the
//! connection fails, and returns; the supervisor decides about redialing.

mod ffi;
pub mod mux;
pub mod socket;
pub mod streamid;

use crate::config::Secret;
use crate::exit::ExitStatus;
use crate::output::mpegts::TsMuxer;
use crate::output::{MediaKind, Output, OutputError, Session};
use crate::pipeline::fanout::{Either, Received};
use crate::trax::provider::CredentialSource;
use crate::trax::token::MEDIAMTX_AUDIENCE;
use crossbeam_channel::Receiver;
use gstreamer as gst;
use mux::{PacketSplitter, SendTiming};
use socket::{CallerOptions, ConnectError, SrtSocket, PAYLOAD_BYTES};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Passphrase lengths libsrt accepts, in bytes.
pub const PASSPHRASE_BYTES: RangeInclusive<usize> = 10..=79;

/// How long the session loop waits for a frame or muxed packets before
/// looking at the connection and the muxer's bus again.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(50);

/// How long the flush waits for each muxed buffer before it checks the
/// muxer's bus and the flush deadline again.
const FLUSH_POLL: Duration = Duration::from_millis(50);

/// How long the muxer may take to flush after the last frame.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Time allowed on top of the latency for the last packets to be
/// acknowledged and delivered when stopping.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// How often the session reads libsrt's link counters for the status.
const LINK_STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Maximum time a clean stop waits for the receiver, whatever the latency.
const MAX_DRAIN: Duration = Duration::from_secs(5);

/// How long the muxer may produce nothing while frames keep coming, as when
/// audio is expected but has stopped, before the session fails.
const MUX_STALL_LIMIT: Duration = Duration::from_secs(5);

/// Destination, credentials and SRT options of one output.
#[derive(Clone, Debug)]
pub struct SrtSettings {
    pub host: String,
    pub port: u16,
    /// The stream path and the token or key that may publish to it, asked
    /// for again before every dial.
    pub credentials: Arc<dyn CredentialSource>,
    pub latency_ms: u32,
    /// Passphrase that encrypts the stream when set, 10 to 79 bytes.
    pub passphrase: Option<Secret>,
    /// AES key length in bytes: 0 (libsrt's default, AES-128), 16, 24 or 32.
    pub pbkeylen: u32,
    pub connect_timeout_ms: u32,
}

/// Counters for the last session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// MPEG-TS bytes handed to libsrt. After a complete drain the receiver
    /// has acknowledged all of them.
    pub bytes_sent: u64,
    pub messages_sent: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the SRT host is empty: set the edge's host name or address")]
    EmptyHost,

    #[error("the SRT port is 0: set the edge's SRT port")]
    ZeroPort,

    #[error(
        "the SRT passphrase is {length} bytes: libsrt needs {} to {} bytes",
        PASSPHRASE_BYTES.start(),
        PASSPHRASE_BYTES.end()
    )]
    PassphraseLength { length: usize },

    #[error("invalid SRT key length {pbkeylen}: use 0 (default), 16, 24 or 32")]
    KeyLength { pbkeylen: u32 },

    #[error("GStreamer element 'mpegtsmux' is missing: run scripts/install-deps.sh")]
    MissingMuxer,
}

/// Publishes the encode to one SRT listener.
pub struct SrtOutput {
    settings: SrtSettings,
    last_session: SessionStats,
}

impl SrtOutput {
    pub fn new(settings: SrtSettings) -> Self {
        Self {
            settings,
            last_session: SessionStats::default(),
        }
    }

    /// Counters of the session that ran last (zero before the first).
    pub fn last_session(&self) -> SessionStats {
        self.last_session
    }

    fn peer(&self) -> String {
        socket::peer_label(&self.settings.host, self.settings.port)
    }

    /// Runs every pre-dial check and returns the streamid and the kind of
    /// credential in it.
    fn checked_streamid(&self) -> Result<(Secret, &'static str), OutputError> {
        check_settings(&self.settings).map_err(usage)?;
        let publish = self.settings.credentials.current()?;
        let streamid =
            streamid::build_streamid(&publish.path, &publish.credential).map_err(usage)?;
        publish.check_claims(MEDIAMTX_AUDIENCE)?;
        Ok((streamid, publish.credential.kind()))
    }

    fn connect(&self, streamid: &Secret, kind: &str) -> Result<SrtSocket, OutputError> {
        let settings = &self.settings;
        let options = CallerOptions {
            streamid,
            latency_ms: settings.latency_ms,
            passphrase: settings.passphrase.as_ref(),
            pbkeylen: settings.pbkeylen,
            connect_timeout_ms: settings.connect_timeout_ms,
        };
        SrtSocket::connect(&settings.host, settings.port, &options).map_err(|error| match error {
            ConnectError::Rejected { peer, code, reason } => {
                settings.credentials.invalidate();
                OutputError::Rejected(format!(
                    "{kind}, path or passphrase rejected by {peer} (SRT reject reason {code}: \
                     {reason})"
                ))
            }
            ConnectError::Option { .. } => OutputError::Fatal {
                status: ExitStatus::Usage,
                message: error.to_string(),
            },
            other => OutputError::Transient(other.to_string()),
        })
    }

    /// Dials, streams, and logs the session's counters when it ends.
    fn dial_and_stream(&mut self, session: &Session<'_>) -> Result<(), OutputError> {
        let (streamid, kind) = self.checked_streamid()?;
        let mut socket = self.connect(&streamid, kind)?;
        tracing::info!(
            latency_ms = self.settings.latency_ms,
            encrypted = self.settings.passphrase.is_some(),
            "SRT connected"
        );
        session.status.live();

        let started = Instant::now();
        let result = self.stream(&mut socket, session);
        drop(socket);

        tracing::info!(
            bytes_sent = self.last_session.bytes_sent,
            messages_sent = self.last_session.messages_sent,
            duration_ms = started.elapsed().as_millis() as u64,
            frames_dropped_total = session.frames.dropped(),
            clean = result.is_ok(),
            "SRT connection closed"
        );
        result
    }

    /// Streams until the frame channel closes (`Ok`) or the connection or
    /// the muxer fails.
    ///
    /// The loop wakes for each frame and for each muxed frame's packets, so
    /// the packets go to libsrt as soon as the muxer has written them.
    fn stream(&mut self, socket: &mut SrtSocket, session: &Session<'_>) -> Result<(), OutputError> {
        let (muxer, muxed) =
            TsMuxer::new_streaming("srt-mux", session.has_audio).map_err(transient)?;
        session.frames.start();
        session.frames.mark_streaming();
        session.keyframes.request();

        let mut splitter = PacketSplitter::new(PAYLOAD_BYTES);
        let mut timing = SendTiming::new(session.status.latency());
        // Time the first frame went into the muxer after its last output, or
        // `None` when no frame is pending.
        let mut pending_since: Option<Instant> = None;
        let mut next_link_stats = Instant::now();
        loop {
            let sent_before = self.last_session.bytes_sent;
            match session.frames.recv_either(&muxed, HOUSEKEEPING_INTERVAL) {
                Ok(Either::Frame(frame)) => {
                    let (kind, captured) = (frame.kind, frame.captured);
                    if kind == MediaKind::Video {
                        timing.frame_muxed(captured);
                    }
                    muxer.push(frame).map_err(transient)?;
                    pending_since.get_or_insert_with(Instant::now);
                }
                Ok(Either::Other(packets)) => {
                    self.send(socket, &mut splitter, &mut timing, &packets)?;
                    pending_since = None;
                }
                Err(Received::Timeout | Received::Frame) => {}
                Err(Received::Closed) => break,
            }
            session
                .status
                .add_bytes(self.last_session.bytes_sent - sent_before);
            if Instant::now() >= next_link_stats {
                if let Some(stats) = socket.link_stats() {
                    session.status.set_srt(stats);
                }
                next_link_stats = Instant::now() + LINK_STATS_INTERVAL;
            }
            muxer.check().map_err(transient)?;
            if !socket.is_connected() {
                return Err(OutputError::Transient(format!(
                    "SRT connection to {} lost",
                    socket.peer()
                )));
            }
            if pending_since.is_some_and(|since| since.elapsed() > MUX_STALL_LIMIT) {
                return Err(OutputError::Transient(format!(
                    "the MPEG-TS muxer produced nothing for {} s while frames arrived (audio \
                     expected: {}): check that every expected stream still delivers frames",
                    MUX_STALL_LIMIT.as_secs(),
                    session.has_audio
                )));
            }
        }

        let sent_before = self.last_session.bytes_sent;
        let flushed = self.flush(socket, &mut splitter, &mut timing, &muxer, &muxed);
        session
            .status
            .add_bytes(self.last_session.bytes_sent - sent_before);
        flushed?;
        self.drain(socket);
        Ok(())
    }

    /// Ends the muxer's inputs and sends what it flushes.
    fn flush(
        &mut self,
        socket: &mut SrtSocket,
        splitter: &mut PacketSplitter,
        timing: &mut SendTiming<'_>,
        muxer: &TsMuxer,
        muxed: &Receiver<Vec<u8>>,
    ) -> Result<(), OutputError> {
        muxer.finish();
        let deadline = Instant::now() + FLUSH_LIMIT;
        while !muxer.is_ended() && Instant::now() < deadline {
            if let Ok(packets) = muxed.recv_timeout(FLUSH_POLL) {
                self.send(socket, splitter, timing, &packets)?;
            }
            muxer.check().map_err(transient)?;
        }
        // The appsink hands over its last buffer before it reports the end
        // of stream, so once ended, everything is already in the channel.
        while let Ok(packets) = muxed.try_recv() {
            self.send(socket, splitter, timing, &packets)?;
        }
        if muxer.is_ended() {
            timing.muxer_ended();
        } else {
            tracing::warn!(
                limit_ms = FLUSH_LIMIT.as_millis() as u64,
                "MPEG-TS muxer did not finish flushing in time; its last packets are lost"
            );
        }
        if splitter.pending_bytes() > 0 {
            tracing::warn!(
                bytes = splitter.pending_bytes(),
                "MPEG-TS muxer ended inside a packet; the partial packet is not sent"
            );
        }
        Ok(())
    }

    fn drain(&self, socket: &SrtSocket) {
        let latency = Duration::from_millis(self.settings.latency_ms.into());
        let limit = (latency + DRAIN_MARGIN).min(MAX_DRAIN);
        let report = socket.drain(limit);
        if report.complete {
            tracing::debug!(
                waited_ms = report.waited.as_millis() as u64,
                "SRT send buffer drained"
            );
        } else if report.connection_lost {
            tracing::debug!(
                waited_ms = report.waited.as_millis() as u64,
                "SRT connection broke while draining; the receiver may lack the last packets"
            );
        } else {
            tracing::debug!(
                waited_ms = report.waited.as_millis() as u64,
                limit_ms = limit.as_millis() as u64,
                unsent_packets = report.unsent_packets,
                unsent_bytes = report.unsent_bytes,
                "SRT drain ended before the receiver had everything"
            );
        }
    }

    /// Sends muxed packets in messages of at most `PAYLOAD_BYTES`, the last
    /// one shorter.
    fn send(
        &mut self,
        socket: &mut SrtSocket,
        splitter: &mut PacketSplitter,
        timing: &mut SendTiming<'_>,
        packets: &[u8],
    ) -> Result<(), OutputError> {
        let stats = &mut self.last_session;
        splitter
            .push(packets, |message| {
                socket.send_message(message)?;
                timing.message_sent(message);
                stats.bytes_sent += message.len() as u64;
                stats.messages_sent += 1;
                Ok(())
            })
            .map_err(|error: socket::SendError| OutputError::Transient(error.to_string()))
    }
}

impl Output for SrtOutput {
    fn label(&self) -> String {
        format!(
            "srt://{} path={}",
            self.peer(),
            self.settings.credentials.path()
        )
    }

    fn preflight(&self) -> Result<(), OutputError> {
        self.checked_streamid().map(|_| ())
    }

    fn run_session(&mut self, session: Session<'_>) -> Result<(), OutputError> {
        self.last_session = SessionStats::default();

        let result = self.dial_and_stream(&session);
        session.frames.pause();
        result
    }
}

fn check_settings(settings: &SrtSettings) -> Result<(), SettingsError> {
    if settings.host.is_empty() {
        return Err(SettingsError::EmptyHost);
    }
    if settings.port == 0 {
        return Err(SettingsError::ZeroPort);
    }
    if let Some(passphrase) = &settings.passphrase {
        if !PASSPHRASE_BYTES.contains(&passphrase.len()) {
            return Err(SettingsError::PassphraseLength {
                length: passphrase.len(),
            });
        }
    }
    if !matches!(settings.pbkeylen, 0 | 16 | 24 | 32) {
        return Err(SettingsError::KeyLength {
            pbkeylen: settings.pbkeylen,
        });
    }
    let muxer_found = gst::init().is_ok() && gst::ElementFactory::find("mpegtsmux").is_some();
    if !muxer_found {
        return Err(SettingsError::MissingMuxer);
    }
    Ok(())
}

fn usage(error: impl std::fmt::Display) -> OutputError {
    OutputError::Fatal {
        status: ExitStatus::Usage,
        message: error.to_string(),
    }
}

fn transient(error: impl std::fmt::Display) -> OutputError {
    OutputError::Transient(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trax::credential::Credential;
    use crate::trax::provider::StaticCredentials;

    fn settings() -> SrtSettings {
        SrtSettings {
            host: "127.0.0.1".to_string(),
            port: 9000,
            credentials: StaticCredentials::new(
                "live/cam1",
                Credential::StreamKey(Secret::new("stream key", "k3y")),
            ),
            latency_ms: 120,
            passphrase: None,
            pbkeylen: 0,
            connect_timeout_ms: 1000,
        }
    }

    #[test]
    fn label_names_peer_and_path() {
        let output = SrtOutput::new(settings());
        assert_eq!(output.label(), "srt://127.0.0.1:9000 path=live/cam1");
        let output = SrtOutput::new(SrtSettings {
            host: "::1".to_string(),
            ..settings()
        });
        assert_eq!(output.label(), "srt://[::1]:9000 path=live/cam1");
    }

    #[test]
    fn settings_checks() {
        let cases = [
            (
                SrtSettings {
                    host: String::new(),
                    ..settings()
                },
                SettingsError::EmptyHost,
            ),
            (
                SrtSettings {
                    port: 0,
                    ..settings()
                },
                SettingsError::ZeroPort,
            ),
            (
                SrtSettings {
                    passphrase: Some(Secret::new("SRT passphrase", "short")),
                    ..settings()
                },
                SettingsError::PassphraseLength { length: 5 },
            ),
            (
                SrtSettings {
                    passphrase: Some(Secret::new("SRT passphrase", "p".repeat(80))),
                    ..settings()
                },
                SettingsError::PassphraseLength { length: 80 },
            ),
            (
                SrtSettings {
                    pbkeylen: 20,
                    ..settings()
                },
                SettingsError::KeyLength { pbkeylen: 20 },
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(check_settings(&settings), Err(expected));
        }
        assert_eq!(check_settings(&settings()), Ok(()));
    }

    #[test]
    fn preflight_maps_statuses() {
        let output = SrtOutput::new(SrtSettings {
            credentials: StaticCredentials::new(
                "live:cam",
                Credential::StreamKey(Secret::new("stream key", "k3y")),
            ),
            ..settings()
        });
        match output.preflight() {
            Err(OutputError::Fatal { status, .. }) => assert_eq!(status, ExitStatus::Usage),
            other => panic!("{other:?}"),
        }

        let output = SrtOutput::new(SrtSettings {
            credentials: StaticCredentials::new(
                "live/cam1",
                Credential::SessionToken(Secret::new("session token", "not-a-jwt")),
            ),
            ..settings()
        });
        match output.preflight() {
            Err(OutputError::Fatal { status, message }) => {
                assert_eq!(status, ExitStatus::Credentials);
                assert!(message.contains("not a JWT"), "{message}");
                assert!(!message.contains("not-a-jwt"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
