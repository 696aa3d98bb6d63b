use super::*;
use std::str::FromStr;

const C920: &str = include_str!("../../../tests/fixtures/v4l2/usb2-webcam-c920.txt");
const DONGLE: &str = include_str!("../../../tests/fixtures/v4l2/hdmi-usb-dongle.txt");
const BRIDGE: &str = include_str!("../../../tests/fixtures/v4l2/uvc-hdmi-bridge.txt");
const FRACTIONAL: &str = include_str!("../../../tests/fixtures/v4l2/fractional-camera.txt");

fn size(text: &str) -> Size {
    text.parse().unwrap()
}

fn rate(text: &str) -> FrameRate {
    text.parse().unwrap()
}

fn raw(format: &str) -> PixelFormat {
    PixelFormat::Raw(format.to_string())
}

fn modes(fixture: &str) -> Vec<Mode> {
    parse_list_formats_ext(fixture).unwrap()
}

#[test]
fn parse_c920_fixture() {
    let modes = modes(C920);
    let count = |format: &PixelFormat| modes.iter().filter(|m| &m.format == format).count();
    assert_eq!(count(&raw("YUY2")), 19);
    assert_eq!(count(&PixelFormat::Mjpeg), 17);
    assert_eq!(count(&PixelFormat::Other("H264".into())), 3);
    assert_eq!(modes[0].size, Size::new(640, 480));
    assert_eq!(
        modes[0].rates,
        vec![
            FrameRate::new(30, 1),
            FrameRate::new(24, 1),
            FrameRate::new(20, 1),
            FrameRate::new(15, 1),
            FrameRate::new(10, 1),
            FrameRate::new(15, 2),
            FrameRate::new(5, 1),
        ]
    );
    let yuyv_1080 = modes
        .iter()
        .find(|m| m.format == raw("YUY2") && m.size == Size::new(1920, 1080))
        .unwrap();
    assert_eq!(yuyv_1080.rates, vec![FrameRate::new(5, 1)]);
}

#[test]
fn parse_fixture_mode_counts() {
    let cases = [("dongle", 22), ("bridge", 15), ("fractional", 3)];
    for (fixture, expected) in cases {
        assert_eq!(modes(fixture_text(fixture)).len(), expected, "{fixture}");
    }
}

#[test]
fn parse_fractional_rates_exactly() {
    let modes = modes(FRACTIONAL);
    assert_eq!(
        modes[0].rates,
        vec![
            FrameRate::new(30, 1),
            FrameRate::new(30000, 1001),
            FrameRate::new(25, 1),
            FrameRate::new(24, 1),
            FrameRate::new(24000, 1001),
            FrameRate::new(15, 1),
        ]
    );
    assert_eq!(modes[2].format, PixelFormat::Mjpeg);
    assert_eq!(modes[2].rates[0], FrameRate::new(60, 1));
    assert_eq!(modes[2].rates[1], FrameRate::new(60000, 1001));
}

#[test]
fn from_fourcc_table() {
    let cases = [
        ("YUYV", raw("YUY2")),
        ("NV12", raw("NV12")),
        ("YU12", raw("I420")),
        ("XR24", raw("BGRx")),
        ("Y16 ", raw("GRAY16_LE")),
        ("MJPG", PixelFormat::Mjpeg),
        ("JPEG", PixelFormat::Mjpeg),
        ("PJPG", PixelFormat::Mjpeg),
        ("H264", PixelFormat::Other("H264".into())),
        ("BA81", PixelFormat::Other("BA81".into())),
    ];
    for (fourcc, expected) in cases {
        assert_eq!(PixelFormat::from_fourcc(fourcc), expected, "{fourcc:?}");
    }
}

#[test]
fn rate_from_fps_text_cases() {
    let cases = [
        ("30.000", Some(FrameRate::new(30, 1))),
        ("29.970", Some(FrameRate::new(30000, 1001))),
        ("59.940", Some(FrameRate::new(60000, 1001))),
        ("23.976", Some(FrameRate::new(24000, 1001))),
        ("7.500", Some(FrameRate::new(15, 2))),
        ("2.000", Some(FrameRate::new(2, 1))),
        ("12.345", Some(FrameRate::new(2469, 200))),
        ("0.000", None),
        ("fast", None),
    ];
    for (text, expected) in cases {
        assert_eq!(rate_from_fps_text(text), expected, "{text}");
    }
}

