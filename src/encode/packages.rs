//! The packages behind each encoder element: the GStreamer plugin's package and
//! the driver or hardware the element needs, with Debian 12 package names.
//! Hardware encoder elements register only when their driver finds the
//! hardware, so an installed plugin alone can leave them unregistered.

/// Returns what provides `factory`, for `bridge encoders` to print when the
/// element is not registered.
pub fn provided_by(factory: &str) -> &'static str {
    match factory {
        "vah264enc" => {
            "gstreamer1.0-plugins-bad (va plugin) with a VA-API driver that encodes H.264: \
             intel-media-va-driver-non-free (Intel, Debian non-free) or mesa-va-drivers (AMD); \
             registers only when a /dev/dri/renderD* device offers an H.264 encoder"
        }
        "vaapih264enc" => {
            "gstreamer1.0-vaapi with a VA-API driver that encodes H.264: \
             intel-media-va-driver-non-free (Intel) or mesa-va-drivers (AMD)"
        }
        "qsvh264enc" => {
            "gstreamer1.0-plugins-bad (qsv plugin) with Intel's GPU runtime: libmfx-gen1.2 \
             (oneVPL, Tiger Lake and later) or libmfx1 (Media SDK, older GPUs)"
        }
        "nvh264enc" => {
            "gstreamer1.0-plugins-bad (nvcodec plugin) with the NVIDIA driver's encode \
             library (libnvidia-encode1, Debian non-free) on an NVIDIA GPU"
        }
        "v4l2h264enc" => {
            "gstreamer1.0-plugins-good (video4linux2 plugin) with a V4L2 memory-to-memory \
             H.264 encoder, such as the Raspberry Pi 4's bcm2835-codec (/dev/video11)"
        }
        "vtenc_h264_hw" | "vtenc_h264" => {
            "GStreamer's applemedia plugin (gst-plugins-bad) on macOS, such as Homebrew's \
             gstreamer"
        }
        "x264enc" => "gstreamer1.0-plugins-ugly (x264 plugin)",
        "openh264enc" => "gstreamer1.0-plugins-bad (openh264 plugin)",
        _ => "an unknown plugin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{candidates, Platform};

    #[test]
    fn every_candidate_names_its_provider() {
        for platform in [
            Platform::LinuxX86,
            Platform::LinuxArm,
            Platform::MacOs,
            Platform::Other,
        ] {
            for candidate in candidates(platform) {
                let text = provided_by(candidate.factory);
                assert_ne!(text, "an unknown plugin", "{}", candidate.factory);
            }
        }
    }

    #[test]
    fn hardware_providers_name_their_driver() {
        let cases = [
            ("vah264enc", "mesa-va-drivers"),
            ("qsvh264enc", "libmfx-gen1.2"),
            ("nvh264enc", "libnvidia-encode1"),
            ("v4l2h264enc", "memory-to-memory"),
            ("x264enc", "gstreamer1.0-plugins-ugly"),
        ];
        for (factory, needle) in cases {
            assert!(provided_by(factory).contains(needle), "{factory}");
        }
    }
}
