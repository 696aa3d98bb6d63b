//! A small real encode for tests: test sources, x264 and AAC, handing
//! frames to a `Fanout` as the bridge's media pipeline does.
//!
//! ```text
//! videotestsrc is-live ! caps ! queue ! x264enc ! h264parse ! caps(byte-stream, au) ! appsink
//! audiotestsrc is-live ! audioconvert ! audioresample ! caps ! avenc_aac ! aacparse ! appsink
//! ```

use bridge::output::{Frame, MediaKind};
use bridge::pipeline::fanout::Fanout;
use bridge::pipeline::KeyframeRequester;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

#[derive(Clone, Debug)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub framerate: i32,
    pub bitrate_kbps: u32,
    pub key_int_max: u32,
    pub speed_preset: &'static str,
    pub audio: bool,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            framerate: 30,
            bitrate_kbps: 1500,
            key_int_max: 60,
            speed_preset: "ultrafast",
            audio: true,
        }
    }
}

pub struct TestEncoder {
    pipeline: gst::Pipeline,
    pub fanout: Fanout,
    pub keyframes: KeyframeRequester,
}

fn make(factory: &str) -> gst::Element {
    gst::ElementFactory::make(factory)
        .build()
        .unwrap_or_else(|_| panic!("GStreamer element {factory} is missing"))
}

fn frame_sink(fanout: &Fanout, kind: MediaKind) -> gst_app::AppSink {
    let sink = gst_app::AppSink::builder().sync(false).build();
    let fanout = fanout.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                fanout.publish(Frame::new(kind, sample));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    sink
}

impl TestEncoder {
    pub fn start(settings: &EncoderSettings) -> Self {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let fanout = Fanout::new();

        let source = make("videotestsrc");
        source.set_property("is-live", true);
        let raw_caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", settings.width as i32)
            .field("height", settings.height as i32)
            .field("framerate", gst::Fraction::new(settings.framerate, 1))
            .build();
        let raw_filter = make("capsfilter");
        raw_filter.set_property("caps", &raw_caps);
        let queue = make("queue");
        let encoder = make("x264enc");
        encoder.set_property("bitrate", settings.bitrate_kbps);
        encoder.set_property("key-int-max", settings.key_int_max);
        encoder.set_property_from_str("speed-preset", settings.speed_preset);
        encoder.set_property_from_str("tune", "zerolatency");
        let parser = make("h264parse");
        parser.set_property("config-interval", -1i32);
        let h264_filter = make("capsfilter");
        h264_filter.set_property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        );
        let video_sink = frame_sink(&fanout, MediaKind::Video);
        let video = [
            &source,
            &raw_filter,
            &queue,
            &encoder,
            &parser,
            &h264_filter,
            video_sink.upcast_ref(),
        ];
        pipeline.add_many(video).unwrap();
        gst::Element::link_many(video).unwrap();
        // Keyframe requests are pushed upstream from the appsink's sink pad.
        let keyframes = KeyframeRequester::for_pad(&video_sink.static_pad("sink").unwrap());

        if settings.audio {
            let source = make("audiotestsrc");
            source.set_property("is-live", true);
            source.set_property_from_str("wave", "sine");
            let convert = make("audioconvert");
            let resample = make("audioresample");
            let filter = make("capsfilter");
            filter.set_property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", 48000i32)
                    .field("channels", 2i32)
                    .build(),
            );
            let encoder = make("avenc_aac");
            let parser = make("aacparse");
            let sink = frame_sink(&fanout, MediaKind::Audio);
            let audio = [
                &source,
                &convert,
                &resample,
                &filter,
                &encoder,
                &parser,
                sink.upcast_ref(),
            ];
            pipeline.add_many(audio).unwrap();
            gst::Element::link_many(audio).unwrap();
        }

        pipeline.set_state(gst::State::Playing).unwrap();
        Self {
            pipeline,
            fanout,
            keyframes,
        }
    }

    /// Closes every output's channel (a clean stop), then stops the pipeline.
    pub fn stop(self) {
        self.fanout.close();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for TestEncoder {
    fn drop(&mut self) {
        self.fanout.close();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
