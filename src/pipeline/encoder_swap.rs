//! Replacing a failed encoder mid-stream. The encoder chain sits between two
//! named elements of the video tail:
//!
//! ```text
//! … videorate ! capsfilter name=raw-caps ! <encoder chain> ! h264parse name=h264parse ! …
//! ```
//!
//! The swap blocks `raw-caps`' output, takes the old chain out, links a new
//! one in its place and unblocks. Everything else, the appsinks and every
//! output with them, runs on. Upstream waits at the block, and `videorate`
//! then repeats the last frame over the wait, so receivers see no hole in
//! the timestamps.

use super::description::{BuildError, ChainSpec};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::time::Duration;

/// Name of the raw caps filter in front of the encoder chain.
pub const RAW_CAPS_NAME: &str = "raw-caps";

/// Name of the parser after the encoder chain.
pub const PARSER_NAME: &str = "h264parse";

/// How long the swap waits for a buffer to reach the block. An encoder that
/// failed may have stopped the flow, and then the swap goes ahead at once.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// Returns the elements of the encoder chain, in order.
pub fn encoder_chain(pipeline: &gst::Pipeline) -> Vec<gst::Element> {
    let Some(raw_caps) = pipeline.by_name(RAW_CAPS_NAME) else {
        return Vec::new();
    };
    let mut chain = Vec::new();
    let mut next = downstream_of(&raw_caps);
    while let Some(element) = next {
        if element.name() == PARSER_NAME {
            break;
        }
        next = downstream_of(&element);
        chain.push(element);
    }
    chain
}

/// Checks whether `message` came from an element of the encoder chain.
pub fn is_from_encoder(pipeline: &gst::Pipeline, message: &gst::Message) -> bool {
    let Some(source) = message.src() else {
        return false;
    };
    encoder_chain(pipeline)
        .iter()
        .any(|element| element.upcast_ref::<gst::Object>() == source)
}

/// Replaces the encoder chain with `chain`, which takes `raw_caps`.
/// Returns the new chain's elements.
pub fn replace(
    pipeline: &gst::Pipeline,
    chain: &ChainSpec,
    raw_caps: &str,
) -> Result<Vec<gst::Element>, String> {
    let caps: gst::Caps = raw_caps
        .parse()
        .map_err(|_| format!("invalid raw caps for the new encoder: {raw_caps}"))?;
    let filter = pipeline
        .by_name(RAW_CAPS_NAME)
        .ok_or("the video tail has no raw caps filter")?;
    let parser = pipeline
        .by_name(PARSER_NAME)
        .ok_or("the video tail has no h264parse")?;
    let new = chain
        .elements
        .iter()
        .map(|spec| spec.build())
        .collect::<Result<Vec<_>, BuildError>>()
        .map_err(|error| error.to_string())?;
    let (Some(first), Some(last)) = (new.first(), new.last()) else {
        return Err("the new encoder chain is empty".into());
    };

    let old = encoder_chain(pipeline);
    let filter_src = filter
        .static_pad("src")
        .expect("a capsfilter has a src pad");
    let (blocked_sender, blocked) = crossbeam_channel::bounded(1);
    let probe = filter_src.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |_, _| {
        let _ = blocked_sender.try_send(());
        gst::PadProbeReturn::Ok
    });
    if blocked.recv_timeout(BLOCK_TIMEOUT).is_err() {
        tracing::debug!("no buffer reached the encoder; replacing it without one");
    }

    for element in &old {
        let _ = element.set_state(gst::State::Null);
        let _ = pipeline.remove(element);
    }
    let linked = pipeline
        .add_many(&new)
        .map_err(|error| error.to_string())
        .and_then(|()| gst::Element::link_many(&new).map_err(|error| error.to_string()))
        .and_then(|()| {
            filter.set_property("caps", &caps);
            filter.link(first).map_err(|error| error.to_string())?;
            last.link(&parser).map_err(|error| error.to_string())
        })
        .and_then(|()| {
            new.iter().try_for_each(|element| {
                element
                    .sync_state_with_parent()
                    .map_err(|_| format!("{} failed to start", element.name()))
            })
        });
    if let Some(probe) = probe {
        filter_src.remove_probe(probe);
    }
    linked.map(|()| new)
}

/// Returns the element that `element`'s src pad is linked to.
fn downstream_of(element: &gst::Element) -> Option<gst::Element> {
    element.static_pad("src")?.peer()?.parent_element()
}
