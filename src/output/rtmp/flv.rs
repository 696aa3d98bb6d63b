//! FLV tags from the encoded stream, in the order an RTMP server needs
//! them: `onMetaData`, the AVC sequence header, the AAC sequence header,
//! then frames.
//!
//! Video is held until an IDR arrives while an SPS and a PPS are known
//! (from the same buffer or from earlier ones), and, when the session
//! expects audio, until the first audio frame has given its format. Then
//! the headers go out, followed by the held frames. Access units become
//! 4-byte length-prefixed NAL units without AUD, SPS, PPS and filler data:
//! parameter sets travel only in sequence headers, and a new one is sent
//! whenever the encoder's SPS or PPS change.
//!
//! Timestamps are milliseconds from the first video frame sent (its DTS),
//! plus a start offset, never decreasing within a stream. They wrap at
//! 2^32 ms (about 49.7 days) as RTMP timestamps do.

use super::avc::{self, nal_type, AvcError};
use bytes::Bytes;
use rml_rtmp::rml_amf0::Amf0Value;
use std::collections::HashMap;

/// FLV codec ids (FLV specification 10, annex E.4.3.1 and E.4.2.1).
pub const VIDEO_CODEC_AVC: u8 = 7;
pub const AUDIO_CODEC_AAC: u8 = 10;

/// First byte of every AAC audio tag: codec 10, and the 44 kHz, 16-bit,
/// stereo flags that the FLV specification requires for AAC whatever the
/// real format (the AudioSpecificConfig carries that).
const AAC_TAG_HEADER: u8 = (AUDIO_CODEC_AAC << 4) | 0x0f;

/// How long video may be held waiting for what the stream needs to start
/// (an IDR with SPS and PPS, or the first audio frame), by the held frames'
/// PTS, in nanoseconds.
pub const HOLD_LIMIT_NS: u64 = 5_000_000_000;

/// Range of the signed 24-bit composition time, in milliseconds.
const CTS_MIN_MS: i64 = -(1 << 23);
const CTS_MAX_MS: i64 = (1 << 23) - 1;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error(transparent)]
    Avc(#[from] AvcError),

    #[error(
        "no H.264 IDR with SPS and PPS arrived within {} s of video: the encoder must repeat \
         SPS and PPS in band before each IDR (h264parse config-interval=-1)",
        HOLD_LIMIT_NS / 1_000_000_000
    )]
    NoParameterSets,

    #[error(
        "no audio frame arrived within {} s of video although the session expects audio: \
         check the audio capture and encoder",
        HOLD_LIMIT_NS / 1_000_000_000
    )]
    NoAudio,
}

/// Video properties from the caps, for `onMetaData`.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    /// Frames per second, when the caps give a fixed rate.
    pub framerate: Option<f64>,
}

/// Audio properties from the caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioFormat {
    pub rate: u32,
    pub channels: u32,
    /// The AudioSpecificConfig (ISO/IEC 14496-3, 1.6.2.1), from the caps'
    /// `codec_data`.
    pub codec_data: Vec<u8>,
}

/// One encoded frame with its timing, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct MediaFrame<'a> {
    pub data: &'a [u8],
    pub pts_ns: u64,
    /// Decode time; `None` when it equals the PTS, as for audio.
    pub dts_ns: Option<u64>,
}

/// An RTMP message to publish: metadata, or an FLV video or audio tag body.
#[derive(Clone, Debug, PartialEq)]
pub enum Tag {
    Metadata(HashMap<String, Amf0Value>),
    Video { timestamp_ms: u32, body: Bytes },
    Audio { timestamp_ms: u32, body: Bytes },
}

/// A frame waiting for the stream to start, already converted.
#[derive(Debug)]
enum HeldFrame {
    Video(VideoUnit),
    Audio { pts_ns: u64, data: Vec<u8> },
}

