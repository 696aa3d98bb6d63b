//! Chains for the sources that need no probing: the test pattern and the
//! hardware-only sources (DeckLink, AVFoundation, libcamera). Their elements
//! register only where the hardware or OS is, so these functions return
//! descriptions and never touch the device.
//!
//! ```text
//! videotestsrc is-live=true pattern=ball ! capsfilter (size, rate)
//! decklinkvideosrc device-number=N mode=auto connection=auto ! deinterlace mode=auto
//! avfvideosrc device-index=N [! capsfilter]
//! libcamerasrc [camera-name=ID] [! capsfilter]
//! ```

use super::CaptureRequest;
use crate::config::{FrameRate, Size};
use crate::pipeline::description::{ChainSpec, ElementSpec};

/// Size of the test pattern when the request names none.
pub const TEST_DEFAULT_SIZE: Size = Size::new(1280, 720);

/// Rate of the test pattern when the request names none.
pub const TEST_DEFAULT_FPS: FrameRate = FrameRate::new(30, 1);

/// Frequency of the test tone.
pub const TEST_TONE_HZ: u32 = 440;

/// Frequency of the beep of the flash-and-beep pattern.
pub const BEEP_HZ: u32 = 1000;

/// Length of each beep, in periods of `BEEP_HZ`: 100 ms.
const BEEP_PERIODS: u32 = 100;

/// Sample rate every capture declares and every encode uses, in Hz.
pub const AUDIO_RATE_HZ: u32 = 48_000;

/// Channels of DeckLink embedded audio that bridge captures.
pub const DECKLINK_AUDIO_CHANNELS: u32 = 2;

/// Builds raw video caps from an optional format, size and rate, or returns
/// `None` when none of them is set.
fn raw_video_caps(
    format: Option<&str>,
    size: Option<Size>,
    fps: Option<FrameRate>,
) -> Option<String> {
    if size.is_none() && fps.is_none() && format.is_none() {
        return None;
    }
    let mut caps = String::from("video/x-raw");
    if let Some(format) = format {
        caps.push_str(&format!(",format={format}"));
    }
    if let Some(size) = size {
        caps.push_str(&format!(",width={},height={}", size.width, size.height));
    }
    if let Some(fps) = fps {
        caps.push_str(&format!(",framerate={fps}"));
    }
    Some(caps)
}

/// Describes the moving test pattern in I420 at `size` and `fps`.
pub fn test_video_chain(size: Size, fps: FrameRate) -> ChainSpec {
    let caps = raw_video_caps(Some("I420"), Some(size), Some(fps)).unwrap_or_default();
    ChainSpec::new(vec![
        ElementSpec::new("videotestsrc")
            .property("is-live", true)
            .property("pattern", "ball"),
        ElementSpec::caps_filter(&caps),
    ])
}

/// Describes a continuous sine tone.
pub fn test_audio_chain() -> ChainSpec {
    ChainSpec::new(vec![ElementSpec::new("audiotestsrc")
        .property("is-live", true)
        .property("wave", "sine")
        .property("freq", TEST_TONE_HZ)])
}

/// Describes a black picture in I420 at `size` and `fps`, which the fault
/// injector lights white for one frame each second.
pub fn test_flash_video_chain(size: Size, fps: FrameRate) -> ChainSpec {
    let caps = raw_video_caps(Some("I420"), Some(size), Some(fps)).unwrap_or_default();
    ChainSpec::new(vec![
        ElementSpec::new("videotestsrc")
            .property("is-live", true)
            .property("pattern", "black"),
        ElementSpec::caps_filter(&caps),
    ])
}

/// Describes a stereo 100 ms beep at every whole second, from a sound card
/// whose crystal makes `actual_rate_hz` samples a second while it declares
/// `AUDIO_RATE_HZ`. The tone is made at the actual rate, so the beeps keep
/// to the pipeline clock, and `capssetter` relabels the rate as the card's
/// driver would.
pub fn test_beep_audio_chain(actual_rate_hz: u32) -> ChainSpec {
    let mut chain = ChainSpec::new(vec![
        ElementSpec::new("audiotestsrc")
            .property("is-live", true)
            .property("wave", "ticks")
            .property("freq", BEEP_HZ)
            .property("sine-periods-per-tick", BEEP_PERIODS)
            .property("volume", 0.5),
        ElementSpec::caps_filter(&format!("audio/x-raw,rate={actual_rate_hz},channels=2")),
    ]);
    if actual_rate_hz != AUDIO_RATE_HZ {
        chain.push(
            ElementSpec::new("capssetter")
                .property("caps", format!("audio/x-raw,rate={AUDIO_RATE_HZ}")),
        );
    }
    chain
}

