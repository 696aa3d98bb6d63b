//! The preview still for the status page: a branch off the raw video after
//! the input selector, so it shows the slate too, that keeps the latest
//! JPEG. It exists only while the status server is on.
//!
//! ```text
//! … input-selector ─► tee ─► videoconvert ─► … encoder
//!                      └──► queue (leaky) ─► videorate ─► 1 fps ─► videoscale ─► videoconvert ─► 320 px wide ─► jpegenc ─► appsink
//! ```

use super::description::{BuildError, ChainSpec, ElementSpec};
use super::media::PipelineError;
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::{Arc, Mutex};

/// Width of the preview still in pixels; the height keeps the picture's
/// aspect ratio.
pub const PREVIEW_WIDTH: u32 = 320;

/// Describes the branch after the tee. The leaky queue drops frames rather
/// than hold up the encode, and the rate drops to 1 fps before any scaling
/// or JPEG work.
pub fn chain() -> ChainSpec {
    ChainSpec::new(vec![
        ElementSpec::new("queue")
            .named("preview-queue")
            .property("leaky", "downstream")
            .property("max-size-buffers", 2)
            .property("max-size-bytes", 0)
            .property("max-size-time", 0u64),
        ElementSpec::new("videorate").property("drop-only", true),
        ElementSpec::caps_filter("video/x-raw,framerate=1/1"),
        ElementSpec::new("videoscale"),
        ElementSpec::new("videoconvert"),
        ElementSpec::caps_filter(&format!(
            "video/x-raw,format=I420,width={PREVIEW_WIDTH},pixel-aspect-ratio=1/1"
        )),
        ElementSpec::new("jpegenc").property("quality", 80),
        ElementSpec::new("appsink").named("preview-sink"),
    ])
}

/// The latest preview JPEG. Clones share it.
#[derive(Clone, Default)]
pub struct Preview {
    latest: Arc<Mutex<Option<Bytes>>>,
}

impl Preview {
    /// Returns the latest JPEG, `None` before the first.
    pub fn latest(&self) -> Option<Bytes> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn store(&self, jpeg: Bytes) {
        *self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(jpeg);
    }
}

/// Puts a tee in front of `video_head` and builds the preview branch on
/// it. Call before the pipeline starts.
pub fn attach(
    pipeline: &gst::Pipeline,
    video_head: &gst::Element,
) -> Result<Preview, PipelineError> {
    let bin = pipeline.upcast_ref::<gst::Bin>();
    let head_pad = video_head
        .static_pad("sink")
        .expect("a converter has a sink pad");
    let upstream = head_pad
        .peer()
        .ok_or_else(|| link_error("the video converter has no upstream element"))?;
    upstream.unlink(&head_pad).map_err(link_error)?;

    let tee = ElementSpec::new("tee").named("preview-tee").build()?;
    bin.add(&tee).map_err(link_error)?;
    let tee_sink = tee.static_pad("sink").expect("a tee has a sink pad");
    upstream.link(&tee_sink).map_err(link_error)?;
    tee.link(video_head).map_err(link_error)?;

    let branch = chain();
    tracing::debug!("preview branch: (the video tee) ! {branch}");
    let (first, last) = branch.build_into(bin)?;
    tee.link(&first).map_err(link_error)?;

    let appsink = last
        .downcast::<gst_app::AppSink>()
        .expect("the preview chain ends in an appsink");
    // The preview takes no part in preroll or clock sync, so it can never
    // hold up a clip's start or the encode.
    appsink.set_sync(false);
    appsink.set_async(false);
    appsink.set_max_buffers(1);
    appsink.set_drop(true);
    let preview = Preview::default();
    let store = preview.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    if let Ok(map) = buffer.map_readable() {
                        store.store(Bytes::copy_from_slice(map.as_slice()));
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(preview)
}

fn link_error(error: impl std::fmt::Display) -> PipelineError {
    BuildError::Link(error.to_string()).into()
}
