//! V4L2 devices: finding the node, reading the modes it offers through
//! `v4l2src`, and the chain that captures the selected mode.
//!
//! ```text
//! v4l2src device=/dev/video0 ! capsfilter caps=<selected mode> [! jpegdec]
//! ```

use super::modes::{self, Mode, Selection};
use super::CaptureError;
use crate::pipeline::description::{ChainSpec, ElementSpec};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Reads the device's modes from the caps `v4l2src` reports once it has
/// opened the device (state READY). Checks first that the node exists and
/// can be opened, so a missing, busy or forbidden device gets its own error.
pub fn probe_modes(device: &Path) -> Result<Vec<Mode>, CaptureError> {
    check_node(device, Path::new("/dev"))?;
    let device_text = device_text(device)?;
    gst::init().map_err(|error| CaptureError::GstreamerInit(error.to_string()))?;

    let source = gst::ElementFactory::make("v4l2src")
        .property("device", device_text)
        .build()
        .map_err(|_| CaptureError::MissingElement {
            factory: "v4l2src".to_string(),
        })?;
    let pipeline = gst::Pipeline::new();
    pipeline
        .add(&source)
        .map_err(|error| error_from_v4l2src(device, &error.to_string(), ""))?;

    let ready = pipeline.set_state(gst::State::Ready);
    let caps = source.static_pad("src").map(|pad| pad.query_caps(None));
    let bus_error = first_bus_error(&pipeline);
    // The caps and any error are already read, so a failure to shut down
    // cannot change the result.
    let _ = pipeline.set_state(gst::State::Null);

    if ready.is_err() {
        let (message, debug) =
            bus_error.unwrap_or_else(|| ("v4l2src failed to open it".to_string(), String::new()));
        return Err(error_from_v4l2src(device, &message, &debug));
    }
    let modes = caps
        .map(|caps| modes::modes_from_caps(&caps))
        .unwrap_or_default();
    if modes.is_empty() {
        return Err(CaptureError::NoFormats {
            device: device.to_path_buf(),
        });
    }
    Ok(modes)
}

/// Fails when `device` does not exist or cannot be opened, as before a
/// failed device is opened again.
pub fn check_device(device: &Path) -> Result<(), CaptureError> {
    check_node(device, Path::new("/dev"))
}

/// Describes the chain that captures `selection` from `device`. Raw modes
/// leave `v4l2src` as they are, MJPEG modes pass through `jpegdec`.
pub fn video_chain(device: &str, selection: &Selection) -> ChainSpec {
    let mut chain = ChainSpec::new(vec![
        ElementSpec::new("v4l2src").property("device", device),
        ElementSpec::caps_filter(&selection.caps()),
    ]);
    if selection.needs_jpeg_decoder() {
        chain.push(ElementSpec::new("jpegdec"));
    }
    chain
}

/// Returns the kernel name of the node behind `device` (`video0`), following
/// symlinks such as `/dev/v4l/by-id/...`.
pub fn node_name(device: &Path) -> Option<String> {
    let resolved = fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    resolved.file_name()?.to_str().map(str::to_string)
}

/// Lists the `videoN` nodes in `dev_dir` by number.
pub fn list_video_nodes(dev_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dev_dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name.to_str()?.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, path)| path).collect()
}

/// Fails when `device` does not exist (listing the nodes of `dev_dir` that
/// do) or cannot be opened for reading and writing, as `v4l2src` opens it.
fn check_node(device: &Path, dev_dir: &Path) -> Result<(), CaptureError> {
    match fs::OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(CaptureError::DeviceNotFound {
                device: device.to_path_buf(),
                existing: list_video_nodes(dev_dir),
            })
        }
        Err(error) => Err(open_error(device, error)),
    }
}

/// Maps the error of opening a device node to the error the user can act on.
fn open_error(device: &Path, error: io::Error) -> CaptureError {
    let device = device.to_path_buf();
    if error.kind() == io::ErrorKind::PermissionDenied {
        return CaptureError::DevicePermission { device };
    }
    if error.raw_os_error() == Some(libc::EBUSY) {
        return CaptureError::DeviceBusy { device };
    }
    CaptureError::DeviceOpen {
        device,
        message: error.to_string(),
        existing: Vec::new(),
    }
}

/// Maps an error that `v4l2src` posted for `device` (its message and debug
/// text) to the error the user can act on. The pipeline code can use it for
/// errors at start-up too: a UVC camera in use elsewhere opens fine and
/// reports "Device '/dev/video0' is busy" only when streaming starts.
///
/// A node that is not a capture device (the metadata node next to a UVC
/// camera's video node) is the usual other case, so that error lists the
/// other nodes.
pub fn error_from_v4l2src(device: &Path, message: &str, debug: &str) -> CaptureError {
    let text = format!("{message} {debug}").to_lowercase();
    if text.contains("busy") {
        return CaptureError::DeviceBusy {
            device: device.to_path_buf(),
        };
    }
    if text.contains("permission denied") {
        return CaptureError::DevicePermission {
            device: device.to_path_buf(),
        };
    }
    CaptureError::DeviceOpen {
        device: device.to_path_buf(),
        message: message.trim_end_matches('.').to_string(),
        existing: list_video_nodes(Path::new("/dev"))
            .into_iter()
            .filter(|node| node != device)
            .collect(),
    }
}

fn device_text(device: &Path) -> Result<&str, CaptureError> {
    device
        .to_str()
        .ok_or_else(|| CaptureError::InvalidDevicePath {
            device: device.to_path_buf(),
        })
}

