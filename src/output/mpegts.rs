//! The MPEG-TS muxer pipeline that turns encoded frames into MPEG-TS: the
//! SRT output runs one per connection, the local recording one per segment.
//!
//! ```text
//! appsrc (H.264 byte-stream, one AU per buffer) ──┐
//!                                                  ├─ mpegtsmux ─ appsink
//! appsrc (AAC, one frame per buffer), optional ────┘
//! ```
//!
//! A file muxer (`TsMuxer::new`) runs `mpegtsmux` with `alignment=7` and is
//! read with `pull`. A streaming muxer (`TsMuxer::new_streaming`) runs it
//! with `alignment=0`, so it emits every packet of a muxed frame at once and
//! keeps none back to fill a 7-packet buffer. The packets go out on a channel
//! as soon as the muxer has written them.
//!
//! NOTE: with audio, a video frame is muxed only once the audio input also
//! has a queued buffer, because the non-live aggregator under `mpegtsmux`
//! waits for data on every input. The frame then waits for the next AAC
//! frame from the audio encoder. With the 1280x720 30 fps test source, the
//! median hand-over latency measured 26 to 61 ms with audio and 0.2 ms
//! without (release build, loaded 2-core machine).
//!
//! The appsrcs are not live: frames already carry the encode pipeline's
//! timestamps, and the muxer interleaves by those timestamps once every
//! stream has data, so no clock of this pipeline is involved.

use crate::output::{Frame, MediaKind};
use crossbeam_channel::Receiver;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// MPEG-TS packets a file muxer puts in each output buffer (`alignment`).
const FILE_ALIGNMENT_PACKETS: i32 = 7;

/// `mpegtsmux`'s `alignment` that pushes all the packets of one muxed input
/// buffer as one buffer list (GStreamer 1.22: "0 = all available packets").
const STREAMING_ALIGNMENT: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("GStreamer element '{factory}' is missing: run scripts/install-deps.sh")]
    MissingElement { factory: &'static str },

    #[error("cannot build the MPEG-TS muxer pipeline: {0}")]
    Build(String),

    #[error("the MPEG-TS muxer did not accept a {kind:?} frame: {reason}")]
    Push { kind: MediaKind, reason: String },

    #[error("the MPEG-TS muxer failed: {0}")]
    Pipeline(String),
}

/// One muxing pipeline. Set to `Null` on drop.
pub struct TsMuxer {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    sink: gst_app::AppSink,
}

impl TsMuxer {
    /// Builds and starts a muxer for files, whose output `pull` returns in
    /// buffers of 7 packets. It has an audio input only when `has_audio`
    /// (the muxer waits for data on every input it has). `name` names the
    /// pipeline and prefixes its elements' names, as logs show them.
    pub fn new(name: &str, has_audio: bool) -> Result<Self, MuxError> {
        Self::build(name, has_audio, FILE_ALIGNMENT_PACKETS, None)
    }

