use super::*;

const MS: u64 = 1_000_000;
/// A session clock that starts one hour into the pipeline's running time.
const BASE_NS: u64 = 3_600_000 * MS;

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
const AUD: &[u8] = &[0x09, 0xf0];
const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
const SLICE: &[u8] = &[0x41, 0x9a, 0x02];
const ASC: &[u8] = &[0x11, 0x90];

fn annex_b(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in units {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    out
}

fn video_format() -> VideoFormat {
    VideoFormat {
        width: 640,
        height: 360,
        framerate: Some(30.0),
    }
}

fn audio_format() -> AudioFormat {
    AudioFormat {
        rate: 48000,
        channels: 2,
        codec_data: ASC.to_vec(),
    }
}

fn video(muxer: &mut FlvMuxer, units: &[&[u8]], pts_ms: u64, dts_ms: u64) -> Vec<Tag> {
    try_video(muxer, units, pts_ms, dts_ms).unwrap()
}

fn try_video(
    muxer: &mut FlvMuxer,
    units: &[&[u8]],
    pts_ms: u64,
    dts_ms: u64,
) -> Result<Vec<Tag>, FlvError> {
    let data = annex_b(units);
    muxer.push_video(
        MediaFrame {
            data: &data,
            pts_ns: BASE_NS + pts_ms * MS,
            dts_ns: Some(BASE_NS + dts_ms * MS),
        },
        video_format(),
    )
}

fn audio(muxer: &mut FlvMuxer, pts_ms: u64) -> Vec<Tag> {
    try_audio(muxer, pts_ms, audio_format()).unwrap()
}

fn try_audio(muxer: &mut FlvMuxer, pts_ms: u64, format: AudioFormat) -> Result<Vec<Tag>, FlvError> {
    muxer.push_audio(
        MediaFrame {
            data: &[0x21, 0x10, 0x04],
            pts_ns: BASE_NS + pts_ms * MS,
            dts_ns: None,
        },
        format,
    )
}

/// Names each tag for order checks: `meta`, `avc-header`, `aac-header`,
/// `key`, `inter`, `aac`.
fn kinds(tags: &[Tag]) -> Vec<&'static str> {
    tags.iter()
        .map(|tag| match tag {
            Tag::Metadata(_) => "meta",
            Tag::Video { body, .. } => match (body[0], body[1]) {
                (0x17, 0) => "avc-header",
                (0x17, 1) => "key",
                (0x27, 1) => "inter",
                _ => "video?",
            },
            Tag::Audio { body, .. } => match (body[0], body[1]) {
                (0xaf, 0) => "aac-header",
                (0xaf, 1) => "aac",
                _ => "audio?",
            },
        })
        .collect()
}

fn timestamps(tags: &[Tag]) -> Vec<u32> {
    tags.iter()
        .filter_map(|tag| match tag {
            Tag::Metadata(_) => None,
            Tag::Video { timestamp_ms, .. } | Tag::Audio { timestamp_ms, .. } => {
                Some(*timestamp_ms)
            }
        })
        .collect()
}

fn body(tag: &Tag) -> &[u8] {
    match tag {
        Tag::Video { body, .. } | Tag::Audio { body, .. } => body,
        Tag::Metadata(_) => panic!("metadata has no body"),
    }
}

/// Reads the SPS and PPS out of an AVCDecoderConfigurationRecord.
fn record_sets(record: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut at = 5;
    let read_sets = |count: usize, at: &mut usize| {
        (0..count)
            .map(|_| {
                let length = u16::from_be_bytes([record[*at], record[*at + 1]]) as usize;
                let set = record[*at + 2..*at + 2 + length].to_vec();
                *at += 2 + length;
                set
            })
            .collect::<Vec<_>>()
    };
    let sps_count = (record[at] & 0x1f) as usize;
    at += 1;
    let sps = read_sets(sps_count, &mut at);
    let pps_count = record[at] as usize;
    at += 1;
    let pps = read_sets(pps_count, &mut at);
    (sps, pps)
}

#[test]
fn headers_come_first_in_order() {
    let mut muxer = FlvMuxer::new(true, "bridge", 0);
    let mut tags = video(&mut muxer, &[AUD, SPS, PPS, SEI, IDR], 0, 0);
    assert!(tags.is_empty(), "video went out before the audio format");
    tags.extend(audio(&mut muxer, 5));
    tags.extend(video(&mut muxer, &[AUD, SLICE], 33, 33));
    tags.extend(audio(&mut muxer, 26));

    assert_eq!(
        kinds(&tags),
        [
            "meta",
            "avc-header",
            "aac-header",
            "key",
            "aac",
            "inter",
            "aac"
        ]
    );
}

