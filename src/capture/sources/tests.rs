use super::*;
use crate::capture::AudioSpec;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::{Arc, Mutex};

fn request(size: Option<&str>, fps: Option<&str>) -> CaptureRequest {
    CaptureRequest {
        size: size.map(|s| s.parse().unwrap()),
        fps: fps.map(|f| f.parse().unwrap()),
        audio: AudioSpec::Auto,
    }
}

#[test]
fn test_chains_describe_pattern_and_tone() {
    let video = test_video_chain(Size::new(640, 360), FrameRate::new(25, 1));
    assert_eq!(video.factories(), vec!["videotestsrc", "capsfilter"]);
    assert_eq!(video.elements[0].get("is-live"), Some("true"));
    assert_eq!(video.elements[0].get("pattern"), Some("ball"));
    assert_eq!(
        video.elements[1].get("caps"),
        Some("video/x-raw,format=I420,width=640,height=360,framerate=25/1")
    );

    let audio = test_audio_chain();
    assert_eq!(audio.factories(), vec!["audiotestsrc"]);
    assert_eq!(audio.elements[0].get("is-live"), Some("true"));
    assert_eq!(audio.elements[0].get("wave"), Some("sine"));
    assert_eq!(audio.elements[0].get("freq"), Some("440"));
}

/// (size, fps, factories after the source and deinterlace, caps)
type ConversionCase = (
    Option<&'static str>,
    Option<&'static str>,
    Vec<&'static str>,
    Option<&'static str>,
);

#[test]
fn decklink_chain_table() {
    let cases: Vec<ConversionCase> = vec![
        (None, None, vec![], None),
        (
            None,
            Some("29.97"),
            vec!["videorate", "capsfilter"],
            Some("video/x-raw,framerate=30000/1001"),
        ),
        (
            Some("1280x720"),
            None,
            vec!["videoscale", "capsfilter"],
            Some("video/x-raw,width=1280,height=720"),
        ),
        (
            Some("1280x720"),
            Some("50"),
            vec!["videorate", "videoscale", "capsfilter"],
            Some("video/x-raw,width=1280,height=720,framerate=50/1"),
        ),
    ];
    for (size, fps, conversion, caps) in cases {
        let chain = decklink_video_chain(1, &request(size, fps));
        let label = format!("{size:?} {fps:?}");
        assert_eq!(
            chain.factories()[..2],
            ["decklinkvideosrc", "deinterlace"],
            "{label}"
        );
        assert_eq!(chain.factories()[2..], conversion[..], "{label}");
        let source = &chain.elements[0];
        assert_eq!(source.get("device-number"), Some("1"), "{label}");
        assert_eq!(source.get("mode"), Some("auto"), "{label}");
        assert_eq!(source.get("connection"), Some("auto"), "{label}");
        assert_eq!(chain.elements[1].get("mode"), Some("auto"), "{label}");
        let filter = chain.find("capsfilter").and_then(|e| e.get("caps"));
        assert_eq!(filter, caps, "{label}");
    }
}

#[test]
fn decklink_audio_description() {
    let chain = decklink_audio_chain(3);
    assert_eq!(chain.factories(), vec!["decklinkaudiosrc"]);
    assert_eq!(chain.elements[0].get("device-number"), Some("3"));
    assert_eq!(chain.elements[0].get("channels"), Some("2"));
}

/// The DeckLink plugin registers without a card, so its chains can be built
/// here: this checks every property name and enum value against the real
/// elements.
#[test]
fn decklink_chains_build() {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let (source, last) = decklink_video_chain(2, &request(Some("1280x720"), Some("50")))
        .build_into(pipeline.upcast_ref())
        .unwrap();
    assert_eq!(source.property::<i32>("device-number"), 2);
    assert_eq!(
        last.property::<gst::Caps>("caps").to_string(),
        "video/x-raw, width=(int)1280, height=(int)720, framerate=(fraction)50/1"
    );

    let (audio, _) = decklink_audio_chain(2)
        .build_into(pipeline.upcast_ref())
        .unwrap();
    assert_eq!(audio.property::<i32>("device-number"), 2);
}

