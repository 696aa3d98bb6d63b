use super::*;
use std::os::unix::fs::symlink;

const USB_BUS: &str = "devices/pci0000:00/0000:00:14.0/usb1";

/// A fake machine: a webcam (USB device 1-1) with video0 (capture), video1
/// (its metadata node) and an ALSA card 2, an HDMI dongle (1-3) without
/// audio on video2, onboard PCI audio as card 0, and the udev symlinks in
/// `dev/v4l`. Links are relative, as udev and sysfs make them.
struct FakeMachine {
    root: tempfile::TempDir,
}

impl FakeMachine {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let sys = base.join("sys");
        for interface in ["1-1/1-1:1.0", "1-1/1-1:1.2", "1-3/1-3:1.0"] {
            let dir = sys.join(USB_BUS).join(interface);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("bInterfaceNumber"), "00\n").unwrap();
        }
        fs::create_dir_all(sys.join("devices/pci0000:00/0000:00:1f.3")).unwrap();
        let link = |class_entry: &str, target: &str| {
            let dir = sys.join("class").join(class_entry);
            fs::create_dir_all(&dir).unwrap();
            symlink(format!("../../../{target}"), dir.join("device")).unwrap();
        };
        link("video4linux/video0", &format!("{USB_BUS}/1-1/1-1:1.0"));
        link("video4linux/video1", &format!("{USB_BUS}/1-1/1-1:1.0"));
        link("video4linux/video2", &format!("{USB_BUS}/1-3/1-3:1.0"));
        link("sound/card0", "devices/pci0000:00/0000:00:1f.3");
        link("sound/card2", &format!("{USB_BUS}/1-1/1-1:1.2"));
        fs::write(sys.join("class/sound/card0/id"), "PCH\n").unwrap();
        fs::write(sys.join("class/sound/card2/id"), "C920\n").unwrap();

        let dev = base.join("dev");
        fs::create_dir_all(dev.join("v4l/by-id")).unwrap();
        fs::create_dir_all(dev.join("v4l/by-path")).unwrap();
        for node in ["video0", "video1", "video2"] {
            fs::write(dev.join(node), "").unwrap();
        }
        let udev_link = |folder: &str, name: &str, node: &str| {
            symlink(
                format!("../../{node}"),
                dev.join("v4l").join(folder).join(name),
            )
            .unwrap();
        };
        udev_link(
            "by-id",
            "usb-046d_HD_Pro_Webcam_C920_A1B2C3-video-index0",
            "video0",
        );
        udev_link(
            "by-id",
            "usb-046d_HD_Pro_Webcam_C920_A1B2C3-video-index1",
            "video1",
        );
        udev_link(
            "by-path",
            "pci-0000:00:14.0-usb-0:1:1.0-video-index0",
            "video0",
        );
        udev_link(
            "by-path",
            "pci-0000:00:14.0-usbv2-0:1:1.0-video-index0",
            "video0",
        );
        udev_link(
            "by-path",
            "pci-0000:00:14.0-usb-0:3:1.0-video-index0",
            "video2",
        );
        Self { root }
    }

    fn paths(&self) -> DiscoveryPaths {
        DiscoveryPaths {
            sysfs_root: self.root.path().join("sys"),
            v4l_dir: self.root.path().join("dev/v4l"),
            dev_dir: self.root.path().join("dev"),
        }
    }

    fn node(&self, name: &str) -> String {
        self.root
            .path()
            .join("dev")
            .join(name)
            .to_str()
            .unwrap()
            .to_string()
    }
}

fn file_names(names: &[StableName]) -> Vec<(&str, &str)> {
    names
        .iter()
        .map(|name| (name.kind, name.path.rsplit('/').next().unwrap()))
        .collect()
}

#[test]
fn stable_names_of_webcam_node() {
    let machine = FakeMachine::new();
    let names = stable_names(&machine.paths().v4l_dir, Path::new(&machine.node("video0")));
    assert_eq!(
        file_names(&names),
        vec![
            ("by-id", "usb-046d_HD_Pro_Webcam_C920_A1B2C3-video-index0"),
            ("by-path", "pci-0000:00:14.0-usb-0:1:1.0-video-index0"),
            ("by-path", "pci-0000:00:14.0-usbv2-0:1:1.0-video-index0"),
        ]
    );
    assert!(names[0].path.contains("/dev/v4l/by-id/"), "{names:?}");
}

#[test]
fn stable_names_of_node_without_by_id() {
    let machine = FakeMachine::new();
    let names = stable_names(&machine.paths().v4l_dir, Path::new(&machine.node("video2")));
    assert_eq!(
        file_names(&names),
        vec![("by-path", "pci-0000:00:14.0-usb-0:3:1.0-video-index0")]
    );
}

#[test]
fn stable_names_without_v4l_dir() {
    let machine = FakeMachine::new();
    let missing = machine.root.path().join("no-such-dir");
    assert!(stable_names(&missing, Path::new(&machine.node("video0"))).is_empty());
    let missing_node = machine.node("video9");
    assert!(stable_names(&machine.paths().v4l_dir, Path::new(&missing_node)).is_empty());
}

