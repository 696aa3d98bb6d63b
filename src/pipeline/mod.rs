//! The media pipeline: capture, convert, encode once, and hand encoded
//! frames to the outputs.

mod audio_lock;
pub mod description;
mod encoder_swap;
pub mod fanout;
mod faults;
mod input;
pub mod media;
pub mod observer;
pub mod preview;
pub mod print;
pub mod slate;

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};

/// Asks the encoder for an IDR with SPS/PPS, from any thread.
#[derive(Clone, Default)]
pub struct KeyframeRequester {
    inner: Arc<Mutex<KeyframeTarget>>,
}

#[derive(Default)]
struct KeyframeTarget {
    pad: Option<gst::glib::WeakRef<gst::Pad>>,
}

impl KeyframeRequester {
    /// A requester that pushes its events upstream from `pad`, a sink pad
    /// downstream of the encoder.
    pub fn for_pad(pad: &gst::Pad) -> Self {
        Self {
            inner: Arc::new(Mutex::new(KeyframeTarget {
                pad: Some(pad.downgrade()),
            })),
        }
    }

    /// Sends a force-key-unit event to the encoder. Returns whether an event
    /// was sent (false when the pipeline is gone). Requests are never merged:
    /// an output that starts a moment after another may already have missed
    /// the IDR the first one asked for, and requests come only when a
    /// session starts, so they cannot flood the encoder.
    pub fn request(&self) -> bool {
        let target = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pad) = target.pad.as_ref().and_then(|weak| weak.upgrade()) else {
            return false;
        };
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        pad.push_event(event)
    }
}
