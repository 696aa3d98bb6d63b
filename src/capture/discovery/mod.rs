//! The capture devices this machine offers, for `bridge devices`: each
//! device's kind, node and stable names, its modes, and the sound card that
//! belongs to it.
//!
//! GStreamer's device monitor finds the devices (`Video/Source`) and the
//! sound inputs (`Audio/Source`). The element each device creates gives its
//! kind: `v4l2src`, `decklinkvideosrc`, `avfvideosrc` or `libcamerasrc`.
//! Everything else is read from files whose roots are injectable
//! ([`DiscoveryPaths`]), so tests lay out a fake `/sys` and `/dev/v4l`:
//!
//! - stable names: the symlinks in `/dev/v4l/by-id` and `/dev/v4l/by-path`
//!   that resolve to the node;
//! - the paired sound card: the ALSA card on the same USB device as the
//!   video node, found in sysfs as `--audio auto` finds it.

pub mod mode_groups;
pub mod report;

use super::audio::{self, AlsaCard};
use super::v4l2;
use gstreamer as gst;
use gstreamer::prelude::*;
use mode_groups::ModeGroup;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// Locations of sysfs and of the `/dev/v4l` symlinks, injectable for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryPaths {
    /// Mount point of sysfs, `/sys` on a running system.
    pub sysfs_root: PathBuf,
    /// The udev symlink directory, `/dev/v4l` on a running system, with its
    /// `by-id` and `by-path` folders.
    pub v4l_dir: PathBuf,
    /// The directory of the `videoN` nodes, `/dev` on a running system.
    pub dev_dir: PathBuf,
}

impl Default for DiscoveryPaths {
    fn default() -> Self {
        Self {
            sysfs_root: PathBuf::from("/sys"),
            v4l_dir: PathBuf::from("/dev/v4l"),
            dev_dir: PathBuf::from("/dev"),
        }
    }
}

/// The capture APIs the bridge captures from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    V4l2,
    Decklink,
    Avfoundation,
    Libcamera,
}

impl DeviceKind {
    /// Returns the name people know the API by.
    pub fn label(self) -> &'static str {
        match self {
            Self::V4l2 => "V4L2",
            Self::Decklink => "DeckLink",
            Self::Avfoundation => "AVFoundation",
            Self::Libcamera => "libcamera",
        }
    }

    /// Returns the kind whose source element is `factory`, or `None` for
    /// elements the bridge does not capture from (such as `pipewiresrc`
    /// and `uvch264src`, which list the same cameras again).
    pub fn from_element(factory: &str) -> Option<Self> {
        match factory {
            "v4l2src" => Some(Self::V4l2),
            "decklinkvideosrc" => Some(Self::Decklink),
            "avfvideosrc" => Some(Self::Avfoundation),
            "libcamerasrc" => Some(Self::Libcamera),
            _ => None,
        }
    }
}

/// `V4L2_CAP_*` bits of `struct v4l2_capability`, from linux/videodev2.h.
mod v4l2_caps {
    pub const VIDEO_CAPTURE: u32 = 0x0000_0001;
    pub const VIDEO_OUTPUT: u32 = 0x0000_0002;
    pub const VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
    pub const VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
    pub const VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
    pub const VIDEO_M2M: u32 = 0x0000_8000;
    pub const TOUCH: u32 = 0x1000_0000;
}

/// Checks a node's `device_caps` for a video capture node: capture, and
/// neither an output nor a memory-to-memory device (an encoder or scaler)
/// nor a touch sensor. A UVC camera's metadata node has no video capture bit.
pub fn is_capture_node(device_caps: u32) -> bool {
    use v4l2_caps::*;
    let capture = device_caps & (VIDEO_CAPTURE | VIDEO_CAPTURE_MPLANE) != 0;
    let output_or_m2m =
        device_caps & (VIDEO_OUTPUT | VIDEO_OUTPUT_MPLANE | VIDEO_M2M | VIDEO_M2M_MPLANE) != 0;
    capture && !output_or_m2m && device_caps & TOUCH == 0
}

/// A udev symlink that keeps naming the device when node numbers change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StableName {
    /// `by-id` (the device's model and serial) or `by-path` (the port it is
    /// plugged into).
    pub kind: &'static str,
    pub path: String,
}

/// Lists the symlinks in `v4l_dir/by-id` and `v4l_dir/by-path` that
/// resolve to `node`, by-id first, each sorted by name.
pub fn stable_names(v4l_dir: &Path, node: &Path) -> Vec<StableName> {
    let Ok(target) = fs::canonicalize(node) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for kind in ["by-id", "by-path"] {
        let Ok(entries) = fs::read_dir(v4l_dir.join(kind)) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|link| fs::canonicalize(link).ok().as_ref() == Some(&target))
            .filter_map(|link| link.to_str().map(str::to_string))
            .collect();
        found.sort();
        names.extend(found.into_iter().map(|path| StableName { kind, path }));
    }
    names
}

