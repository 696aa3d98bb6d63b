//! Audio capture: ALSA devices named with `--audio`, and the ALSA card that
//! belongs to the same USB device as a V4L2 video node (a webcam's
//! microphone, the embedded audio of an HDMI capture dongle), found through
//! sysfs.
//!
//! In sysfs, `class/video4linux/videoN/device` and `class/sound/cardN/device`
//! link to the USB interface each driver bound to. A video node and a card
//! that share the parent USB device come from the same piece of hardware.

use super::sources;
use crate::pipeline::description::{ChainSpec, ElementSpec};
use std::fs;
use std::path::{Path, PathBuf};

/// Characters allowed in an ALSA device name given on the command line.
const ALSA_NAME_PUNCTUATION: &[char] = &[':', ',', '=', '_', '-', '.'];

/// Longest ALSA device name accepted from the command line.
pub const MAX_ALSA_NAME_LEN: usize = 128;

/// An ALSA sound card as sysfs lists it under `class/sound/cardN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaCard {
    /// N of `cardN`, the number `hw:N` uses.
    pub index: u32,
    /// The card's id from `cardN/id`, such as `C920`.
    pub id: String,
}

impl AlsaCard {
    /// Builds the ALSA device name of the card's first PCM, `hw:CARD=<id>`,
    /// which stays valid when cards are numbered differently after a reboot.
    /// Falls back to `hw:N` when the id has characters an ALSA name cannot
    /// carry.
    pub fn device_name(&self) -> String {
        if !self.id.is_empty() && is_valid_alsa_name(&self.id) {
            format!("hw:CARD={}", self.id)
        } else {
            format!("hw:{}", self.index)
        }
    }
}

/// Checks that `name` is a plausible ALSA device name: letters, digits and
/// `: , = _ - .` only, as in `hw:1`, `hw:CARD=C920,DEV=0` or `dsnoop:1`.
pub fn is_valid_alsa_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ALSA_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ALSA_NAME_PUNCTUATION.contains(&c))
}

/// Describes an `alsasrc` chain that captures from ALSA device `device`,
/// slaved to the pipeline clock (see [`sources::SLAVE_METHOD`]).
pub fn alsa_chain(device: &str) -> ChainSpec {
    ChainSpec::new(vec![ElementSpec::new("alsasrc")
        .property("device", device)
        .property("slave-method", sources::SLAVE_METHOD)])
}

/// Finds the ALSA card on the same USB device as `video_node` (`video0`),
/// reading sysfs under `sysfs_root` (`/sys` on a running system). Returns
/// the lowest-numbered such card, or `None` when there is none or sysfs
/// cannot be read.
pub fn paired_alsa_card(sysfs_root: &Path, video_node: &str) -> Option<AlsaCard> {
    let video_link = sysfs_root
        .join("class/video4linux")
        .join(video_node)
        .join("device");
    let video_device = physical_device(&video_link)?;
    sound_cards(sysfs_root)
        .into_iter()
        .find(|(_, card_dir)| {
            physical_device(&card_dir.join("device")).as_ref() == Some(&video_device)
        })
        .map(|(index, card_dir)| AlsaCard {
            index,
            id: fs::read_to_string(card_dir.join("id"))
                .map(|id| id.trim().to_string())
                .unwrap_or_default(),
        })
}

/// Resolves a sysfs `device` link to the hardware it belongs to. A USB
/// interface (a directory with `bInterfaceNumber`) is replaced by its parent,
/// the USB device, so the video and audio interfaces of one camera compare
/// equal.
fn physical_device(link: &Path) -> Option<PathBuf> {
    let target = fs::canonicalize(link).ok()?;
    if target.join("bInterfaceNumber").is_file() {
        target.parent().map(Path::to_path_buf)
    } else {
        Some(target)
    }
}

