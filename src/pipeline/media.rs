//! The one media pipeline per device:
//!
//! ```text
//! source ─► queue ─► videoconvert ─► videoscale ─► videorate ─► caps ─► encoder ─► h264parse ─► appsink ─┐
//!   └────► queue ─► audioconvert ─► audioresample ─► caps ─► AAC encoder ─► aacparse ──────► appsink ─┤
//!                                                       └─► (tee) queue ─► opusenc ─────────► appsink ─┤
//!                                                                          Fanout: one channel per output ◄┘
//! ```
//!
//! The Opus branch exists only while a WHIP output is configured.
//!
//! Appsink callbacks rewrite timestamps to running time (so a looped file
//! keeps counting up), apply the audio offset and hand frames to the fan-out
//! without blocking.

use super::audio_lock;
use super::description::{BuildError, ChainSpec, ElementSpec};
use super::fanout::Fanout;
use super::faults::FaultInjector;
use super::input::{ErrorOrigin, InputSwitch};
use super::observer::MediaObserver;
use super::preview::{self, Preview};
use super::{encoder_swap, slate, KeyframeRequester};
use crate::capture::{AudioPlan, CapturePlan, VideoPlan};
use crate::encode::{self, EncodeSettings, EncoderName, EncoderPlan, GstProber, Platform};
use crate::output::{Frame, MediaKind};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// AAC encoders in order of preference; the first registered one is used.
const AAC_ENCODERS: &[&str] = &["avenc_aac", "voaacenc", "fdkaacenc"];

/// Priming samples an AAC encoder puts before the first input sample while
/// keeping the input's timestamps. MPEG-TS and FLV cannot signal priming,
/// so players play it and the audio lands this late against video unless
/// the timestamps move back by as much. Measured for avenc_aac (FFmpeg's
/// encoder, 1024 samples: a 21 ms lag at 48 kHz); the others are unmeasured.
fn aac_priming_samples(encoder: &str) -> i64 {
    match encoder {
        "avenc_aac" => 1024,
        // NOTE: voaacenc and fdkaacenc priming was not measured here; any
        // lag they add is left as it is.
        _ => 0,
    }
}

/// How far past the moment of a stop request frames are still sent: what
/// the entry queues and the encoders already hold.
const STOP_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(200);

/// Audio sample rate of every encode, in Hz.
const AUDIO_RATE_HZ: i64 = 48_000;

pub struct MediaSettings<'a> {
    pub capture: &'a CapturePlan,
    pub looped: bool,
    pub encoder: &'a EncoderPlan,
    pub encode: &'a EncodeSettings,
    pub audio_bitrate_kbps: u32,
    /// `Some`: also encode the audio to Opus at this bitrate, for WHIP.
    pub opus_bitrate_kbps: Option<u32>,
    pub av_offset_ms: i64,
    /// The `--encoder` request, whose next candidate replaces an encoder
    /// that fails mid-stream.
    pub encoder_request: EncoderName,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("no AAC encoder is registered; install gstreamer1.0-libav (avenc_aac)")]
    NoAacEncoder,
    #[error("failed to start the media pipeline: {0}")]
    Start(String),
}

/// A bus event that the caller must act on.
#[derive(Debug)]
pub enum MediaEvent {
    /// Every branch reached its end: the source ended or a stop was requested.
    Ended,
    /// An element failed. `from_source` separates a capture failure (exit 4) from
    /// any other (exit 1).
    Failed { message: String, from_source: bool },
}

