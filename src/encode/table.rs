//! The encoder table: how the common settings map onto each encoder
//! element's own properties, units and caps.
//!
//! Every plan is the same chain: raw video in the plan's `input_format`,
//! then the encoder, then a `capsfilter` with `video/x-h264` and the
//! profile, plus the level where the encoder needs it. Every element gets
//! the bitrate in its own unit, the GOP in frames, no B-frames where it has
//! a property for them, and its constant-bitrate or low-latency mode where
//! it offers one.
//!
//! The hardware rows are checked against each element's 1.22 source, not
//! run: this machine has none of that hardware. A profile or property that
//! an element rejects at run time fails its test encode, and `select` moves
//! on to the next candidate.
//!
//! Where the property names, types and ranges come from (GStreamer 1.22):
//! - `x264enc`, `openh264enc`: `gst-inspect-1.0` on Debian 12.
//! - `vah264enc`: <https://gstreamer.freedesktop.org/documentation/va/vah264enc.html>
//!   and `subprojects/gst-plugins-bad/sys/va/gstvah264enc.c` at tag 1.22.0.
//! - `vaapih264enc`: <https://gstreamer.freedesktop.org/documentation/vaapi/vaapih264enc.html>
//!   and `subprojects/gstreamer-vaapi/docs/gst_plugins_cache.json` at 1.22.0.
//! - `qsvh264enc`: <https://gstreamer.freedesktop.org/documentation/qsv/qsvh264enc.html>
//!   and `sys/qsv/gstqsvh264enc.cpp`, `gstqsvencoder.cpp` at 1.22.0.
//! - `nvh264enc`: `sys/nvcodec/gstnvbaseenc.c` and `gstnvh264enc.c` at
//!   1.22.0 (the element that `nvenc` registers on Linux, not `nvcudah264enc`).
//! - `vtenc_h264`, `vtenc_h264_hw`:
//!   <https://gstreamer.freedesktop.org/documentation/applemedia/vtenc_h264.html>
//!   and `sys/applemedia/vtenc.c` at 1.22.0.
//! - `v4l2h264enc`: `subprojects/gst-plugins-good/sys/v4l2/gstv4l2object.c`
//!   and `v4l2_calls.c` at 1.22.0 for `extra-controls`; the control names
//!   are those `v4l2-ctl --list-ctrls` prints for the Raspberry Pi's
//!   bcm2835-codec encoder.

use super::{level_for_settings, Candidate, EncodeSettings, EncoderName, Profile};
use crate::pipeline::description::{ChainSpec, ElementSpec};

/// The element chain for one encoder candidate, and the raw format it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderPlan {
    pub name: EncoderName,
    pub factory: &'static str,
    /// Raw video format the chain takes in, as caps name it.
    pub input_format: &'static str,
    /// Encoder chain from raw video to a final `capsfilter` for `video/x-h264`.
    pub chain: ChainSpec,
}

impl EncoderPlan {
    /// Returns the encoder element of the chain.
    pub fn encoder(&self) -> Option<&ElementSpec> {
        self.chain.find(self.factory)
    }

    /// Returns the caps of the final `capsfilter`.
    pub fn output_caps(&self) -> Option<&str> {
        self.chain
            .elements
            .last()
            .filter(|element| element.factory == "capsfilter")
            .and_then(|element| element.get("caps"))
    }
}

// Values beyond a property's range are cut to its maximum, because
// `ElementSpec::build` panics on an out-of-range value.

/// Largest bitrate, in kb/s, that the kb/s-based elements accept:
/// x264enc, vah264enc, vaapih264enc and nvh264enc all stop at 2048000.
const MAX_BITRATE_KBPS: u32 = 2_048_000;

/// Largest `gop-size` of qsvh264enc (a guint limited to G_MAXUSHORT).
const QSV_MAX_GOP_FRAMES: u64 = u16::MAX as u64;

/// Largest `key-int-max` of vah264enc (MAX_GOP_SIZE in gstvah264enc.c).
const VA_MAX_GOP_FRAMES: u64 = 1024;

/// Bitrate in kb/s within the range of the kb/s-based elements.
fn kbps(settings: &EncodeSettings) -> u32 {
    settings.bitrate_kbps.min(MAX_BITRATE_KBPS)
}

/// Bitrate in bit/s for a guint property (openh264enc).
fn bps_u32(settings: &EncodeSettings) -> u32 {
    settings.bitrate_kbps.saturating_mul(1000)
}