/// The audio that belongs to a capture device, as `--audio auto` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairedAudio {
    /// The value to give `--audio` for this audio, such as `hw:2`; `None`
    /// when `--audio` cannot name it (DeckLink embedded audio).
    pub audio: Option<String>,
    /// The same card by its id, `hw:CARD=C920`, which survives renumbering.
    pub audio_by_id: Option<String>,
    /// A description for people.
    pub description: String,
}

/// One capture device and what the bridge can capture from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaptureDevice {
    pub kind: DeviceKind,
    /// The name the device reports, such as `HD Pro Webcam C920`.
    pub name: String,
    /// The value to give `--device`.
    pub device: String,
    /// The device node, for V4L2.
    pub path: Option<String>,
    pub stable_names: Vec<StableName>,
    pub modes: Vec<ModeGroup>,
    /// The paired audio, or `None` when the device has none.
    pub audio: Option<PairedAudio>,
}

/// A sound input the device monitor lists, reduced to its ALSA card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoundInput {
    pub card: u32,
    pub name: String,
}

/// Describes a V4L2 capture node from its path, reported name and modes,
/// with its stable names and paired ALSA card read under `paths`.
/// `inputs` name the paired card when the device monitor listed it.
pub fn v4l2_device(
    path: &str,
    name: &str,
    modes: Vec<ModeGroup>,
    paths: &DiscoveryPaths,
    inputs: &[SoundInput],
) -> CaptureDevice {
    let node = Path::new(path);
    let card = v4l2::node_name(node)
        .and_then(|node_name| audio::paired_alsa_card(&paths.sysfs_root, &node_name));
    CaptureDevice {
        kind: DeviceKind::V4l2,
        name: name.to_string(),
        device: path.to_string(),
        path: Some(path.to_string()),
        stable_names: stable_names(&paths.v4l_dir, node),
        modes,
        audio: card.map(|card| alsa_audio(&card, inputs)),
    }
}

/// Describes the ALSA card paired with a video node.
fn alsa_audio(card: &AlsaCard, inputs: &[SoundInput]) -> PairedAudio {
    let by_index = format!("hw:{}", card.index);
    let by_id = card.device_name();
    let listed = inputs.iter().find(|input| input.card == card.index);
    let description = match listed {
        Some(input) => format!(
            "ALSA card {} ({}) on the same USB device",
            card.index, input.name
        ),
        None => format!("ALSA card {} on the same USB device", card.index),
    };
    PairedAudio {
        audio: Some(by_index.clone()),
        audio_by_id: (by_id != by_index).then_some(by_id),
        description,
    }
}

/// Describes DeckLink card `index`, whose audio is embedded in its signal.
pub fn decklink_device(index: i32, name: &str, modes: Vec<ModeGroup>) -> CaptureDevice {
    CaptureDevice {
        kind: DeviceKind::Decklink,
        name: name.to_string(),
        device: format!("decklink:{index}"),
        path: None,
        stable_names: Vec::new(),
        modes,
        audio: Some(PairedAudio {
            audio: None,
            audio_by_id: None,
            description: "embedded in the signal (decklinkaudiosrc)".to_string(),
        }),
    }
}

/// Describes AVFoundation device `index`; `--audio auto` takes the default
/// macOS input with it.
pub fn avf_device(index: i32, name: &str, modes: Vec<ModeGroup>) -> CaptureDevice {
    CaptureDevice {
        kind: DeviceKind::Avfoundation,
        name: name.to_string(),
        device: format!("avf:{index}"),
        path: None,
        stable_names: Vec::new(),
        modes,
        audio: Some(PairedAudio {
            audio: None,
            audio_by_id: None,
            description: "the default macOS input (osxaudiosrc)".to_string(),
        }),
    }
}

/// Describes libcamera camera `id`; libcamera cameras have no audio.
pub fn libcamera_device(id: &str, name: &str, modes: Vec<ModeGroup>) -> CaptureDevice {
    CaptureDevice {
        kind: DeviceKind::Libcamera,
        name: name.to_string(),
        device: if id.is_empty() {
            "libcamera".to_string()
        } else {
            format!("libcamera:{id}")
        },
        path: None,
        stable_names: Vec::new(),
        modes,
        audio: None,
    }
}

/// Lists the `videoN` nodes in `paths.dev_dir` that are not among
/// `devices`: metadata and encoder nodes, and nodes this user cannot open,
/// which the V4L2 provider skips without saying why.
pub fn unlisted_nodes(paths: &DiscoveryPaths, devices: &[CaptureDevice]) -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = devices
        .iter()
        .filter_map(|device| device.path.as_deref())
        .filter_map(|path| fs::canonicalize(path).ok())
        .collect();
    v4l2::list_video_nodes(&paths.dev_dir)
        .into_iter()
        .filter(|node| {
            let resolved = fs::canonicalize(node).unwrap_or_else(|_| node.clone());
            !listed.contains(&resolved)
        })
        .collect()
}