pub struct MediaPipeline {
    pipeline: gst::Pipeline,
    keyframes: KeyframeRequester,
    has_audio: bool,
    looped: bool,
    is_file: bool,
    /// Sink pads where a clean stop injects EOS: the branch entry queues of
    /// a clip, the converters after the input selectors of a live source.
    entries: Vec<gst::Pad>,
    sink_state: Arc<SinkState>,
    /// The source, slate and selectors of a live source; `None` for a clip.
    input: Option<InputSwitch>,
    encode: EncodeSettings,
    encoder_request: EncoderName,
    /// Factory of the encoder running now.
    encoder_factory: Arc<Mutex<&'static str>>,
    /// The converter after the input selector (or a clip's entry queue),
    /// where the preview branch taps the raw video.
    video_head: gst::Element,
    faults: Option<Arc<FaultInjector>>,
}

impl MediaPipeline {
    pub fn build(settings: &MediaSettings<'_>, fanout: Fanout) -> Result<Self, PipelineError> {
        let pipeline = gst::Pipeline::with_name("media");
        let bin = pipeline.upcast_ref::<gst::Bin>();
        let capture = settings.capture;
        let sync = !capture.live;
        let has_audio = !matches!(capture.audio, AudioPlan::None);
        let opus = settings.opus_bitrate_kbps.filter(|_| has_audio);
        let audio_sinks = if opus.is_some() { 2 } else { 1 };
        let sinks_open = Arc::new(SinkState::new(if has_audio { 1 + audio_sinks } else { 1 }));

        let (video_head, video_sink) = video_tail(settings).build_into(bin)?;
        let video_appsink = video_sink.downcast::<gst_app::AppSink>().expect("appsink");
        attach_appsink(
            &video_appsink,
            MediaKind::Video,
            0,
            sync,
            &fanout,
            &sinks_open,
        );
        let keyframes = KeyframeRequester::for_pad(&video_appsink.static_pad("sink").expect("pad"));

        let audio_head = if has_audio {
            let audio = AudioTail::new(settings.audio_bitrate_kbps, opus)?;
            let (first, last) = audio.common.build_into(bin)?;
            let (aac_first, aac_sink) = audio.aac.build_into(bin)?;
            link(&last, &aac_first)?;
            let priming_ns = aac_priming_samples(&aac_encoder()?) * 1_000_000_000 / AUDIO_RATE_HZ;
            attach_appsink(
                &aac_sink.downcast::<gst_app::AppSink>().expect("appsink"),
                MediaKind::Audio,
                settings.av_offset_ms * 1_000_000 - priming_ns,
                sync,
                &fanout,
                &sinks_open,
            );
            if let Some(branch) = &audio.opus {
                let (opus_first, opus_sink) = branch.build_into(bin)?;
                link(&last, &opus_first)?;
                // NOTE: opusenc's look-ahead (about 6.5 ms) is not taken
                // back: RTP cannot signal Opus pre-skip, and the lag is
                // well under what a viewer notices.
                attach_appsink(
                    &opus_sink.downcast::<gst_app::AppSink>().expect("appsink"),
                    MediaKind::Audio,
                    settings.av_offset_ms * 1_000_000,
                    sync,
                    &fanout,
                    &sinks_open,
                );
            }
            Some(first)
        } else {
            None
        };

        let faults = capture.faults.clone().map(FaultInjector::new);
        let (input, entries) = match &capture.video {
            VideoPlan::Chain(_) => {
                if let Some(faults) = &faults {
                    let factory = settings.encoder.factory;
                    if let Some(encoder) = element_by_factory(bin, factory) {
                        faults.attach_to_encoder(&encoder);
                    }
                }
                let input = InputSwitch::build(
                    &pipeline,
                    capture,
                    settings.encode.size,
                    settings.encode.fps,
                    faults.clone(),
                    &video_head,
                    audio_head.as_ref(),
                )?;
                // A clean stop ends the encode after the selectors, since
                // they drop the source's EOS.
                let heads = std::iter::once(&video_head).chain(&audio_head);
                let entries = heads
                    .map(|head| head.static_pad("sink").expect("a converter has a sink pad"))
                    .collect();
                (Some(input), entries)
            }
            VideoPlan::File { path } => {
                let video_entry = entry_queue("video-entry", false).build()?;
                bin.add(&video_entry)
                    .map_err(|e| BuildError::Link(e.to_string()))?;
                link(&video_entry, &video_head)?;
                let mut entries = vec![video_entry.static_pad("sink").expect("queue sink pad")];
                let audio_entry = match &audio_head {
                    Some(head) => {
                        let entry = entry_queue("audio-entry", false).build()?;
                        bin.add(&entry)
                            .map_err(|e| BuildError::Link(e.to_string()))?;
                        link(&entry, head)?;
                        entries.push(entry.static_pad("sink").expect("queue sink pad"));
                        Some(entry)
                    }
                    None => None,
                };
                add_file_source(bin, path, &video_entry, audio_entry.as_ref())?;
                (None, entries)
            }
        };

        Ok(Self {
            is_file: input.is_none(),
            pipeline,
            keyframes,
            has_audio,
            looped: settings.looped,
            entries,
            sink_state: sinks_open,
            input,
            encode: *settings.encode,
            encoder_request: settings.encoder_request,
            encoder_factory: Arc::new(Mutex::new(settings.encoder.factory)),
            video_head,
            faults,
        })
    }