#[test]
fn sequence_header_holds_sps_and_pps() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    let tags = video(&mut muxer, &[AUD, SPS, PPS, IDR], 0, 0);
    let header = body(&tags[1]);
    assert_eq!(&header[..5], &[0x17, 0, 0, 0, 0]);
    let record = &header[5..];
    assert_eq!(record[0], 1, "configurationVersion");
    assert_eq!(&record[1..4], &SPS[1..4], "profile, compatibility, level");
    assert_eq!(record[4], 0xff, "4-byte NAL lengths");
    let (sps, pps) = record_sets(record);
    assert_eq!(sps, vec![SPS.to_vec()]);
    assert_eq!(pps, vec![PPS.to_vec()]);
}

#[test]
fn separate_parameter_set_buffers_start_at_idr() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    assert!(video(&mut muxer, &[SPS], 0, 0).is_empty());
    assert!(video(&mut muxer, &[PPS], 0, 0).is_empty());
    let tags = video(&mut muxer, &[IDR], 0, 0);

    assert_eq!(kinds(&tags), ["meta", "avc-header", "key"]);
    let (sps, pps) = record_sets(&body(&tags[1])[5..]);
    assert_eq!(sps.len(), 1);
    assert_eq!(pps.len(), 1);
}

#[test]
fn video_before_complete_parameter_sets_is_dropped() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    assert!(video(&mut muxer, &[SLICE], 0, 0).is_empty());
    // An IDR with an SPS but no PPS known yet cannot start the stream.
    assert!(video(&mut muxer, &[SPS, IDR], 33, 33).is_empty());
    assert!(video(&mut muxer, &[SLICE], 66, 66).is_empty());
    let tags = video(&mut muxer, &[PPS, IDR], 100, 100);

    assert_eq!(kinds(&tags), ["meta", "avc-header", "key"]);
    assert_eq!(timestamps(&tags), [0, 0]);
}

#[test]
fn frame_payload_drops_aud_sps_pps_and_filler() {
    let filler: &[u8] = &[0x0c, 0xff, 0xff];
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    let tags = video(&mut muxer, &[AUD, SPS, PPS, SEI, IDR, filler], 0, 0);
    let frame = body(&tags[2]);
    assert_eq!(&frame[..5], &[0x17, 1, 0, 0, 0]);
    assert_eq!(frame[5..].to_vec(), avc::length_prefixed([SEI, IDR]));

    let tags = video(&mut muxer, &[AUD, SLICE], 33, 33);
    let frame = body(&tags[0]);
    assert_eq!(&frame[..2], &[0x27, 1]);
    assert_eq!(frame[5..].to_vec(), avc::length_prefixed([SLICE]));
}

#[test]
fn composition_time_is_pts_minus_dts() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    // A stream with B-frames: the IDR is shown 66 ms after it is decoded.
    let tags = video(&mut muxer, &[SPS, PPS, IDR], 66, 0);
    assert_eq!(&body(&tags[2])[2..5], &[0, 0, 66]);
    let tags = video(&mut muxer, &[SLICE], 166, 33);
    assert_eq!(&body(&tags[0])[2..5], &[0, 0, 133]);
    assert_eq!(timestamps(&tags), [33]);
}

#[test]
fn timestamps_count_from_first_frame_plus_offset() {
    let start_ms = 0x00ff_ff00;
    let mut muxer = FlvMuxer::new(true, "bridge", start_ms);
    let mut tags = video(&mut muxer, &[SPS, PPS, IDR], 10, 10);
    // Audio from before the first video frame is not sent.
    tags.extend(audio(&mut muxer, 0));
    tags.extend(audio(&mut muxer, 31));
    for frame in 1..=10u64 {
        tags.extend(video(
            &mut muxer,
            &[SLICE],
            10 + frame * 33,
            10 + frame * 33,
        ));
        tags.extend(audio(&mut muxer, 31 + frame * 33));
    }

    let video_ms: Vec<u32> = tags
        .iter()
        .filter_map(|tag| match tag {
            Tag::Video { timestamp_ms, .. } => Some(*timestamp_ms),
            _ => None,
        })
        .collect();
    assert_eq!(video_ms[0], start_ms, "sequence header");
    assert_eq!(video_ms[1], start_ms, "first frame");
    assert_eq!(*video_ms.last().unwrap(), start_ms + 330);
    assert!(video_ms.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(
        video_ms.iter().any(|&ms| ms > 0x00ff_ffff),
        "the clock crosses 2^24 ms"
    );
    let audio_ms: Vec<u32> = tags
        .iter()
        .filter_map(|tag| match tag {
            Tag::Audio { timestamp_ms, .. } => Some(*timestamp_ms),
            _ => None,
        })
        .collect();
    assert_eq!(audio_ms[0], start_ms, "AAC sequence header");
    assert_eq!(audio_ms[1], start_ms + 21);
    assert!(audio_ms.windows(2).all(|pair| pair[0] <= pair[1]));
}

#[test]
fn timestamps_never_go_back_within_a_stream() {
    let mut muxer = FlvMuxer::new(false, "bridge", 1000);
    video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    video(&mut muxer, &[SLICE], 40, 40);
    let tags = video(&mut muxer, &[SLICE], 30, 30);
    assert_eq!(timestamps(&tags), [1040]);
}

#[test]
fn timestamps_wrap_at_32_bits() {
    let mut muxer = FlvMuxer::new(false, "bridge", u32::MAX - 10);
    let tags = video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    assert_eq!(timestamps(&tags), [u32::MAX - 10, u32::MAX - 10]);
    let tags = video(&mut muxer, &[SLICE], 20, 20);
    assert_eq!(timestamps(&tags), [9]);
}

#[test]
fn changed_parameter_sets_send_new_header() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    let same = video(&mut muxer, &[SPS, PPS, IDR], 33, 33);
    assert_eq!(kinds(&same), ["key"]);

    let new_pps: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
    let changed = video(&mut muxer, &[SPS, new_pps, IDR], 66, 66);
    assert_eq!(kinds(&changed), ["avc-header", "key"]);
    let (_, pps) = record_sets(&body(&changed[0])[5..]);
    assert_eq!(pps, vec![new_pps.to_vec()]);
}