/// Reads the ALSA card number from an `alsasrc` device name: `hw:2`,
/// `hw:2,0` or `plughw:2`. Names by id (`hw:CARD=C920`) return `None`.
pub fn alsa_card_number(device: &str) -> Option<u32> {
    let (_, rest) = device.split_once(':')?;
    let card = rest.split(',').next()?;
    card.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("GStreamer failed to initialise: {0}")]
    GstreamerInit(String),
    #[error(
        "GStreamer's device monitor failed to start: no device provider could run; \
         check that gstreamer1.0-plugins-good (V4L2) is installed"
    )]
    MonitorStart,
}

/// Lists the capture devices the device monitor finds, V4L2 first by
/// node, then the others by kind and name.
pub fn discover(paths: &DiscoveryPaths) -> Result<Vec<CaptureDevice>, DiscoveryError> {
    gst::init().map_err(|error| DiscoveryError::GstreamerInit(error.to_string()))?;
    let monitor = gst::DeviceMonitor::new();
    // Without this, providers hide others: PipeWire's hides the V4L2
    // provider, PulseAudio's the ALSA one whose cards the pairing names.
    monitor.set_show_all_devices(true);
    monitor.add_filter(Some("Video/Source"), None);
    monitor.add_filter(Some("Audio/Source"), None);
    monitor.start().map_err(|_| DiscoveryError::MonitorStart)?;
    let found = monitor.devices();
    monitor.stop();

    let inputs: Vec<SoundInput> = found.iter().filter_map(sound_input).collect();
    let mut devices: Vec<CaptureDevice> = found
        .iter()
        .filter(|device| device.has_classes("Video/Source"))
        .filter_map(|device| capture_device(device, paths, &inputs))
        .collect();
    devices.sort_by(|a, b| {
        let node = |d: &CaptureDevice| d.path.as_deref().map(node_number);
        a.kind
            .cmp(&b.kind)
            .then(node(a).cmp(&node(b)))
            .then(a.device.cmp(&b.device))
    });
    devices.dedup_by(|a, b| a.device == b.device);
    Ok(devices)
}

fn node_number(path: &str) -> u32 {
    path.rsplit_once("video")
        .and_then(|(_, number)| number.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Turns a monitor device into a capture device, or `None` for devices the
/// bridge does not capture from.
///
/// NOTE: only the V4L2 provider's properties were read from its source
/// here. The DeckLink, AVFoundation and libcamera branches follow those
/// elements' documented properties and were never run against the hardware.
fn capture_device(
    device: &gst::Device,
    paths: &DiscoveryPaths,
    inputs: &[SoundInput],
) -> Option<CaptureDevice> {
    let element = device.create_element(None).ok()?;
    let factory = element.factory()?.name();
    let kind = DeviceKind::from_element(factory.as_str())?;
    let name = device.display_name().to_string();
    let modes = device
        .caps()
        .map(|caps| mode_groups::group_modes(&super::modes::modes_from_caps(&caps)))
        .unwrap_or_default();
    match kind {
        DeviceKind::V4l2 => {
            let device_caps = device
                .properties()
                .and_then(|props| props.get::<u32>("v4l2.device.device_caps").ok());
            if device_caps.is_some_and(|caps| !is_capture_node(caps)) {
                return None;
            }
            let path = string_property(&element, "device")?;
            Some(v4l2_device(&path, &name, modes, paths, inputs))
        }
        DeviceKind::Decklink => {
            let index = int_property(&element, "device-number")?;
            Some(decklink_device(index, &name, modes))
        }
        DeviceKind::Avfoundation => {
            let index = int_property(&element, "device-index")?;
            Some(avf_device(index, &name, modes))
        }
        DeviceKind::Libcamera => {
            let id = string_property(&element, "camera-name").unwrap_or_default();
            Some(libcamera_device(&id, &name, modes))
        }
    }
}

/// Reads a string property, or `None` when the element has no such
/// property, it is unset, or it has another type in this plugin version.
fn string_property(element: &gst::Element, name: &str) -> Option<String> {
    element.find_property(name)?;
    element.property_value(name).get::<Option<String>>().ok()?
}

/// Reads an integer property of type `gint` or `guint`.
fn int_property(element: &gst::Element, name: &str) -> Option<i32> {
    element.find_property(name)?;
    let value = element.property_value(name);
    value
        .get::<i32>()
        .ok()
        .or_else(|| value.get::<u32>().ok().and_then(|v| i32::try_from(v).ok()))
}

/// Reduces an `alsasrc` device of the monitor to its card number and name.
fn sound_input(device: &gst::Device) -> Option<SoundInput> {
    if !device.has_classes("Audio/Source") {
        return None;
    }
    let element = device.create_element(None).ok()?;
    if element.factory()?.name() != "alsasrc" {
        return None;
    }
    let card = alsa_card_number(&string_property(&element, "device")?)?;
    Some(SoundInput {
        card,
        name: device.display_name().to_string(),
    })
}

#[cfg(test)]
mod tests;