/// An access unit in FLV form.
#[derive(Debug)]
struct VideoUnit {
    pts_ns: u64,
    dts_ns: u64,
    keyframe: bool,
    /// Length-prefixed NAL units; empty for a buffer of parameter sets only.
    payload: Vec<u8>,
}

/// Turns frames into tags for one session.
#[derive(Debug)]
pub struct FlvMuxer {
    has_audio: bool,
    encoder_name: String,
    start_timestamp_ms: u32,
    video_format: Option<VideoFormat>,
    audio_format: Option<AudioFormat>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
    /// DTS of the first video frame sent: time zero of the session clock.
    base_ns: Option<u64>,
    held_frames: Vec<HeldFrame>,
    /// PTS of the first video frame seen before the start, for the hold limit.
    first_video_pts_ns: Option<u64>,
    started: bool,
    sent_avc_record: Option<Vec<u8>>,
    sent_audio_config: Option<Vec<u8>>,
    last_video_ms: u64,
    last_audio_ms: u64,
}

impl FlvMuxer {
    /// Creates a muxer whose first tag has timestamp `start_timestamp_ms`.
    pub fn new(has_audio: bool, encoder_name: &str, start_timestamp_ms: u32) -> Self {
        Self {
            has_audio,
            encoder_name: encoder_name.to_string(),
            start_timestamp_ms,
            video_format: None,
            audio_format: None,
            sps: Vec::new(),
            pps: Vec::new(),
            base_ns: None,
            held_frames: Vec::new(),
            first_video_pts_ns: None,
            started: false,
            sent_avc_record: None,
            sent_audio_config: None,
            last_video_ms: 0,
            last_audio_ms: 0,
        }
    }

    /// Takes one H.264 access unit (Annex B) and returns the tags to send.
    pub fn push_video(
        &mut self,
        frame: MediaFrame<'_>,
        format: VideoFormat,
    ) -> Result<Vec<Tag>, FlvError> {
        let format_changed = self.video_format.as_ref() != Some(&format);
        self.video_format = Some(format);
        let unit = self.convert_access_unit(&frame);
        let mut tags = Vec::new();
        if self.started {
            if format_changed {
                tags.push(Tag::Metadata(self.metadata()));
            }
            self.video_tags(unit, &mut tags)?;
            return Ok(tags);
        }

        let ready = self.base_ns.is_some();
        if !ready && unit.keyframe && self.has_parameter_sets() {
            self.base_ns = Some(unit.dts_ns);
        }
        let first_pts_ns = *self.first_video_pts_ns.get_or_insert(unit.pts_ns);
        if self.base_ns.is_some() && !unit.payload.is_empty() {
            self.held_frames.push(HeldFrame::Video(unit));
        } else if unit.pts_ns.saturating_sub(first_pts_ns) > HOLD_LIMIT_NS {
            return Err(FlvError::NoParameterSets);
        }
        self.try_start(&mut tags)?;
        Ok(tags)
    }

    /// Takes one raw AAC frame and returns the tags to send.
    pub fn push_audio(
        &mut self,
        frame: MediaFrame<'_>,
        format: AudioFormat,
    ) -> Result<Vec<Tag>, FlvError> {
        let mut tags = Vec::new();
        if self.started {
            if self.sent_audio_config.as_ref() != Some(&format.codec_data) {
                tags.push(self.audio_config_tag(&format.codec_data, frame.pts_ns));
            }
            self.audio_format = Some(format);
            self.audio_tag(frame.pts_ns, frame.data, &mut tags);
            return Ok(tags);
        }

        self.audio_format = Some(format);
        if self.base_ns.is_some() {
            self.held_frames.push(HeldFrame::Audio {
                pts_ns: frame.pts_ns,
                data: frame.data.to_vec(),
            });
        }
        self.try_start(&mut tags)?;
        Ok(tags)
    }

