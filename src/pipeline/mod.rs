//! The media pipeline: capture, convert, encode once, and hand encoded
//! frames to the outputs.

pub mod description;
pub mod fanout;
pub mod media;

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests closer together than this are merged into one: every output that
/// reconnects at once gets the same IDR.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

/// Asks the encoder for an IDR with SPS/PPS, from any thread.
#[derive(Clone, Default)]
pub struct KeyframeRequester {
    inner: Arc<Mutex<KeyframeTarget>>,
}

#[derive(Default)]
struct KeyframeTarget {
    pad: Option<gst::glib::WeakRef<gst::Pad>>,
    last_request: Option<Instant>,
}

impl KeyframeRequester {
    /// A requester that pushes its events upstream from `pad`, a sink pad
    /// downstream of the encoder.
    pub fn for_pad(pad: &gst::Pad) -> Self {
        Self {
            inner: Arc::new(Mutex::new(KeyframeTarget {
                pad: Some(pad.downgrade()),
                last_request: None,
            })),
        }
    }

    /// Sends a force-key-unit event to the encoder. Returns whether an event
    /// was sent (false when one was sent moments ago or the pipeline is gone).
    pub fn request(&self) -> bool {
        let mut target = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if target
            .last_request
            .is_some_and(|last| last.elapsed() < KEYFRAME_REQUEST_INTERVAL)
        {
            return false;
        }
        let Some(pad) = target.pad.as_ref().and_then(|weak| weak.upgrade()) else {
            return false;
        };
        target.last_request = Some(Instant::now());
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        pad.push_event(event)
    }
}