#[test]
fn webcam_pairs_with_its_alsa_card() {
    let machine = FakeMachine::new();
    let inputs = [SoundInput {
        card: 2,
        name: "HD Pro Webcam C920".to_string(),
    }];
    let device = v4l2_device(
        &machine.node("video0"),
        "HD Pro Webcam C920",
        Vec::new(),
        &machine.paths(),
        &inputs,
    );
    assert_eq!(device.kind, DeviceKind::V4l2);
    assert_eq!(device.device, machine.node("video0"));
    assert_eq!(device.stable_names.len(), 3);
    let audio = device.audio.expect("the webcam's card pairs");
    assert_eq!(audio.audio.as_deref(), Some("hw:2"));
    assert_eq!(audio.audio_by_id.as_deref(), Some("hw:CARD=C920"));
    assert!(
        audio.description.contains("HD Pro Webcam C920"),
        "{}",
        audio.description
    );
}

#[test]
fn node_without_audio_pairs_with_nothing() {
    let machine = FakeMachine::new();
    let device = v4l2_device(
        &machine.node("video2"),
        "USB3 Video",
        Vec::new(),
        &machine.paths(),
        &[],
    );
    assert_eq!(device.audio, None);
}

#[test]
fn pairing_ignores_onboard_card() {
    let machine = FakeMachine::new();
    fs::remove_dir_all(machine.paths().sysfs_root.join("class/sound/card2")).unwrap();
    let device = v4l2_device(
        &machine.node("video0"),
        "HD Pro Webcam C920",
        Vec::new(),
        &machine.paths(),
        &[],
    );
    assert_eq!(device.audio, None);
}

#[test]
fn capture_node_bits() {
    let cases = [
        // UVC video node: VIDEO_CAPTURE | EXT_PIX_FORMAT | STREAMING.
        (0x0420_0001, true),
        // UVC metadata node: META_CAPTURE | EXT_PIX_FORMAT | STREAMING.
        (0x0480_0000, false),
        // A capture card with the multi-planar API.
        (0x0420_1000, true),
        // A V4L2 memory-to-memory encoder (the Pi's bcm2835-codec).
        (0x0420_4000, false),
        (0x0420_8000, false),
        // A capture and output node pair on one device.
        (0x0420_0003, false),
        // A touch sensor reports frames too.
        (0x1420_0001, false),
        (0, false),
    ];
    for (caps, expected) in cases {
        assert_eq!(is_capture_node(caps), expected, "{caps:#010x}");
    }
}

#[test]
fn kinds_by_element() {
    let cases = [
        ("v4l2src", Some(DeviceKind::V4l2)),
        ("decklinkvideosrc", Some(DeviceKind::Decklink)),
        ("avfvideosrc", Some(DeviceKind::Avfoundation)),
        ("libcamerasrc", Some(DeviceKind::Libcamera)),
        ("pipewiresrc", None),
        ("uvch264src", None),
    ];
    for (factory, expected) in cases {
        assert_eq!(DeviceKind::from_element(factory), expected, "{factory}");
    }
}

#[test]
fn device_values_per_kind() {
    assert_eq!(
        decklink_device(1, "DeckLink Mini Recorder", Vec::new()).device,
        "decklink:1"
    );
    assert_eq!(
        avf_device(0, "FaceTime HD Camera", Vec::new()).device,
        "avf:0"
    );
    let camera = libcamera_device("/base/soc/i2c0mux/i2c@1/imx708@1a", "imx708", Vec::new());
    assert_eq!(camera.device, "libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a");
    assert_eq!(camera.audio, None);
    assert_eq!(
        libcamera_device("", "camera", Vec::new()).device,
        "libcamera"
    );
    let decklink = decklink_device(0, "DeckLink", Vec::new());
    assert_eq!(decklink.audio.unwrap().audio, None);
}

#[test]
fn alsa_card_numbers() {
    let cases = [
        ("hw:2", Some(2)),
        ("hw:2,0", Some(2)),
        ("plughw:11,1", Some(11)),
        ("hw:CARD=C920", None),
        ("default", None),
    ];
    for (name, expected) in cases {
        assert_eq!(alsa_card_number(name), expected, "{name}");
    }
}

#[test]
fn json_field_names() {
    let machine = FakeMachine::new();
    let device = v4l2_device(
        &machine.node("video0"),
        "HD Pro Webcam C920",
        Vec::new(),
        &machine.paths(),
        &[],
    );
    let json = serde_json::to_value(&device).unwrap();
    assert_eq!(json["kind"], "v4l2");
    assert_eq!(json["audio"]["audio"], "hw:2");
    assert_eq!(json["stable_names"][0]["kind"], "by-id");
    assert!(json["modes"].is_array());
}

#[test]
fn unlisted_nodes_exclude_listed_devices() {
    let machine = FakeMachine::new();
    let paths = machine.paths();
    let webcam = v4l2_device(&machine.node("video0"), "C920", Vec::new(), &paths, &[]);
    let unlisted = unlisted_nodes(&paths, &[webcam]);
    let names: Vec<&str> = unlisted
        .iter()
        .map(|node| node.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, vec!["video1", "video2"]);
    assert_eq!(unlisted_nodes(&paths, &[]).len(), 3);
}