    fn has_parameter_sets(&self) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty()
    }

    /// Splits an access unit, keeps its parameter sets as the current ones
    /// and returns the rest in FLV form.
    fn convert_access_unit(&mut self, frame: &MediaFrame<'_>) -> VideoUnit {
        let units = avc::split_annex_b(frame.data);
        let of_type = |wanted: u8| -> Vec<Vec<u8>> {
            units
                .iter()
                .filter(|unit| avc::nal_unit_type(unit) == wanted)
                .map(|unit| unit.to_vec())
                .collect()
        };
        let sps = of_type(nal_type::SPS);
        if !sps.is_empty() {
            self.sps = sps;
        }
        let pps = of_type(nal_type::PPS);
        if !pps.is_empty() {
            self.pps = pps;
        }

        let keyframe = units
            .iter()
            .any(|unit| avc::nal_unit_type(unit) == nal_type::IDR);
        let payload_units = units.iter().copied().filter(|unit| {
            !matches!(
                avc::nal_unit_type(unit),
                nal_type::AUD | nal_type::SPS | nal_type::PPS | nal_type::FILLER
            )
        });
        VideoUnit {
            pts_ns: frame.pts_ns,
            dts_ns: frame.dts_ns.unwrap_or(frame.pts_ns),
            keyframe,
            payload: avc::length_prefixed(payload_units),
        }
    }

    /// Sends the headers and the held frames once video is ready and, when
    /// audio is expected, its format is known.
    fn try_start(&mut self, tags: &mut Vec<Tag>) -> Result<(), FlvError> {
        if self.base_ns.is_none() {
            return Ok(());
        }
        let audio_format = self.audio_format.clone();
        if self.has_audio && audio_format.is_none() {
            let span = self.held_video_span_ns();
            if span > HOLD_LIMIT_NS {
                return Err(FlvError::NoAudio);
            }
            return Ok(());
        }

        self.started = true;
        tags.push(Tag::Metadata(self.metadata()));
        let base_ns = self.base_ns.unwrap_or_default();
        let record = avc::decoder_configuration_record(&self.sps, &self.pps)?;
        tags.push(self.avc_record_tag(record, base_ns));
        if let (true, Some(format)) = (self.has_audio, &audio_format) {
            tags.push(self.audio_config_tag(&format.codec_data, base_ns));
        }
        for held_frame in std::mem::take(&mut self.held_frames) {
            match held_frame {
                HeldFrame::Video(unit) => self.video_tags(unit, tags)?,
                HeldFrame::Audio { pts_ns, data } => self.audio_tag(pts_ns, &data, tags),
            }
        }
        Ok(())
    }

    fn held_video_span_ns(&self) -> u64 {
        let mut pts = self
            .held_frames
            .iter()
            .filter_map(|held_frame| match held_frame {
                HeldFrame::Video(unit) => Some(unit.pts_ns),
                HeldFrame::Audio { .. } => None,
            });
        let Some(first) = pts.next() else {
            return 0;
        };
        pts.next_back().map_or(0, |last| last.saturating_sub(first))
    }

    fn metadata(&self) -> HashMap<String, Amf0Value> {
        let mut values = HashMap::new();
        let mut number = |name: &str, value: f64| {
            values.insert(name.to_string(), Amf0Value::Number(value));
        };
        number("videocodecid", f64::from(VIDEO_CODEC_AVC));
        if let Some(video) = &self.video_format {
            number("width", f64::from(video.width));
            number("height", f64::from(video.height));
            if let Some(framerate) = video.framerate {
                number("framerate", framerate);
            }
        }
        if let (true, Some(audio)) = (self.has_audio, &self.audio_format) {
            number("audiocodecid", f64::from(AUDIO_CODEC_AAC));
            number("audiosamplerate", f64::from(audio.rate));
            number("audiochannels", f64::from(audio.channels));
            values.insert(
                "stereo".to_string(),
                Amf0Value::Boolean(audio.channels == 2),
            );
        }
        values.insert(
            "encoder".to_string(),
            Amf0Value::Utf8String(self.encoder_name.clone()),
        );
        values
    }

    /// Appends a sequence header when the parameter sets changed since the
    /// last one, then the frame itself.
    fn video_tags(&mut self, unit: VideoUnit, tags: &mut Vec<Tag>) -> Result<(), FlvError> {
        if self.has_parameter_sets() {
            let record = avc::decoder_configuration_record(&self.sps, &self.pps)?;
            if self.sent_avc_record.as_ref() != Some(&record) {
                tags.push(self.avc_record_tag(record, unit.dts_ns));
            }
        }
        if unit.payload.is_empty() {
            return Ok(());
        }

        let dts_ms = self.clock_ms(unit.dts_ns).max(self.last_video_ms);
        self.last_video_ms = dts_ms;
        let cts_ms =
            (self.clock_ms(unit.pts_ns) as i64 - dts_ms as i64).clamp(CTS_MIN_MS, CTS_MAX_MS);
        let frame_type = if unit.keyframe { 1 } else { 2 };
        let mut body = video_tag_header(frame_type, 1, cts_ms as i32);
        body.extend_from_slice(&unit.payload);
        tags.push(Tag::Video {
            timestamp_ms: wrap_ms(dts_ms),
            body: body.into(),
        });
        Ok(())
    }

    fn avc_record_tag(&mut self, record: Vec<u8>, dts_ns: u64) -> Tag {
        let timestamp_ms = self.clock_ms(dts_ns).max(self.last_video_ms);
        let mut body = video_tag_header(1, 0, 0);
        body.extend_from_slice(&record);
        self.sent_avc_record = Some(record);
        Tag::Video {
            timestamp_ms: wrap_ms(timestamp_ms),
            body: body.into(),
        }
    }

    fn audio_config_tag(&mut self, codec_data: &[u8], pts_ns: u64) -> Tag {
        let timestamp_ms = self.clock_ms(pts_ns).max(self.last_audio_ms);
        let mut body = vec![AAC_TAG_HEADER, 0];
        body.extend_from_slice(codec_data);
        self.sent_audio_config = Some(codec_data.to_vec());
        Tag::Audio {
            timestamp_ms: wrap_ms(timestamp_ms),
            body: body.into(),
        }
    }

    /// Appends an AAC frame, unless it lies before the session's time zero.
    fn audio_tag(&mut self, pts_ns: u64, data: &[u8], tags: &mut Vec<Tag>) {
        if self.base_ns.is_some_and(|base| pts_ns < base) {
            return;
        }
        let timestamp_ms = self.clock_ms(pts_ns).max(self.last_audio_ms);
        self.last_audio_ms = timestamp_ms;
        let mut body = Vec::with_capacity(data.len() + 2);
        body.extend_from_slice(&[AAC_TAG_HEADER, 1]);
        body.extend_from_slice(data);
        tags.push(Tag::Audio {
            timestamp_ms: wrap_ms(timestamp_ms),
            body: body.into(),
        });
    }

    /// Milliseconds on the session clock, before wrapping to 32 bits.
    fn clock_ms(&self, time_ns: u64) -> u64 {
        let since_base_ns = time_ns.saturating_sub(self.base_ns.unwrap_or(time_ns));
        u64::from(self.start_timestamp_ms) + since_base_ns / 1_000_000
    }
}

/// Builds the five bytes before AVC data in a video tag: frame type and
/// codec, AVCPacketType (0 sequence header, 1 NAL units), composition time.
fn video_tag_header(frame_type: u8, packet_type: u8, cts_ms: i32) -> Vec<u8> {
    let cts = cts_ms.to_be_bytes();
    vec![
        (frame_type << 4) | VIDEO_CODEC_AVC,
        packet_type,
        cts[1],
        cts[2],
        cts[3],
    ]
}

fn wrap_ms(ms: u64) -> u32 {
    (ms % (1u64 << 32)) as u32
}

#[cfg(test)]
mod tests;