#[test]
fn parse_legacy_layout() {
    let text = "ioctl: VIDIOC_ENUM_FMT\n\
        \tIndex       : 0\n\
        \tType        : Video Capture\n\
        \tPixel Format: 'MJPG' (compressed)\n\
        \tName        : Motion-JPEG\n\
        \t\tSize: Discrete 1280x720\n\
        \t\t\tInterval: Discrete 0.033s (30.000 fps)\n\
        \n\
        \tIndex       : 1\n\
        \tType        : Video Capture\n\
        \tPixel Format: 'YUYV'\n\
        \tName        : YUYV 4:2:2\n\
        \t\tSize: Discrete 640x480\n\
        \t\t\tInterval: Discrete 0.033s (30.000 fps)\n";
    let modes = parse_list_formats_ext(text).unwrap();
    assert_eq!(modes.len(), 2);
    assert_eq!(modes[0].format, PixelFormat::Mjpeg);
    assert_eq!(modes[0].size, Size::new(1280, 720));
    assert_eq!(modes[1].format, raw("YUY2"));
    assert_eq!(modes[1].rates, vec![FrameRate::new(30, 1)]);
}

#[test]
fn parse_stepwise_size_and_interval_range() {
    let text = "\t[0]: 'NV12' (Y/UV 4:2:0)\n\
        \t\tSize: Stepwise 16x16 - 1920x1080 with step 2/2\n\
        \t[1]: 'YUYV' (YUYV 4:2:2)\n\
        \t\tSize: Discrete 1280x720\n\
        \t\t\tInterval: Stepwise 0.017s - 1.000s with step 0.001s (1.000-60.000 fps)\n";
    let modes = parse_list_formats_ext(text).unwrap();
    assert_eq!(modes[0].size, Size::new(1920, 1080));
    assert!(modes[0].rates.is_empty());
    assert_eq!(modes[1].rates.first(), Some(&FrameRate::new(60, 1)));
    assert_eq!(modes[1].rates.last(), Some(&FrameRate::new(5, 1)));
    assert!(modes[1].rates.contains(&FrameRate::new(30000, 1001)));
}

#[test]
fn parse_rejects_malformed_lines() {
    let cases = [
        ("\t\tSize: Discrete 640x480\n", 1),
        ("\t[0]: 'YUYV' (YUYV 4:2:2)\n\t\tSize: Discrete 640by480\n", 2),
        ("\t[0]: 'YUYV' (YUYV 4:2:2)\n\t\t\tInterval: Discrete 0.033s (30.000 fps)\n", 2),
        (
            "\t[0]: 'YUYV' (YUYV 4:2:2)\n\t\tSize: Discrete 640x480\n\t\t\tInterval: Discrete 0.033s (abc fps)\n",
            3,
        ),
    ];
    for (text, line) in cases {
        let error = parse_list_formats_ext(text).unwrap_err();
        assert!(
            matches!(error, ModeError::Parse { line_number, .. } if line_number == line),
            "{text:?}: {error}"
        );
    }
}

fn fixture_text(name: &str) -> &'static str {
    match name {
        "c920" => C920,
        "dongle" => DONGLE,
        "bridge" => BRIDGE,
        "fractional" => FRACTIONAL,
        other => panic!("no fixture named {other}"),
    }
}

/// (fixture, --size, --fps, expected format, size, rate)
type SelectCase = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    PixelFormat,
    &'static str,
    FrameRate,
);

