//! H.264 levels from picture size, frame rate and bitrate, after the limits
//! of Table A-1 in ITU-T H.264 (08/2021), Annex A.

use super::{EncodeError, EncodeSettings, Profile};
use crate::config::{FrameRate, Size};

/// Limits of one level from Table A-1.
struct Level {
    /// The name H.264 caps use (`level=3.1`).
    name: &'static str,
    /// MaxMBPS: macroblocks per second.
    max_macroblocks_per_second: u64,
    /// MaxFS: macroblocks per frame.
    max_frame_macroblocks: u64,
    /// MaxBR for Baseline and Main, in units of 1000 bit/s. High allows
    /// 1.25 times this (cpbBrVclFactor 1250 in Table A-2).
    max_bitrate_kbps: u32,
}

const fn level(name: &'static str, mbps: u64, fs: u64, br: u32) -> Level {
    Level {
        name,
        max_macroblocks_per_second: mbps,
        max_frame_macroblocks: fs,
        max_bitrate_kbps: br,
    }
}

/// Table A-1 in ascending order. Level 1b is left out: it differs from
/// level 1 only in bitrate, and level 1.1 covers it.
const LEVELS: &[Level] = &[
    level("1", 1_485, 99, 64),
    level("1.1", 3_000, 396, 192),
    level("1.2", 6_000, 396, 384),
    level("1.3", 11_880, 396, 768),
    level("2", 11_880, 396, 2_000),
    level("2.1", 19_800, 792, 4_000),
    level("2.2", 20_250, 1_620, 4_000),
    level("3", 40_500, 1_620, 10_000),
    level("3.1", 108_000, 3_600, 14_000),
    level("3.2", 216_000, 5_120, 20_000),
    level("4", 245_760, 8_192, 20_000),
    level("4.1", 245_760, 8_192, 50_000),
    level("4.2", 522_240, 8_704, 50_000),
    level("5", 589_824, 22_080, 135_000),
    level("5.1", 983_040, 36_864, 240_000),
    level("5.2", 2_073_600, 36_864, 240_000),
    level("6", 4_177_920, 139_264, 240_000),
    level("6.1", 8_355_840, 139_264, 480_000),
    level("6.2", 16_711_680, 139_264, 800_000),
];

/// Picture width or height in 16x16 macroblocks, rounded up.
fn macroblocks(pixels: u32) -> u64 {
    u64::from(pixels).div_ceil(16)
}

fn size_fits(level: &Level, size: Size, fps: FrameRate) -> bool {
    let width_macroblocks = macroblocks(size.width);
    let height_macroblocks = macroblocks(size.height);
    let frame_macroblocks = width_macroblocks * height_macroblocks;

    // A.3.1 item f: neither side may exceed Sqrt(MaxFS * 8) macroblocks.
    let max_side_squared = level.max_frame_macroblocks * 8;
    let sides_fit = width_macroblocks * width_macroblocks <= max_side_squared
        && height_macroblocks * height_macroblocks <= max_side_squared;

    // Macroblocks per second, compared as fractions to stay exact for
    // rates such as 30000/1001.
    let rate_fits = frame_macroblocks * u64::from(fps.numerator)
        <= level.max_macroblocks_per_second * u64::from(fps.denominator);

    frame_macroblocks <= level.max_frame_macroblocks && sides_fit && rate_fits
}

fn max_bitrate_kbps(level: &Level, profile: Profile) -> u32 {
    match profile {
        Profile::High => level.max_bitrate_kbps / 4 * 5,
        Profile::ConstrainedBaseline | Profile::Baseline | Profile::Main => level.max_bitrate_kbps,
    }
}

fn size_level_index(size: Size, fps: FrameRate) -> Result<usize, EncodeError> {
    LEVELS
        .iter()
        .position(|level| size_fits(level, size, fps))
        .ok_or(EncodeError::NoLevelForSize { size, fps })
}

/// Returns the lowest H.264 level whose frame size and macroblock rate
/// limits allow `size` at `fps`, as caps name it (`"3.1"`, `"4"`).
pub fn level_for(size: Size, fps: FrameRate) -> Result<&'static str, EncodeError> {
    size_level_index(size, fps).map(|index| LEVELS[index].name)
}

