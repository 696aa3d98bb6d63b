//! Reads what the FLV tags need from a frame's caps: picture size and frame
//! rate for video, sample rate, channels and AudioSpecificConfig for AAC.

use super::flv::{AudioFormat, VideoFormat};
use gstreamer as gst;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    #[error("a {kind} frame has no caps: the media pipeline must set caps on its appsink")]
    Missing { kind: &'static str },

    #[error("the {kind} caps '{caps}' lack the integer field '{field}'")]
    MissingField {
        kind: &'static str,
        caps: String,
        field: &'static str,
    },

    #[error(
        "the AAC caps '{caps}' carry no codec_data: the RTMP output needs raw AAC with its \
         AudioSpecificConfig (aacparse, stream-format=raw)"
    )]
    NoCodecData { caps: String },
}

/// Reads the video format from H.264 caps.
pub fn video_format(caps: Option<&gst::CapsRef>) -> Result<VideoFormat, CapsError> {
    let structure = first_structure(caps, "video")?;
    let integer = |field: &'static str| positive_integer(structure, "video", field);
    let framerate = structure
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|rate| rate.numer() > 0 && rate.denom() > 0)
        .map(|rate| f64::from(rate.numer()) / f64::from(rate.denom()));
    Ok(VideoFormat {
        width: integer("width")?,
        height: integer("height")?,
        framerate,
    })
}

/// Reads the audio format from raw AAC caps.
pub fn audio_format(caps: Option<&gst::CapsRef>) -> Result<AudioFormat, CapsError> {
    let structure = first_structure(caps, "audio")?;
    let integer = |field: &'static str| positive_integer(structure, "audio", field);
    let codec_data = structure
        .get::<gst::Buffer>("codec_data")
        .ok()
        .and_then(|buffer| buffer.map_readable().ok().map(|map| map.to_vec()))
        .filter(|data| !data.is_empty())
        .ok_or_else(|| CapsError::NoCodecData {
            caps: structure.to_string(),
        })?;
    Ok(AudioFormat {
        rate: integer("rate")?,
        channels: integer("channels")?,
        codec_data,
    })
}

fn first_structure<'a>(
    caps: Option<&'a gst::CapsRef>,
    kind: &'static str,
) -> Result<&'a gst::StructureRef, CapsError> {
    caps.and_then(|caps| caps.structure(0))
        .ok_or(CapsError::Missing { kind })
}

fn positive_integer(
    structure: &gst::StructureRef,
    kind: &'static str,
    field: &'static str,
) -> Result<u32, CapsError> {
    structure
        .get::<i32>(field)
        .ok()
        .and_then(|value| u32::try_from(value).ok())
        .filter(|&value| value > 0)
        .ok_or_else(|| CapsError::MissingField {
            kind,
            caps: structure.to_string(),
            field,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264_caps(framerate: gst::Fraction) -> gst::Caps {
        gst::init().unwrap();
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .field("width", 1280i32)
            .field("height", 720i32)
            .field("framerate", framerate)
            .build()
    }

    #[test]
    fn video_format_reads_size_and_rate() {
        let caps = h264_caps(gst::Fraction::new(30000, 1001));
        let format = video_format(Some(caps.as_ref())).unwrap();
        assert_eq!(format.width, 1280);
        assert_eq!(format.height, 720);
        let framerate = format.framerate.unwrap();
        assert!((framerate - 29.97).abs() < 0.001, "{framerate}");

        let variable = h264_caps(gst::Fraction::new(0, 1));
        assert_eq!(
            video_format(Some(variable.as_ref())).unwrap().framerate,
            None
        );
    }

    #[test]
    fn video_format_needs_size() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("video/x-h264")
            .field("width", 640i32)
            .build();
        let error = video_format(Some(caps.as_ref())).unwrap_err();
        assert!(
            matches!(
                error,
                CapsError::MissingField {
                    field: "height",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            video_format(None).unwrap_err(),
            CapsError::Missing { kind: "video" }
        );
    }

    #[test]
    fn audio_format_reads_codec_data() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("rate", 48000i32)
            .field("channels", 2i32)
            .field("codec_data", gst::Buffer::from_slice([0x11u8, 0x90]))
            .build();
        let format = audio_format(Some(caps.as_ref())).unwrap();
        assert_eq!(
            format,
            AudioFormat {
                rate: 48000,
                channels: 2,
                codec_data: vec![0x11, 0x90],
            }
        );
    }

    #[test]
    fn audio_format_needs_codec_data() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "adts")
            .field("rate", 48000i32)
            .field("channels", 2i32)
            .build();
        let error = audio_format(Some(caps.as_ref())).unwrap_err();
        assert!(matches!(error, CapsError::NoCodecData { .. }), "{error:?}");
        assert!(error.to_string().contains("stream-format=raw"));
    }
}