#[test]
fn select_mode_table() {
    let mjpeg = PixelFormat::Mjpeg;
    let cases: Vec<SelectCase> = vec![
        // USB 2 webcam: raw 1080p runs at 5 fps only, so MJPEG wins.
        (
            "c920",
            None,
            None,
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(30, 1),
        ),
        (
            "c920",
            Some("1920x1080"),
            None,
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(30, 1),
        ),
        (
            "c920",
            None,
            Some("30"),
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(30, 1),
        ),
        (
            "c920",
            Some("640x480"),
            Some("30"),
            raw("YUY2"),
            "640x480",
            FrameRate::new(30, 1),
        ),
        (
            "c920",
            Some("1280x720"),
            Some("10"),
            raw("YUY2"),
            "1280x720",
            FrameRate::new(10, 1),
        ),
        (
            "c920",
            Some("1280x720"),
            Some("30"),
            mjpeg.clone(),
            "1280x720",
            FrameRate::new(30, 1),
        ),
        (
            "c920",
            Some("1920x1080"),
            Some("5"),
            raw("YUY2"),
            "1920x1080",
            FrameRate::new(5, 1),
        ),
        (
            "c920",
            Some("2304x1296"),
            None,
            raw("YUY2"),
            "2304x1296",
            FrameRate::new(2, 1),
        ),
        (
            "c920",
            Some("800x600"),
            Some("7.5"),
            raw("YUY2"),
            "800x600",
            FrameRate::new(15, 2),
        ),
        // HDMI dongle: MJPEG 1080p60, raw only at small sizes.
        (
            "dongle",
            None,
            None,
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(60, 1),
        ),
        (
            "dongle",
            None,
            Some("30"),
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(30, 1),
        ),
        (
            "dongle",
            Some("1920x1080"),
            Some("50"),
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(50, 1),
        ),
        (
            "dongle",
            Some("720x480"),
            Some("30"),
            raw("YUY2"),
            "720x480",
            FrameRate::new(30, 1),
        ),
        (
            "dongle",
            None,
            Some("25"),
            raw("YUY2"),
            "720x576",
            FrameRate::new(25, 1),
        ),
        // UVC HDMI bridge: raw 1080p60, NV12 before YUY2 before MJPEG.
        (
            "bridge",
            None,
            None,
            raw("NV12"),
            "1920x1080",
            FrameRate::new(60, 1),
        ),
        (
            "bridge",
            Some("1280x720"),
            Some("50"),
            raw("NV12"),
            "1280x720",
            FrameRate::new(50, 1),
        ),
        // Fractional rates: 29.97 and 30 are different modes.
        (
            "fractional",
            None,
            Some("29.97"),
            raw("YUY2"),
            "1920x1080",
            FrameRate::new(30000, 1001),
        ),
        (
            "fractional",
            None,
            Some("30000/1001"),
            raw("YUY2"),
            "1920x1080",
            FrameRate::new(30000, 1001),
        ),
        (
            "fractional",
            None,
            Some("30"),
            raw("YUY2"),
            "1920x1080",
            FrameRate::new(30, 1),
        ),
        (
            "fractional",
            None,
            None,
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(60, 1),
        ),
        (
            "fractional",
            None,
            Some("59.94"),
            mjpeg.clone(),
            "1920x1080",
            FrameRate::new(60000, 1001),
        ),
        (
            "fractional",
            Some("1280x720"),
            Some("23.976"),
            raw("YUY2"),
            "1280x720",
            FrameRate::new(24000, 1001),
        ),
        (
            "fractional",
            Some("1280x720"),
            Some("24"),
            raw("YUY2"),
            "1280x720",
            FrameRate::new(24, 1),
        ),
    ];
    for (fixture, size_text, fps_text, format, expected_size, expected_rate) in cases {
        let label = format!("{fixture} --size {size_text:?} --fps {fps_text:?}");
        let selection = select_mode(
            &modes(fixture_text(fixture)),
            size_text.map(size),
            fps_text.map(rate),
        )
        .unwrap_or_else(|error| panic!("{label}: {error}"));
        assert_eq!(selection.format, format, "{label}");
        assert_eq!(selection.size, size(expected_size), "{label}");
        assert_eq!(selection.rate, expected_rate, "{label}");
    }
}

#[test]
fn select_mode_no_fit_lists_modes() {
    let cases = [
        (
            "c920",
            Some("1280x1024"),
            None,
            Mismatch::Size,
            "change --size",
        ),
        (
            "c920",
            Some("1920x1080"),
            Some("60"),
            Mismatch::Rate,
            "change --fps",
        ),
        ("c920", None, Some("60"), Mismatch::Rate, "change --fps"),
        ("bridge", None, Some("24"), Mismatch::Rate, "change --fps"),
        (
            "fractional",
            Some("1280x720"),
            Some("60"),
            Mismatch::Rate,
            "change --fps",
        ),
        (
            "dongle",
            Some("1920x1080"),
            Some("25"),
            Mismatch::Rate,
            "change --fps",
        ),
    ];
    for (fixture, size_text, fps_text, expected, fix) in cases {
        let offered = modes(fixture_text(fixture));
        let error = select_mode(&offered, size_text.map(size), fps_text.map(rate)).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, ModeError::NoFit { mismatch, .. } if mismatch == expected),
            "{text}"
        );
        assert!(text.contains(fix), "{text}");
        if let Some(size_text) = size_text {
            assert!(text.contains(&format!("--size {size_text}")), "{text}");
        }
        if let Some(fps_text) = fps_text {
            assert!(text.contains(&format!("--fps {fps_text}")), "{text}");
        }
        for mode in &offered {
            assert!(
                text.contains(&format!("\n  {mode}")),
                "missing {mode} in {text}"
            );
        }
    }
}

