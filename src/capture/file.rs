//! Recorded clips as a source: the checks that the file can be read, and what
//! the GStreamer Discoverer learns about it before the pipeline starts.

use super::CaptureError;
use crate::config::{FrameRate, Size};
use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;
use gstreamer_pbutils::prelude::*;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How long the Discoverer may take to read a clip's headers.
pub const DISCOVER_TIMEOUT_S: u64 = 10;

/// Facts about a clip that planning needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipInfo {
    /// The clip's absolute path.
    pub path: PathBuf,
    pub size: Size,
    /// `None` for variable-rate clips, which report 0/1.
    pub fps: Option<FrameRate>,
    pub has_audio: bool,
    /// The video codec as GStreamer describes it, such as `H.264 (High Profile)`.
    pub video_codec: Option<String>,
}

/// Checks that `path` is a regular file this process can open, and returns
/// its absolute path.
pub fn check_readable(path: &Path) -> Result<PathBuf, CaptureError> {
    let metadata = fs::metadata(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => CaptureError::FileNotFound {
            path: path.to_path_buf(),
        },
        _ => CaptureError::FileUnreadable {
            path: path.to_path_buf(),
            cause: error,
        },
    })?;
    if !metadata.is_file() {
        return Err(CaptureError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    fs::File::open(path).map_err(|error| CaptureError::FileUnreadable {
        path: path.to_path_buf(),
        cause: error,
    })?;
    fs::canonicalize(path).map_err(|error| CaptureError::FileUnreadable {
        path: path.to_path_buf(),
        cause: error,
    })
}

/// Runs the Discoverer on a readable clip and requires a video stream.
pub fn discover(path: &Path) -> Result<ClipInfo, CaptureError> {
    let path = check_readable(path)?;
    gst::init().map_err(|error| CaptureError::GstreamerInit(error.to_string()))?;
    let failed = |message: String| CaptureError::Discovery {
        path: path.clone(),
        message: message.trim_end_matches('.').to_string(),
    };

    let uri = gst::glib::filename_to_uri(&path, None)
        .map_err(|error| failed(format!("cannot turn the path into a URI: {error}")))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_S))
        .map_err(|error| failed(error.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|error| failed(error.to_string()))?;

    let video = info.video_streams();
    let Some(stream) = video.first() else {
        return Err(CaptureError::NoVideoStream { path });
    };
    if stream.is_image() {
        return Err(CaptureError::StillImage { path });
    }
    let framerate = stream.framerate();
    let fps = match (
        u32::try_from(framerate.numer()),
        u32::try_from(framerate.denom()),
    ) {
        (Ok(numerator), Ok(denominator)) if numerator > 0 && denominator > 0 => {
            Some(FrameRate::new(numerator, denominator))
        }
        _ => None,
    };
    let video_codec = stream
        .caps()
        .map(|caps| gst_pbutils::pb_utils_get_codec_description(&caps).to_string());
    Ok(ClipInfo {
        size: Size::new(stream.width(), stream.height()),
        fps,
        has_audio: !info.audio_streams().is_empty(),
        video_codec,
        path,
    })
}
