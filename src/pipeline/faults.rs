//! Applies a [`FaultScript`] to the test pattern and to the encoder, at the
//! points where a real device or encoder fails. The source's pad stops
//! delivering, or its caps change, or it posts an error and pushes EOS as
//! `v4l2src` does when its node disappears. The encoder element posts an
//! error. Everything downstream of those points is the code that runs for
//! a real fault.

use crate::capture::faults::FaultScript;
use crate::config::Size;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The script and what has already happened, shared by every source bin the
/// pipeline builds, so an error fires once even after the source reopens.
pub struct FaultInjector {
    script: FaultScript,
    /// One flag per `script.source_errors`: set once that error has fired.
    fired_source_errors: Mutex<Vec<bool>>,
    fired_encoder_error: AtomicBool,
}

impl FaultInjector {
    pub fn new(script: FaultScript) -> Arc<Self> {
        let errors = script.source_errors.len();
        Arc::new(Self {
            script,
            fired_source_errors: Mutex::new(vec![false; errors]),
            fired_encoder_error: AtomicBool::new(false),
        })
    }

    /// Fails like a missing device node while the script has the source
    /// unplugged at running time `now`.
    pub fn check_openable(&self, now: Duration) -> Result<(), String> {
        match self.script.unplugged_at(now) {
            Some(window) => Err(format!(
                "the test source is unplugged until {:.1} s",
                window.end.as_secs_f64()
            )),
            None => Ok(()),
        }
    }

    /// Adds the probes that stall, resize and fail the test pattern in
    /// `bin`. `size` is the size the source starts at.
    pub fn attach_to_source(self: &Arc<Self>, bin: &gst::Bin, size: Size) {
        // Both media of one source die together, as when a USB device drops.
        let dead = Arc::new(AtomicBool::new(false));
        let elements = bin.iterate_elements().into_iter().flatten();
        for element in elements {
            let factory = element.factory().map(|factory| factory.name().to_string());
            match factory.as_deref() {
                Some("videotestsrc") => self.attach_to_video(&element, size, dead.clone()),
                Some("audiotestsrc") => self.attach_to_audio(&element, dead.clone()),
                _ => {}
            }
        }
    }

    fn attach_to_video(self: &Arc<Self>, source: &gst::Element, size: Size, dead: Arc<AtomicBool>) {
        let Some(pad) = source.static_pad("src") else {
            return;
        };
        let caps_filter = pad
            .peer()
            .and_then(|peer| peer.parent_element())
            .filter(|element| element.has_property("caps"));
        let injector = Arc::clone(self);
        let current_size = Mutex::new(size);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            let Some(source) = pad.parent_element() else {
                return gst::PadProbeReturn::Ok;
            };
            let now = running_time(&source);
            if dead.load(Ordering::Acquire) {
                return gst::PadProbeReturn::Drop;
            }
            if injector.take_source_error(now) {
                dead.store(true, Ordering::Release);
                gst::element_error!(
                    source,
                    gst::ResourceError::Read,
                    (
                        "test fault: the source failed at {:.1} s",
                        now.as_secs_f64()
                    )
                );
                pad.push_event(gst::event::Eos::new());
                return gst::PadProbeReturn::Drop;
            }
            if injector.script.is_silent(now) {
                return gst::PadProbeReturn::Drop;
            }
            let size = injector.script.size_at(now, size);
            let mut current = current_size.lock().unwrap_or_else(|p| p.into_inner());
            if size != *current {
                *current = size;
                if let Some(filter) = &caps_filter {
                    resize(filter, size);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    fn attach_to_audio(self: &Arc<Self>, source: &gst::Element, dead: Arc<AtomicBool>) {
        let Some(pad) = source.static_pad("src") else {
            return;
        };
        let injector = Arc::clone(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            let silent = pad.parent_element().is_some_and(|source| {
                dead.load(Ordering::Acquire) || injector.script.is_silent(running_time(&source))
            });
            if silent {
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    }

    /// Makes `encoder` post an error at the script's first encoder-error
    /// time, once per process, so the encoder that replaces it runs on.
    pub fn attach_to_encoder(self: &Arc<Self>, encoder: &gst::Element) {
        let Some(at) = self.script.encoder_errors.first().copied() else {
            return;
        };
        let Some(pad) = encoder.static_pad("sink") else {
            return;
        };
        let injector = Arc::clone(self);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            let Some(encoder) = pad.parent_element() else {
                return gst::PadProbeReturn::Ok;
            };
            if running_time(&encoder) >= at
                && !injector.fired_encoder_error.swap(true, Ordering::AcqRel)
            {
                gst::element_error!(
                    encoder,
                    gst::StreamError::Encode,
                    ("test fault: the encoder failed")
                );
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Returns true, once, when a source error of the script is due at `now`.
    fn take_source_error(&self, now: Duration) -> bool {
        let mut fired = self
            .fired_source_errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (index, window) in self.script.source_errors.iter().enumerate() {
            if now >= window.start && !fired[index] {
                fired[index] = true;
                return true;
            }
        }
        false
    }
}

/// Returns the running time of `element`'s pipeline, zero before it runs.
fn running_time(element: &gst::Element) -> Duration {
    element
        .current_running_time()
        .map_or(Duration::ZERO, |time| Duration::from_nanos(time.nseconds()))
}

/// Sets a new size on the caps filter after the test pattern, which then
/// renegotiates, as a capture card does when the signal changes.
fn resize(filter: &gst::Element, size: Size) {
    let caps = filter.property::<Option<gst::Caps>>("caps");
    let Some(mut caps) = caps else { return };
    {
        let caps = caps.make_mut();
        caps.set("width", size.width as i32);
        caps.set("height", size.height as i32);
    }
    tracing::info!(%size, "test fault: the source changes its picture size");
    filter.set_property("caps", &caps);
}