    /// Returns a handle that reads the input signal and the running
    /// encoder from any thread.
    pub fn observer(&self) -> MediaObserver {
        MediaObserver::new(
            self.input.as_ref().map(InputSwitch::slate_flag),
            Arc::clone(&self.encoder_factory),
        )
    }

    /// Adds the preview branch off the raw video. Call before `start`.
    pub fn add_preview(&self) -> Result<Preview, PipelineError> {
        preview::attach(&self.pipeline, &self.video_head)
    }

    pub fn keyframes(&self) -> KeyframeRequester {
        self.keyframes.clone()
    }

    pub fn has_audio(&self) -> bool {
        self.has_audio
    }

    pub fn bus(&self) -> gst::Bus {
        self.pipeline.bus().expect("a pipeline has a bus")
    }

    /// Starts playback. A looped file first prerolls and then seeks with the
    /// SEGMENT flag, so its end posts segment-done instead of EOS.
    pub fn start(&self) -> Result<(), PipelineError> {
        if self.is_file && self.looped {
            // The seek flushes every element it passes, and an AAC encoder
            // flushed after it has primed primes again, which would leave
            // the first pass of the clip one frame late. So audio is held
            // back at its entry queue until the seek is done, and only
            // video prerolls.
            let held_audio = self.hold_audio_for_preroll();
            self.set_state(gst::State::Paused)?;
            let (result, _, _) = self.pipeline.state(gst::ClockTime::from_seconds(20));
            result.map_err(|_| PipelineError::Start(self.first_error()))?;
            self.pipeline
                .seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT,
                    gst::ClockTime::ZERO,
                )
                .map_err(|_| PipelineError::Start("the clip cannot be seeked to loop it".into()))?;
            if let Some((pad, probe)) = held_audio {
                pad.remove_probe(probe);
            }
        }
        self.set_state(gst::State::Playing)?;
        if let Some(input) = &self.input {
            input.start_watch();
        }
        Ok(())
    }

    /// Blocks audio buffers at the audio entry queue's output and lets the
    /// pipeline reach PAUSED without an audio preroll. Returns the probe to
    /// remove once the clip has been seeked.
    fn hold_audio_for_preroll(&self) -> Option<(gst::Pad, gst::PadProbeId)> {
        let bin = self.pipeline.upcast_ref::<gst::Bin>();
        let queue = bin.by_name("audio-entry")?;
        for name in ["audio-sink", "opus-sink"] {
            if let Some(sink) = bin.by_name(name) {
                sink.set_property("async", false);
            }
        }
        let pad = queue.static_pad("src")?;
        let probe = pad.add_probe(
            gst::PadProbeType::BLOCK_DOWNSTREAM | gst::PadProbeType::BUFFER,
            |_, _| gst::PadProbeReturn::Ok,
        )?;
        Some((pad, probe))
    }

    fn set_state(&self, state: gst::State) -> Result<(), PipelineError> {
        self.pipeline
            .set_state(state)
            .map(|_| ())
            .map_err(|_| PipelineError::Start(self.first_error()))
    }

    /// Takes the first error waiting on the bus, for a failed state change.
    fn first_error(&self) -> String {
        self.bus()
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|message| match message.view() {
                gst::MessageView::Error(error) => Some(describe_error(error)),
                _ => None,
            })
            .unwrap_or_else(|| "the pipeline refused to change state".into())
    }

    /// Ends every branch: encoders flush, appsinks see EOS, and the fan-out
    /// closes each output's channel once its queued frames are read.
    ///
    /// Frames timed later than now plus `STOP_MARGIN` are dropped from then
    /// on, so every branch ends at the same time. Without that, `videorate`
    /// repeats a clip's last frame on EOS up to the end of its segment, up to
    /// a second of still video after the audio has ended.
    pub fn request_stop(&self) {
        if let Some(input) = &self.input {
            input.stop();
        }
        if let Some(now) = self.pipeline.current_running_time() {
            let cutoff = now + STOP_MARGIN;
            self.sink_state
                .cutoff_ns
                .store(cutoff.nseconds(), Ordering::Release);
        }
        for pad in &self.entries {
            if self.input.is_none() {
                pad.send_event(gst::event::Eos::new());
                continue;
            }
            // The converters after the selectors push the EOS on the
            // calling thread. A sink that never prerolled (after a source
            // that failed at once) blocks that thread until shutdown, so
            // the EOS goes from a thread of its own, as a queue pushes it.
            let pad = pad.clone();
            let sent = std::thread::Builder::new()
                .name("eos".into())
                .spawn(move || pad.send_event(gst::event::Eos::new()));
            if let Err(error) = sent {
                tracing::error!(%error, "failed to start the thread that ends the encode");
            }
        }
    }

    /// Handles one bus message; returns what the caller must act on.
    pub fn handle_message(&self, message: &gst::Message) -> Option<MediaEvent> {
        match message.view() {
            gst::MessageView::Eos(_) => Some(MediaEvent::Ended),
            gst::MessageView::SegmentDone(_) => {
                let seek = self
                    .pipeline
                    .seek_simple(gst::SeekFlags::SEGMENT, gst::ClockTime::ZERO);
                if seek.is_err() {
                    return Some(MediaEvent::Failed {
                        message: "failed to seek the clip back to its start".into(),
                        from_source: true,
                    });
                }
                tracing::debug!("clip looped");
                None
            }
            gst::MessageView::Error(error) => self.handle_error(message, describe_error(error)),
            gst::MessageView::Warning(warning) => {
                tracing::warn!(
                    element = %element_path(message),
                    "{}",
                    warning.error()
                );
                None
            }
            _ => None,
        }
    }

    /// Recovers from a live source's error with the slate and a reopen.
    /// Returns the failure of anything else, and of a source that fails
    /// before it delivers, which ends the bridge as before.
    fn handle_error(&self, message: &gst::Message, text: String) -> Option<MediaEvent> {
        if encoder_swap::is_from_encoder(&self.pipeline, message) {
            return self.replace_encoder(text);
        }
        let Some(input) = &self.input else {
            return Some(MediaEvent::Failed {
                from_source: self.is_from_source(message),
                message: text,
            });
        };
        let from_source = match input.origin(message) {
            ErrorOrigin::Source => {
                input.source_failed(&text);
                return None;
            }
            ErrorOrigin::OldSource => {
                tracing::debug!(message = %text, "error from a source already torn down");
                return None;
            }
            ErrorOrigin::SourceAtStart => true,
            ErrorOrigin::Elsewhere => false,
        };
        Some(MediaEvent::Failed {
            message: text,
            from_source,
        })
    }

    /// Replaces the encoder that posted `text` with the next candidate that
    /// passes a test encode. Returns the failure when none does.
    fn replace_encoder(&self, text: String) -> Option<MediaEvent> {
        let mut factory = self
            .encoder_factory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tracing::error!(
            encoder = *factory,
            message = %text,
            "encoder failed: switching to the next encoder"
        );
        let selection = encode::select_after(
            self.encoder_request,
            Platform::current(),
            &self.encode,
            &GstProber,
            &factory,
        );
        let plan = match selection {
            Ok(selection) => selection.plan,
            Err(error) => {
                return Some(MediaEvent::Failed {
                    message: format!("{text}; no encoder can replace {}: {error}", *factory),
                    from_source: false,
                })
            }
        };
        let raw_caps = raw_video_caps(&plan, &self.encode);
        match encoder_swap::replace(&self.pipeline, &plan.chain, &raw_caps) {
            Ok(elements) => {
                tracing::warn!(
                    failed = *factory,
                    encoder = plan.factory,
                    "encoder replaced; the outputs go on"
                );
                *factory = plan.factory;
                if let (Some(faults), Some(encoder)) = (&self.faults, elements.first()) {
                    faults.attach_to_encoder(encoder);
                }
                None
            }
            Err(cause) => Some(MediaEvent::Failed {
                message: format!("{text}; replacing it with {} failed: {cause}", plan.factory),
                from_source: false,
            }),
        }
    }

    /// Checks whether a message came from a capture element (anything upstream of
    /// the branch entry queues) rather than from processing or encoding.
    fn is_from_source(&self, message: &gst::Message) -> bool {
        let Some(source) = message.src() else {
            return false;
        };
        let name = source.name();
        let tail = [
            "video-entry",
            "audio-entry",
            "video-sink",
            "audio-sink",
            "audio-tee",
            "aac-queue",
            "opus-queue",
            "opusenc",
            "opus-sink",
            "h264parse",
            "aacparse",
        ];
        if tail.iter().any(|t| name.starts_with(t)) {
            return false;
        }
        let factory = source
            .downcast_ref::<gst::Element>()
            .and_then(|element| element.factory())
            .map(|factory| factory.name().to_string())
            .unwrap_or_default();
        factory.ends_with("src")
            || factory.contains("demux")
            || factory.contains("dec")
            || source.path_string().contains("decodebin")
    }

    pub fn shutdown(&self) {
        if let Some(input) = &self.input {
            input.stop();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Renders the pipeline that `MediaPipeline::build` makes as
/// gst-launch-style text, one line per branch. Logged at debug, and compared with the
/// descriptions in `pipelines/` by the tests.
pub fn describe(settings: &MediaSettings<'_>) -> Result<String, PipelineError> {
    let capture = settings.capture;
    let live = matches!(capture.video, VideoPlan::Chain(_));
    // A live source reaches the converters through a selector beside the
    // slate; a clip reaches them straight from its entry queue.
    let switch = |name: &str| match (live, name) {
        (false, _) => String::new(),
        (true, "audio-select") => {
            format!(" ! {} ! {}", slate::selector(name), slate::audio_fill())
        }
        (true, _) => format!(" ! {}", slate::selector(name)),
    };
    let video_source = match &capture.video {
        VideoPlan::Chain(chain) => chain.to_string(),
        VideoPlan::File { path } => format!("filesrc location={} ! decodebin", path.display()),
    };
    let mut text = format!(
        "video: {video_source} ! {}{} ! {}\n",
        entry_queue("video-entry", capture.live),
        switch("video-select"),
        video_tail(settings)
    );
    if live {
        let slate = slate::video_chain(settings.encode.size, settings.encode.fps);
        text.push_str(&format!("slate: {slate} ! (the video input-selector)\n"));
    }
    let audio_source = match &capture.audio {
        AudioPlan::None => None,
        AudioPlan::Chain(chain) if live => Some(audio_lock::locked(chain).to_string()),
        AudioPlan::Chain(chain) => Some(chain.to_string()),
        AudioPlan::FromFile => Some("decodebin (the clip's audio)".to_string()),
    };
    match audio_source {
        Some(source) => {
            let audio = AudioTail::new(settings.audio_bitrate_kbps, settings.opus_bitrate_kbps)?;
            text.push_str(&format!(
                "audio: {source} ! {}{} ! {} ! {}\n",
                entry_queue("audio-entry", capture.live),
                switch("audio-select"),
                audio.common,
                audio.aac
            ));
            if live {
                let silence = slate::audio_chain();
                text.push_str(&format!(
                    "audio-slate: {silence} ! (the audio input-selector)\n"
                ));
            }
            if let Some(opus) = &audio.opus {
                text.push_str(&format!("opus: (the audio tee) ! {opus}\n"));
            }
        }
        None => text.push_str("audio: none\n"),
    }
    Ok(text)
}

pub(super) fn entry_queue(name: &str, live: bool) -> ElementSpec {
    let queue = ElementSpec::new("queue").named(name);
    if live {
        // A live source must never wait on the encoder: old frames go first.
        queue
            .property("leaky", "downstream")
            .property("max-size-buffers", 0)
            .property("max-size-bytes", 0)
            .property("max-size-time", 1_000_000_000u64)
    } else {
        // A clip decodes ahead of real time until this queue fills, and a
        // clean stop still plays out what it holds, so it stays short.
        queue
            .property("max-size-buffers", 0)
            .property("max-size-bytes", 0)
            .property("max-size-time", 100_000_000u64)
    }
}

fn video_tail(settings: &MediaSettings<'_>) -> ChainSpec {
    let raw_caps = raw_video_caps(settings.encoder, settings.encode);
    let mut chain = ChainSpec::new(vec![
        ElementSpec::new("videoconvert"),
        ElementSpec::new("videoscale"),
        ElementSpec::new("videorate"),
        ElementSpec::caps_filter(&raw_caps).named(encoder_swap::RAW_CAPS_NAME),
    ]);
    chain
        .elements
        .extend(settings.encoder.chain.elements.iter().cloned());
    chain.push(
        ElementSpec::new("h264parse")
            .named(encoder_swap::PARSER_NAME)
            .property("config-interval", -1),
    );
    chain.push(ElementSpec::caps_filter(
        "video/x-h264,stream-format=byte-stream,alignment=au",
    ));
    chain.push(ElementSpec::new("appsink").named("video-sink"));
    chain
}

/// Returns the raw caps `encoder` takes at the encode size and rate.
fn raw_video_caps(encoder: &EncoderPlan, encode: &EncodeSettings) -> String {
    format!(
        "video/x-raw,format={},width={},height={},framerate={}/{},pixel-aspect-ratio=1/1",
        encoder.input_format,
        encode.size.width,
        encode.size.height,
        encode.fps.numerator,
        encode.fps.denominator
    )
}

fn aac_encoder() -> Result<String, PipelineError> {
    AAC_ENCODERS
        .iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
        .map(|name| name.to_string())
        .ok_or(PipelineError::NoAacEncoder)
}

/// The audio branch after its entry queue: conversion shared by every
/// codec, then one encoder chain per codec in use.
struct AudioTail {
    common: ChainSpec,
    aac: ChainSpec,
    opus: Option<ChainSpec>,
}

impl AudioTail {
    fn new(aac_kbps: u32, opus_kbps: Option<u32>) -> Result<Self, PipelineError> {
        let mut common = ChainSpec::new(vec![
            ElementSpec::new("audioconvert"),
            ElementSpec::new("audioresample"),
            ElementSpec::caps_filter("audio/x-raw,rate=48000,channels=2"),
        ]);
        let mut aac = Vec::new();
        if opus_kbps.is_some() {
            common.push(ElementSpec::new("tee").named("audio-tee"));
            // Each encoder takes its own sample format (avenc_aac planar
            // float, opusenc interleaved), so each branch converts.
            aac.push(branch_queue("aac-queue"));
            aac.push(ElementSpec::new("audioconvert"));
        }
        aac.extend([
            ElementSpec::new(&aac_encoder()?).property("bitrate", u64::from(aac_kbps) * 1000),
            ElementSpec::new("aacparse").named("aacparse"),
            ElementSpec::caps_filter("audio/mpeg,mpegversion=4,stream-format=raw"),
            ElementSpec::new("appsink").named("audio-sink"),
        ]);
        let opus = opus_kbps.map(|kbps| {
            ChainSpec::new(vec![
                branch_queue("opus-queue"),
                ElementSpec::new("audioconvert"),
                ElementSpec::new("opusenc")
                    .named("opusenc")
                    .property("bitrate", u64::from(kbps) * 1000),
                ElementSpec::caps_filter("audio/x-opus,rate=48000,channels=2"),
                ElementSpec::new("appsink").named("opus-sink"),
            ])
        });
        Ok(Self {
            common,
            aac: ChainSpec::new(aac),
            opus,
        })
    }
}

/// Returns a short queue for after the audio tee, so each encoder runs on its own
/// thread and neither waits on the other.
fn branch_queue(name: &str) -> ElementSpec {
    ElementSpec::new("queue")
        .named(name)
        .property("max-size-buffers", 0)
        .property("max-size-bytes", 0)
        .property("max-size-time", 200_000_000u64)
}

/// Returns the first element of `bin` made by `factory`.
fn element_by_factory(bin: &gst::Bin, factory: &str) -> Option<gst::Element> {
    bin.iterate_elements()
        .into_iter()
        .flatten()
        .find(|element| {
            element
                .factory()
                .is_some_and(|element_factory| element_factory.name() == factory)
        })
}

fn link(source: &gst::Element, sink: &gst::Element) -> Result<(), BuildError> {
    source
        .link(sink)
        .map_err(|_| BuildError::Link(format!("{} to {}", source.name(), sink.name())))
}

/// Plays a clip through `decodebin`, linking its raw video and audio pads to
/// the branch entries as they appear. Streams with no branch go to a
/// `fakesink`, so an unused audio track never stalls the pipeline.
fn add_file_source(
    bin: &gst::Bin,
    path: &Path,
    video_entry: &gst::Element,
    audio_entry: Option<&gst::Element>,
) -> Result<(), PipelineError> {
    let filesrc = ElementSpec::new("filesrc")
        .property("location", path.display())
        .build()?;
    let decodebin = ElementSpec::new("decodebin").build()?;
    bin.add_many([&filesrc, &decodebin])
        .map_err(|e| BuildError::Link(e.to_string()))?;
    link(&filesrc, &decodebin)?;

    let video_pad = video_entry.static_pad("sink").expect("queue sink pad");
    let audio_pad = audio_entry.map(|entry| entry.static_pad("sink").expect("queue sink pad"));
    let bin_weak = bin.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
        let media = caps
            .as_ref()
            .and_then(|caps| caps.structure(0))
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let target = match media.as_str() {
            "video/x-raw" if !video_pad.is_linked() => Some(&video_pad),
            "audio/x-raw" => audio_pad.as_ref().filter(|pad| !pad.is_linked()),
            _ => None,
        };
        match target {
            Some(target) => {
                if let Err(error) = pad.link(target) {
                    tracing::error!("failed to link the clip's {media} stream: {error:?}");
                }
            }
            None => discard_pad(bin_weak.upgrade().as_ref(), pad),
        }
    });
    Ok(())
}

