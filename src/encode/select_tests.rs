use super::*;
use crate::config::{FrameRate, Size};
use crate::encode::Profile;
use crate::exit::ExitStatus;
use std::cell::RefCell;
use std::collections::HashMap;

/// Fails the factories it has a reason for and records every call.
struct FakeProber {
    failures: HashMap<&'static str, &'static str>,
    calls: RefCell<Vec<&'static str>>,
}

impl FakeProber {
    fn failing(failures: &[(&'static str, &'static str)]) -> Self {
        Self {
            failures: failures.iter().copied().collect(),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.borrow().clone()
    }
}

impl Prober for FakeProber {
    fn test_encode(&self, plan: &EncoderPlan, _: &EncodeSettings) -> Result<(), String> {
        self.calls.borrow_mut().push(plan.factory);
        match self.failures.get(plan.factory) {
            Some(reason) => Err(reason.to_string()),
            None => Ok(()),
        }
    }
}

fn settings() -> EncodeSettings {
    EncodeSettings {
        size: Size::new(1920, 1080),
        fps: FrameRate::new(30, 1),
        bitrate_kbps: 6000,
        gop_frames: 60,
        profile: Profile::Main,
    }
}

const NOT_REGISTERED: &str = "not registered";

#[test]
fn select_takes_first_working() {
    let prober = FakeProber::failing(&[]);
    let selection = select(EncoderName::Auto, Platform::LinuxX86, &settings(), &prober).unwrap();
    assert_eq!(selection.plan.factory, "vah264enc");
    assert_eq!(selection.plan.name, EncoderName::Vaapi);
    assert!(selection.skipped.is_empty());
    assert_eq!(prober.calls(), ["vah264enc"]);
}

#[test]
fn select_skips_failed_test_encode() {
    let prober = FakeProber::failing(&[
        ("vah264enc", NOT_REGISTERED),
        ("vaapih264enc", NOT_REGISTERED),
        (
            "qsvh264enc",
            "test encode through qsvh264enc failed: no device",
        ),
        ("nvh264enc", NOT_REGISTERED),
    ]);
    let selection = select(EncoderName::Auto, Platform::LinuxX86, &settings(), &prober).unwrap();

    assert_eq!(selection.plan.factory, "x264enc");
    assert_eq!(selection.plan.name, EncoderName::X264);
    assert_eq!(
        selection.skipped,
        [
            (EncoderName::Vaapi, "vah264enc: not registered".to_string()),
            (
                EncoderName::Vaapi,
                "vaapih264enc: not registered".to_string()
            ),
            (
                EncoderName::Qsv,
                "qsvh264enc: test encode through qsvh264enc failed: no device".to_string()
            ),
            (EncoderName::Nvenc, "nvh264enc: not registered".to_string()),
        ]
    );
    assert_eq!(
        prober.calls(),
        [
            "vah264enc",
            "vaapih264enc",
            "qsvh264enc",
            "nvh264enc",
            "x264enc"
        ]
    );
}

#[test]
fn select_returns_plan_for_settings() {
    let prober = FakeProber::failing(&[("v4l2h264enc", NOT_REGISTERED)]);
    let selection = select(EncoderName::Auto, Platform::LinuxArm, &settings(), &prober).unwrap();
    let expected = describe(&family_candidates(EncoderName::X264)[0], &settings());
    assert_eq!(selection.plan, expected);
}

#[test]
fn select_forced_tries_only_its_family() {
    let prober = FakeProber::failing(&[("vah264enc", NOT_REGISTERED)]);
    let selection = select(EncoderName::Vaapi, Platform::LinuxX86, &settings(), &prober).unwrap();
    assert_eq!(selection.plan.factory, "vaapih264enc");
    assert_eq!(prober.calls(), ["vah264enc", "vaapih264enc"]);
}

#[test]
fn select_forced_failure_exits_5() {
    let prober = FakeProber::failing(&[("nvh264enc", "test encode timed out")]);
    let error = select(EncoderName::Nvenc, Platform::LinuxX86, &settings(), &prober).unwrap_err();

    assert_eq!(error.exit_status(), ExitStatus::Encoder);
    assert_eq!(error.exit_status().code(), 5);
    assert!(
        matches!(
            error,
            EncodeError::ForcedEncoderUnusable {
                name: EncoderName::Nvenc,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("'nvenc'"), "{message}");
    assert!(
        message.contains("nvenc (nvh264enc): test encode timed out"),
        "{message}"
    );
    assert_eq!(prober.calls(), ["nvh264enc"]);
}

#[test]
fn select_forced_x264_does_not_fall_back() {
    let prober = FakeProber::failing(&[("x264enc", "broken")]);
    let error = select(EncoderName::X264, Platform::LinuxX86, &settings(), &prober).unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::Encoder);
    assert_eq!(prober.calls(), ["x264enc"]);
}

#[test]
fn select_all_failing_lists_every_reason() {
    let failures = [
        ("v4l2h264enc", "no /dev/video11"),
        ("x264enc", "x264 broken"),
        ("openh264enc", "openh264 broken"),
    ];
    let prober = FakeProber::failing(&failures);
    let error = select(EncoderName::Auto, Platform::LinuxArm, &settings(), &prober).unwrap_err();

    assert_eq!(error.exit_status(), ExitStatus::Encoder);
    let EncodeError::NoUsableEncoder { skipped } = &error else {
        panic!("expected NoUsableEncoder, got {error:?}");
    };
    let factories: Vec<&str> = skipped.iter().map(|s| s.factory).collect();
    assert_eq!(factories, ["v4l2h264enc", "x264enc", "openh264enc"]);

    let message = error.to_string();
    assert!(
        message.contains("v4l2 (v4l2h264enc): no /dev/video11"),
        "{message}"
    );
    assert!(message.contains("x264 (x264enc): x264 broken"), "{message}");
    assert!(
        message.contains("openh264 (openh264enc): openh264 broken"),
        "{message}"
    );
}

#[test]
fn select_skips_v4l2_without_level() {
    let settings = EncodeSettings {
        size: Size::new(7680, 4320),
        fps: FrameRate::new(240, 1),
        ..settings()
    };
    let prober = FakeProber::failing(&[]);
    let selection = select(EncoderName::Auto, Platform::LinuxArm, &settings, &prober).unwrap();

    assert_eq!(selection.plan.factory, "x264enc");
    assert_eq!(selection.skipped.len(), 1);
    let (name, reason) = &selection.skipped[0];
    assert_eq!(*name, EncoderName::V4l2);
    assert!(
        reason.starts_with("v4l2h264enc: no H.264 level"),
        "{reason}"
    );
    assert_eq!(prober.calls(), ["x264enc"]);
}

#[test]
fn select_after_skips_failed_and_earlier() {
    let prober = FakeProber::failing(&[]);
    let selection = select_after(
        EncoderName::Auto,
        Platform::LinuxX86,
        &settings(),
        &prober,
        "x264enc",
    )
    .unwrap();
    assert_eq!(selection.plan.factory, "openh264enc");
    assert_eq!(prober.calls(), ["openh264enc"]);
}

#[test]
fn select_after_last_candidate_fails() {
    let prober = FakeProber::failing(&[]);
    let error = select_after(
        EncoderName::Auto,
        Platform::LinuxX86,
        &settings(),
        &prober,
        "openh264enc",
    )
    .unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::Encoder);
    assert!(prober.calls().is_empty());
}
