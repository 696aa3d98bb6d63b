//! H.264 encoders: candidates per platform, the test encode, and one table
//! that maps the common settings onto each encoder's own properties.
//!
//! `candidates` lists the encoder factories to try on a platform, hardware
//! first. `describe` (in `table`) turns the common [`EncodeSettings`] into
//! one element chain per factory, in that element's own property names and
//! units. `select` runs a short test encode through each chain in order and
//! keeps the first that produces H.264.

mod level;
mod packages;
mod platform;
mod probe;
mod select;
mod survey;
mod table;

pub use level::{level_for, level_for_settings};
pub use packages::provided_by;
pub use platform::{candidates, family_candidates, Candidate, Platform};
pub use probe::{GstProber, Prober, TEST_ENCODE_TIMEOUT};
pub use select::{select, select_after, Selection};
pub use survey::{survey, EncoderStatus, TestEncode};
pub use table::{describe, EncoderPlan};

use crate::config::{FrameRate, Size};
use crate::exit::ExitStatus;
use std::fmt;
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

impl EncoderName {
    /// Returns the name `--encoder` accepts for this family.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Vaapi => "vaapi",
            Self::Qsv => "qsv",
            Self::Nvenc => "nvenc",
            Self::V4l2 => "v4l2",
            Self::VideoToolbox => "videotoolbox",
            Self::X264 => "x264",
            Self::OpenH264 => "openh264",
        }
    }
}

impl fmt::Display for EncoderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// The settings every encoder gets, in common units. `describe` converts
/// them to each element's own properties.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodeSettings {
    pub size: Size,
    pub fps: FrameRate,
    pub bitrate_kbps: u32,
    /// Distance between IDR frames, in frames.
    pub gop_frames: u32,
    pub profile: Profile,
}

/// Bitrate for 1920x1080 that `default_bitrate_kbps` scales from.
const DEFAULT_BITRATE_1080P_KBPS: u64 = 6000;

/// Lowest bitrate `default_bitrate_kbps` returns, so that small sizes still
/// get a watchable picture.
const MIN_DEFAULT_BITRATE_KBPS: u32 = 500;

/// Converts a GOP length in seconds to frames at `fps`: rounded, at least one.
pub fn gop_frames(gop_seconds: f64, fps: FrameRate) -> u32 {
    fps.frames_in(gop_seconds)
}

/// Returns the bitrate used when none is given: 6000 kb/s at 1920x1080,
/// scaled by pixel count and rounded, never below 500 kb/s.
pub fn default_bitrate_kbps(size: Size) -> u32 {
    let full_hd_pixels = 1920 * 1080;
    let scaled = (DEFAULT_BITRATE_1080P_KBPS * size.pixels() + full_hd_pixels / 2) / full_hd_pixels;
    u32::try_from(scaled)
        .unwrap_or(u32::MAX)
        .max(MIN_DEFAULT_BITRATE_KBPS)
}

/// One encoder factory that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub name: EncoderName,
    pub factory: &'static str,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.factory, self.reason)
    }
}

/// Lists skipped encoders one per line, for error messages.
fn list_skipped(skipped: &[Skipped]) -> String {
    let lines: Vec<String> = skipped.iter().map(|s| format!("\n  {s}")).collect();
    lines.concat()
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "encoder '{name}' was requested with --encoder but none of its elements passed a test \
         encode:{}\nInstall its driver and GStreamer plugin, or use --encoder auto",
        list_skipped(.skipped)
    )]
    ForcedEncoderUnusable {
        name: EncoderName,
        skipped: Vec<Skipped>,
    },
    #[error(
        "no H.264 encoder passed a test encode:{}\nInstall gstreamer1.0-plugins-ugly for \
         x264enc, or a hardware encoder's driver and GStreamer plugin",
        list_skipped(.skipped)
    )]
    NoUsableEncoder { skipped: Vec<Skipped> },
    #[error(
        "no H.264 level allows {size} at {fps} fps: level 6.2, the highest, allows at most \
         139264 macroblocks per frame and 16711680 per second; lower the size or frame rate"
    )]
    NoLevelForSize { size: Size, fps: FrameRate },
    #[error(
        "no H.264 level allows {bitrate_kbps} kb/s in profile {}: level 6.2 allows at most \
         {max_kbps} kb/s; lower the bitrate",
        .profile.caps_name()
    )]
    NoLevelForBitrate {
        bitrate_kbps: u32,
        profile: Profile,
        max_kbps: u32,
    },
}

impl EncodeError {
    /// Returns the exit status this error ends the process with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::ForcedEncoderUnusable { .. } | Self::NoUsableEncoder { .. } => {
                ExitStatus::Encoder
            }
            Self::NoLevelForSize { .. } | Self::NoLevelForBitrate { .. } => ExitStatus::Usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gop_frames_rounds_to_frames() {
        let ntsc = FrameRate::new(30000, 1001);
        assert_eq!(gop_frames(2.0, ntsc), 60);
        assert_eq!(gop_frames(1.0, ntsc), 30);
        assert_eq!(gop_frames(10.0, ntsc), 300);
        let pal = FrameRate::new(25, 1);
        assert_eq!(gop_frames(2.0, pal), 50);
        assert_eq!(gop_frames(0.5, pal), 13);
        assert_eq!(gop_frames(0.01, pal), 1);
        assert_eq!(gop_frames(0.0, pal), 1);
    }

    #[test]
    fn default_bitrate_scales_with_pixels() {
        assert_eq!(default_bitrate_kbps(Size::new(1920, 1080)), 6000);
        assert_eq!(default_bitrate_kbps(Size::new(1280, 720)), 2667);
        assert_eq!(default_bitrate_kbps(Size::new(3840, 2160)), 24000);
        assert_eq!(default_bitrate_kbps(Size::new(640, 360)), 667);
        assert_eq!(default_bitrate_kbps(Size::new(320, 240)), 500);
    }

    #[test]
    fn encoder_name_round_trips() {
        let names = [
            EncoderName::Auto,
            EncoderName::Vaapi,
            EncoderName::Qsv,
            EncoderName::Nvenc,
            EncoderName::V4l2,
            EncoderName::VideoToolbox,
            EncoderName::X264,
            EncoderName::OpenH264,
        ];
        for name in names {
            assert_eq!(name.as_str().parse::<EncoderName>(), Ok(name));
        }
    }

    #[test]
    fn exit_status_by_error() {
        let skipped = vec![Skipped {
            name: EncoderName::X264,
            factory: "x264enc",
            reason: "broken".to_string(),
        }];
        let forced = EncodeError::ForcedEncoderUnusable {
            name: EncoderName::X264,
            skipped: skipped.clone(),
        };
        assert_eq!(forced.exit_status(), ExitStatus::Encoder);
        let none = EncodeError::NoUsableEncoder { skipped };
        assert_eq!(none.exit_status(), ExitStatus::Encoder);
        let level = EncodeError::NoLevelForSize {
            size: Size::new(7680, 4320),
            fps: FrameRate::new(240, 1),
        };
        assert_eq!(level.exit_status(), ExitStatus::Usage);
    }
}