/// Describes DeckLink input `index` in the mode and on the connector it
/// detects.
///
/// `deinterlace mode=auto` deinterlaces only buffers whose caps or flags
/// mark them interlaced and passes progressive input through untouched (the
/// `deinterlace_passes_progressive_through` test checks both). The card's
/// mode follows the signal, so a `--size` or `--fps` request is met by
/// converting after it (`videoscale`, `videorate`) instead of by caps the
/// card could not negotiate.
pub fn decklink_video_chain(index: u32, request: &CaptureRequest) -> ChainSpec {
    let mut chain = ChainSpec::new(vec![
        ElementSpec::new("decklinkvideosrc")
            .property("device-number", index)
            .property("mode", "auto")
            .property("connection", "auto"),
        ElementSpec::new("deinterlace").property("mode", "auto"),
    ]);
    if request.fps.is_some() {
        chain.push(ElementSpec::new("videorate"));
    }
    if request.size.is_some() {
        chain.push(ElementSpec::new("videoscale"));
    }
    if let Some(caps) = raw_video_caps(None, request.size, request.fps) {
        chain.push(ElementSpec::caps_filter(&caps));
    }
    chain
}

/// Describes the embedded audio of DeckLink input `index` as a stereo pair.
///
/// `decklinkaudiosrc` is no `GstAudioBaseSrc` and has no `slave-method`:
/// it stamps its buffers from the card's clock, which runs with the
/// video's, and the audio lock in the source bin follows it to the
/// pipeline clock.
pub fn decklink_audio_chain(index: u32) -> ChainSpec {
    ChainSpec::new(vec![ElementSpec::new("decklinkaudiosrc")
        .property("device-number", index)
        .property("channels", DECKLINK_AUDIO_CHANNELS)])
}

/// Describes AVFoundation camera `index`. A size or rate request becomes
/// caps right after the source, which then opens the device in a matching
/// format.
pub fn avf_video_chain(index: u32, request: &CaptureRequest) -> ChainSpec {
    let mut chain = ChainSpec::new(vec![
        ElementSpec::new("avfvideosrc").property("device-index", index)
    ]);
    if let Some(caps) = raw_video_caps(None, request.size, request.fps) {
        chain.push(ElementSpec::caps_filter(&caps));
    }
    chain
}

/// Describes the default macOS audio input, slaved to the pipeline clock
/// (see [`SLAVE_METHOD`]).
pub fn osx_audio_chain() -> ChainSpec {
    ChainSpec::new(vec![
        ElementSpec::new("osxaudiosrc").property("slave-method", SLAVE_METHOD)
    ])
}

/// The method by which a `GstAudioBaseSrc` (alsasrc, osxaudiosrc) follows
/// the pipeline clock when its own crystal drifts.
///
/// NOTE: GStreamer 1.22 implements `resample` in `GstAudioBaseSrc` as
/// `skew`, which drops or repeats part of a ring buffer segment once the
/// drift passes half a segment. The audio lock in the source bin then
/// resamples whatever rate difference remains.
pub const SLAVE_METHOD: &str = "resample";

/// Describes libcamera camera `id`, or the first one libcamera lists. A
/// size or rate request becomes caps that libcamera configures the sensor
/// pipeline for.
pub fn libcamera_video_chain(id: Option<&str>, request: &CaptureRequest) -> ChainSpec {
    let mut source = ElementSpec::new("libcamerasrc");
    if let Some(id) = id {
        source = source.property("camera-name", id);
    }
    let mut chain = ChainSpec::new(vec![source]);
    if let Some(caps) = raw_video_caps(None, request.size, request.fps) {
        chain.push(ElementSpec::caps_filter(&caps));
    }
    chain
}

#[cfg(test)]
mod tests;
