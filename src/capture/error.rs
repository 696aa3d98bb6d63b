//! The errors of planning a capture, each with the exit status it maps to.

use super::{audio, file, modes::ModeError};
use crate::exit::ExitStatus;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "invalid --audio value '{}': use auto, none or an ALSA device name made of letters, \
         digits and : , = _ - . (at most {} characters), as in hw:1 or hw:CARD=C920,DEV=0",
        name.escape_debug(),
        audio::MAX_ALSA_NAME_LEN
    )]
    InvalidAudioDevice { name: String },
    #[error("clip {} not found; check the path after file:", path.display())]
    FileNotFound { path: PathBuf },
    #[error("clip {} is not a regular file; file: takes a video clip", path.display())]
    NotAFile { path: PathBuf },
    #[error("failed to read clip {}: {cause}; check its permissions", path.display())]
    FileUnreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "failed to inspect clip {} (timeout {} s): {message}; check that it is a complete \
         video file and that the GStreamer plugins for its formats are installed",
        path.display(),
        file::DISCOVER_TIMEOUT_S
    )]
    Discovery { path: PathBuf, message: String },
    #[error("clip {} has no video stream; give a clip with video", path.display())]
    NoVideoStream { path: PathBuf },
    #[error("clip {} is a still image; give a video clip", path.display())]
    StillImage { path: PathBuf },
    #[error("V4L2 device {} not found; {}", device.display(), existing_nodes_text(existing))]
    DeviceNotFound {
        device: PathBuf,
        existing: Vec<PathBuf>,
    },
    #[error(
        "permission denied opening {}; add the user to the 'video' group \
         (usermod -aG video USER, then log in again)",
        device.display()
    )]
    DevicePermission { device: PathBuf },
    #[error(
        "V4L2 device {} is busy, another program is capturing from it; stop that program \
         (fuser -v {} shows which)",
        device.display(),
        device.display()
    )]
    DeviceBusy { device: PathBuf },
    #[error("failed to open V4L2 device {}: {message}{}", device.display(), other_nodes_text(existing))]
    DeviceOpen {
        device: PathBuf,
        message: String,
        existing: Vec<PathBuf>,
    },
    #[error(
        "V4L2 device {} reports no video formats; check it with v4l2-ctl -d {} \
         --list-formats-ext",
        device.display(),
        device.display()
    )]
    NoFormats { device: PathBuf },
    #[error("V4L2 device {}: {error}", device.display())]
    NoFittingMode { device: PathBuf, error: ModeError },
    #[error("device path {} is not valid UTF-8; use a path such as /dev/video0", device.display())]
    InvalidDevicePath { device: PathBuf },
    #[error(
        "GStreamer element '{factory}' is not available; install the plugin that provides it \
         (gst-inspect-1.0 {factory} tells whether it is registered)"
    )]
    MissingElement { factory: String },
    #[error("failed to initialize GStreamer: {0}")]
    GstreamerInit(String),
}

impl CaptureError {
    /// Maps the error to an exit status: Usage (2) for invalid input values,
    /// Device (4) for a source that is missing, busy, unreadable or has no
    /// fitting mode, Other (1) for a broken GStreamer installation.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CaptureError::InvalidAudioDevice { .. } | CaptureError::InvalidDevicePath { .. } => {
                ExitStatus::Usage
            }
            CaptureError::MissingElement { .. } | CaptureError::GstreamerInit(_) => {
                ExitStatus::Other
            }
            CaptureError::FileNotFound { .. }
            | CaptureError::NotAFile { .. }
            | CaptureError::FileUnreadable { .. }
            | CaptureError::Discovery { .. }
            | CaptureError::NoVideoStream { .. }
            | CaptureError::StillImage { .. }
            | CaptureError::DeviceNotFound { .. }
            | CaptureError::DevicePermission { .. }
            | CaptureError::DeviceBusy { .. }
            | CaptureError::DeviceOpen { .. }
            | CaptureError::NoFormats { .. }
            | CaptureError::NoFittingMode { .. } => ExitStatus::Device,
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

fn existing_nodes_text(existing: &[PathBuf]) -> String {
    if existing.is_empty() {
        "there are no /dev/video* nodes: check that the device is connected and its driver \
         loaded (v4l2-ctl --list-devices lists capture devices)"
            .to_string()
    } else {
        format!("existing nodes: {}", join_paths(existing))
    }
}

fn other_nodes_text(existing: &[PathBuf]) -> String {
    if existing.is_empty() {
        String::new()
    } else {
        format!(
            "; other video nodes: {} (a UVC camera's second node carries only metadata)",
            join_paths(existing)
        )
    }
}