#[test]
fn no_fit_message_reads_well() {
    let error = select_mode(&modes(FRACTIONAL), Some(size("1280x720")), Some(rate("60")))
        .unwrap_err()
        .to_string();
    let expected = "no mode fits --size 1280x720 --fps 60: no 1280x720 mode runs at that rate; \
        change --fps to a rate listed for 1280x720, or change --size. Modes offered:\n  \
        raw YUY2 1920x1080 at 30, 29.97, 25, 24, 23.976, 15 fps\n  \
        raw YUY2 1280x720 at 30, 29.97, 25, 24, 23.976, 15 fps\n  \
        MJPEG 1920x1080 at 60, 59.94, 30, 29.97, 25, 24, 23.976, 15 fps";
    assert_eq!(error, expected);
}

#[test]
fn select_mode_without_capturable_format() {
    let offered = vec![
        Mode {
            format: PixelFormat::Other("H264".into()),
            size: Size::new(1920, 1080),
            rates: vec![FrameRate::new(30, 1)],
        },
        Mode {
            format: raw("NV12"),
            size: Size::new(1920, 1080),
            rates: Vec::new(),
        },
    ];
    let error = select_mode(&offered, None, None).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ModeError::NoCapturableMode { .. }),
        "{text}"
    );
    assert!(
        text.contains("H264 (not supported) 1920x1080 at 30 fps"),
        "{text}"
    );
    assert!(
        text.contains("raw NV12 1920x1080, rates not listed"),
        "{text}"
    );
}

#[test]
fn select_mode_prefers_usable_rate_over_size() {
    let offered = vec![
        Mode {
            format: raw("YUY2"),
            size: Size::new(1280, 720),
            rates: vec![FrameRate::new(10, 1)],
        },
        Mode {
            format: raw("YUY2"),
            size: Size::new(640, 480),
            rates: vec![FrameRate::new(30, 1)],
        },
    ];
    let selection = select_mode(&offered, None, None).unwrap();
    assert_eq!(selection.size, Size::new(640, 480));
    let requested = select_mode(&offered, Some(Size::new(1280, 720)), None).unwrap();
    assert_eq!(requested.rate, FrameRate::new(10, 1));
}

#[test]
fn select_mode_caps_default_size_and_rate() {
    let offered = vec![
        Mode {
            format: raw("NV12"),
            size: Size::new(3840, 2160),
            rates: vec![FrameRate::new(30, 1)],
        },
        Mode {
            format: raw("NV12"),
            size: Size::new(1920, 1080),
            rates: vec![FrameRate::new(120, 1), FrameRate::new(60, 1)],
        },
    ];
    let selection = select_mode(&offered, None, None).unwrap();
    assert_eq!(selection.size, Size::new(1920, 1080));
    assert_eq!(selection.rate, FrameRate::new(60, 1));
    let fast = select_mode(&offered, None, Some(FrameRate::new(120, 1))).unwrap();
    assert_eq!(fast.rate, FrameRate::new(120, 1));

    let only_4k = &offered[..1];
    let fallback = select_mode(only_4k, None, None).unwrap();
    assert_eq!(fallback.size, Size::new(3840, 2160));
}

