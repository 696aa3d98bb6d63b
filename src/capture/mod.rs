//! Sources: what `--device` names, and the plan of element chains that
//! capture it. `plan` checks the source (a clip's streams, a V4L2 device's
//! modes) and returns descriptions, which the pipeline code builds.
//!
//! Every video chain ends in raw `video/x-raw`, except for clips, which the
//! pipeline decodes itself. Every audio chain ends in raw `audio/x-raw`.

pub mod audio;
pub mod discovery;
mod error;
pub mod faults;
pub mod file;
pub mod modes;
pub mod sources;
pub mod v4l2;

use crate::config::{FrameRate, Size};
use crate::pipeline::description::ChainSpec;
pub use error::CaptureError;
use faults::{FaultScript, FaultScriptError};
use modes::fps_text;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Mount point of sysfs, read to pair a V4L2 device with its ALSA card.
const SYSFS_ROOT: &str = "/sys";

/// A source as named on the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// Moving test pattern and a tone.
    Test,
    /// The test pattern and tone with faults on a timetable, for tests.
    TestFaults { script: FaultScript },
    /// A recorded clip played at real-time pace.
    File { path: PathBuf },
    /// A V4L2 device node such as `/dev/video0`.
    V4l2 { device: PathBuf },
    /// A Blackmagic DeckLink card, by device number.
    Decklink { index: u32 },
    /// An AVFoundation capture device on macOS, by index.
    Avf { index: u32 },
    /// A libcamera camera, the first one when no id is given.
    Libcamera { id: Option<String> },
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let index = |rest: &str, kind: &str| {
            rest.parse::<u32>().map_err(|_| {
                format!("invalid device '{text}': {kind} takes a device number, as in {kind}:0")
            })
        };
        if text == "test" {
            Ok(SourceSpec::Test)
        } else if let Some(script) = text.strip_prefix(faults::DEVICE_PREFIX) {
            let script = script
                .parse()
                .map_err(|error: FaultScriptError| error.to_string())?;
            Ok(SourceSpec::TestFaults { script })
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err(
                    "invalid device 'file:': give the clip's path, as in file:clip.mp4".into(),
                );
            }
            Ok(SourceSpec::File { path: path.into() })
        } else if let Some(rest) = text.strip_prefix("decklink:") {
            Ok(SourceSpec::Decklink {
                index: index(rest, "decklink")?,
            })
        } else if let Some(rest) = text.strip_prefix("avf:") {
            Ok(SourceSpec::Avf {
                index: index(rest, "avf")?,
            })
        } else if text == "libcamera" {
            Ok(SourceSpec::Libcamera { id: None })
        } else if let Some(id) = text.strip_prefix("libcamera:") {
            Ok(SourceSpec::Libcamera {
                id: (!id.is_empty()).then(|| id.to_string()),
            })
        } else if text.starts_with("/dev/") {
            Ok(SourceSpec::V4l2 {
                device: text.into(),
            })
        } else {
            Err(format!(
                "invalid device '{text}': use /dev/videoN, test, file:PATH, decklink:N, avf:N \
                 or libcamera[:ID]"
            ))
        }
    }
}

/// The audio source requested with `--audio`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AudioSpec {
    /// The audio that belongs to the video source, if it has any.
    #[default]
    Auto,
    /// No audio.
    None,
    /// An ALSA capture device by name, such as `hw:1` or `hw:CARD=C920,DEV=0`.
    Device(String),
}

impl FromStr for AudioSpec {
    type Err = CaptureError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(AudioSpec::Auto),
            "none" => Ok(AudioSpec::None),
            name if audio::is_valid_alsa_name(name) => Ok(AudioSpec::Device(name.to_string())),
            _ => Err(CaptureError::InvalidAudioDevice {
                name: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for AudioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSpec::Auto => write!(f, "auto"),
            AudioSpec::None => write!(f, "none"),
            AudioSpec::Device(name) => write!(f, "{name}"),
        }
    }
}

/// The capture settings requested on the command line: the size and rate
/// the source should deliver (each `None` when not given) and the audio
/// source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaptureRequest {
    pub size: Option<Size>,
    pub fps: Option<FrameRate>,
    pub audio: AudioSpec,
}

/// The video input of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoPlan {
    /// A chain whose last element outputs raw `video/x-raw`.
    Chain(ChainSpec),
    /// A clip for the pipeline to decode (and loop) itself.
    File { path: PathBuf },
}

/// The audio input of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioPlan {
    None,
    /// A chain whose last element outputs raw `audio/x-raw`.
    Chain(ChainSpec),
    /// The audio stream of the clip in `VideoPlan::File`.
    FromFile,
}

/// The chains that capture a source, and what they deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturePlan {
    pub video: VideoPlan,
    pub audio: AudioPlan,
    /// Picture size the source delivers, when known before it starts.
    pub size: Option<Size>,
    /// Frame rate the source delivers, when known before it starts.
    pub fps: Option<FrameRate>,
    /// True for devices and the test source, false for clips.
    pub live: bool,
    /// One line for the log: source, chosen mode and audio source.
    pub summary: String,
    /// Faults the pipeline injects into the test pattern, for tests only.
    pub faults: Option<FaultScript>,
}