fn discard_pad(bin: Option<&gst::Bin>, pad: &gst::Pad) {
    let Some(bin) = bin else { return };
    let Ok(sink) = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
    else {
        return;
    };
    if bin.add(&sink).is_ok() {
        let _ = sink.sync_state_with_parent();
        let _ = pad.link(&sink.static_pad("sink").expect("fakesink pad"));
    }
}

/// State shared by the appsink callbacks.
struct SinkState {
    /// Appsinks that have not seen EOS yet.
    open: AtomicUsize,
    /// Running time (ns) after which frames are dropped, once a stop has
    /// been requested.
    cutoff_ns: AtomicU64,
}

impl SinkState {
    fn new(sinks: usize) -> Self {
        Self {
            open: AtomicUsize::new(sinks),
            cutoff_ns: AtomicU64::new(u64::MAX),
        }
    }
}

fn attach_appsink(
    appsink: &gst_app::AppSink,
    kind: MediaKind,
    offset_ns: i64,
    sync: bool,
    fanout: &Fanout,
    sinks_open: &Arc<SinkState>,
) {
    appsink.set_sync(sync);
    appsink.set_max_buffers(8);
    appsink.set_drop(false);
    let fanout_samples = fanout.clone();
    let fanout_eos = fanout.clone();
    let sink_state = sinks_open.clone();
    let sinks_open = sinks_open.clone();
    let mut last_dts: Option<gst::ClockTime> = None;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(sample) = retime(&sample, offset_ns) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // A looped clip's audio can run a frame past its video; the
                // overlap would step DTS back at the loop point, so it goes.
                let pts = sample.buffer().and_then(|buffer| buffer.pts());
                if pts.is_some_and(|pts| {
                    pts.nseconds() > sink_state.cutoff_ns.load(Ordering::Acquire)
                }) {
                    return Ok(gst::FlowSuccess::Ok);
                }
                let dts = sample.buffer().and_then(|buffer| buffer.dts());
                if dts.is_some() && last_dts.is_some() && dts <= last_dts {
                    tracing::trace!(?kind, "dropped a frame whose DTS does not increase");
                    return Ok(gst::FlowSuccess::Ok);
                }
                last_dts = dts.or(last_dts);
                fanout_samples.publish(Frame::new(kind, sample));
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| {
                if sinks_open.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                    fanout_eos.close();
                }
            })
            .build(),
    );
}