#[test]
fn select_mode_above_default_size() {
    let mode = |width, height, fps| Mode {
        format: raw("NV12"),
        size: Size::new(width, height),
        rates: vec![FrameRate::new(fps, 1)],
    };
    let offered = vec![
        mode(7680, 4320, 60),
        mode(3840, 2160, 60),
        mode(1920, 1080, 30),
    ];
    let cases = [(None, (1920, 1080, 30)), (Some(60), (3840, 2160, 60))];
    for (fps, (width, height, rate)) in cases {
        let selection = select_mode(&offered, None, fps.map(|f| FrameRate::new(f, 1))).unwrap();
        assert_eq!(selection.size, Size::new(width, height), "{fps:?}");
        assert_eq!(selection.rate, FrameRate::new(rate, 1), "{fps:?}");
    }
    let error = select_mode(&offered, None, Some(FrameRate::new(50, 1))).unwrap_err();
    assert!(
        matches!(
            error,
            ModeError::NoFit {
                mismatch: Mismatch::Rate,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn selection_caps_parse() {
    let cases = [
        (
            Selection {
                format: raw("YUY2"),
                size: Size::new(640, 480),
                rate: FrameRate::new(30, 1),
            },
            "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1",
            false,
        ),
        (
            Selection {
                format: PixelFormat::Mjpeg,
                size: Size::new(1920, 1080),
                rate: FrameRate::new(30000, 1001),
            },
            "image/jpeg,width=1920,height=1080,framerate=30000/1001",
            true,
        ),
    ];
    gst::init().unwrap();
    for (selection, caps, decoder) in cases {
        assert_eq!(selection.caps(), caps);
        assert_eq!(selection.needs_jpeg_decoder(), decoder);
        let parsed = gst::Caps::from_str(&selection.caps()).unwrap();
        assert!(parsed.is_fixed(), "{caps}");
    }
}

#[test]
fn fps_text_cases() {
    let cases = [
        (FrameRate::new(30, 1), "30"),
        (FrameRate::new(30000, 1001), "29.97"),
        (FrameRate::new(24000, 1001), "23.976"),
        (FrameRate::new(15, 2), "7.5"),
        (FrameRate::new(60000, 1001), "59.94"),
    ];
    for (rate, expected) in cases {
        assert_eq!(fps_text(&rate), expected);
    }
}

#[test]
fn modes_from_v4l2src_caps() {
    gst::init().unwrap();
    let caps = gst::Caps::from_str(
        "video/x-raw, format=(string)YUY2, width=(int)1920, height=(int)1080, \
             framerate=(fraction){ 5/1 }; \
         image/jpeg, width=(int)1920, height=(int)1080, \
             framerate=(fraction){ 30/1, 30000/1001, 24/1 }; \
         video/x-raw, format=(string)NV12, width=(int)[ 16, 1920, 2 ], \
             height=(int)[ 16, 1080, 2 ], framerate=(fraction)[ 0/1, 60/1 ]; \
         video/x-raw(format:Interlaced), format=(string)UYVY, width=(int)720, \
             height=(int)576, interlace-mode=(string)alternate, framerate=(fraction)25/1; \
         video/x-h264, stream-format=(string)byte-stream, width=(int)1920, \
             height=(int)1080, framerate=(fraction)30/1",
    )
    .unwrap();
    let modes = modes_from_caps(&caps);

    assert_eq!(modes[0].format, raw("YUY2"));
    assert_eq!(modes[0].rates, vec![FrameRate::new(5, 1)]);
    assert_eq!(modes[1].format, PixelFormat::Mjpeg);
    assert_eq!(
        modes[1].rates,
        vec![
            FrameRate::new(30, 1),
            FrameRate::new(30000, 1001),
            FrameRate::new(24, 1)
        ]
    );
    let nv12: Vec<&Mode> = modes.iter().filter(|m| m.format == raw("NV12")).collect();
    let nv12_sizes: Vec<Size> = nv12.iter().map(|m| m.size).collect();
    assert!(
        nv12_sizes.contains(&Size::new(1920, 1080)),
        "{nv12_sizes:?}"
    );
    assert!(nv12_sizes.contains(&Size::new(1280, 720)), "{nv12_sizes:?}");
    assert!(
        !nv12_sizes.contains(&Size::new(3840, 2160)),
        "{nv12_sizes:?}"
    );
    assert_eq!(nv12[0].rates.first(), Some(&FrameRate::new(60, 1)));
    assert!(nv12[0].rates.contains(&FrameRate::new(30000, 1001)));
    let h264 = modes.last().unwrap();
    assert_eq!(h264.format, PixelFormat::Other("video/x-h264".into()));
    assert!(!modes.iter().any(|m| m.format == raw("UYVY")), "{modes:?}");

    let selection = select_mode(&modes, None, None).unwrap();
    assert_eq!(selection.format, raw("NV12"));
    assert_eq!(selection.rate, FrameRate::new(60, 1));
}

#[test]
fn modes_from_caps_merges_format_lists() {
    gst::init().unwrap();
    let caps = gst::Caps::from_str(
        "video/x-raw, format=(string){ NV12, YUY2 }, width=(int)1280, height=(int)720, \
             framerate=(fraction)30/1; \
         video/x-raw, format=(string)NV12, width=(int)1280, height=(int)720, \
             framerate=(fraction)60/1",
    )
    .unwrap();
    let modes = modes_from_caps(&caps);
    assert_eq!(modes.len(), 2);
    assert_eq!(modes[0].format, raw("NV12"));
    assert_eq!(
        modes[0].rates,
        vec![FrameRate::new(60, 1), FrameRate::new(30, 1)]
    );
    assert_eq!(modes[1].format, raw("YUY2"));
}
