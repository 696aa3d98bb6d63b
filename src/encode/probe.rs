//! The test encode: a few frames of `videotestsrc` through an encoder plan,
//! to find out whether the element exists and its hardware works.
//!
//! ```text
//! videotestsrc num-buffers=30
//!   ! capsfilter caps=video/x-raw,format=<input_format>,width=…,height=…,framerate=…
//!   ! <plan chain: encoder ! capsfilter caps=video/x-h264,profile=…>
//!   ! fakesink
//! ```

use super::{EncodeSettings, EncoderPlan};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs a test encode through a plan.
pub trait Prober {
    /// Encodes a few frames through `plan`. On failure, returns the reason
    /// as a sentence that names the element.
    fn test_encode(&self, plan: &EncoderPlan, settings: &EncodeSettings) -> Result<(), String>;
}

/// How long a test encode may run before it counts as failed.
pub const TEST_ENCODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames fed to the encoder, enough for hardware encoders that hold a few
/// frames before their first output.
const TEST_FRAMES: i32 = 30;

/// Maximum length of the error detail kept in a reason, in characters.
const MAX_DETAIL_CHARS: usize = 300;

/// Test encode through real GStreamer elements.
#[derive(Clone, Copy, Debug, Default)]
pub struct GstProber;

impl Prober for GstProber {
    fn test_encode(&self, plan: &EncoderPlan, settings: &EncodeSettings) -> Result<(), String> {
        gst::init().map_err(|error| format!("GStreamer failed to initialise: {error}"))?;
        check_registered(plan)?;

        let pipeline = gst::Pipeline::with_name(&format!("test-encode-{}", plan.factory));
        let encoded_buffers = Arc::new(AtomicU64::new(0));
        build_test_pipeline(&pipeline, plan, settings, &encoded_buffers)?;

        let result = run_to_eos(&pipeline, plan.factory, &encoded_buffers)
            .map_err(|reason| explain_not_negotiated(reason, plan, settings));
        // Shutting down may itself fail on broken hardware, but the outcome
        // of the run is what counts.
        let _ = pipeline.set_state(gst::State::Null);
        result
    }
}

/// Adds what was offered to a not-negotiated failure: encoders that reject
/// a size, rate or profile fail caps negotiation, and the error message
/// itself names only the source.
fn explain_not_negotiated(reason: String, plan: &EncoderPlan, settings: &EncodeSettings) -> String {
    if !reason.contains("not-negotiated") {
        return reason;
    }
    format!(
        "{reason}; {} rejected {} {} at {} fps or the caps {}",
        plan.factory,
        plan.input_format,
        settings.size,
        settings.fps,
        plan.output_caps().unwrap_or("(none)")
    )
}

/// Fails with the standard reason when a factory in the chain is missing.
fn check_registered(plan: &EncoderPlan) -> Result<(), String> {
    for factory in plan.chain.factories() {
        if gst::ElementFactory::find(factory).is_none() {
            return Err(format!(
                "element {factory} is not registered (its plugin or hardware is missing)"
            ));
        }
    }
    Ok(())
}

