//! Checks a WHIP server's SDP answer against the offer: that it accepted
//! the video, with a packetization mode and an H.264 profile the stream
//! satisfies.

use gstreamer_sdp as gst_sdp;

/// What the answer accepted, with anything worth a warning.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub warnings: Vec<String>,
}

/// One `profile-level-id`: profile_idc, constraint flags, level_idc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileLevel {
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
}

/// constraint_set1_flag: the stream conforms to Main, which with Baseline
/// makes Constrained Baseline.
const CONSTRAINT_SET1: u8 = 0x40;

impl ProfileLevel {
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 6 || !text.is_ascii() {
            return None;
        }
        let byte = |at: usize| u8::from_str_radix(&text[at..at + 2], 16).ok();
        Some(Self {
            profile_idc: byte(0)?,
            constraints: byte(2)?,
            level_idc: byte(4)?,
        })
    }

    /// Returns the profile's family, for comparing what decoders accept.
    fn family(self) -> Family {
        match self.profile_idc {
            66 if self.constraints & CONSTRAINT_SET1 != 0 => Family::ConstrainedBaseline,
            66 => Family::Baseline,
            77 => Family::Main,
            100 => Family::High,
            other => Family::Other(other),
        }
    }

    pub fn name(self) -> String {
        let name = match self.family() {
            Family::ConstrainedBaseline => "Constrained Baseline".to_string(),
            Family::Baseline => "Baseline".to_string(),
            Family::Main => "Main".to_string(),
            Family::High => "High".to_string(),
            Family::Other(idc) => format!("profile_idc {idc}"),
        };
        format!(
            "{name} ({:02x}{:02x}{:02x})",
            self.profile_idc, self.constraints, self.level_idc
        )
    }

    /// Returns whether a decoder of profile `self` decodes a stream of `stream`'s
    /// profile. Constrained Baseline fits every one of the four; Baseline's
    /// extra tools fit only Baseline; Main fits Main and High.
    pub fn accepts(self, stream: Self) -> bool {
        use Family::*;
        match (self.family(), stream.family()) {
            (_, ConstrainedBaseline) => !matches!(self.family(), Other(_)),
            (Baseline, Baseline) => true,
            (Main | High, Main) => true,
            (High, High) => true,
            (Other(a), Other(b)) => {
                a == b && stream.constraints & self.constraints == self.constraints
            }
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    ConstrainedBaseline,
    Baseline,
    Main,
    High,
    Other(u8),
}

/// Checks `answer` against `offer`. An error says why the stream cannot go
/// out as the server answered.
pub fn check(answer: &str, offer: &str) -> Result<Checked, String> {
    let answer = gst_sdp::SDPMessage::parse_buffer(answer.as_bytes())
        .map_err(|_| "the WHIP server's answer is not valid SDP".to_string())?;
    let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
        .map_err(|_| "the offer is not valid SDP".to_string())?;
    let mut checked = Checked::default();

    let video = answer
        .medias()
        .find(|media| media.media() == Some("video"))
        .ok_or("the WHIP server's answer has no video section")?;
    if video.port() == 0 {
        return Err("the WHIP server refused the H.264 video track (port 0 in its answer)".into());
    }
    let payload = video
        .format(0)
        .ok_or("the WHIP server's answer names no video payload type")?;
    let fmtp = fmtp_of(video, payload);
    match fmtp.iter().find(|(key, _)| key == "packetization-mode") {
        Some((_, mode)) if mode == "1" => {}
        Some((_, mode)) => {
            return Err(format!(
                "the WHIP server answered H.264 packetization-mode {mode}; the bridge sends \
                 mode 1 (fragmented NAL units), which the server must accept"
            ))
        }
        None => checked
            .warnings
            .push("the WHIP server's answer states no packetization-mode; sending mode 1".into()),
    }

    let ours = offer
        .medias()
        .find(|media| media.media() == Some("video"))
        .and_then(|media| {
            fmtp_of(media, payload)
                .into_iter()
                .find(|(key, _)| key == "profile-level-id")
                .and_then(|(_, value)| ProfileLevel::parse(&value))
        })
        .ok_or_else(|| {
            format!("the WHIP server answered video payload type {payload}, which the offer lacks")
        })?;
    if let Some((_, value)) = fmtp.iter().find(|(key, _)| key == "profile-level-id") {
        let theirs = ProfileLevel::parse(value).ok_or_else(|| {
            format!("the WHIP server's answer has an invalid profile-level-id '{value}'")
        })?;
        if !theirs.accepts(ours) {
            return Err(format!(
                "the WHIP server's answer takes H.264 {} but the encode is {}; use \
                 --profile constrained-baseline (which every WHIP server takes), or the \
                 profile the server asks for",
                theirs.name(),
                ours.name()
            ));
        }
        let asymmetric = fmtp
            .iter()
            .any(|(key, value)| key == "level-asymmetry-allowed" && value == "1");
        if theirs.level_idc < ours.level_idc && !asymmetric {
            checked.warnings.push(format!(
                "the WHIP server asks for H.264 level {:.1}, below the stream's {:.1}; \
                 lower --size, --fps or --bitrate if its viewers fail to decode",
                f32::from(theirs.level_idc) / 10.0,
                f32::from(ours.level_idc) / 10.0
            ));
        }
    }

    if let Some(audio) = answer.medias().find(|media| media.media() == Some("audio")) {
        if audio.port() == 0 {
            checked
                .warnings
                .push("the WHIP server refused the Opus audio track; sending video only".into());
        }
    }
    Ok(checked)
}

/// Returns the `a=fmtp` parameters of `payload` in `media`, as key and value pairs.
fn fmtp_of(media: &gst_sdp::SDPMediaRef, payload: &str) -> Vec<(String, String)> {
    media
        .attributes()
        .filter(|attribute| attribute.key() == "fmtp")
        .filter_map(|attribute| attribute.value())
        .filter_map(|value| value.split_once(' '))
        .filter(|(pt, _)| *pt == payload)
        .flat_map(|(_, parameters)| {
            parameters
                .split(';')
                .filter_map(|parameter| {
                    let (key, value) = parameter.trim().split_once('=')?;
                    Some((key.trim().to_string(), value.trim().to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(video_fmtp: &str, video_port: u16, audio_port: u16) -> String {
        gstreamer::init().unwrap();
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             m=video {video_port} UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 127.0.0.1\r\n\
             a=rtpmap:96 H264/90000\r\na=fmtp:96 {video_fmtp}\r\n\
             m=audio {audio_port} UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\n\
             a=rtpmap:111 OPUS/48000/2\r\n"
        )
    }

    const OFFER_CB: &str = "packetization-mode=1;profile-level-id=42e01f";

    #[test]
    fn accepts_an_answer_that_echoes_the_offer() {
        let offer = sdp(OFFER_CB, 9, 9);
        assert_eq!(check(&offer, &offer), Ok(Checked::default()));
    }

    #[test]
    fn constrained_baseline_fits_every_common_profile() {
        let offer = sdp(OFFER_CB, 9, 9);
        for answered in ["42e01f", "42001f", "4d001f", "640028", "42e00c"] {
            let answer = sdp(
                &format!(
                    "packetization-mode=1;profile-level-id={answered};level-asymmetry-allowed=1"
                ),
                9,
                9,
            );
            assert!(check(&answer, &offer).is_ok(), "{answered}");
        }
    }

    #[test]
    fn high_stream_refused_by_baseline_answer() {
        let offer = sdp("packetization-mode=1;profile-level-id=640028", 9, 9);
        let answer = sdp("packetization-mode=1;profile-level-id=42e01f", 9, 9);
        let error = check(&answer, &offer).unwrap_err();
        assert!(error.contains("Constrained Baseline (42e01f)"), "{error}");
        assert!(error.contains("the encode is High (640028)"), "{error}");
        assert!(error.contains("--profile constrained-baseline"), "{error}");
    }

    #[test]
    fn packetization_mode_zero_refused() {
        let offer = sdp(OFFER_CB, 9, 9);
        let answer = sdp("packetization-mode=0;profile-level-id=42e01f", 9, 9);
        assert!(check(&answer, &offer)
            .unwrap_err()
            .contains("packetization-mode 0"));
    }

    #[test]
    fn lower_level_and_refused_audio_only_warn() {
        let offer = sdp(OFFER_CB, 9, 9);
        let answer = sdp("packetization-mode=1;profile-level-id=42e01e", 9, 0);
        let checked = check(&answer, &offer).unwrap();
        assert_eq!(checked.warnings.len(), 2, "{:?}", checked.warnings);
        assert!(checked.warnings[0].contains("level 3.0, below the stream's 3.1"));
        assert!(checked.warnings[1].contains("refused the Opus audio"));
    }

    #[test]
    fn refused_video_is_an_error() {
        let offer = sdp(OFFER_CB, 9, 9);
        let answer = sdp(OFFER_CB, 0, 9);
        assert!(check(&answer, &offer)
            .unwrap_err()
            .contains("refused the H.264 video"));
    }

    #[test]
    fn garbage_answer_is_an_error() {
        let offer = sdp(OFFER_CB, 9, 9);
        assert!(check("not sdp", &offer).is_err());
        assert!(check("v=0\r\n", &offer)
            .unwrap_err()
            .contains("no video section"));
    }
}
