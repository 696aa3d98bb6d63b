//! H.264 encoders: candidates per platform, the test encode, and one table
//! that maps the common settings onto each encoder's own properties.

use std::str::FromStr;

/// An encoder family as `--encoder` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderName {
    Auto,
    Vaapi,
    Qsv,
    Nvenc,
    V4l2,
    VideoToolbox,
    X264,
    OpenH264,
}

impl FromStr for EncoderName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "auto" => Self::Auto,
            "vaapi" => Self::Vaapi,
            "qsv" => Self::Qsv,
            "nvenc" => Self::Nvenc,
            "v4l2" => Self::V4l2,
            "videotoolbox" => Self::VideoToolbox,
            "x264" => Self::X264,
            "openh264" => Self::OpenH264,
            _ => {
                return Err(format!(
                    "invalid encoder '{text}': use auto, vaapi, qsv, nvenc, v4l2, videotoolbox, \
                     x264 or openh264"
                ))
            }
        })
    }
}

/// H.264 profile requested with `--profile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    High,
}

impl Profile {
    /// The name H.264 caps use for this profile.
    pub fn caps_name(self) -> &'static str {
        match self {
            Self::ConstrainedBaseline => "constrained-baseline",
            Self::Baseline => "baseline",
            Self::Main => "main",
            Self::High => "high",
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "constrained-baseline" => Self::ConstrainedBaseline,
            "baseline" => Self::Baseline,
            "main" => Self::Main,
            "high" => Self::High,
            _ => {
                return Err(format!(
                    "invalid profile '{text}': use constrained-baseline, baseline, main or high"
                ))
            }
        })
    }
}
