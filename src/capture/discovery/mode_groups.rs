//! Capture modes grouped for reading: one group per pixel format and rate
//! list, with every size that runs at exactly those rates, in the order the
//! device lists them.
//!
//! ```text
//! MJPEG     1920x1080, 1280x720, 640x480 at 30, 24, 15 fps
//! raw YUY2  1920x1080 at 5 fps
//! ```

use crate::capture::modes::{fps_text, modes_from_caps, Mode, PixelFormat};
use gstreamer as gst;
use serde::Serialize;
use std::str::FromStr;

/// Sizes of one pixel format that run at the same frame rates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModeGroup {
    /// `raw YUY2`, `MJPEG`, or a caps name the bridge does not capture.
    pub format: String,
    /// Whether the bridge can capture this format (raw or MJPEG).
    pub capturable: bool,
    /// Sizes as `WIDTHxHEIGHT`, in the device's order.
    pub sizes: Vec<String>,
    /// Frame rates as `--fps` takes them (`30`, `29.97`), fastest first.
    pub rates: Vec<String>,
}

impl ModeGroup {
    /// Formats the sizes and rates as one line: `1920x1080, 1280x720 at 30, 15 fps`.
    pub fn line(&self) -> String {
        let rates = if self.rates.is_empty() {
            "rates not listed".to_string()
        } else {
            format!("at {} fps", self.rates.join(", "))
        };
        format!("{} {rates}", self.sizes.join(", "))
    }
}

/// Groups modes by format and rate list. Groups keep the order in which
/// their format first appears, and sizes the order of the modes.
pub fn group_modes(modes: &[Mode]) -> Vec<ModeGroup> {
    let mut groups: Vec<ModeGroup> = Vec::new();
    for mode in modes {
        let format = format_label(&mode.format);
        let rates: Vec<String> = mode.rates.iter().map(fps_text).collect();
        let size = mode.size.to_string();
        match groups
            .iter_mut()
            .find(|group| group.format == format && group.rates == rates)
        {
            Some(group) => {
                if !group.sizes.contains(&size) {
                    group.sizes.push(size);
                }
            }
            None => groups.push(ModeGroup {
                format,
                capturable: mode.format.is_capturable(),
                sizes: vec![size],
                rates,
            }),
        }
    }
    sort_by_first_format(&mut groups);
    groups
}

/// Groups the modes in a device's caps, as the device monitor or `v4l2src`
/// report them. Fails with the parse error when `caps` is not valid caps.
pub fn groups_from_caps_text(caps: &str) -> Result<Vec<ModeGroup>, String> {
    let caps = gst::Caps::from_str(caps).map_err(|error| format!("invalid caps: {error}"))?;
    Ok(group_modes(&modes_from_caps(&caps)))
}

/// Returns the format's name without the "(not supported)" of `PixelFormat`'s
/// Display, which `ModeGroup::capturable` carries instead.
fn format_label(format: &PixelFormat) -> String {
    match format {
        PixelFormat::Other(name) => name.clone(),
        other => other.to_string(),
    }
}

/// Moves the groups of each format next to the first group of that format,
/// so a format whose sizes differ in rates still reads as one block.
fn sort_by_first_format(groups: &mut [ModeGroup]) {
    let mut order: Vec<String> = Vec::new();
    for group in groups.iter() {
        if !order.contains(&group.format) {
            order.push(group.format.clone());
        }
    }
    groups.sort_by_key(|group| order.iter().position(|format| *format == group.format));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn webcam_caps_group_by_format_and_rates() {
        init();
        let groups = groups_from_caps_text(
            "video/x-raw, format=(string)YUY2, width=(int)1920, height=(int)1080, \
                 framerate=(fraction)5/1; \
             video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, \
                 framerate=(fraction){ 30/1, 15/1 }; \
             image/jpeg, width=(int)1920, height=(int)1080, \
                 framerate=(fraction){ 30/1, 24/1, 15/1 }; \
             image/jpeg, width=(int)1280, height=(int)720, \
                 framerate=(fraction){ 30/1, 24/1, 15/1 }; \
             video/x-raw, format=(string)YUY2, width=(int)1280, height=(int)720, \
                 framerate=(fraction)10/1; \
             image/jpeg, width=(int)640, height=(int)480, \
                 framerate=(fraction){ 30/1, 24/1, 15/1 }",
        )
        .unwrap();
        let lines: Vec<(String, String)> = groups
            .iter()
            .map(|group| (group.format.clone(), group.line()))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("raw YUY2".to_string(), "1920x1080 at 5 fps".to_string()),
                ("raw YUY2".to_string(), "640x480 at 30, 15 fps".to_string()),
                ("raw YUY2".to_string(), "1280x720 at 10 fps".to_string()),
                (
                    "MJPEG".to_string(),
                    "1920x1080, 1280x720, 640x480 at 30, 24, 15 fps".to_string()
                ),
            ]
        );
        assert!(groups.iter().all(|group| group.capturable));
    }

    #[test]
    fn ntsc_rates_print_as_decimals() {
        init();
        let groups = groups_from_caps_text(
            "video/x-raw, format=(string)UYVY, width=(int)1920, height=(int)1080, \
                 framerate=(fraction){ 30000/1001, 60000/1001, 25/1 }",
        )
        .unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].format, "raw UYVY");
        assert_eq!(groups[0].rates, vec!["59.94", "29.97", "25"]);
    }

    #[test]
    fn unsupported_formats_are_marked() {
        init();
        let groups = groups_from_caps_text(
            "video/x-h264, stream-format=(string)byte-stream, width=(int)1920, \
                 height=(int)1080, framerate=(fraction)30/1; \
             image/jpeg, width=(int)1920, height=(int)1080, framerate=(fraction)30/1",
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].format, "video/x-h264");
        assert!(!groups[0].capturable);
        assert_eq!(groups[1].format, "MJPEG");
        assert!(groups[1].capturable);
    }

    #[test]
    fn ranges_become_standard_sizes_and_rates() {
        init();
        let groups = groups_from_caps_text(
            "video/x-raw, format=(string)NV12, width=(int)[ 64, 1920, 2 ], \
                 height=(int)[ 64, 1080, 2 ], framerate=(fraction)[ 1/1, 30/1 ]",
        )
        .unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        let group = &groups[0];
        assert_eq!(group.sizes.first().map(String::as_str), Some("1920x1080"));
        assert!(group.sizes.contains(&"1280x720".to_string()), "{group:?}");
        assert_eq!(group.rates.first().map(String::as_str), Some("30"));
        assert!(group.rates.contains(&"29.97".to_string()), "{group:?}");
    }

    #[test]
    fn interlaced_copies_are_not_listed_twice() {
        init();
        let groups = groups_from_caps_text(
            "video/x-raw, format=(string)UYVY, width=(int)720, height=(int)576, \
                 framerate=(fraction)25/1; \
             video/x-raw(format:Interlaced), format=(string)UYVY, width=(int)720, \
                 height=(int)576, interlace-mode=(string)alternate, framerate=(fraction)25/1",
        )
        .unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].sizes, vec!["720x576"]);
    }

    #[test]
    fn invalid_caps_text_is_an_error() {
        init();
        let error = groups_from_caps_text("not caps at all,,,").unwrap_err();
        assert!(error.contains("invalid caps"), "{error}");
    }

    #[test]
    fn empty_caps_give_no_groups() {
        init();
        assert!(groups_from_caps_text("EMPTY").unwrap().is_empty());
    }
}
