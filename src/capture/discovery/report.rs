//! The table `bridge devices` prints: one block per device, its stable
//! names, paired audio and modes indented below it.
//!
//! ```text
//! V4L2  /dev/video0  HD Pro Webcam C920
//!     by-id    /dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_A1B2C3-video-index0
//!     audio    --audio hw:2 (or hw:CARD=C920): ALSA card 2 on the same USB device
//!     MJPEG    1920x1080, 1280x720 at 30, 24, 15 fps
//! ```

use super::CaptureDevice;
use std::path::PathBuf;

/// The line printed when the monitor finds no capture device.
pub const NO_DEVICES: &str = "no capture devices found";

/// Lays out the devices for people, or reports that there is none, then
/// the `unlisted` V4L2 nodes. It ends with the built-in test source, which
/// needs no hardware.
pub fn render(devices: &[CaptureDevice], unlisted: &[PathBuf]) -> Vec<String> {
    let mut lines = Vec::new();
    if devices.is_empty() {
        lines.push(NO_DEVICES.to_string());
        lines.push(
            "  V4L2 needs a /dev/videoN node readable by this user (the 'video' group); \
             DeckLink needs Blackmagic's Desktop Video driver"
                .to_string(),
        );
    }
    for device in devices {
        lines.extend(device_block(device));
    }
    if !unlisted.is_empty() {
        let nodes: Vec<String> = unlisted
            .iter()
            .map(|node| clean(&node.display().to_string()))
            .collect();
        lines.push(format!(
            "not listed: {} (metadata or encoder nodes, or not readable by this user)",
            nodes.join(", ")
        ));
    }
    lines.push(String::new());
    lines.push(
        "always available: --device test (moving test pattern and a 440 Hz tone, no hardware \
         needed)"
            .to_string(),
    );
    lines
}

fn device_block(device: &CaptureDevice) -> Vec<String> {
    let mut lines = vec![format!(
        "{}  {}  {}",
        device.kind.label(),
        device.device,
        clean(&device.name)
    )];
    let mut detail = |label: &str, text: String| {
        lines.push(format!("    {label:<9} {text}"));
    };
    for name in &device.stable_names {
        detail(name.kind, name.path.clone());
    }
    match &device.audio {
        Some(audio) => {
            let flag = match (&audio.audio, &audio.audio_by_id) {
                (Some(value), Some(by_id)) => format!("--audio {value} (or {by_id}): "),
                (Some(value), None) => format!("--audio {value}: "),
                (None, _) => String::new(),
            };
            detail("audio", format!("{flag}{}", clean(&audio.description)));
        }
        None => detail("audio", "none paired (name one with --audio)".to_string()),
    }
    if device.modes.is_empty() {
        detail("modes", "none reported".to_string());
    }
    for group in &device.modes {
        let marker = if group.capturable {
            ""
        } else {
            " (not captured by the bridge)"
        };
        detail(&group.format, format!("{}{marker}", group.line()));
    }
    lines
}

/// Escapes control characters (`\n`, `\u{1b}`) in text from outside, such
/// as names a device reports, so the text cannot forge a line or drive the
/// terminal.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::discovery::mode_groups::ModeGroup;
    use crate::capture::discovery::{
        decklink_device, CaptureDevice, DeviceKind, PairedAudio, StableName,
    };

    fn webcam() -> CaptureDevice {
        CaptureDevice {
            kind: DeviceKind::V4l2,
            name: "HD Pro Webcam C920".to_string(),
            device: "/dev/video0".to_string(),
            path: Some("/dev/video0".to_string()),
            stable_names: vec![StableName {
                kind: "by-id",
                path: "/dev/v4l/by-id/usb-046d_C920-video-index0".to_string(),
            }],
            modes: vec![
                ModeGroup {
                    format: "MJPEG".to_string(),
                    capturable: true,
                    sizes: vec!["1920x1080".to_string(), "1280x720".to_string()],
                    rates: vec!["30".to_string(), "15".to_string()],
                },
                ModeGroup {
                    format: "video/x-h264".to_string(),
                    capturable: false,
                    sizes: vec!["1920x1080".to_string()],
                    rates: vec!["30".to_string()],
                },
            ],
            audio: Some(PairedAudio {
                audio: Some("hw:2".to_string()),
                audio_by_id: Some("hw:CARD=C920".to_string()),
                description: "ALSA card 2 on the same USB device".to_string(),
            }),
        }
    }

    #[test]
    fn empty_list_names_test_source() {
        let lines = render(&[], &[]);
        assert_eq!(lines[0], NO_DEVICES);
        assert!(lines.last().unwrap().contains("--device test"), "{lines:?}");
    }

    #[test]
    fn webcam_block() {
        let lines = render(&[webcam()], &[]);
        assert_eq!(lines[0], "V4L2  /dev/video0  HD Pro Webcam C920");
        assert_eq!(
            lines[1],
            "    by-id     /dev/v4l/by-id/usb-046d_C920-video-index0"
        );
        assert_eq!(
            lines[2],
            "    audio     --audio hw:2 (or hw:CARD=C920): ALSA card 2 on the same USB device"
        );
        assert_eq!(lines[3], "    MJPEG     1920x1080, 1280x720 at 30, 15 fps");
        assert_eq!(
            lines[4],
            "    video/x-h264 1920x1080 at 30 fps (not captured by the bridge)"
        );
        assert!(!lines.iter().any(|line| line == NO_DEVICES));
    }

    #[test]
    fn decklink_block_names_embedded_audio() {
        let lines = render(
            &[decklink_device(0, "DeckLink Mini Recorder", Vec::new())],
            &[],
        );
        assert_eq!(lines[0], "DeckLink  decklink:0  DeckLink Mini Recorder");
        assert!(lines[1].contains("embedded in the signal"), "{lines:?}");
        assert!(!lines[1].contains("--audio"), "{lines:?}");
        assert_eq!(lines[2], "    modes     none reported");
    }

    #[test]
    fn names_cannot_forge_lines() {
        let mut device = webcam();
        device.name = "Cam\nV4L2  /dev/video9  Forged".to_string();
        let lines = render(&[device], &[]);
        assert_eq!(
            lines[0],
            "V4L2  /dev/video0  Cam\\nV4L2  /dev/video9  Forged"
        );
    }

    #[test]
    fn unlisted_nodes_follow_devices() {
        let lines = render(&[webcam()], &[PathBuf::from("/dev/video1")]);
        let unlisted = lines
            .iter()
            .find(|line| line.starts_with("not listed: "))
            .expect("a line for unlisted nodes");
        assert!(unlisted.contains("/dev/video1"), "{unlisted}");
        assert!(unlisted.contains("not readable"), "{unlisted}");
        let without = render(&[webcam()], &[]);
        assert!(!without.iter().any(|line| line.starts_with("not listed")));
    }
}
