//! The live input: the source in a bin of its own, the slate beside it, and
//! an `input-selector` per medium in front of the converters:
//!
//! ```text
//! bin source-N: source ─► entry queue ─► input-selector ─► videoconvert ─► … encoder
//!               slate (NO SIGNAL) ─────────┘
//! bin source-N: audio ─► audio lock ─► entry queue ─► input-selector ─► audiorate ─► … encoders
//!               slate (silence) ───────────┘
//! ```
//!
//! A watch thread puts the slate on air when the source stalls and takes it
//! off when buffers come again. A source that fails with an error after it
//! has delivered is torn down and opened again, as a new `source-N` bin,
//! every `REOPEN_INTERVAL` until it delivers. The selectors drop the
//! source's EOS, so a failing source never ends the encode.

use super::audio_lock;
use super::description::{BuildError, ChainSpec, ElementSpec};
use super::faults::FaultInjector;
use super::media::{entry_queue, PipelineError};
use super::slate::{self, Action, Watch};
use crate::capture::{v4l2, AudioPlan, CapturePlan, VideoPlan};
use crate::config::{FrameRate, Size};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the watch thread checks the source.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Reopen failures logged at warn: the first, then one in this many.
const REOPEN_WARN_EVERY: u32 = 15;

/// Prefix of the source bins' names; the generation follows it.
const SOURCE_BIN_PREFIX: &str = "source-";

/// The origin of an error message, as the live input sorts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorOrigin {
    /// The running source, before it ever delivered a buffer: a device
    /// that fails at start, which ends the bridge as before.
    SourceAtStart,
    /// The running source, after it delivered: recovered with the slate.
    Source,
    /// A source already torn down, whose last messages arrive late.
    OldSource,
    /// Anything else in the pipeline.
    Elsewhere,
}

/// One `input-selector` and its two inputs.
struct Selector {
    element: gst::Element,
    source_pad: gst::Pad,
    slate_pad: gst::Pad,
}

impl Selector {
    /// Builds the selector and the slate into `pipeline` and links the
    /// selector, through `fill` if given, to `head`, the first element after
    /// it.
    fn build(
        pipeline: &gst::Pipeline,
        name: &str,
        slate_chain: &ChainSpec,
        fill: Option<ElementSpec>,
        head: &gst::Element,
    ) -> Result<Self, PipelineError> {
        let element = slate::selector(name).build()?;
        pipeline.add(&element).map_err(link_error)?;
        match fill {
            Some(fill) => {
                let fill = fill.build()?;
                pipeline.add(&fill).map_err(link_error)?;
                element.link(&fill).map_err(link_error)?;
                fill.link(head).map_err(link_error)?;
            }
            None => element.link(head).map_err(link_error)?,
        }
        let (_, slate_last) =
            without_missing_overlay(slate_chain).build_into(pipeline.upcast_ref())?;
        let source_pad = request_pad(&element)?;
        let slate_pad = request_pad(&element)?;
        slate_last
            .static_pad("src")
            .expect("a slate element has a src pad")
            .link(&slate_pad)
            .map_err(link_error)?;
        element.set_property("active-pad", &source_pad);
        Ok(Self {
            element,
            source_pad,
            slate_pad,
        })
    }

    fn show(&self, slate: bool) {
        let pad = if slate {
            &self.slate_pad
        } else {
            &self.source_pad
        };
        self.element.set_property("active-pad", pad);
    }
}

/// Leaves `textoverlay` out of the slate where it is not registered (it
/// comes with gstreamer1.0-x on Debian): a black slate beats no stream.
fn without_missing_overlay(chain: &ChainSpec) -> ChainSpec {
    let mut chain = chain.clone();
    if gst::ElementFactory::find("textoverlay").is_none() {
        tracing::warn!(
            "textoverlay is not registered (install gstreamer1.0-x); the slate shows black \
             without its NO SIGNAL text"
        );
        chain
            .elements
            .retain(|element| element.factory != "textoverlay");
    }
    chain
}