    /// Builds and starts a muxer for a live stream. The returned channel
    /// receives the packets of each muxed input buffer (188-byte MPEG-TS
    /// packets, concatenated) as soon as the muxer has written them, so
    /// `pull` returns nothing. The channel closes when the muxer is dropped.
    pub fn new_streaming(
        name: &str,
        has_audio: bool,
    ) -> Result<(Self, Receiver<Vec<u8>>), MuxError> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let callbacks = gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let packets = sample_bytes(&sample).ok_or(gst::FlowError::Error)?;
                sender.send(packets).map_err(|_| gst::FlowError::Flushing)?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build();
        let muxer = Self::build(name, has_audio, STREAMING_ALIGNMENT, Some(callbacks))?;
        Ok((muxer, receiver))
    }

    fn build(
        name: &str,
        has_audio: bool,
        alignment: i32,
        callbacks: Option<gst_app::AppSinkCallbacks>,
    ) -> Result<Self, MuxError> {
        let pipeline = gst::Pipeline::with_name(name);
        let mux = make("mpegtsmux")?;
        mux.set_property("alignment", alignment);
        let sink = gst_app::AppSink::builder()
            .name(format!("{name}-sink"))
            .sync(false)
            .max_buffers(0)
            .buffer_list(callbacks.is_some())
            .build();
        if let Some(callbacks) = callbacks {
            sink.set_callbacks(callbacks);
        }

        let video = input(&format!("{name}-video"));
        let audio = has_audio.then(|| input(&format!("{name}-audio")));

        pipeline
            .add_many([video.upcast_ref::<gst::Element>(), &mux, sink.upcast_ref()])
            .map_err(|error| MuxError::Build(error.to_string()))?;
        link(video.upcast_ref(), &mux)?;
        if let Some(audio) = &audio {
            pipeline
                .add(audio)
                .map_err(|error| MuxError::Build(error.to_string()))?;
            link(audio.upcast_ref(), &mux)?;
        }
        link(&mux, sink.upcast_ref())?;

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MuxError::Pipeline(Self::bus_error(&pipeline)))?;
        Ok(Self {
            pipeline,
            video,
            audio,
            sink,
        })
    }

    /// Hands one frame to its input. Caps travel with the sample, so a caps
    /// change reaches the muxer with the first frame that has it. Audio
    /// frames are dropped when the muxer has no audio input.
    pub fn push(&self, frame: Frame) -> Result<(), MuxError> {
        let source = match frame.kind {
            MediaKind::Video => &self.video,
            MediaKind::Audio => match &self.audio {
                Some(audio) => audio,
                None => return Ok(()),
            },
        };
        let push_error = |reason: String| MuxError::Push {
            kind: frame.kind,
            reason,
        };
        let sample = to_running_time(&frame.sample)
            .ok_or_else(|| push_error("the sample has no buffer".to_string()))?;
        source
            .push_sample(&sample)
            .map(|_| ())
            .map_err(|flow| push_error(format!("{flow:?}")))
    }

    /// Ends every input, so the muxer flushes its queued data and then ends.
    pub fn finish(&self) {
        let _ = self.video.end_of_stream();
        if let Some(audio) = &self.audio {
            let _ = audio.end_of_stream();
        }
    }

    /// Returns the next muxed buffer of a file muxer, waiting up to
    /// `timeout`, or `None` if none came in time or the muxer has ended.
    pub fn pull(&self, timeout: gst::ClockTime) -> Option<gst::Buffer> {
        self.sink
            .try_pull_sample(timeout)
            .and_then(|sample| sample.buffer_owned())
    }

    /// Returns whether the muxer has delivered its last buffer after `finish`.
    pub fn is_ended(&self) -> bool {
        self.sink.is_eos()
    }

    /// Returns the first error the pipeline posted. Warnings go to the debug
    /// log.
    pub fn check(&self) -> Result<(), MuxError> {
        let Some(bus) = self.pipeline.bus() else {
            return Ok(());
        };
        while let Some(message) =
            bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
        {
            match message.view() {
                gst::MessageView::Error(error) => {
                    return Err(MuxError::Pipeline(describe(
                        error.src(),
                        &error.error(),
                        error.debug(),
                    )))
                }
                gst::MessageView::Warning(warning) => {
                    let text = describe(warning.src(), &warning.error(), warning.debug());
                    tracing::debug!("MPEG-TS muxer warning: {text}");
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn bus_error(pipeline: &gst::Pipeline) -> String {
        let error = pipeline.bus().and_then(|bus| {
            bus.pop_filtered(&[gst::MessageType::Error])
                .and_then(|message| match message.view() {
                    gst::MessageView::Error(error) => {
                        Some(describe(error.src(), &error.error(), error.debug()))
                    }
                    _ => None,
                })
        });
        error.unwrap_or_else(|| "it did not start".to_string())
    }
}

impl Drop for TsMuxer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Copies the bytes of a sample's buffer list, or of its buffer when it has
/// no list. `None` when it has neither or a buffer cannot be read.
fn sample_bytes(sample: &gst::Sample) -> Option<Vec<u8>> {
    let Some(list) = sample.buffer_list() else {
        let map = sample.buffer()?.map_readable().ok()?;
        return Some(map.as_slice().to_vec());
    };
    let mut bytes = Vec::with_capacity(list.calculate_size());
    for buffer in list.iter() {
        bytes.extend_from_slice(buffer.map_readable().ok()?.as_slice());
    }
    Some(bytes)
}

/// Rewrites a sample's timestamps as running time. Encoders may shift their
/// output segment (x264enc starts it at 1000 hours to keep DTS positive), and
/// the appsrcs start from a zero segment, so audio and video only line up
/// in running time. A DTS before the segment start is dropped, and the
/// muxer then uses the PTS.
fn to_running_time(sample: &gst::Sample) -> Option<gst::Sample> {
    let mut buffer = sample.buffer_owned()?;
    let segment = sample
        .segment()
        .and_then(|segment| segment.downcast_ref::<gst::ClockTime>());
    if let Some(segment) = segment {
        let buffer = buffer.make_mut();
        let pts = buffer.pts().and_then(|pts| segment.to_running_time(pts));
        let dts = buffer.dts().and_then(|dts| segment.to_running_time(dts));
        buffer.set_pts(pts);
        buffer.set_dts(dts);
    }
    let caps = sample.caps_owned();
    let mut builder = gst::Sample::builder().buffer(&buffer);
    if let Some(caps) = &caps {
        builder = builder.caps(caps);
    }
    Some(builder.build())
}

fn input(name: &str) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .format(gst::Format::Time)
        .is_live(false)
        .stream_type(gst_app::AppStreamType::Stream)
        .build()
}

fn make(factory: &'static str) -> Result<gst::Element, MuxError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MuxError::MissingElement { factory })
}

fn link(upstream: &gst::Element, downstream: &gst::Element) -> Result<(), MuxError> {
    upstream.link(downstream).map_err(|error| {
        MuxError::Build(format!(
            "cannot link {} to {}: {error}",
            upstream.name(),
            downstream.name()
        ))
    })
}

fn describe(
    source: Option<&gst::Object>,
    error: &gst::glib::Error,
    debug: Option<gst::glib::GString>,
) -> String {
    let source = source.map(|s| s.name().to_string()).unwrap_or_default();
    match debug {
        Some(debug) => format!("{source}: {error} ({debug})"),
        None => format!("{source}: {error}"),
    }
}
