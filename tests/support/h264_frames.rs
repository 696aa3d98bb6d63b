//! H.264 frames made ahead of time, for tests that feed an output by hand.
//! A short x264 encode is pulled from an appsink as fast as it runs, and
//! helpers cut access units into one buffer per NAL unit and shift
//! timestamps.
//!
//! ```text
//! videotestsrc num-buffers=N ! caps ! x264enc ! h264parse ! caps(byte-stream, au) ! appsink
//! ```

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Encodes `count` frames of 320x180 test video at 30 fps with an IDR every
/// `key_int_max` frames, and returns the access units (Annex B, SPS and PPS
/// before each IDR) with their caps.
pub fn encode_access_units(count: i32, key_int_max: u32) -> Vec<gst::Sample> {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .unwrap_or_else(|_| panic!("GStreamer element {factory} is missing"))
    };
    let source = make("videotestsrc");
    source.set_property("num-buffers", count);
    let raw = make("capsfilter");
    raw.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", 320i32)
            .field("height", 180i32)
            .field("framerate", gst::Fraction::new(30, 1))
            .build(),
    );
    let encoder = make("x264enc");
    encoder.set_property("key-int-max", key_int_max);
    encoder.set_property_from_str("speed-preset", "ultrafast");
    encoder.set_property_from_str("tune", "zerolatency");
    let parser = make("h264parse");
    parser.set_property("config-interval", -1i32);
    let filter = make("capsfilter");
    filter.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
    );
    let sink = gst_app::AppSink::builder().sync(false).build();
    let chain = [&source, &raw, &encoder, &parser, &filter, sink.upcast_ref()];
    pipeline.add_many(chain).unwrap();
    gst::Element::link_many(chain).unwrap();

    pipeline.set_state(gst::State::Playing).unwrap();
    let mut samples = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        samples.push(sample);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(samples.len(), count as usize, "x264 returned fewer frames");
    samples
}

/// Returns the NAL units of an Annex B buffer, without start codes.
pub fn nal_units(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (index, &start) in starts.iter().enumerate() {
        let end = starts.get(index + 1).map_or(data.len(), |next| next - 3);
        let unit = &data[start..end];
        let trimmed = unit
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        units.push(unit[..trimmed].to_vec());
    }
    units
}

/// Cuts an access unit into one sample per NAL unit, each with the access
/// unit's timestamps and caps. Only SPS, PPS and IDR buffers lack the
/// DELTA_UNIT flag.
pub fn split_per_nal_unit(sample: &gst::Sample) -> Vec<gst::Sample> {
    let buffer = sample.buffer().unwrap();
    let map = buffer.map_readable().unwrap();
    nal_units(map.as_slice())
        .into_iter()
        .map(|unit| {
            let nal_type = unit[0] & 0x1f;
            let mut data = vec![0, 0, 0, 1];
            data.extend_from_slice(&unit);
            let mut part = gst::Buffer::from_mut_slice(data);
            {
                let part = part.get_mut().unwrap();
                part.set_pts(buffer.pts());
                part.set_dts(buffer.dts());
                if !matches!(nal_type, 5 | 7 | 8) {
                    part.set_flags(gst::BufferFlags::DELTA_UNIT);
                }
            }
            gst::Sample::builder()
                .buffer(&part)
                .caps(&sample.caps_owned().unwrap())
                .build()
        })
        .collect()
}

/// Returns `sample` with PTS and DTS moved by `offset`.
pub fn shifted(sample: &gst::Sample, offset: gst::ClockTime) -> gst::Sample {
    let mut buffer = sample.buffer().unwrap().copy();
    {
        let buffer = buffer.get_mut().unwrap();
        let pts = buffer.pts().map(|pts| pts + offset);
        let dts = buffer.dts().map(|dts| dts + offset);
        buffer.set_pts(pts);
        buffer.set_dts(dts);
    }
    gst::Sample::builder()
        .buffer(&buffer)
        .caps(&sample.caps_owned().unwrap())
        .build()
}