/// Plans the capture of `spec`. Clips are inspected and V4L2 devices are
/// queried for their modes. The test pattern and the hardware-only sources
/// (DeckLink, AVFoundation, libcamera) are described without touching a
/// device.
pub fn plan(spec: &SourceSpec, request: &CaptureRequest) -> Result<CapturePlan, CaptureError> {
    match spec {
        SourceSpec::Test => Ok(plan_test(request)),
        SourceSpec::TestFaults { script } => {
            let mut plan = plan_test(request);
            if let Some(ppm) = script.audio_drift_ppm {
                use_flash_and_beep(&mut plan, ppm);
            }
            plan.summary = format!("{} with faults {script}", plan.summary);
            plan.faults = Some(script.clone());
            Ok(plan)
        }
        SourceSpec::File { path } => plan_file(path, request),
        SourceSpec::V4l2 { device } => {
            let offered = v4l2::probe_modes(device)?;
            plan_v4l2(device, &offered, request, Path::new(SYSFS_ROOT))
        }
        SourceSpec::Decklink { index } => Ok(plan_decklink(*index, request)),
        SourceSpec::Avf { index } => Ok(plan_avf(*index, request)),
        SourceSpec::Libcamera { id } => Ok(plan_libcamera(id.as_deref(), request)),
    }
}

/// An audio plan and how the log line describes it.
struct AudioChoice {
    plan: AudioPlan,
    description: String,
}

impl AudioChoice {
    fn new(plan: AudioPlan, description: impl Into<String>) -> Self {
        Self {
            plan,
            description: description.into(),
        }
    }
}

/// Resolves `--audio`: `none` and a named ALSA device mean the same for
/// every source, `auto` means what `source_audio` returns for this source.
fn choose_audio(spec: &AudioSpec, source_audio: impl FnOnce() -> AudioChoice) -> AudioChoice {
    match spec {
        AudioSpec::None => AudioChoice::new(AudioPlan::None, "none"),
        AudioSpec::Device(name) => AudioChoice::new(
            AudioPlan::Chain(audio::alsa_chain(name)),
            format!("ALSA device {name}"),
        ),
        AudioSpec::Auto => source_audio(),
    }
}

fn size_and_rate_text(size: Option<Size>, fps: Option<FrameRate>) -> String {
    match (size, fps) {
        (Some(size), Some(fps)) => format!("{size} at {} fps", fps_text(&fps)),
        (Some(size), None) => size.to_string(),
        (None, Some(fps)) => format!("{} fps", fps_text(&fps)),
        (None, None) => String::new(),
    }
}

/// Turns the test pattern into a flash once a second and, unless audio is
/// off or from a device, a beep at the same instants from a sound card
/// whose clock runs `drift_ppm` fast.
fn use_flash_and_beep(plan: &mut CapturePlan, drift_ppm: i32) {
    let size = plan.size.unwrap_or(sources::TEST_DEFAULT_SIZE);
    let fps = plan.fps.unwrap_or(sources::TEST_DEFAULT_FPS);
    plan.video = VideoPlan::Chain(sources::test_flash_video_chain(size, fps));
    let is_test_tone =
        matches!(&plan.audio, AudioPlan::Chain(chain) if chain.find("audiotestsrc").is_some());
    if is_test_tone {
        let speed = 1.0 + f64::from(drift_ppm) / 1_000_000.0;
        let actual = (f64::from(sources::AUDIO_RATE_HZ) * speed).round() as u32;
        plan.audio = AudioPlan::Chain(sources::test_beep_audio_chain(actual));
    }
}

fn plan_test(request: &CaptureRequest) -> CapturePlan {
    let size = request.size.unwrap_or(sources::TEST_DEFAULT_SIZE);
    let fps = request.fps.unwrap_or(sources::TEST_DEFAULT_FPS);
    let audio = choose_audio(&request.audio, || {
        AudioChoice::new(
            AudioPlan::Chain(sources::test_audio_chain()),
            format!("{} Hz sine tone", sources::TEST_TONE_HZ),
        )
    });
    CapturePlan {
        video: VideoPlan::Chain(sources::test_video_chain(size, fps)),
        audio: audio.plan,
        size: Some(size),
        fps: Some(fps),
        live: true,
        faults: None,
        summary: format!(
            "test pattern (moving ball) {}; audio: {}",
            size_and_rate_text(Some(size), Some(fps)),
            audio.description
        ),
    }
}

