//! Encoder factories to try on each platform, in order: hardware first,
//! then x264, then OpenH264.

use super::EncoderName;

/// The platforms with different encoder candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Linux on x86 or x86-64: VA-API, Quick Sync or NVENC hardware.
    LinuxX86,
    /// Linux on ARM, such as the Raspberry Pi: a V4L2 memory-to-memory encoder.
    LinuxArm,
    /// macOS: VideoToolbox.
    MacOs,
    /// Anything else: software encoders only.
    Other,
}

impl Platform {
    /// Returns the platform this binary was built for.
    pub fn current() -> Self {
        if cfg!(target_os = "linux") && cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
            Self::LinuxX86
        } else if cfg!(target_os = "linux")
            && cfg!(any(target_arch = "arm", target_arch = "aarch64"))
        {
            Self::LinuxArm
        } else if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Other
        }
    }
}

/// One GStreamer element factory that may encode H.264, and its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: EncoderName,
    pub factory: &'static str,
}

const fn candidate(name: EncoderName, factory: &'static str) -> Candidate {
    Candidate { name, factory }
}

/// `vah264enc` (the `va` plugin of gst-plugins-bad) replaces the legacy
/// `vaapih264enc` of gstreamer-vaapi. Both are tried, the newer first.
const VAAPI: &[Candidate] = &[
    candidate(EncoderName::Vaapi, "vah264enc"),
    candidate(EncoderName::Vaapi, "vaapih264enc"),
];
const QSV: &[Candidate] = &[candidate(EncoderName::Qsv, "qsvh264enc")];
const NVENC: &[Candidate] = &[candidate(EncoderName::Nvenc, "nvh264enc")];
const V4L2: &[Candidate] = &[candidate(EncoderName::V4l2, "v4l2h264enc")];
/// `vtenc_h264_hw` fails unless a hardware encoder is present, while
/// `vtenc_h264` may fall back to Apple's software encoder.
const VIDEOTOOLBOX: &[Candidate] = &[
    candidate(EncoderName::VideoToolbox, "vtenc_h264_hw"),
    candidate(EncoderName::VideoToolbox, "vtenc_h264"),
];
const X264: &[Candidate] = &[candidate(EncoderName::X264, "x264enc")];
const OPENH264: &[Candidate] = &[candidate(EncoderName::OpenH264, "openh264enc")];

/// Returns the factories of one encoder family, in the order to try them.
/// `Auto` is no family and returns none.
pub fn family_candidates(name: EncoderName) -> Vec<Candidate> {
    let family = match name {
        EncoderName::Auto => &[][..],
        EncoderName::Vaapi => VAAPI,
        EncoderName::Qsv => QSV,
        EncoderName::Nvenc => NVENC,
        EncoderName::V4l2 => V4L2,
        EncoderName::VideoToolbox => VIDEOTOOLBOX,
        EncoderName::X264 => X264,
        EncoderName::OpenH264 => OPENH264,
    };
    family.to_vec()
}

/// Returns the factories to try on `platform`, in order: hardware
/// encoders first, then x264, then OpenH264.
pub fn candidates(platform: Platform) -> Vec<Candidate> {
    let hardware: &[&[Candidate]] = match platform {
        Platform::LinuxX86 => &[VAAPI, QSV, NVENC],
        Platform::LinuxArm => &[V4L2],
        Platform::MacOs => &[VIDEOTOOLBOX],
        Platform::Other => &[],
    };
    hardware
        .iter()
        .chain([X264, OPENH264].iter())
        .flat_map(|family| family.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factories(platform: Platform) -> Vec<&'static str> {
        candidates(platform).iter().map(|c| c.factory).collect()
    }

    #[test]
    fn candidates_per_platform() {
        assert_eq!(
            factories(Platform::LinuxX86),
            [
                "vah264enc",
                "vaapih264enc",
                "qsvh264enc",
                "nvh264enc",
                "x264enc",
                "openh264enc"
            ]
        );
        assert_eq!(
            factories(Platform::LinuxArm),
            ["v4l2h264enc", "x264enc", "openh264enc"]
        );
        assert_eq!(
            factories(Platform::MacOs),
            ["vtenc_h264_hw", "vtenc_h264", "x264enc", "openh264enc"]
        );
        assert_eq!(factories(Platform::Other), ["x264enc", "openh264enc"]);
    }

    #[test]
    fn candidates_carry_family_names() {
        let linux = candidates(Platform::LinuxX86);
        let names: Vec<EncoderName> = linux.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                EncoderName::Vaapi,
                EncoderName::Vaapi,
                EncoderName::Qsv,
                EncoderName::Nvenc,
                EncoderName::X264,
                EncoderName::OpenH264
            ]
        );
    }

    #[test]
    fn family_candidates_list_one_family() {
        let vaapi: Vec<&str> = family_candidates(EncoderName::Vaapi)
            .iter()
            .map(|c| c.factory)
            .collect();
        assert_eq!(vaapi, ["vah264enc", "vaapih264enc"]);
        let apple: Vec<&str> = family_candidates(EncoderName::VideoToolbox)
            .iter()
            .map(|c| c.factory)
            .collect();
        assert_eq!(apple, ["vtenc_h264_hw", "vtenc_h264"]);
        assert!(family_candidates(EncoderName::Auto).is_empty());
        for name in [
            EncoderName::Qsv,
            EncoderName::Nvenc,
            EncoderName::V4l2,
            EncoderName::X264,
            EncoderName::OpenH264,
        ] {
            let family = family_candidates(name);
            assert_eq!(family.len(), 1, "{name}");
            assert_eq!(family[0].name, name);
        }
    }

    #[test]
    fn current_platform_matches_build_target() {
        let platform = Platform::current();
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform, Platform::LinuxX86);
        }
        if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
            assert_eq!(platform, Platform::LinuxArm);
        }
        if cfg!(target_os = "macos") {
            assert_eq!(platform, Platform::MacOs);
        }
    }
}