#[test]
fn changed_audio_config_sends_new_header() {
    let mut muxer = FlvMuxer::new(true, "bridge", 0);
    video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    audio(&mut muxer, 10);
    let other = AudioFormat {
        rate: 44100,
        channels: 2,
        codec_data: vec![0x12, 0x10],
    };
    let tags = try_audio(&mut muxer, 31, other).unwrap();
    assert_eq!(kinds(&tags), ["aac-header", "aac"]);
    assert_eq!(&body(&tags[0])[2..], &[0x12, 0x10]);
}

#[test]
fn metadata_describes_both_streams() {
    let mut muxer = FlvMuxer::new(true, "bridge 0.1.0", 0);
    video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    let tags = audio(&mut muxer, 5);
    let Tag::Metadata(values) = &tags[0] else {
        panic!("{tags:?}");
    };
    let number = |name: &str| match values.get(name) {
        Some(Amf0Value::Number(value)) => *value,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(number("width"), 640.0);
    assert_eq!(number("height"), 360.0);
    assert_eq!(number("framerate"), 30.0);
    assert_eq!(number("videocodecid"), 7.0);
    assert_eq!(number("audiocodecid"), 10.0);
    assert_eq!(number("audiosamplerate"), 48000.0);
    assert_eq!(number("audiochannels"), 2.0);
    assert_eq!(values.get("stereo"), Some(&Amf0Value::Boolean(true)));
    assert_eq!(
        values.get("encoder"),
        Some(&Amf0Value::Utf8String("bridge 0.1.0".to_string()))
    );
    assert_eq!(body(&tags[2]), &[0xaf, 0, 0x11, 0x90]);
}

#[test]
fn video_only_session_has_no_audio() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    let tags = video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    assert_eq!(kinds(&tags), ["meta", "avc-header", "key"]);
    let Tag::Metadata(values) = &tags[0] else {
        panic!("{tags:?}");
    };
    assert!(!values.contains_key("audiocodecid"));
}

#[test]
fn missing_audio_fails_after_hold_limit() {
    let mut muxer = FlvMuxer::new(true, "bridge", 0);
    let limit_ms = HOLD_LIMIT_NS / MS;
    let mut result = Ok(Vec::new());
    for frame in 0..=(limit_ms / 33 + 1) {
        let units: &[&[u8]] = if frame == 0 {
            &[SPS, PPS, IDR]
        } else {
            &[SLICE]
        };
        result = try_video(&mut muxer, units, frame * 33, frame * 33);
        if result.is_err() {
            break;
        }
        assert!(result.as_ref().unwrap().is_empty());
    }
    assert_eq!(result, Err(FlvError::NoAudio));
}

#[test]
fn missing_parameter_sets_fail_after_hold_limit() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    let limit_ms = HOLD_LIMIT_NS / MS;
    assert!(video(&mut muxer, &[IDR], 0, 0).is_empty());
    assert!(video(&mut muxer, &[IDR], limit_ms, limit_ms).is_empty());
    let result = try_video(&mut muxer, &[IDR], limit_ms + 33, limit_ms + 33);
    assert_eq!(result, Err(FlvError::NoParameterSets));
}

#[test]
fn changed_video_format_sends_new_metadata() {
    let mut muxer = FlvMuxer::new(false, "bridge", 0);
    video(&mut muxer, &[SPS, PPS, IDR], 0, 0);
    let data = annex_b(&[SLICE]);
    let tags = muxer
        .push_video(
            MediaFrame {
                data: &data,
                pts_ns: BASE_NS + 33 * MS,
                dts_ns: None,
            },
            VideoFormat {
                width: 1280,
                height: 720,
                framerate: Some(30.0),
            },
        )
        .unwrap();
    assert_eq!(kinds(&tags), ["meta", "inter"]);
}