/// Converts to a gint property value (nvh264enc `gop-size`, vtenc
/// `max-keyframe-interval`, V4L2 integer controls), cut to `i32::MAX`.
fn int(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Maps `settings` onto the properties and output caps of `candidate`'s
/// element: the encoder table.
///
/// A factory that is not in the table gets no properties and `I420`
/// input, and its test encode then decides whether it is usable.
pub fn describe(candidate: &Candidate, settings: &EncodeSettings) -> EncoderPlan {
    let gop_frames = u64::from(settings.gop_frames);
    let factory = candidate.factory;
    let encoder = ElementSpec::new(factory);
    let mut caps_profile = settings.profile.caps_name();
    let mut level = None;

    let (input_format, encoder) = match factory {
        "x264enc" => (
            "I420",
            encoder
                .property("bitrate", kbps(settings))
                .property("pass", "cbr")
                .property("key-int-max", gop_frames)
                .property("bframes", 0)
                .property("speed-preset", "veryfast")
                .property("tune", "zerolatency"),
        ),
        // openh264enc never uses B-frames, so it has no property for them.
        // It produces every profile the caps request (checked with
        // `gst-launch-1.0` on 1.22). For `high`, the SPS says
        // constrained-high because no B-frames are used.
        "openh264enc" => (
            "I420",
            encoder
                .property("bitrate", bps_u32(settings))
                .property("rate-control", "bitrate")
                .property("gop-size", gop_frames),
        ),
        // `rate-control` exists only when the VA driver reports rate
        // control modes, and offers only the modes it reports. A driver
        // without CBR fails the test encode with an invalid property value.
        "vah264enc" => {
            // The va plugin has no plain `baseline` VA profile (see
            // gstvaprofile.c), so it gets constrained-baseline, a subset
            // that every Baseline decoder plays.
            if settings.profile == Profile::Baseline {
                caps_profile = Profile::ConstrainedBaseline.caps_name();
            }
            (
                "NV12",
                encoder
                    .property("bitrate", kbps(settings))
                    .property("rate-control", "cbr")
                    .property("key-int-max", gop_frames.min(VA_MAX_GOP_FRAMES))
                    .property("b-frames", 0),
            )
        }
        // vaapih264enc falls back to constrained-baseline by itself when
        // the driver lacks plain baseline, and then reports `baseline`.
        "vaapih264enc" => (
            "NV12",
            encoder
                .property("bitrate", kbps(settings))
                .property("rate-control", "cbr")
                .property("keyframe-period", gop_frames)
                .property("max-bframes", 0),
        ),
        "qsvh264enc" => (
            "NV12",
            encoder
                .property("bitrate", kbps(settings))
                .property("rate-control", "cbr")
                .property("gop-size", gop_frames.min(QSV_MAX_GOP_FRAMES))
                .property("b-frames", 0)
                .property("low-latency", true),
        ),
        // NOTE: nvh264enc installs `bframes` only on GPUs that can encode
        // B-frames. On one that cannot, building this chain fails with a
        // missing-property error and the candidate is skipped.
        "nvh264enc" => (
            "NV12",
            encoder
                .property("bitrate", kbps(settings))
                .property("rc-mode", "cbr-ld-hq")
                .property("preset", "low-latency-hq")
                .property("zerolatency", true)
                .property("gop-size", int(gop_frames))
                .property("bframes", 0),
        ),
        // VideoToolbox in GStreamer 1.22 offers an average bitrate only, no
        // CBR mode. `realtime` is its low-latency switch.
        "vtenc_h264" | "vtenc_h264_hw" => {
            // vtenc requests "Baseline" from VideoToolbox for both baseline
            // profiles, and writes the output caps profile from the SPS
            // with constraint_set1 masked out, so it always reports
            // `baseline`. Caps requiring constrained-baseline would fail.
            // NOTE: the stream is then not flagged as constrained, which
            // strict constrained-baseline receivers may reject.
            if settings.profile == Profile::ConstrainedBaseline {
                caps_profile = Profile::Baseline.caps_name();
            }
            (
                "NV12",
                encoder
                    .property("bitrate", kbps(settings))
                    .property("realtime", true)
                    .property("max-keyframe-interval", int(gop_frames))
                    .property("allow-frame-reordering", false),
            )
        }
        // v4l2h264enc has no properties of its own for these settings: they
        // go to the driver as V4L2 controls. Controls the driver lacks are
        // skipped with a warning. v4l2h264enc sets the profile and level of
        // the output caps as the driver's H.264 profile and level controls
        // (gstv4l2videoenc.c). Without a level, bcm2835-codec keeps its
        // default of 4, which is too low for 1080p60.
        "v4l2h264enc" => {
            level = level_for_settings(settings).ok();
            (
                "I420",
                encoder.property("extra-controls", v4l2_controls(settings)),
            )
        }
        _ => ("I420", encoder),
    };

    let mut caps = format!("video/x-h264,profile={caps_profile}");
    if let Some(level) = level {
        caps.push_str(&format!(",level=(string){level}"));
    }

    EncoderPlan {
        name: candidate.name,
        factory,
        input_format,
        chain: ChainSpec::new(vec![encoder, ElementSpec::caps_filter(&caps)]),
    }
}

/// Builds the `extra-controls` structure for v4l2h264enc: bitrate in bit/s,
/// constant bitrate (mode 1), IDR period in frames, and SPS/PPS repeated
/// before every IDR. Values are gint because GStreamer passes only int,
/// boolean and string fields on as controls.
fn v4l2_controls(settings: &EncodeSettings) -> String {
    let bitrate_bps = int(u64::from(settings.bitrate_kbps) * 1000);
    let period_frames = int(u64::from(settings.gop_frames));
    format!(
        "controls,video_bitrate={bitrate_bps},video_bitrate_mode=1,\
         h264_i_frame_period={period_frames},repeat_sequence_header=1"
    )
}

/// Checks that `candidate` can be described for `settings` at all, before
/// any test encode: v4l2h264enc needs an H.264 level for its caps.
pub(super) fn check_settings(
    candidate: &Candidate,
    settings: &EncodeSettings,
) -> Result<(), String> {
    if candidate.factory == "v4l2h264enc" {
        level_for_settings(settings).map_err(|error| error.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
