//! Which `[device."KEY"]` tables apply to the `--device` value.
//!
//! A key names the device as given (`/dev/video0`, `test`), its canonical
//! path or kernel name (`video0`), or the file name of a udev symlink in `/dev/v4l/by-id` or
//! `/dev/v4l/by-path` that resolves to the same device node, so a table
//! follows one camera whichever `videoN` it gets.

use std::path::{Path, PathBuf};

/// The directories of udev's stable V4L2 names.
#[derive(Debug, Clone)]
pub struct DeviceDirs {
    pub by_id: PathBuf,
    pub by_path: PathBuf,
}

impl Default for DeviceDirs {
    fn default() -> Self {
        Self {
            by_id: PathBuf::from("/dev/v4l/by-id"),
            by_path: PathBuf::from("/dev/v4l/by-path"),
        }
    }
}

/// Returns the keys among `keys` that name `device`.
pub fn matching_keys<'k>(device: &str, keys: &[&'k str], dirs: &DeviceDirs) -> Vec<&'k str> {
    let canonical = std::fs::canonicalize(device).ok();
    let mut aliases = vec![device.to_string()];
    if let Some(canonical) = &canonical {
        aliases.push(canonical.display().to_string());
        // The kernel name, such as video0, as a udev unit instance has it.
        if let Some(name) = canonical.file_name() {
            aliases.push(name.to_string_lossy().into_owned());
        }
        for directory in [&dirs.by_id, &dirs.by_path] {
            aliases.extend(links_to(directory, canonical));
        }
    } else {
        // A node or udev link that does not exist now, such as an
        // unplugged camera's when `bridge check` runs, still has its name.
        let path = Path::new(device);
        let parent = path.parent();
        let named_dir = [Path::new("/dev"), &dirs.by_id, &dirs.by_path]
            .into_iter()
            .any(|directory| parent == Some(directory));
        if let (true, Some(name)) = (named_dir, path.file_name()) {
            aliases.push(name.to_string_lossy().into_owned());
        }
    }
    keys.iter()
        .copied()
        .filter(|key| {
            aliases.iter().any(|alias| alias == key)
                || (key.contains('/')
                    && canonical.is_some()
                    && std::fs::canonicalize(key).ok() == canonical)
        })
        .collect()
}

/// The names of the entries of `directory` that resolve to `target`.
fn links_to(directory: &Path, target: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| std::fs::canonicalize(entry.path()).ok().as_deref() == Some(target))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for /dev: two device nodes and udev's symlinks to them.
    fn tree() -> (tempfile::TempDir, DeviceDirs) {
        let root = tempfile::tempdir().unwrap();
        let dev = root.path();
        std::fs::write(dev.join("video0"), "").unwrap();
        std::fs::write(dev.join("video2"), "").unwrap();
        let dirs = DeviceDirs {
            by_id: dev.join("by-id"),
            by_path: dev.join("by-path"),
        };
        std::fs::create_dir(&dirs.by_id).unwrap();
        std::fs::create_dir(&dirs.by_path).unwrap();
        let link = |directory: &Path, name: &str, target: &str| {
            std::os::unix::fs::symlink(dev.join(target), directory.join(name)).unwrap();
        };
        link(&dirs.by_id, "usb-Cam_A-video-index0", "video0");
        link(&dirs.by_id, "usb-Cam_B-video-index0", "video2");
        link(
            &dirs.by_path,
            "pci-0000:00:14.0-usb-0:1:1.0-video-index0",
            "video0",
        );
        (root, dirs)
    }

    #[test]
    fn keys_match_by_name_path_and_links() {
        let (root, dirs) = tree();
        let video0 = root.path().join("video0");
        let video0 = video0.to_str().unwrap();
        let keys = [
            video0,
            "usb-Cam_A-video-index0",
            "usb-Cam_B-video-index0",
            "pci-0000:00:14.0-usb-0:1:1.0-video-index0",
            "test",
            "video0",
            "video2",
        ];
        let found = matching_keys(video0, &keys, &dirs);
        assert_eq!(
            found,
            [
                video0,
                "usb-Cam_A-video-index0",
                "pci-0000:00:14.0-usb-0:1:1.0-video-index0",
                "video0"
            ]
        );
    }

    #[test]
    fn symlink_given_as_device_matches_node() {
        let (root, dirs) = tree();
        let link = dirs.by_id.join("usb-Cam_B-video-index0");
        let keys = [root.path().join("video2")];
        let keys: Vec<&str> = keys.iter().map(|key| key.to_str().unwrap()).collect();
        let found = matching_keys(link.to_str().unwrap(), &keys, &dirs);
        assert_eq!(found, keys);
    }

    #[test]
    fn kernel_name_matches_absent_node() {
        let (_root, dirs) = tree();
        // No such node exists while the camera is unplugged, as when a
        // file is checked before it is plugged in.
        let device = "/dev/video-absent-4711";
        let keys = ["video-absent-4711", "video0", "usb-Cam_C-video-index0"];
        assert_eq!(matching_keys(device, &keys, &dirs), ["video-absent-4711"]);
        let link = dirs.by_id.join("usb-Cam_C-video-index0");
        let found = matching_keys(link.to_str().unwrap(), &keys, &dirs);
        assert_eq!(found, ["usb-Cam_C-video-index0"]);
    }

    #[test]
    fn test_device_matches_its_own_name_only() {
        let (_root, dirs) = tree();
        let keys = ["test", "usb-Cam_A-video-index0"];
        assert_eq!(matching_keys("test", &keys, &dirs), ["test"]);
    }
}
