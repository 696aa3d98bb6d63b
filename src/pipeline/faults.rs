//! Applies a [`FaultScript`] to the test pattern and to the encoder, at the
//! points where a real device or encoder fails. The source's pad stops
//! delivering, or its caps change, or it posts an error and pushes EOS as
//! `v4l2src` does when its node disappears. The encoder element posts an
//! error. Everything downstream of those points is the code that runs for
//! a real fault. With an audio drift, the pattern flashes once a second and
//! the audio is stamped by sample count at a rate its tone does not keep.

use crate::capture::faults::FaultScript;
use crate::capture::sources;
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
        let flash = self.script.audio_drift_ppm.is_some();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(source) = pad.parent_element() else {
                return gst::PadProbeReturn::Ok;
            };
            let now = running_time(&source);
            if flash {
                if let Some(buffer) = info.buffer_mut() {
                    let size = *current_size.lock().unwrap_or_else(|p| p.into_inner());
                    light_on_whole_second(buffer.make_mut(), size);
                }
            }
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
        let drifting = self.script.audio_drift_ppm.is_some();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let silent = pad.parent_element().is_some_and(|source| {
                dead.load(Ordering::Acquire) || injector.script.is_silent(running_time(&source))
            });
            if silent {
                return gst::PadProbeReturn::Drop;
            }
            if drifting {
                if let Some(buffer) = info.buffer_mut() {
                    stamp_by_sample_count(buffer.make_mut());
                }
            }
            gst::PadProbeReturn::Ok
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

/// Whitens the luma plane of an I420 frame of `size` whose PTS falls on a
/// whole second, so the black pattern flashes once a second.
fn light_on_whole_second(buffer: &mut gst::BufferRef, size: Size) {
    let (Some(pts), Some(duration)) = (buffer.pts(), buffer.duration()) else {
        return;
    };
    if pts.nseconds() % gst::ClockTime::SECOND.nseconds() >= duration.nseconds() {
        return;
    }
    // I420 rows of luma are padded to a multiple of 4 bytes.
    let stride = (size.width as usize).div_ceil(4) * 4;
    let luma_bytes = stride * size.height as usize;
    let Ok(mut map) = buffer.map_writable() else {
        return;
    };
    let end = luma_bytes.min(map.len());
    map[..end].fill(WHITE_LUMA);
}

/// Luma of white in limited range.
const WHITE_LUMA: u8 = 235;

/// Stamps an audio buffer by its sample offset at the declared rate, as
/// the driver of a sound card with a crystal of its own does. The tone
/// is made at the card's actual rate, so these timestamps run ahead of the
/// pipeline clock by the drift.
fn stamp_by_sample_count(buffer: &mut gst::BufferRef) {
    let (offset, offset_end) = (buffer.offset(), buffer.offset_end());
    // GST_BUFFER_OFFSET_NONE is all ones.
    if offset == u64::MAX || offset_end == u64::MAX {
        return;
    }
    let rate = u64::from(sources::AUDIO_RATE_HZ);
    let time = |samples: u64| {
        gst::ClockTime::SECOND
            .mul_div_floor(samples, rate)
            .unwrap_or(gst::ClockTime::ZERO)
    };
    buffer.set_pts(time(offset));
    buffer.set_duration(time(offset_end) - time(offset));
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