/// Takes the message and debug text of the first error waiting on the
/// pipeline's bus.
fn first_bus_error(pipeline: &gst::Pipeline) -> Option<(String, String)> {
    let bus = pipeline.bus()?;
    let message = bus.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(error) => Some((
            error.error().to_string(),
            error
                .debug()
                .map(|debug| debug.to_string())
                .unwrap_or_default(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::modes::PixelFormat;
    use crate::config::{FrameRate, Size};
    use crate::exit::ExitStatus;

    #[test]
    fn video_chain_for_raw_and_mjpeg() {
        let raw = Selection {
            format: PixelFormat::Raw("YUY2".into()),
            size: Size::new(640, 480),
            rate: FrameRate::new(30, 1),
        };
        let chain = video_chain("/dev/video0", &raw);
        assert_eq!(chain.factories(), vec!["v4l2src", "capsfilter"]);
        assert_eq!(chain.elements[0].get("device"), Some("/dev/video0"));
        assert_eq!(
            chain.elements[1].get("caps"),
            Some("video/x-raw,format=YUY2,width=640,height=480,framerate=30/1")
        );

        let mjpeg = Selection {
            format: PixelFormat::Mjpeg,
            ..raw
        };
        let chain = video_chain("/dev/video2", &mjpeg);
        assert_eq!(chain.factories(), vec!["v4l2src", "capsfilter", "jpegdec"]);
        assert_eq!(
            chain.elements[1].get("caps"),
            Some("image/jpeg,width=640,height=480,framerate=30/1")
        );
    }

    #[test]
    fn video_chain_builds() {
        gst::init().unwrap();
        let selection = Selection {
            format: PixelFormat::Mjpeg,
            size: Size::new(1920, 1080),
            rate: FrameRate::new(30000, 1001),
        };
        let pipeline = gst::Pipeline::new();
        let (first, last) = video_chain("/dev/video0", &selection)
            .build_into(pipeline.upcast_ref())
            .unwrap();
        assert_eq!(first.property::<String>("device"), "/dev/video0");
        let caps = last.static_pad("src").unwrap().query_caps(None);
        assert!(caps.iter().all(|s| s.name() == "video/x-raw"), "{caps}");
    }

    #[test]
    fn list_video_nodes_sorts_by_number() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["video10", "video2", "video0", "vhci", "videofoo", "media0"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let nodes = list_video_nodes(dir.path());
        let names: Vec<&str> = nodes
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["video0", "video2", "video10"]);
    }

    #[test]
    fn missing_node_lists_existing_nodes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("video0"), "").unwrap();
        fs::write(dir.path().join("video1"), "").unwrap();
        let missing = dir.path().join("video7");
        let error = check_node(&missing, dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, CaptureError::DeviceNotFound { .. }),
            "{text}"
        );
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("video0, "), "{text}");
        assert!(text.contains("video1"), "{text}");
        assert_eq!(error.exit_status(), ExitStatus::Device);
    }

    #[test]
    fn missing_node_without_any_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_node(&dir.path().join("video0"), dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("there are no /dev/video* nodes"), "{text}");
        assert!(text.contains("v4l2-ctl --list-devices"), "{text}");
    }

    #[test]
    fn open_errors_by_errno() {
        let device = Path::new("/dev/video0");
        let cases = [
            (libc::EACCES, "permission denied", "'video' group"),
            (libc::EBUSY, "is busy", "fuser"),
            (libc::ENXIO, "failed to open", "/dev/video0"),
        ];
        for (errno, phrase, hint) in cases {
            let error = open_error(device, io::Error::from_raw_os_error(errno));
            let text = error.to_string();
            assert!(text.contains(phrase), "{errno}: {text}");
            assert!(text.contains(hint), "{errno}: {text}");
            assert_eq!(error.exit_status(), ExitStatus::Device, "{text}");
        }
    }

    #[test]
    fn node_name_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video3");
        fs::write(&node, "").unwrap();
        let link = dir.path().join("usb-Camera-video-index0");
        std::os::unix::fs::symlink(&node, &link).unwrap();
        assert_eq!(node_name(&link).as_deref(), Some("video3"));
        assert_eq!(
            node_name(Path::new("/nonexistent/video5")).as_deref(),
            Some("video5")
        );
    }

    #[test]
    fn v4l2src_errors_classified() {
        let device = Path::new("/dev/video0");
        let cases = [
            ("Device '/dev/video0' is busy", "", "is busy"),
            (
                "Could not open device '/dev/video0' for reading and writing.",
                "v4l2_calls.c(637): gst_v4l2_open (): system error: Permission denied",
                "permission denied",
            ),
            (
                "Device '/dev/video0' is not a capture device.",
                "Capabilities: 0x4a00000",
                "failed to open V4L2 device /dev/video0: Device '/dev/video0' is not a \
                 capture device",
            ),
        ];
        for (message, debug, phrase) in cases {
            let error = error_from_v4l2src(device, message, debug);
            let text = error.to_string();
            assert!(text.contains(phrase), "{text}");
            assert_eq!(error.exit_status(), ExitStatus::Device, "{text}");
        }
    }

    /// `/dev/null` exists and opens, but is no V4L2 device, so `v4l2src`
    /// fails to reach READY and the error names the node.
    #[test]
    fn probe_non_v4l2_node() {
        let error = probe_modes(Path::new("/dev/null")).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, CaptureError::DeviceOpen { .. }), "{text}");
        assert!(text.contains("/dev/null"), "{text}");
        assert_eq!(error.exit_status(), ExitStatus::Device);
    }
}
