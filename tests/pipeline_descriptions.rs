//! The media pipelines the bridge builds for hardware this machine lacks,
//! compared with the descriptions kept in `pipelines/`. Those elements
//! register only where their hardware is, so the description (element names,
//! properties and caps) is as far as these paths can be checked here.
//!
//! Each file opens with a comment block written by hand (what hardware the
//! path is for, when the bridge picks it, what to check when it fails),
//! followed by the description the code builds. Only the description is
//! compared. Run with `BRIDGE_UPDATE_PIPELINES=1` to rewrite the
//! descriptions after an intended change, keeping each comment block, then
//! review the diff.

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
            plan: planned("decklink:0", p1080, ntsc),
            encoder: candidate(EncoderName::Nvenc, "nvh264enc"),
            size: p1080,
            fps: ntsc,
            whip: false,
        },
        Case {
            file: "avf-videotoolbox.pipeline",
            plan: planned("avf:0", p720, fps30),
            encoder: candidate(EncoderName::VideoToolbox, "vtenc_h264_hw"),
            size: p720,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "libcamera-pi-v4l2.pipeline",
            plan: planned("libcamera", p1080, fps30),
            encoder: candidate(EncoderName::V4l2, "v4l2h264enc"),
            size: p1080,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "test-x264.pipeline",
            plan: planned("test", p720, fps30),
            encoder: candidate(EncoderName::X264, "x264enc"),
            size: p720,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "test-x264-whip.pipeline",
            plan: planned("test", p720, fps30),
            encoder: candidate(EncoderName::X264, "x264enc"),
            size: p720,
            fps: fps30,
            whip: true,
        },
        Case {
            file: "file-openh264.pipeline",
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
            file: "v4l2-usb2-webcam-mjpeg-pi-v4l2.pipeline",
            plan: v4l2_plan(
                "usb2-webcam-c920.txt",
                p1080,
                fps30,
                AudioPlan::Chain(audio::alsa_chain("hw:CARD=C920")),
            ),
            encoder: candidate(EncoderName::V4l2, "v4l2h264enc"),
            size: p1080,
            fps: fps30,
            whip: false,
        },
        Case {
            file: "libcamera-pi-v4l2-whip.pipeline",
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
    describe(&media).unwrap()
}

/// Labels every comment block has, one line each.
const HEADER_LABELS: &[&str] = &["# Hardware:", "# Chosen when:", "# If it fails:"];

/// Splits a kept file into its leading comment block and the description.
fn split_header(text: &str) -> (String, String) {
    let mut header = String::new();
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next_if(|line| line.starts_with('#')) {
        header.push_str(line);
    }
    (header, lines.collect())
}

#[test]
fn descriptions_match_pipelines_folder() {
    gstreamer::init().unwrap();
    let update = std::env::var_os("BRIDGE_UPDATE_PIPELINES").is_some();
    let mut mismatches = Vec::new();
    for case in cases() {
        let path = root().join("pipelines").join(case.file);
        let rendered = render(&case);
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        let (header, description) = split_header(&kept);
        if update {
            // Written beside and renamed, so the other tests never read a
            // half-written file.
            let temporary = path.with_extension("pipeline.new");
            std::fs::write(&temporary, format!("{header}{rendered}")).unwrap();
            std::fs::rename(&temporary, &path).unwrap();
            continue;
        }
        if kept.is_empty() {
            mismatches.push(format!("{} is missing or empty", path.display()));
        } else if description != rendered {
            mismatches.push(format!(
                "{}:\n--- kept\n{description}--- built now\n{rendered}",
                case.file
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn pipeline_files_open_with_comment_block() {
    for case in cases() {
        let path = root().join("pipelines").join(case.file);
        let kept = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let (header, _) = split_header(&kept);
        assert!(
            header.lines().count() > HEADER_LABELS.len(),
            "{}: the file must open with a summary line and {HEADER_LABELS:?} lines",
            case.file
        );
        for label in HEADER_LABELS {
            assert!(
                header.lines().any(|line| line.starts_with(label)),
                "{}: the comment block lacks a '{label}' line:\n{header}",
                case.file
            );
        }
    }
}

#[test]
fn every_capture_kind_and_encoder_family_has_reference() {
    let cases = cases();
    let has = |needle: &str| cases.iter().any(|case| render(case).contains(needle));
    gstreamer::init().unwrap();
    let captures = [
        (
            "V4L2 raw",
            "v4l2src device=/dev/video0 ! capsfilter caps=video/x-raw",
        ),
        ("V4L2 MJPEG", "capsfilter caps=image/jpeg"),
        ("DeckLink", "decklinkvideosrc"),
        ("AVFoundation", "avfvideosrc"),
        ("libcamera", "libcamerasrc"),
    ];
    for (kind, needle) in captures {
        assert!(has(needle), "no reference for {kind} ({needle})");
    }
    for family in [
        EncoderName::Vaapi,
        EncoderName::Qsv,
        EncoderName::Nvenc,
        EncoderName::V4l2,
        EncoderName::VideoToolbox,
        EncoderName::X264,
        EncoderName::OpenH264,
    ] {
        assert!(
            cases.iter().any(|case| case.encoder.name == family),
            "no reference for encoder family {family}"
        );
    }
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
            "v4l2-usb2-webcam-mjpeg-pi-v4l2.pipeline",
            &[
                "capsfilter caps=image/jpeg",
                "jpegdec",
                "v4l2h264enc",
                "level=(string)4",
                "alsasrc device=hw:CARD=C920",
            ][..],
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
                || file.contains("libcamera")
                || file.contains("pi-v4l2"),
            "{file}: B-frames not disabled:\n{rendered}"
        );
    }
}