/// Rewrites a sample's PTS and DTS to running time plus `offset_ns`. Returns
/// `None` for a buffer that the offset would move before zero.
fn retime(sample: &gst::Sample, offset_ns: i64) -> Option<gst::Sample> {
    let buffer = sample.buffer()?;
    let segment = sample
        .segment()?
        .downcast_ref::<gst::format::Time>()?
        .clone();
    let shift = |time: gst::ClockTime| -> Option<gst::ClockTime> {
        let running = segment.to_running_time(time)?.nseconds() as i64;
        u64::try_from(running.checked_add(offset_ns)?)
            .ok()
            .map(gst::ClockTime::from_nseconds)
    };
    let pts = shift(buffer.pts()?)?;
    let dts = buffer.dts().and_then(shift).unwrap_or(pts);
    let mut buffer = buffer.copy();
    {
        let buffer = buffer.get_mut().expect("a fresh copy is writable");
        buffer.set_pts(pts);
        buffer.set_dts(dts.min(pts));
    }
    let mut builder = gst::Sample::builder().buffer(&buffer);
    let caps = sample.caps_owned();
    if let Some(caps) = &caps {
        builder = builder.caps(caps);
    }
    Some(builder.build())
}

fn element_path(message: &gst::Message) -> String {
    message
        .src()
        .map(|source| source.path_string().to_string())
        .unwrap_or_default()
}

fn describe_error(error: &gst::message::Error) -> String {
    let source = error
        .src()
        .map(|source| source.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{source}: {}", error.error())
}