/// Returns the lowest H.264 level that allows the size, rate and bitrate
/// of `settings` in its profile.
pub fn level_for_settings(settings: &EncodeSettings) -> Result<&'static str, EncodeError> {
    let size_index = size_level_index(settings.size, settings.fps)?;
    let bitrate_index = LEVELS
        .iter()
        .position(|level| max_bitrate_kbps(level, settings.profile) >= settings.bitrate_kbps)
        .ok_or_else(|| EncodeError::NoLevelForBitrate {
            bitrate_kbps: settings.bitrate_kbps,
            profile: settings.profile,
            max_kbps: LEVELS
                .last()
                .map_or(0, |level| max_bitrate_kbps(level, settings.profile)),
        })?;
    Ok(LEVELS[size_index.max(bitrate_index)].name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(numerator: u32, denominator: u32) -> FrameRate {
        FrameRate::new(numerator, denominator)
    }

    #[test]
    fn level_for_common_modes() {
        let cases = [
            (Size::new(320, 240), rate(30, 1), "1.3"),
            (Size::new(640, 360), rate(30, 1), "3"),
            (Size::new(640, 480), rate(30, 1), "3"),
            (Size::new(1280, 720), rate(30, 1), "3.1"),
            (Size::new(1280, 720), rate(30000, 1001), "3.1"),
            (Size::new(1280, 720), rate(50, 1), "3.2"),
            (Size::new(1280, 720), rate(60, 1), "3.2"),
            (Size::new(1920, 1080), rate(25, 1), "4"),
            (Size::new(1920, 1080), rate(30, 1), "4"),
            (Size::new(1920, 1080), rate(30000, 1001), "4"),
            (Size::new(1920, 1080), rate(50, 1), "4.2"),
            (Size::new(1920, 1080), rate(60, 1), "4.2"),
            (Size::new(2560, 1440), rate(30, 1), "5"),
            (Size::new(3840, 2160), rate(30, 1), "5.1"),
            (Size::new(3840, 2160), rate(60, 1), "5.2"),
            (Size::new(7680, 4320), rate(30, 1), "6"),
            (Size::new(7680, 4320), rate(60, 1), "6.1"),
            (Size::new(7680, 4320), rate(120, 1), "6.2"),
        ];
        for (size, fps, expected) in cases {
            let level = level_for(size, fps);
            assert_eq!(level.ok(), Some(expected), "{size} at {fps}");
        }
    }

    #[test]
    fn level_for_counts_partial_macroblocks() {
        // 1920x1080 is coded as 120x68 macroblocks (1088 lines): 8160 per
        // frame, 244800 per second at 30 fps, just inside level 4.
        assert_eq!(
            level_for(Size::new(1920, 1080), rate(30, 1)).ok(),
            Some("4")
        );
        // 1920x1088 at 31 fps passes MaxMBPS of level 4 (245760).
        assert_eq!(
            level_for(Size::new(1920, 1088), rate(31, 1)).ok(),
            Some("4.2")
        );
    }

    #[test]
    fn level_for_limits_long_sides() {
        // 8192x16 is 512 macroblocks per frame (level 2.1 by MaxFS), but its
        // 512-macroblock width needs Sqrt(MaxFS * 8) >= 512, so MaxFS >= 32768.
        assert_eq!(
            level_for(Size::new(8192, 16), rate(30, 1)).ok(),
            Some("5.1")
        );
    }

    #[test]
    fn level_for_rejects_too_large() {
        let error = level_for(Size::new(7680, 4320), rate(240, 1)).unwrap_err();
        assert!(
            matches!(error, EncodeError::NoLevelForSize { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("7680x4320"), "{error}");
        assert!(error.to_string().contains("240/1"), "{error}");

        // 1250 macroblocks wide exceeds Sqrt(139264 * 8), about 1055.
        let too_wide = level_for(Size::new(20000, 16), rate(1, 1));
        assert!(too_wide.is_err());
    }

    fn settings(bitrate_kbps: u32, profile: Profile) -> EncodeSettings {
        EncodeSettings {
            size: Size::new(1280, 720),
            fps: rate(30, 1),
            bitrate_kbps,
            gop_frames: 60,
            profile,
        }
    }

    #[test]
    fn level_for_settings_raises_for_bitrate() {
        let cases = [
            (4_000, Profile::High, "3.1"),
            (14_000, Profile::Main, "3.1"),
            (14_001, Profile::Main, "3.2"),
            (17_500, Profile::High, "3.1"),
            (17_501, Profile::High, "3.2"),
            (25_000, Profile::Main, "4.1"),
            (25_000, Profile::High, "3.2"),
            (60_000, Profile::Baseline, "5"),
        ];
        for (bitrate_kbps, profile, expected) in cases {
            let level = level_for_settings(&settings(bitrate_kbps, profile));
            assert_eq!(
                level.ok(),
                Some(expected),
                "{bitrate_kbps} kb/s {profile:?}"
            );
        }
    }

    #[test]
    fn level_for_settings_rejects_bitrate_above_all() {
        let error = level_for_settings(&settings(900_000, Profile::Main)).unwrap_err();
        assert!(
            matches!(error, EncodeError::NoLevelForBitrate { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("900000 kb/s"), "{error}");
        assert!(error.to_string().contains("800000 kb/s"), "{error}");
    }
}