fn request_pad(selector: &gst::Element) -> Result<gst::Pad, PipelineError> {
    selector
        .request_pad_simple("sink_%u")
        .ok_or_else(|| BuildError::Link("input-selector gave no sink pad".into()).into())
}

fn link_error(error: impl std::fmt::Display) -> PipelineError {
    BuildError::Link(error.to_string()).into()
}

struct Shared {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    plan: CapturePlan,
    faults: Option<Arc<FaultInjector>>,
    video: Selector,
    audio: Option<Selector>,
    watch: Mutex<Watch>,
    /// Origin of `last_buffer_ns`.
    epoch: Instant,
    /// Arrival of the last source video buffer at the selector, in ns
    /// after `epoch` plus one; zero before the first.
    last_buffer_ns: AtomicU64,
    generation: AtomicU32,
    current: Mutex<Option<gst::Bin>>,
    reopen_attempts: AtomicU32,
    stopped: AtomicBool,
    /// Whether the slate is on air, read by the status server.
    slate_on_air: Arc<AtomicBool>,
}

/// The live input of a media pipeline. Cheap to clone.
#[derive(Clone)]
pub struct InputSwitch {
    shared: Arc<Shared>,
}

impl InputSwitch {
    /// Builds the source, the slate and the selectors into `pipeline` and
    /// links them to `video_head` and `audio_head`, the converters.
    pub fn build(
        pipeline: &gst::Pipeline,
        plan: &CapturePlan,
        size: Size,
        fps: FrameRate,
        faults: Option<Arc<FaultInjector>>,
        video_head: &gst::Element,
        audio_head: Option<&gst::Element>,
    ) -> Result<Self, PipelineError> {
        let video = Selector::build(
            pipeline,
            "video-select",
            &slate::video_chain(size, fps),
            None,
            video_head,
        )?;
        let audio = match audio_head {
            Some(head) => Some(Selector::build(
                pipeline,
                "audio-select",
                &slate::audio_chain(),
                Some(slate::audio_fill()),
                head,
            )?),
            None => None,
        };
        let input = Self {
            shared: Arc::new(Shared {
                pipeline: pipeline.downgrade(),
                plan: plan.clone(),
                faults,
                video,
                audio,
                watch: Mutex::new(Watch::new(Instant::now())),
                epoch: Instant::now(),
                last_buffer_ns: AtomicU64::new(0),
                generation: AtomicU32::new(0),
                current: Mutex::new(None),
                reopen_attempts: AtomicU32::new(0),
                stopped: AtomicBool::new(false),
                slate_on_air: Arc::new(AtomicBool::new(false)),
            }),
        };
        input.add_selector_probes();
        let bin = input.build_source_bin(0)?;
        pipeline.add(&bin).map_err(link_error)?;
        input.link_source_bin(&bin)?;
        *input
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(bin);
        Ok(input)
    }

