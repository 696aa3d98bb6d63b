//! Sources: what `--device` names, and the element chains that capture it.

use std::path::PathBuf;
use std::str::FromStr;

/// A source as named on the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// Moving test pattern and a tone.
    Test,
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
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("invalid device 'file:': give the clip's path, as in file:clip.mp4".into());
            }
            Ok(SourceSpec::File { path: path.into() })
        } else if let Some(rest) = text.strip_prefix("decklink:") {
            Ok(SourceSpec::Decklink { index: index(rest, "decklink")? })
        } else if let Some(rest) = text.strip_prefix("avf:") {
            Ok(SourceSpec::Avf { index: index(rest, "avf")? })
        } else if text == "libcamera" {
            Ok(SourceSpec::Libcamera { id: None })
        } else if let Some(id) = text.strip_prefix("libcamera:") {
            Ok(SourceSpec::Libcamera { id: (!id.is_empty()).then(|| id.to_string()) })
        } else if text.starts_with("/dev/") {
            Ok(SourceSpec::V4l2 { device: text.into() })
        } else {
            Err(format!(
                "invalid device '{text}': use /dev/videoN, test, file:PATH, decklink:N, avf:N \
                 or libcamera[:ID]"
            ))
        }
    }
}
