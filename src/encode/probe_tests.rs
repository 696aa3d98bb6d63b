//! Real test encodes through the elements registered on this machine.

use super::*;
use crate::config::{FrameRate, Size};
use crate::encode::{describe, family_candidates, EncoderName, Profile};

fn settings(size: Size) -> EncodeSettings {
    EncodeSettings {
        size,
        fps: FrameRate::new(30, 1),
        bitrate_kbps: 4000,
        gop_frames: 60,
        profile: Profile::High,
    }
}

fn plan(name: EncoderName, factory: &str, settings: &EncodeSettings) -> EncoderPlan {
    let candidate = family_candidates(name)
        .into_iter()
        .find(|c| c.factory == factory)
        .unwrap_or_else(|| panic!("{factory} is no candidate of {name}"));
    describe(&candidate, settings)
}

#[test]
fn x264enc_passes_test_encode() {
    let settings = settings(Size::new(1280, 720));
    let plan = plan(EncoderName::X264, "x264enc", &settings);
    assert_eq!(GstProber.test_encode(&plan, &settings), Ok(()));
}

#[test]
fn openh264enc_passes_test_encode() {
    let settings = settings(Size::new(1280, 720));
    let plan = plan(EncoderName::OpenH264, "openh264enc", &settings);
    assert_eq!(GstProber.test_encode(&plan, &settings), Ok(()));
}

#[test]
fn software_encoders_pass_every_profile() {
    let profiles = [
        Profile::ConstrainedBaseline,
        Profile::Baseline,
        Profile::Main,
        Profile::High,
    ];
    for profile in profiles {
        let settings = EncodeSettings {
            profile,
            ..settings(Size::new(640, 360))
        };
        for (name, factory) in [
            (EncoderName::X264, "x264enc"),
            (EncoderName::OpenH264, "openh264enc"),
        ] {
            let plan = plan(name, factory, &settings);
            let result = GstProber.test_encode(&plan, &settings);
            assert_eq!(result, Ok(()), "{factory} {profile:?}");
        }
    }
}

#[test]
fn unregistered_factory_fails_with_reason() {
    let settings = settings(Size::new(1280, 720));
    let plan = plan(EncoderName::Vaapi, "vah264enc", &settings);
    assert!(
        gst::ElementFactory::find("vah264enc").is_none(),
        "this test needs a machine without the va plugin"
    );
    assert_eq!(
        GstProber.test_encode(&plan, &settings),
        Err("element vah264enc is not registered (its plugin or hardware is missing)".to_string())
    );
}

/// openh264enc rejects frames over 9437184 pixels (the ParamValidationExt
/// check of libopenh264 2.3.1 on Debian 12), so 7680x4320 fails caps
/// negotiation.
#[test]
fn openh264enc_rejects_8k() {
    let settings = settings(Size::new(7680, 4320));
    let plan = plan(EncoderName::OpenH264, "openh264enc", &settings);
    let reason = GstProber.test_encode(&plan, &settings).unwrap_err();
    assert!(
        reason.starts_with("test encode through openh264enc failed: "),
        "{reason}"
    );
    assert!(reason.contains("not-negotiated"), "{reason}");
    assert!(reason.contains("I420 7680x4320 at 30/1 fps"), "{reason}");
}

#[test]
fn unknown_property_fails_test_encode() {
    let settings = settings(Size::new(1280, 720));
    let mut plan = plan(EncoderName::X264, "x264enc", &settings);
    plan.chain.elements[0] = plan.chain.elements[0]
        .clone()
        .property("no-such-property", 1);
    let reason = GstProber.test_encode(&plan, &settings).unwrap_err();
    assert!(reason.contains("'no-such-property'"), "{reason}");
}

#[test]
fn invalid_enum_value_fails_test_encode() {
    let settings = settings(Size::new(1280, 720));
    let mut plan = plan(EncoderName::X264, "x264enc", &settings);
    plan.chain.elements[0] = plan.chain.elements[0]
        .clone()
        .property("pass", "no-such-mode");
    let reason = GstProber.test_encode(&plan, &settings).unwrap_err();
    assert!(
        reason.contains("x264enc") && reason.contains("rejects pass=no-such-mode"),
        "{reason}"
    );
    assert!(reason.contains("no-such-mode"), "{reason}");
}

#[test]
fn select_forced_x264_with_real_encode() {
    let settings = settings(Size::new(1280, 720));
    let selection = crate::encode::select(
        EncoderName::X264,
        crate::encode::Platform::current(),
        &settings,
        &GstProber,
    )
    .expect("x264enc passes its test encode");
    assert_eq!(selection.plan.factory, "x264enc");
    assert!(selection.skipped.is_empty());
}

#[test]
fn select_forced_vaapi_fails_without_va() {
    for factory in ["vah264enc", "vaapih264enc"] {
        assert!(
            gst::ElementFactory::find(factory).is_none(),
            "this test needs a machine without {factory}"
        );
    }
    let settings = settings(Size::new(1280, 720));
    let error = crate::encode::select(
        EncoderName::Vaapi,
        crate::encode::Platform::LinuxX86,
        &settings,
        &GstProber,
    )
    .unwrap_err();

    assert_eq!(error.exit_status().code(), 5);
    let message = error.to_string();
    assert!(
        message.contains("vaapi (vah264enc): element vah264enc is not registered"),
        "{message}"
    );
    assert!(
        message.contains("vaapi (vaapih264enc): element vaapih264enc is not registered"),
        "{message}"
    );
}
