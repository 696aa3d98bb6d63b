use super::*;
use crate::config::{FrameRate, Size};
use crate::encode::{candidates, family_candidates, Platform};
use gstreamer as gst;
use gstreamer::prelude::*;

fn settings() -> EncodeSettings {
    EncodeSettings {
        size: Size::new(1280, 720),
        fps: FrameRate::new(30000, 1001),
        bitrate_kbps: 4000,
        gop_frames: 60,
        profile: Profile::High,
    }
}

fn candidate(factory: &'static str) -> Candidate {
    let all = [
        EncoderName::Vaapi,
        EncoderName::Qsv,
        EncoderName::Nvenc,
        EncoderName::V4l2,
        EncoderName::VideoToolbox,
        EncoderName::X264,
        EncoderName::OpenH264,
    ];
    all.into_iter()
        .flat_map(family_candidates)
        .find(|c| c.factory == factory)
        .unwrap_or_else(|| panic!("{factory} is no candidate"))
}

/// The encoder's properties as (name, value) pairs, in order.
fn properties(plan: &EncoderPlan) -> Vec<(&str, &str)> {
    let encoder = plan.encoder().expect("plan has its encoder element");
    encoder
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect()
}

/// Expected input format and encoder properties for `settings()`: 4000 kb/s,
/// GOP 60 frames, profile high.
fn expected(factory: &str) -> (&'static str, Vec<(&'static str, &'static str)>) {
    match factory {
        "x264enc" => (
            "I420",
            vec![
                ("bitrate", "4000"),
                ("pass", "cbr"),
                ("key-int-max", "60"),
                ("bframes", "0"),
                ("speed-preset", "veryfast"),
                ("tune", "zerolatency"),
            ],
        ),
        "openh264enc" => (
            "I420",
            vec![
                ("bitrate", "4000000"),
                ("rate-control", "bitrate"),
                ("gop-size", "60"),
            ],
        ),
        "vah264enc" => (
            "NV12",
            vec![
                ("bitrate", "4000"),
                ("rate-control", "cbr"),
                ("key-int-max", "60"),
                ("b-frames", "0"),
            ],
        ),
        "vaapih264enc" => (
            "NV12",
            vec![
                ("bitrate", "4000"),
                ("rate-control", "cbr"),
                ("keyframe-period", "60"),
                ("max-bframes", "0"),
            ],
        ),
        "qsvh264enc" => (
            "NV12",
            vec![
                ("bitrate", "4000"),
                ("rate-control", "cbr"),
                ("gop-size", "60"),
                ("b-frames", "0"),
                ("low-latency", "true"),
            ],
        ),
        "nvh264enc" => (
            "NV12",
            vec![
                ("bitrate", "4000"),
                ("rc-mode", "cbr-ld-hq"),
                ("preset", "low-latency-hq"),
                ("zerolatency", "true"),
                ("gop-size", "60"),
                ("bframes", "0"),
            ],
        ),
        "vtenc_h264" | "vtenc_h264_hw" => (
            "NV12",
            vec![
                ("bitrate", "4000"),
                ("realtime", "true"),
                ("max-keyframe-interval", "60"),
                ("allow-frame-reordering", "false"),
            ],
        ),
        "v4l2h264enc" => (
            "I420",
            vec![(
                "extra-controls",
                "controls,video_bitrate=4000000,video_bitrate_mode=1,\
                 h264_i_frame_period=60,repeat_sequence_header=1",
            )],
        ),
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn describe_every_candidate_on_every_platform() {
    let platforms = [
        Platform::LinuxX86,
        Platform::LinuxArm,
        Platform::MacOs,
        Platform::Other,
    ];
    for platform in platforms {
        for candidate in candidates(platform) {
            let plan = describe(&candidate, &settings());
            let (input_format, expected_properties) = expected(candidate.factory);

            assert_eq!(plan.name, candidate.name, "{platform:?}");
            assert_eq!(plan.factory, candidate.factory, "{platform:?}");
            assert_eq!(plan.input_format, input_format, "{}", plan.factory);
            assert_eq!(
                plan.chain.factories(),
                [candidate.factory, "capsfilter"],
                "{}",
                plan.factory
            );
            assert_eq!(properties(&plan), expected_properties, "{}", plan.factory);
        }
    }
}

#[test]
fn describe_sets_profile_caps() {
    let cases = [
        ("x264enc", "video/x-h264,profile=high"),
        ("openh264enc", "video/x-h264,profile=high"),
        ("vah264enc", "video/x-h264,profile=high"),
        ("vaapih264enc", "video/x-h264,profile=high"),
        ("qsvh264enc", "video/x-h264,profile=high"),
        ("nvh264enc", "video/x-h264,profile=high"),
        ("vtenc_h264_hw", "video/x-h264,profile=high"),
        ("vtenc_h264", "video/x-h264,profile=high"),
        ("v4l2h264enc", "video/x-h264,profile=high,level=(string)3.1"),
    ];
    for (factory, caps) in cases {
        let plan = describe(&candidate(factory), &settings());
        assert_eq!(plan.output_caps(), Some(caps), "{factory}");
    }
}

#[test]
fn describe_maps_each_profile() {
    let profiles = [
        Profile::ConstrainedBaseline,
        Profile::Baseline,
        Profile::Main,
        Profile::High,
    ];
    let factories = [
        "x264enc",
        "openh264enc",
        "vaapih264enc",
        "qsvh264enc",
        "nvh264enc",
    ];
    for profile in profiles {
        let settings = EncodeSettings {
            profile,
            ..settings()
        };
        for factory in factories {
            let plan = describe(&candidate(factory), &settings);
            let caps = format!("video/x-h264,profile={}", profile.caps_name());
            assert_eq!(plan.output_caps(), Some(caps.as_str()), "{factory}");
        }
    }
}

#[test]
fn describe_asks_va_for_constrained_baseline() {
    let cases = [
        (
            Profile::Baseline,
            "video/x-h264,profile=constrained-baseline",
        ),
        (
            Profile::ConstrainedBaseline,
            "video/x-h264,profile=constrained-baseline",
        ),
        (Profile::Main, "video/x-h264,profile=main"),
        (Profile::High, "video/x-h264,profile=high"),
    ];
    for (profile, caps) in cases {
        let settings = EncodeSettings {
            profile,
            ..settings()
        };
        let plan = describe(&candidate("vah264enc"), &settings);
        assert_eq!(plan.output_caps(), Some(caps), "{profile:?}");
    }
}

#[test]
fn describe_asks_vtenc_for_baseline() {
    let cases = [
        (Profile::Baseline, "video/x-h264,profile=baseline"),
        (
            Profile::ConstrainedBaseline,
            "video/x-h264,profile=baseline",
        ),
        (Profile::Main, "video/x-h264,profile=main"),
        (Profile::High, "video/x-h264,profile=high"),
    ];
    for factory in ["vtenc_h264", "vtenc_h264_hw"] {
        for (profile, caps) in cases {
            let settings = EncodeSettings {
                profile,
                ..settings()
            };
            let plan = describe(&candidate(factory), &settings);
            assert_eq!(plan.output_caps(), Some(caps), "{factory} {profile:?}");
        }
    }
}

#[test]
fn describe_v4l2_level_follows_size_and_rate() {
    let cases = [
        (
            Size::new(1280, 720),
            FrameRate::new(30, 1),
            Profile::Main,
            "3.1",
        ),
        (
            Size::new(1280, 720),
            FrameRate::new(60, 1),
            Profile::Main,
            "3.2",
        ),
        (
            Size::new(1920, 1080),
            FrameRate::new(30, 1),
            Profile::High,
            "4",
        ),
        (
            Size::new(1920, 1080),
            FrameRate::new(60, 1),
            Profile::High,
            "4.2",
        ),
        (
            Size::new(1920, 1080),
            FrameRate::new(25, 1),
            Profile::Baseline,
            "4",
        ),
    ];
    for (size, fps, profile, level) in cases {
        let settings = EncodeSettings {
            size,
            fps,
            profile,
            ..settings()
        };
        let plan = describe(&candidate("v4l2h264enc"), &settings);
        let caps = format!(
            "video/x-h264,profile={},level=(string){level}",
            profile.caps_name()
        );
        assert_eq!(plan.output_caps(), Some(caps.as_str()), "{size} at {fps}");
    }
}

#[test]
fn describe_v4l2_level_follows_bitrate() {
    let settings = EncodeSettings {
        bitrate_kbps: 25_000,
        profile: Profile::Main,
        ..settings()
    };
    let plan = describe(&candidate("v4l2h264enc"), &settings);
    assert_eq!(
        plan.output_caps(),
        Some("video/x-h264,profile=main,level=(string)4.1")
    );
}

#[test]
fn describe_v4l2_without_level_leaves_it_out() {
    let settings = EncodeSettings {
        size: Size::new(7680, 4320),
        fps: FrameRate::new(240, 1),
        ..settings()
    };
    let plan = describe(&candidate("v4l2h264enc"), &settings);
    assert_eq!(plan.output_caps(), Some("video/x-h264,profile=high"));

    let check = check_settings(&candidate("v4l2h264enc"), &settings);
    let reason = check.unwrap_err();
    assert!(reason.contains("7680x4320"), "{reason}");
    assert!(check_settings(&candidate("x264enc"), &settings).is_ok());
}

#[test]
fn v4l2_controls_parse_as_int_fields() {
    gst::init().unwrap();
    let plan = describe(&candidate("v4l2h264enc"), &settings());
    let text = plan.encoder().unwrap().get("extra-controls").unwrap();
    let controls: gst::Structure = text.parse().expect("extra-controls parses");

    assert_eq!(controls.name(), "controls");
    assert_eq!(controls.get::<i32>("video_bitrate"), Ok(4_000_000));
    assert_eq!(controls.get::<i32>("video_bitrate_mode"), Ok(1));
    assert_eq!(controls.get::<i32>("h264_i_frame_period"), Ok(60));
    assert_eq!(controls.get::<i32>("repeat_sequence_header"), Ok(1));
}

#[test]
fn describe_converts_bitrate_units() {
    let settings = EncodeSettings {
        bitrate_kbps: 12_345,
        ..settings()
    };
    let cases = [
        ("x264enc", "bitrate", "12345"),
        ("openh264enc", "bitrate", "12345000"),
        ("vah264enc", "bitrate", "12345"),
        ("vaapih264enc", "bitrate", "12345"),
        ("qsvh264enc", "bitrate", "12345"),
        ("nvh264enc", "bitrate", "12345"),
        ("vtenc_h264", "bitrate", "12345"),
        ("vtenc_h264_hw", "bitrate", "12345"),
    ];
    for (factory, property, value) in cases {
        let plan = describe(&candidate(factory), &settings);
        assert_eq!(
            plan.encoder().unwrap().get(property),
            Some(value),
            "{factory}"
        );
    }
    let plan = describe(&candidate("v4l2h264enc"), &settings);
    let controls = plan.encoder().unwrap().get("extra-controls").unwrap();
    assert!(controls.contains("video_bitrate=12345000,"), "{controls}");
}

#[test]
fn describe_keeps_values_in_element_ranges() {
    let settings = EncodeSettings {
        bitrate_kbps: 5_000_000,
        gop_frames: 100_000,
        ..settings()
    };
    let cases = [
        ("x264enc", "bitrate", "2048000"),
        ("x264enc", "key-int-max", "100000"),
        ("openh264enc", "bitrate", "4294967295"),
        ("vah264enc", "bitrate", "2048000"),
        ("vah264enc", "key-int-max", "1024"),
        ("qsvh264enc", "gop-size", "65535"),
        ("nvh264enc", "bitrate", "2048000"),
        ("nvh264enc", "gop-size", "100000"),
    ];
    for (factory, property, value) in cases {
        let plan = describe(&candidate(factory), &settings);
        let actual = plan.encoder().unwrap().get(property);
        assert_eq!(actual, Some(value), "{factory} {property}");
    }
}

#[test]
fn describe_unknown_factory_sets_nothing() {
    let unknown = Candidate {
        name: EncoderName::X264,
        factory: "someh264enc",
    };
    let plan = describe(&unknown, &settings());
    assert_eq!(plan.input_format, "I420");
    assert_eq!(plan.chain.factories(), ["someh264enc", "capsfilter"]);
    assert!(properties(&plan).is_empty());
}

/// The registered software encoders accept every property of their plan,
/// with the values read back in their own units.
#[test]
fn software_plans_build_real_elements() {
    gst::init().unwrap();

    let x264 = describe(&candidate("x264enc"), &settings());
    let element = x264.encoder().unwrap().build().expect("x264enc builds");
    assert_eq!(element.property::<u32>("bitrate"), 4000);
    assert_eq!(element.property::<u32>("key-int-max"), 60);
    assert_eq!(element.property::<u32>("bframes"), 0);
    assert_eq!(element.property_value("pass").serialize().unwrap(), "cbr");
    assert_eq!(
        element.property_value("speed-preset").serialize().unwrap(),
        "veryfast"
    );
    let tune = element.property_value("tune");
    let (_, tune_flags) = gst::glib::FlagsValue::from_value(&tune).unwrap();
    let tune_nicks: Vec<&str> = tune_flags.iter().map(|flag| flag.nick()).collect();
    assert_eq!(tune_nicks, ["zerolatency"]);

    let openh264 = describe(&candidate("openh264enc"), &settings());
    let element = openh264
        .encoder()
        .unwrap()
        .build()
        .expect("openh264enc builds");
    assert_eq!(element.property::<u32>("bitrate"), 4_000_000);
    assert_eq!(element.property::<u32>("gop-size"), 60);
    assert_eq!(
        element.property_value("rate-control").serialize().unwrap(),
        "bitrate"
    );

    for plan in [&x264, &openh264] {
        let filter = plan
            .chain
            .elements
            .last()
            .unwrap()
            .build()
            .expect("capsfilter builds");
        let caps = filter.property::<gst::Caps>("caps");
        assert_eq!(caps.to_string(), "video/x-h264, profile=(string)high");
    }
}
