//! The media pipelines the bridge builds for hardware this machine lacks,
//! compared with the descriptions kept in `pipelines/`. Those elements
//! register only where their hardware is, so the description (element names,
//! properties and caps) is as far as these paths can be checked here.
//!
//! Run with `BRIDGE_UPDATE_PIPELINES=1` to rewrite the files after an
//! intended change, then review the diff.

use bridge::capture::modes::{parse_list_formats_ext, select_mode};
use bridge::capture::{
    self, audio, v4l2, AudioPlan, AudioSpec, CapturePlan, CaptureRequest, SourceSpec, VideoPlan,
};
use bridge::config::{FrameRate, Size};
use bridge::encode::{self, Candidate, EncodeSettings, EncoderName, Profile};
use bridge::pipeline::media::{describe, MediaSettings};
use std::path::PathBuf;

struct Case {
    file: &'static str,
    header: &'static str,
    plan: CapturePlan,
    encoder: Candidate,
    size: Size,
    fps: FrameRate,
    /// A WHIP output is present: Constrained Baseline and an Opus branch.
    whip: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn v4l2_plan(fixture: &str, size: Size, fps: FrameRate, audio: AudioPlan) -> CapturePlan {
    let text = std::fs::read_to_string(root().join("tests/fixtures/v4l2").join(fixture)).unwrap();
    let modes = parse_list_formats_ext(&text).unwrap();
    let selection = select_mode(&modes, Some(size), Some(fps)).unwrap();
    CapturePlan {
        video: VideoPlan::Chain(v4l2::video_chain("/dev/video0", &selection)),
        audio,
        size: Some(selection.size),
        fps: Some(selection.rate),
        live: true,
        summary: String::new(),
        faults: None,
    }
}

fn planned(spec: &str, size: Size, fps: FrameRate) -> CapturePlan {
    let spec: SourceSpec = spec.parse().unwrap();
    let request = CaptureRequest {
        size: Some(size),
        fps: Some(fps),
        audio: AudioSpec::Auto,
    };
    capture::plan(&spec, &request).unwrap()
}

fn candidate(name: EncoderName, factory: &'static str) -> Candidate {
    Candidate { name, factory }
}

fn cases() -> Vec<Case> {
    let p1080 = Size::new(1920, 1080);
    let p720 = Size::new(1280, 720);
    let fps30 = FrameRate::new(30, 1);
    let ntsc = FrameRate::new(30000, 1001);
    vec![
        Case {
            file: "v4l2-usb2-webcam-mjpeg-vaapi.pipeline",
            header: "USB 2 webcam (C920 kind) at 1080p30 over MJPEG, decoded with jpegdec; \
                     VAAPI vah264enc, NV12 in; audio from the webcam's own ALSA card",
            plan: v4l2_plan(
                "usb2-webcam-c920.txt",
                p1080,
                fps30,
                AudioPlan::Chain(audio::alsa_chain("hw:CARD=C920")),
            ),
            encoder: candidate(EncoderName::Vaapi, "vah264enc"),
            size: p1080,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "v4l2-uvc-hdmi-raw-qsv.pipeline",
            header: "UVC HDMI bridge at 1080p60 raw; Quick Sync qsvh264enc, NV12 in; no audio",
            plan: v4l2_plan(
                "uvc-hdmi-bridge.txt",
                p1080,
                FrameRate::new(60, 1),
                AudioPlan::None,
            ),
            encoder: candidate(EncoderName::Qsv, "qsvh264enc"),
            size: p1080,
            fps: FrameRate::new(60, 1),
            whip: false,
        },
        Case {
            file: "decklink-nvenc.pipeline",
            header: "DeckLink card 0, 1080i59.94 or 1080p29.97 input, deinterlaced when \
                     interlaced; NVENC nvh264enc, NV12 in; the card's embedded audio",
            plan: planned("decklink:0", p1080, ntsc),
            encoder: candidate(EncoderName::Nvenc, "nvh264enc"),
            size: p1080,
            fps: ntsc,
            whip: false,
        },
        Case {
            file: "avf-videotoolbox.pipeline",
            header: "AVFoundation camera 0 on macOS at 720p30; VideoToolbox vtenc_h264_hw, \
                     NV12 in; the default input through osxaudiosrc",
            plan: planned("avf:0", p720, fps30),
            encoder: candidate(EncoderName::VideoToolbox, "vtenc_h264_hw"),
            size: p720,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "libcamera-pi-v4l2.pipeline",
            header: "Raspberry Pi camera through libcamera at 1080p30; the Pi's V4L2 M2M \
                     encoder v4l2h264enc with level 4, I420 in; no audio",
            plan: planned("libcamera", p1080, fps30),
            encoder: candidate(EncoderName::V4l2, "v4l2h264enc"),
            size: p1080,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "test-x264.pipeline",
            header: "test pattern and tone at 720p30; software x264enc, I420 in",
            plan: planned("test", p720, fps30),
            encoder: candidate(EncoderName::X264, "x264enc"),
            size: p720,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "file-openh264.pipeline",
            header: "recorded clip played at real-time pace, 720p25; software openh264enc, \
                     I420 in; the clip's own audio",
            plan: CapturePlan {
                video: VideoPlan::File {
                    path: PathBuf::from("clip.mp4"),
                },
                audio: AudioPlan::FromFile,
                size: Some(p720),
                fps: Some(FrameRate::new(25, 1)),
                live: false,
                summary: String::new(),
                faults: None,
            },
            encoder: candidate(EncoderName::OpenH264, "openh264enc"),
            size: p720,
            fps: FrameRate::new(25, 1),
            whip: false,
        },
        Case {
            file: "v4l2-usb2-webcam-mjpeg-vaapi-whip.pipeline",
            header: "the USB 2 webcam and VAAPI above with a WHIP output among the outputs: \
                     Constrained Baseline, and the webcam's audio encoded to Opus as well",
            plan: v4l2_plan(
                "usb2-webcam-c920.txt",
                p1080,
                fps30,
                AudioPlan::Chain(audio::alsa_chain("hw:CARD=C920")),
            ),
            encoder: candidate(EncoderName::Vaapi, "vah264enc"),
            size: p1080,
            fps: fps30,
            whip: true,
        },
        Case {
            file: "libcamera-pi-v4l2-whip.pipeline",
            header: "the Raspberry Pi camera and encoder above publishing over WHIP: \
                     Constrained Baseline at level 4; no audio, so no Opus branch",
            plan: planned("libcamera", p1080, fps30),
            encoder: candidate(EncoderName::V4l2, "v4l2h264enc"),
            size: p1080,
            fps: fps30,
            whip: true,
        },
    ]
}

fn render(case: &Case) -> String {
    let settings = EncodeSettings {
        size: case.size,
        fps: case.fps,
        bitrate_kbps: encode::default_bitrate_kbps(case.size),
        gop_frames: encode::gop_frames(2.0, case.fps),
        profile: if case.whip {
            Profile::ConstrainedBaseline
        } else {
            Profile::High
        },
    };
    let encoder = encode::describe(&case.encoder, &settings);
    let media = MediaSettings {
        capture: &case.plan,
        looped: false,
        encoder: &encoder,
        encode: &settings,
        audio_bitrate_kbps: 128,
        opus_bitrate_kbps: case.whip.then_some(96),
        av_offset_ms: 0,
        encoder_request: EncoderName::Auto,
    };
    let body = describe(&media).unwrap();
    format!("# {}\n{body}", case.header)
}

#[test]
fn descriptions_match_pipelines_folder() {
    gstreamer::init().unwrap();
    let update = std::env::var_os("BRIDGE_UPDATE_PIPELINES").is_some();
    let mut mismatches = Vec::new();
    for case in cases() {
        let path = root().join("pipelines").join(case.file);
        let rendered = render(&case);
        if update {
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let kept = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if kept != rendered {
            mismatches.push(format!(
                "{}:\n--- kept\n{kept}--- built now\n{rendered}",
                case.file
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn hardware_descriptions_name_their_elements() {
    gstreamer::init().unwrap();
    let expected = [
        (
            "v4l2-usb2-webcam-mjpeg-vaapi.pipeline",
            &[
                "v4l2src device=/dev/video0",
                "image/jpeg",
                "jpegdec",
                "vah264enc",
                "alsasrc device=hw:CARD=C920",
            ][..],
        ),
        (
            "v4l2-uvc-hdmi-raw-qsv.pipeline",
            &["format=NV12", "framerate=60/1", "qsvh264enc"][..],
        ),
        (
            "decklink-nvenc.pipeline",
            &[
                "decklinkvideosrc device-number=0",
                "deinterlace",
                "nvh264enc",
                "decklinkaudiosrc device-number=0",
            ][..],
        ),
        (
            "avf-videotoolbox.pipeline",
            &["avfvideosrc device-index=0", "vtenc_h264_hw", "osxaudiosrc"][..],
        ),
        (
            "libcamera-pi-v4l2.pipeline",
            &[
                "libcamerasrc",
                "v4l2h264enc",
                "level=(string)4",
                "repeat_sequence_header=1",
            ][..],
        ),
    ];
    let cases = cases();
    for (file, needles) in expected {
        let case = cases.iter().find(|c| c.file == file).unwrap();
        let rendered = render(case);
        for needle in needles {
            assert!(
                rendered.contains(needle),
                "{file} lacks '{needle}':\n{rendered}"
            );
        }
        assert!(rendered.contains("h264parse config-interval=-1"), "{file}");
        assert!(
            rendered.contains("bframes=0")
                || rendered.contains("b-frames=0")
                || rendered.contains("allow-frame-reordering=false")
                || file.contains("libcamera"),
            "{file}: B-frames not disabled:\n{rendered}"
        );
    }
}