fn plan_file(path: &Path, request: &CaptureRequest) -> Result<CapturePlan, CaptureError> {
    let clip = file::discover(path)?;
    let audio = choose_audio(&request.audio, || {
        if clip.has_audio {
            AudioChoice::new(AudioPlan::FromFile, "from the clip")
        } else {
            AudioChoice::new(AudioPlan::None, "none, the clip has no audio stream")
        }
    });
    let codec = clip
        .video_codec
        .as_deref()
        .map(|codec| format!("{codec} "))
        .unwrap_or_default();
    let rate = match clip.fps {
        Some(fps) => format!("at {} fps", fps_text(&fps)),
        None => "at a variable rate".to_string(),
    };
    let summary = format!(
        "clip {}: {codec}{} {rate}; audio: {}",
        clip.path.display(),
        clip.size,
        audio.description
    );
    Ok(CapturePlan {
        video: VideoPlan::File {
            path: clip.path.clone(),
        },
        audio: audio.plan,
        size: Some(clip.size),
        fps: clip.fps,
        live: false,
        faults: None,
        summary,
    })
}

/// Plans a V4L2 device from the modes it offers; `sysfs_root` is where to
/// look for the ALSA card on the same USB device.
fn plan_v4l2(
    device: &Path,
    offered: &[modes::Mode],
    request: &CaptureRequest,
    sysfs_root: &Path,
) -> Result<CapturePlan, CaptureError> {
    let selection = modes::select_mode(offered, request.size, request.fps).map_err(|error| {
        CaptureError::NoFittingMode {
            device: device.to_path_buf(),
            error,
        }
    })?;
    let device_text = device
        .to_str()
        .ok_or_else(|| CaptureError::InvalidDevicePath {
            device: device.to_path_buf(),
        })?;
    let audio = choose_audio(&request.audio, || paired_audio(device, sysfs_root));
    let decoder = if selection.needs_jpeg_decoder() {
        ", decoded by jpegdec"
    } else {
        ""
    };
    Ok(CapturePlan {
        video: VideoPlan::Chain(v4l2::video_chain(device_text, &selection)),
        audio: audio.plan,
        size: Some(selection.size),
        fps: Some(selection.rate),
        live: true,
        faults: None,
        summary: format!(
            "V4L2 {}: {selection}{decoder}; audio: {}",
            device.display(),
            audio.description
        ),
    })
}

fn paired_audio(device: &Path, sysfs_root: &Path) -> AudioChoice {
    let card = v4l2::node_name(device).and_then(|node| audio::paired_alsa_card(sysfs_root, &node));
    match card {
        Some(card) => {
            let name = card.device_name();
            AudioChoice::new(
                AudioPlan::Chain(audio::alsa_chain(&name)),
                format!("ALSA card {} ({name}) on the same USB device", card.id),
            )
        }
        None => AudioChoice::new(
            AudioPlan::None,
            format!(
                "none, no ALSA card on the same USB device as {} (name one with --audio)",
                device.display()
            ),
        ),
    }
}

/// Describes the conversion a `--size`/`--fps` request adds after a source
/// whose mode follows the input, or an empty string.
fn requested_text(request: &CaptureRequest, verb: &str) -> String {
    let text = size_and_rate_text(request.size, request.fps);
    if text.is_empty() {
        text
    } else {
        format!(", {verb} {text}")
    }
}

fn plan_decklink(index: u32, request: &CaptureRequest) -> CapturePlan {
    let audio = choose_audio(&request.audio, || {
        AudioChoice::new(
            AudioPlan::Chain(sources::decklink_audio_chain(index)),
            format!(
                "embedded in the signal, {} channels",
                sources::DECKLINK_AUDIO_CHANNELS
            ),
        )
    });
    CapturePlan {
        video: VideoPlan::Chain(sources::decklink_video_chain(index, request)),
        audio: audio.plan,
        size: request.size,
        fps: request.fps,
        live: true,
        faults: None,
        summary: format!(
            "DeckLink {index}: mode and connection detected from the signal, deinterlaced \
             when interlaced{}; audio: {}",
            requested_text(request, "converted to"),
            audio.description
        ),
    }
}

fn plan_avf(index: u32, request: &CaptureRequest) -> CapturePlan {
    let audio = choose_audio(&request.audio, || {
        AudioChoice::new(
            AudioPlan::Chain(sources::osx_audio_chain()),
            "default macOS input",
        )
    });
    CapturePlan {
        video: VideoPlan::Chain(sources::avf_video_chain(index, request)),
        audio: audio.plan,
        size: request.size,
        fps: request.fps,
        live: true,
        faults: None,
        summary: format!(
            "AVFoundation device {index}{}; audio: {}",
            requested_text(request, "requested"),
            audio.description
        ),
    }
}

fn plan_libcamera(id: Option<&str>, request: &CaptureRequest) -> CapturePlan {
    let audio = choose_audio(&request.audio, || {
        AudioChoice::new(AudioPlan::None, "none, libcamera has no audio")
    });
    let camera = match id {
        Some(id) => format!("libcamera camera {id}"),
        None => "first libcamera camera".to_string(),
    };
    CapturePlan {
        video: VideoPlan::Chain(sources::libcamera_video_chain(id, request)),
        audio: audio.plan,
        size: request.size,
        fps: request.fps,
        live: true,
        faults: None,
        summary: format!(
            "{camera}{}; audio: {}",
            requested_text(request, "requested"),
            audio.description
        ),
    }
}

#[cfg(test)]
mod tests;
