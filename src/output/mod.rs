//! Outputs: one module per transport behind the `Output` trait. An output
//! runs one connection at a time; the supervisor decides when to dial again.

pub mod mpegts;
pub mod record;
pub mod rtmp;
pub mod srt;
pub mod whip;

use crate::exit::ExitStatus;
use crate::pipeline::fanout::FrameReceiver;
use crate::pipeline::KeyframeRequester;
use crate::telemetry::status::OutputStatus;
use gstreamer as gst;
use std::time::Instant;

/// The elementary stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
}

/// The audio codec an output takes: AAC for SRT and RTMP, Opus for WHIP.
/// The media pipeline encodes the captured audio once per codec in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
}

/// One encoded frame (an H.264 access unit, an AAC or an Opus frame) with
/// its caps.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: MediaKind,
    pub sample: gst::Sample,
    /// When the media pipeline's appsink handed the frame over: the start
    /// of each output's hand-over latency (`telemetry::latency`).
    pub captured: Instant,
}

impl Frame {
    /// Creates a frame captured now.
    pub fn new(kind: MediaKind, sample: gst::Sample) -> Self {
        Self {
            kind,
            sample,
            captured: Instant::now(),
        }
    }

    /// Returns whether a decoder can start at this frame: an IDR for video, any
    /// frame for audio.
    pub fn is_keyframe(&self) -> bool {
        match self.kind {
            MediaKind::Audio => true,
            MediaKind::Video => self
                .sample
                .buffer()
                .is_some_and(|buffer| !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)),
        }
    }

    /// Returns the codec of an audio frame, read from its caps (AAC when
    /// they say nothing else); `None` for video.
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        if self.kind != MediaKind::Audio {
            return None;
        }
        let opus = self
            .sample
            .caps()
            .and_then(|caps| caps.structure(0))
            .is_some_and(|structure| structure.name() == "audio/x-opus");
        Some(if opus {
            AudioCodec::Opus
        } else {
            AudioCodec::Aac
        })
    }

    pub fn pts(&self) -> Option<gst::ClockTime> {
        self.sample.buffer().and_then(|buffer| buffer.pts())
    }

    /// Returns the size of the encoded frame in bytes.
    pub fn size(&self) -> u64 {
        self.sample
            .buffer()
            .map_or(0, |buffer| buffer.size() as u64)
    }
}

/// The parts of the bridge that one connection uses.
pub struct Session<'a> {
    /// Encoded frames; the channel closes when the bridge stops cleanly.
    pub frames: &'a FrameReceiver,
    /// Asks the encoder for an IDR, so a new connection starts quickly.
    pub keyframes: &'a KeyframeRequester,
    /// Whether audio frames will come. An output that muxes waits for every
    /// stream it expects.
    pub has_audio: bool,
    /// The output's status: the output marks itself live once media flows
    /// and counts the bytes it sends.
    pub status: &'a OutputStatus,
}

/// The reason a connection ended other than by a clean stop.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The server refused the credentials (or, for SRT, the path or the
    /// passphrase, which it cannot tell apart).
    #[error("{0}")]
    Rejected(String),
    /// A failure that retrying cannot fix, found before dialing.
    #[error("{message}")]
    Fatal { status: ExitStatus, message: String },
    /// A network or server failure worth another attempt.
    #[error("{0}")]
    Transient(String),
}

/// A transport that publishes the shared encode to one destination.
pub trait Output: Send {
    /// Returns a name for logs: transport, host and path, never a credential.
    fn label(&self) -> String;

    /// Returns the audio codec this output sends.
    fn audio_codec(&self) -> AudioCodec {
        AudioCodec::Aac
    }

    /// Checks made before every dial: streamid size, field characters,
    /// token claims. A `Transient` error here (credentials that cannot be
    /// renewed yet) is retried after a backoff; any other is not.
    fn preflight(&self) -> Result<(), OutputError>;

    /// Dials, then streams frames until the frame channel closes (returns
    /// `Ok`) or the connection fails. Calls `session.frames.mark_streaming()`
    /// once the connection is up, which the backoff reset depends on.
    /// Blocks; the supervisor gives each output its own thread.
    fn run_session(&mut self, session: Session<'_>) -> Result<(), OutputError>;
}