fn build_test_pipeline(
    pipeline: &gst::Pipeline,
    plan: &EncoderPlan,
    settings: &EncodeSettings,
    encoded_buffers: &Arc<AtomicU64>,
) -> Result<(), String> {
    let factory = plan.factory;
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|error| format!("test encode through {factory} failed: {error}"))
    };

    let source = make("videotestsrc")?;
    source.set_property("num-buffers", TEST_FRAMES);
    let raw_filter = make("capsfilter")?;
    raw_filter.set_property("caps", raw_caps(plan, settings));
    let sink = make("fakesink")?;
    sink.set_property("sync", false);

    pipeline
        .add_many([&source, &raw_filter, &sink])
        .map_err(|error| format!("test encode through {factory} failed: {error}"))?;
    let (first, last) = plan
        .chain
        .build_into(pipeline.upcast_ref())
        .map_err(|error| format!("test encode through {factory} failed: {error}"))?;
    gst::Element::link_many([&source, &raw_filter, &first])
        .and_then(|()| last.link(&sink))
        .map_err(|_| {
            format!(
                "test encode through {factory} failed: cannot link {}",
                plan.chain
            )
        })?;

    let counter = Arc::clone(encoded_buffers);
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| format!("test encode through {factory} failed: fakesink has no sink pad"))?;
    sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn raw_caps(plan: &EncoderPlan, settings: &EncodeSettings) -> gst::Caps {
    let fps = gst::Fraction::new(
        i32::try_from(settings.fps.numerator).unwrap_or(i32::MAX),
        i32::try_from(settings.fps.denominator).unwrap_or(i32::MAX),
    );
    gst::Caps::builder("video/x-raw")
        .field("format", plan.input_format)
        .field(
            "width",
            i32::try_from(settings.size.width).unwrap_or(i32::MAX),
        )
        .field(
            "height",
            i32::try_from(settings.size.height).unwrap_or(i32::MAX),
        )
        .field("framerate", fps)
        .build()
}

/// Plays the pipeline until end-of-stream, an error or the timeout.
fn run_to_eos(
    pipeline: &gst::Pipeline,
    factory: &str,
    encoded_buffers: &AtomicU64,
) -> Result<(), String> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| format!("test encode through {factory} failed: the pipeline has no bus"))?;

    // A state change failure is followed by an error message on the bus,
    // which carries the reason, so it is read below instead.
    let _ = pipeline.set_state(gst::State::Playing);

    let deadline = Instant::now() + TEST_ENCODE_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = gst::ClockTime::from_nseconds(remaining.as_nanos() as u64);
        let message =
            bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]);
        let Some(message) = message else {
            return Err(format!(
                "test encode through {factory} timed out after {} s with {} encoded buffers",
                TEST_ENCODE_TIMEOUT.as_secs(),
                encoded_buffers.load(Ordering::Relaxed)
            ));
        };
        match message.view() {
            gst::MessageView::Error(error) => {
                return Err(format!(
                    "test encode through {factory} failed: {}",
                    summarise_error(error)
                ));
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }

    if encoded_buffers.load(Ordering::Relaxed) == 0 {
        return Err(format!(
            "test encode through {factory} produced no encoded buffer from {TEST_FRAMES} frames"
        ));
    }
    Ok(())
}

/// Summarises an error message in one line: the element that posted it,
/// the error and its debug detail, shortened.
fn summarise_error(error: &gst::message::Error) -> String {
    let source = error
        .src()
        .map(|object| object.name().to_string())
        .unwrap_or_else(|| "pipeline".to_string());
    let mut summary = format!("{source}: {}", error.error());
    if let Some(debug) = error.debug() {
        let detail = last_debug_line(&debug);
        if !detail.is_empty() {
            summary.push_str(&format!(" ({detail})"));
        }
    }
    summary
}

/// Extracts the most specific part of a GStreamer debug string: its last
/// line, which usually contains the reason (`streaming stopped, reason
/// not-negotiated (-4)`), cut to `MAX_DETAIL_CHARS`.
fn last_debug_line(debug: &str) -> String {
    let line = debug
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("");
    let line = line.rsplit_once("): ").map_or(line, |(_, reason)| reason);
    line.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod gst_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_debug_line_keeps_reason() {
        let debug = "../libs/gst/base/gstbasesrc.c(3132): gst_base_src_loop (): \
                     /GstPipeline:pipeline0/GstVideoTestSrc:videotestsrc0:\n\
                     streaming stopped, reason not-negotiated (-4)";
        assert_eq!(
            last_debug_line(debug),
            "streaming stopped, reason not-negotiated (-4)"
        );
    }

    #[test]
    fn last_debug_line_cuts_long_text() {
        let debug = "x".repeat(1000);
        assert_eq!(last_debug_line(&debug).chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(last_debug_line(""), "");
    }
}
