//! The survey behind `bridge encoders`: every candidate of a platform,
//! whether its element is registered, and the outcome of its test encode.
//! Unlike `select`, it does not stop at the first encoder that passes.

use super::packages::provided_by;
use super::table::check_settings;
use super::{candidates, describe, EncodeSettings, Platform, Prober};
use serde::Serialize;

/// The outcome of one candidate's test encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestEncode {
    Passed,
    Failed,
    /// Not run, because the element is not registered.
    NotRun,
}

impl TestEncode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::NotRun => "not run",
        }
    }
}

/// One candidate as `bridge encoders` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncoderStatus {
    /// The family, as `--encoder` names it.
    pub family: &'static str,
    pub element: &'static str,
    pub registered: bool,
    /// The package and driver that provide the element.
    pub provided_by: &'static str,
    pub test_encode: TestEncode,
    /// The reason the test encode failed or was not run.
    pub reason: Option<String>,
    /// Whether `--encoder auto` picks this one: the first that passes.
    pub selected: bool,
}

/// Surveys every candidate of `platform` in the order `--encoder auto`
/// tries them. `is_registered` returns whether an element factory exists;
/// only registered elements get a test encode through `prober`.
pub fn survey(
    platform: Platform,
    settings: &EncodeSettings,
    prober: &dyn Prober,
    is_registered: &dyn Fn(&str) -> bool,
) -> Vec<EncoderStatus> {
    let mut statuses: Vec<EncoderStatus> = candidates(platform)
        .iter()
        .map(|candidate| {
            let registered = is_registered(candidate.factory);
            let outcome = if registered {
                let plan = describe(candidate, settings);
                check_settings(candidate, settings)
                    .and_then(|()| prober.test_encode(&plan, settings))
            } else {
                Err(format!(
                    "element {} is not registered: its plugin or its hardware is missing",
                    candidate.factory
                ))
            };
            let test_encode = match (&outcome, registered) {
                (Ok(()), _) => TestEncode::Passed,
                (Err(_), true) => TestEncode::Failed,
                (Err(_), false) => TestEncode::NotRun,
            };
            EncoderStatus {
                family: candidate.name.as_str(),
                element: candidate.factory,
                registered,
                provided_by: provided_by(candidate.factory),
                test_encode,
                reason: outcome.err(),
                selected: false,
            }
        })
        .collect();
    if let Some(first) = statuses
        .iter_mut()
        .find(|status| status.test_encode == TestEncode::Passed)
    {
        first.selected = true;
    }
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FrameRate, Size};
    use crate::encode::{EncoderPlan, Profile};
    use std::cell::RefCell;

    /// Passes the factories it is given and records every test encode.
    struct FakeProber {
        passing: Vec<&'static str>,
        probed: RefCell<Vec<String>>,
    }

    impl Prober for FakeProber {
        fn test_encode(&self, plan: &EncoderPlan, _: &EncodeSettings) -> Result<(), String> {
            self.probed.borrow_mut().push(plan.factory.to_string());
            if self.passing.contains(&plan.factory) {
                Ok(())
            } else {
                Err(format!("{} produced no output", plan.factory))
            }
        }
    }

    fn settings() -> EncodeSettings {
        EncodeSettings {
            size: Size::new(1280, 720),
            fps: FrameRate::new(30, 1),
            bitrate_kbps: 2667,
            gop_frames: 60,
            profile: Profile::High,
        }
    }

    #[test]
    fn survey_of_software_only_machine() {
        let prober = FakeProber {
            passing: vec!["x264enc", "openh264enc"],
            probed: RefCell::new(Vec::new()),
        };
        let registered = |factory: &str| matches!(factory, "x264enc" | "openh264enc" | "nvh264enc");
        let statuses = survey(Platform::LinuxX86, &settings(), &prober, &registered);

        let rows: Vec<(&str, bool, TestEncode, bool)> = statuses
            .iter()
            .map(|s| (s.element, s.registered, s.test_encode, s.selected))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("vah264enc", false, TestEncode::NotRun, false),
                ("vaapih264enc", false, TestEncode::NotRun, false),
                ("qsvh264enc", false, TestEncode::NotRun, false),
                ("nvh264enc", true, TestEncode::Failed, false),
                ("x264enc", true, TestEncode::Passed, true),
                ("openh264enc", true, TestEncode::Passed, false),
            ]
        );
        assert_eq!(
            *prober.probed.borrow(),
            vec!["nvh264enc", "x264enc", "openh264enc"]
        );
        assert_eq!(
            statuses[3].reason.as_deref(),
            Some("nvh264enc produced no output")
        );
        assert!(statuses[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not registered"));
        assert_eq!(statuses[4].reason, None);
        assert_eq!(statuses[0].family, "vaapi");
    }

    #[test]
    fn survey_without_any_passing_encoder() {
        let prober = FakeProber {
            passing: Vec::new(),
            probed: RefCell::new(Vec::new()),
        };
        let statuses = survey(Platform::LinuxArm, &settings(), &prober, &|_| true);
        assert_eq!(statuses.len(), 3);
        assert!(statuses.iter().all(|s| !s.selected));
        assert!(statuses.iter().all(|s| s.test_encode == TestEncode::Failed));
    }

    #[test]
    fn json_names() {
        let prober = FakeProber {
            passing: vec!["x264enc"],
            probed: RefCell::new(Vec::new()),
        };
        let statuses = survey(Platform::Other, &settings(), &prober, &|_| true);
        let json = serde_json::to_value(&statuses).unwrap();
        assert_eq!(json[0]["element"], "x264enc");
        assert_eq!(json[0]["test_encode"], "passed");
        assert_eq!(json[0]["selected"], true);
        assert_eq!(json[1]["test_encode"], "failed");
    }
}