    /// Drops the source's EOS at the selectors, and times the arrival of
    /// its video buffers.
    fn add_selector_probes(&self) {
        let selectors = std::iter::once(&self.shared.video).chain(&self.shared.audio);
        for selector in selectors {
            selector
                .source_pad
                .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
                    let Some(event) = info.event() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    match event.view() {
                        gst::EventView::Eos(_) => {
                            tracing::debug!("dropped the source's EOS at the input selector");
                            // gstreamer-rs 0.24 unrefs the event itself and
                            // clears the probe's data. On `Drop`, GStreamer
                            // 1.22.0 then unrefs that NULL and logs a
                            // CRITICAL. On `Handled` it leaves the event to
                            // the probe.
                            gst::PadProbeReturn::Handled
                        }
                        gst::EventView::Caps(caps) => {
                            tracing::debug!(caps = %caps.caps(), "source caps");
                            gst::PadProbeReturn::Ok
                        }
                        _ => gst::PadProbeReturn::Ok,
                    }
                });
        }
        let shared = Arc::downgrade(&self.shared);
        self.shared
            .video
            .source_pad
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if let Some(shared) = shared.upgrade() {
                    let elapsed = shared.epoch.elapsed().as_nanos() as u64;
                    shared.last_buffer_ns.store(elapsed + 1, Ordering::Release);
                }
                gst::PadProbeReturn::Ok
            });
    }

    /// Builds source bin `generation`: the plan's chains, each followed by
    /// its entry queue and a ghost pad, `video` and `audio`.
    fn build_source_bin(&self, generation: u32) -> Result<gst::Bin, PipelineError> {
        let bin = gst::Bin::with_name(&format!("{SOURCE_BIN_PREFIX}{generation}"));
        let VideoPlan::Chain(video) = &self.shared.plan.video else {
            return Err(BuildError::Link("a clip has no live input".into()).into());
        };
        add_branch(&bin, video, "video-entry", "video")?;
        if let (AudioPlan::Chain(audio), Some(_)) = (&self.shared.plan.audio, &self.shared.audio) {
            add_branch(&bin, &audio_lock::locked(audio), "audio-entry", "audio")?;
            audio_lock::attach(&bin);
        }
        if let Some(faults) = &self.shared.faults {
            let size = self.shared.plan.size.unwrap_or(Size::new(1280, 720));
            faults.attach_to_source(&bin, size);
        }
        Ok(bin)
    }

    fn link_source_bin(&self, bin: &gst::Bin) -> Result<(), PipelineError> {
        let link = |name: &str, selector: &Selector| {
            bin.static_pad(name)
                .expect("a source bin has a ghost pad per medium")
                .link(&selector.source_pad)
                .map_err(link_error)
        };
        link("video", &self.shared.video)?;
        if let Some(audio) = &self.shared.audio {
            link("audio", audio)?;
        }
        Ok(())
    }

    /// Sorts an error message by where it came from.
    pub fn origin(&self, message: &gst::Message) -> ErrorOrigin {
        let Some(generation) = message.src().and_then(source_generation) else {
            return ErrorOrigin::Elsewhere;
        };
        if generation != self.shared.generation.load(Ordering::Acquire) {
            ErrorOrigin::OldSource
        } else if self.shared.last_buffer_ns.load(Ordering::Acquire) == 0 {
            ErrorOrigin::SourceAtStart
        } else {
            ErrorOrigin::Source
        }
    }

    /// Puts the slate on air after a source error, and schedules a reopen.
    pub fn source_failed(&self, message: &str) {
        let action = self.lock_watch().source_failed(Instant::now());
        tracing::error!(
            %message,
            retry_s = slate::REOPEN_INTERVAL.as_secs(),
            "source failed: sending the slate and reopening the source"
        );
        if action == Some(Action::ShowSlate) {
            self.show(true);
        }
    }

    /// Starts the thread that watches the source; it ends with `stop`.
    pub fn start_watch(&self) {
        *self.lock_watch() = Watch::new(Instant::now());
        let input = self.clone();
        let spawned = thread::Builder::new()
            .name("input-watch".into())
            .spawn(move || input.run_watch());
        if let Err(error) = spawned {
            tracing::error!(%error, "failed to start the input watch; the slate stays off");
        }
    }

    /// Stops switching, before a clean stop or a shutdown.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
    }

    fn run_watch(&self) {
        while !self.shared.stopped.load(Ordering::Acquire) {
            thread::sleep(WATCH_INTERVAL);
            if self.shared.pipeline.upgrade().is_none() {
                break;
            }
            let now = Instant::now();
            let action = self.lock_watch().tick(now, self.last_buffer());
            match action {
                Some(Action::ShowSlate) => {
                    tracing::warn!(
                        timeout_ms = slate::STALL_TIMEOUT.as_millis() as u64,
                        "source lost: sending the slate"
                    );
                    self.show(true);
                }
                Some(Action::ShowSource) => {
                    tracing::info!("source back");
                    self.show(false);
                }
                Some(Action::Reopen) => self.reopen(),
                None => {}
            }
        }
    }

    fn reopen(&self) {
        let attempt = self.shared.reopen_attempts.fetch_add(1, Ordering::AcqRel) + 1;
        match self.replace_source() {
            Ok(generation) => {
                self.shared.reopen_attempts.store(0, Ordering::Release);
                tracing::info!(attempt, generation, "source reopened; waiting for video");
                self.lock_watch().reopened(Instant::now());
            }
            Err(cause) => {
                if attempt == 1 || attempt.is_multiple_of(REOPEN_WARN_EVERY) {
                    tracing::warn!(
                        attempt,
                        delay_s = slate::REOPEN_INTERVAL.as_secs(),
                        %cause,
                        "failed to reopen the source; trying again"
                    );
                } else {
                    tracing::debug!(attempt, %cause, "failed to reopen the source");
                }
                self.lock_watch().reopen_failed(Instant::now());
            }
        }
    }

    /// Tears down the current source bin and opens a new one. Returns the
    /// new bin's generation.
    fn replace_source(&self) -> Result<u32, String> {
        let pipeline = self
            .shared
            .pipeline
            .upgrade()
            .ok_or("the pipeline is gone")?;
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.take() {
            let _ = old.set_state(gst::State::Null);
            let _ = pipeline.remove(&old);
        }
        self.check_openable(&pipeline)?;

        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let bin = self
            .build_source_bin(generation)
            .map_err(|e| e.to_string())?;
        pipeline.add(&bin).map_err(|e| e.to_string())?;
        let started = self
            .link_source_bin(&bin)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                bin.sync_state_with_parent()
                    .map_err(|_| "the source failed to start".to_string())
            });
        if let Err(cause) = started {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
            return Err(cause);
        }
        *current = Some(bin);
        Ok(generation)
    }

    /// Fails when the source cannot be there: a V4L2 node that does not
    /// exist or cannot be opened, or an unplugged test source.
    fn check_openable(&self, pipeline: &gst::Pipeline) -> Result<(), String> {
        if let Some(faults) = &self.shared.faults {
            let now = pipeline
                .current_running_time()
                .map_or(Duration::ZERO, |time| Duration::from_nanos(time.nseconds()));
            faults.check_openable(now)?;
        }
        let VideoPlan::Chain(chain) = &self.shared.plan.video else {
            return Ok(());
        };
        match chain
            .find("v4l2src")
            .and_then(|source| source.get("device"))
        {
            Some(device) => v4l2::check_device(Path::new(device)).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Returns the flag that is set while the slate is on air.
    pub fn slate_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.shared.slate_on_air)
    }

    fn show(&self, slate: bool) {
        self.shared.slate_on_air.store(slate, Ordering::Release);
        self.shared.video.show(slate);
        if let Some(audio) = &self.shared.audio {
            audio.show(slate);
        }
    }

    fn last_buffer(&self) -> Option<Instant> {
        match self.shared.last_buffer_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.shared.epoch + Duration::from_nanos(ns - 1)),
        }
    }

    fn lock_watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.shared
            .watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds `chain`, then an entry queue named `entry`, to `bin`, and exposes
/// the queue's output as ghost pad `pad_name`.
fn add_branch(
    bin: &gst::Bin,
    chain: &ChainSpec,
    entry: &str,
    pad_name: &str,
) -> Result<(), PipelineError> {
    let (_, last) = chain.build_into(bin)?;
    let queue = entry_queue(entry, true).build()?;
    bin.add(&queue).map_err(link_error)?;
    last.link(&queue).map_err(link_error)?;
    let target = queue.static_pad("src").expect("a queue has a src pad");
    let ghost = gst::GhostPad::builder_with_target(&target)
        .map_err(link_error)?
        .name(pad_name)
        .build();
    bin.add_pad(&ghost).map_err(link_error)?;
    Ok(())
}

/// Returns the generation of the source bin that contains `object`, if any.
fn source_generation(object: &gst::Object) -> Option<u32> {
    let mut current = Some(object.clone());
    while let Some(object) = current {
        if object.is::<gst::Bin>() {
            if let Some(generation) = object.name().strip_prefix(SOURCE_BIN_PREFIX) {
                return generation.parse().ok();
            }
        }
        current = object.parent();
    }
    None
}