/// Lists the `class/sound/cardN` directories by card number.
fn sound_cards(sysfs_root: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = fs::read_dir(sysfs_root.join("class/sound")) else {
        return Vec::new();
    };
    let mut cards: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let index = name.to_str()?.strip_prefix("card")?.parse::<u32>().ok()?;
            Some((index, entry.path()))
        })
        .collect();
    cards.sort();
    cards
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer::prelude::*;
    use std::os::unix::fs::symlink;

    const USB_BUS: &str = "devices/pci0000:00/0000:00:14.0/usb1";

    /// Lays out a sysfs tree: a webcam (1-1) with video and audio
    /// interfaces, a USB headset (1-2), a camera without audio (1-3) and
    /// onboard PCI audio. Links are relative, as in real sysfs.
    fn sysfs_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let interfaces = ["1-1/1-1:1.0", "1-1/1-1:1.2", "1-2/1-2:1.0", "1-3/1-3:1.0"];
        for interface in interfaces {
            let dir = base.join(USB_BUS).join(interface);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("bInterfaceNumber"), "00\n").unwrap();
        }
        fs::create_dir_all(base.join("devices/pci0000:00/0000:00:1f.3")).unwrap();

        let link = |class_entry: &str, target: &str| {
            let dir = base.join("class").join(class_entry);
            fs::create_dir_all(&dir).unwrap();
            symlink(format!("../../../{target}"), dir.join("device")).unwrap();
        };
        link("video4linux/video0", &format!("{USB_BUS}/1-1/1-1:1.0"));
        link("video4linux/video1", &format!("{USB_BUS}/1-1/1-1:1.0"));
        link("video4linux/video2", &format!("{USB_BUS}/1-3/1-3:1.0"));
        link("sound/card0", "devices/pci0000:00/0000:00:1f.3");
        link("sound/card1", &format!("{USB_BUS}/1-2/1-2:1.0"));
        link("sound/card2", &format!("{USB_BUS}/1-1/1-1:1.2"));
        fs::create_dir_all(base.join("class/sound/controlC0")).unwrap();
        fs::create_dir_all(base.join("class/sound/timer")).unwrap();
        for (card, id) in [
            ("card0", "PCH\n"),
            ("card1", "Headset\n"),
            ("card2", "C920\n"),
        ] {
            fs::write(base.join("class/sound").join(card).join("id"), id).unwrap();
        }
        root
    }

    #[test]
    fn pairing_table() {
        let root = sysfs_tree();
        let cases = [
            ("video0", Some((2, "C920"))),
            ("video1", Some((2, "C920"))),
            ("video2", None),
            ("video9", None),
        ];
        for (node, expected) in cases {
            let found = paired_alsa_card(root.path(), node);
            let expected = expected.map(|(index, id)| AlsaCard {
                index,
                id: id.to_string(),
            });
            assert_eq!(found, expected, "{node}");
        }
    }

    #[test]
    fn pairing_without_sysfs() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(paired_alsa_card(root.path(), "video0"), None);
    }

    #[test]
    fn pairing_ignores_pci_card_for_usb_video() {
        let root = sysfs_tree();
        fs::remove_dir_all(root.path().join("class/sound/card2")).unwrap();
        assert_eq!(paired_alsa_card(root.path(), "video0"), None);
    }

    #[test]
    fn device_name_uses_id_or_index() {
        let cases = [
            ("C920", 2, "hw:CARD=C920"),
            ("MS2109", 1, "hw:CARD=MS2109"),
            ("bad id", 3, "hw:3"),
            ("", 4, "hw:4"),
        ];
        for (id, index, expected) in cases {
            let card = AlsaCard {
                index,
                id: id.to_string(),
            };
            assert_eq!(card.device_name(), expected, "{id:?}");
        }
    }

    #[test]
    fn alsa_name_validation() {
        let valid = [
            "hw:1",
            "hw:CARD=C920,DEV=0",
            "plughw:1,0",
            "dsnoop:CARD=x",
            "default",
            "a.b_c-d",
        ];
        for name in valid {
            assert!(is_valid_alsa_name(name), "{name}");
        }
        let long = "a".repeat(MAX_ALSA_NAME_LEN + 1);
        let invalid = [
            "",
            "hw 1",
            "hw:1;rm",
            "hw:1'",
            "$(id)",
            "hw:1\n",
            "plug/x",
            long.as_str(),
        ];
        for name in invalid {
            assert!(!is_valid_alsa_name(name), "{name:?}");
        }
    }

    #[test]
    fn alsa_chain_description() {
        let chain = alsa_chain("hw:CARD=C920");
        assert_eq!(chain.factories(), vec!["alsasrc"]);
        assert_eq!(chain.elements[0].get("device"), Some("hw:CARD=C920"));
        assert_eq!(chain.elements[0].get("slave-method"), Some("resample"));
    }

    /// Building checks the factory and property against the real alsasrc
    /// (gstreamer1.0-alsa); no sound card is opened.
    #[test]
    fn alsa_chain_builds() {
        gstreamer::init().unwrap();
        let source = alsa_chain("hw:CARD=C920,DEV=0").elements[0]
            .build()
            .unwrap();
        assert_eq!(source.property::<String>("device"), "hw:CARD=C920,DEV=0");
        let slave_method = source.property_value("slave-method");
        let (_, nick) = gstreamer::glib::EnumValue::from_value(&slave_method).unwrap();
        assert_eq!(nick.nick(), "resample");
    }
}