#[test]
fn avf_chain_table() {
    let cases = [
        (None, None, None),
        (
            Some("1920x1080"),
            Some("30"),
            Some("video/x-raw,width=1920,height=1080,framerate=30/1"),
        ),
        (None, Some("60"), Some("video/x-raw,framerate=60/1")),
    ];
    for (size, fps, caps) in cases {
        let chain = avf_video_chain(4, &request(size, fps));
        assert_eq!(chain.elements[0].factory, "avfvideosrc");
        assert_eq!(chain.elements[0].get("device-index"), Some("4"));
        let filter = chain.find("capsfilter").and_then(|e| e.get("caps"));
        assert_eq!(filter, caps, "{size:?} {fps:?}");
        assert_eq!(chain.elements.len(), 1 + usize::from(caps.is_some()));
    }
    assert_eq!(osx_audio_chain().factories(), vec!["osxaudiosrc"]);
    let osx_audio = osx_audio_chain();
    assert_eq!(osx_audio.elements[0].get("slave-method"), Some("resample"));
    assert_eq!(osx_audio.elements[0].properties.len(), 1);
}

#[test]
fn libcamera_chain_table() {
    let cases = [
        (None, None, None, None),
        (Some("/base/soc/i2c0mux/i2c@1/imx708@1a"), None, None, None),
        (
            None,
            Some("1280x720"),
            Some("30"),
            Some("video/x-raw,width=1280,height=720,framerate=30/1"),
        ),
    ];
    for (id, size, fps, caps) in cases {
        let chain = libcamera_video_chain(id, &request(size, fps));
        assert_eq!(chain.elements[0].factory, "libcamerasrc");
        assert_eq!(chain.elements[0].get("camera-name"), id);
        let filter = chain.find("capsfilter").and_then(|e| e.get("caps"));
        assert_eq!(filter, caps, "{id:?}");
    }
}

/// Runs `videotestsrc ! capsfilter(caps) ! <deinterlace as described> !
/// fakesink` and returns the bytes of the buffers entering and leaving the
/// deinterlacer.
fn run_deinterlace(caps: &str, frames: i32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    gst::init().unwrap();
    let described = decklink_video_chain(0, &CaptureRequest::default());
    let deinterlace_spec = described.find("deinterlace").unwrap().clone();

    let pipeline = gst::Pipeline::new();
    let source = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", frames)
        .property_from_str("pattern", "checkers-1")
        .build()
        .unwrap();
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", caps.parse::<gst::Caps>().unwrap())
        .build()
        .unwrap();
    let deinterlace = deinterlace_spec.build().unwrap();
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .unwrap();
    let elements = [&source, &filter, &deinterlace, &sink];
    pipeline.add_many(elements).unwrap();
    gst::Element::link_many(elements).unwrap();

    let record = |pad: gst::Pad| {
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let store = seen.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                let map = buffer.map_readable().unwrap();
                store.lock().unwrap().push(map.as_slice().to_vec());
            }
            gst::PadProbeReturn::Ok
        });
        seen
    };
    let input = record(deinterlace.static_pad("sink").unwrap());
    let output = record(deinterlace.static_pad("src").unwrap());

    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the deinterlace pipeline neither finished nor failed within 20 s");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "deinterlace pipeline failed: {message:?}"
    );
    let input = input.lock().unwrap().clone();
    let output = output.lock().unwrap().clone();
    (input, output)
}

/// `deinterlace mode=auto`, as the DeckLink chain describes it, leaves
/// progressive frames byte for byte as they came, and changes interlaced
/// ones (the second half shows that the comparison can fail).
#[test]
fn deinterlace_passes_progressive_through() {
    let progressive = "video/x-raw,format=UYVY,width=320,height=240,framerate=30/1,\
                       interlace-mode=progressive";
    let (input, output) = run_deinterlace(progressive, 5);
    assert_eq!(input.len(), 5);
    assert_eq!(output.len(), input.len());
    assert!(output == input, "progressive frames were modified");

    let interlaced = "video/x-raw,format=UYVY,width=320,height=240,framerate=30/1,\
                      interlace-mode=interleaved,field-order=top-field-first";
    let (input, output) = run_deinterlace(interlaced, 5);
    assert_eq!(input.len(), 5);
    assert!(!output.is_empty());
    assert!(output != input, "interlaced frames were passed through");
}
