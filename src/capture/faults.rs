//! Faults injected into the test pattern, for the tests of the slate and of
//! source and encoder recovery: `--device test-faults:SCRIPT`.
//!
//! No real device can be made to stall, change size or vanish on demand on a
//! test machine, so the test pattern does it on a timetable. The script is a
//! comma-separated list of events, each timed in seconds of running time
//! (the pipeline clock since the bridge started streaming):
//!
//! ```text
//! stall=3+5           no video or audio from 3 s to 8 s, as a camera that hangs
//! size=6:320x240      the source's picture size changes at 6 s
//! error=4+3           the source posts an error at 4 s and cannot be opened until 7 s
//! encoder-error=5     the encoder element posts an error at 5 s (once per process)
//! audio-drift=+0.1%   the audio clock runs 0.1 % fast against the video, for the
//!                     whole run, and the pattern turns to flash and beep
//! ```
//!
//! The script only decides when things happen. The pipeline applies it at
//! the points where a real device or encoder would fail, so recovery runs
//! the same code as for a real failure.

use crate::config::Size;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The `--device` prefix of the test pattern with faults.
pub const DEVICE_PREFIX: &str = "test-faults:";

/// A span of running time, `start` included and `end` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Duration,
    pub end: Duration,
}

impl Window {
    pub fn contains(&self, time: Duration) -> bool {
        self.start <= time && time < self.end
    }
}

/// The faults of one run, parsed from the text after `test-faults:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultScript {
    /// Spans in which the source delivers neither video nor audio.
    pub stalls: Vec<Window>,
    /// Picture sizes the source switches to, each from its time on.
    pub resizes: Vec<(Duration, Size)>,
    /// Source errors: each posts an error at `start`, and the source cannot
    /// be opened again before `end`.
    pub source_errors: Vec<Window>,
    /// Times at which the encoder element posts an error.
    pub encoder_errors: Vec<Duration>,
    /// How much faster than its nominal rate the source's audio clock runs,
    /// in parts per million (negative: slower). The source then shows a
    /// white frame and beeps once a second, both at whole seconds of its
    /// own clock, so a recording shows how far audio moved against video.
    pub audio_drift_ppm: Option<i32>,
}

impl FaultScript {
    /// Checks whether the source delivers nothing at `time`, inside a stall.
    pub fn is_silent(&self, time: Duration) -> bool {
        self.stalls.iter().any(|stall| stall.contains(time))
    }

    /// Returns the picture size at `time`: the last resize at or before it,
    /// or `initial`.
    pub fn size_at(&self, time: Duration, initial: Size) -> Size {
        self.resizes
            .iter()
            .filter(|(at, _)| *at <= time)
            .max_by_key(|(at, _)| *at)
            .map_or(initial, |(_, size)| *size)
    }

    /// Returns the source error window that covers `time`, if any: the
    /// source cannot be opened then.
    pub fn unplugged_at(&self, time: Duration) -> Option<Window> {
        self.source_errors
            .iter()
            .copied()
            .find(|window| window.contains(time))
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fault script '{script}': {reason}; use events such as stall=3+5, size=6:320x240, \
     error=4+3, encoder-error=5 and audio-drift=+0.1%, separated by commas"
)]
pub struct FaultScriptError {
    script: String,
    reason: String,
}

impl FromStr for FaultScript {
    type Err = FaultScriptError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| FaultScriptError {
            script: text.to_string(),
            reason,
        };
        let mut script = FaultScript::default();
        for event in text.split(',').filter(|event| !event.is_empty()) {
            let (name, value) = event
                .split_once('=')
                .ok_or_else(|| invalid(format!("event '{event}' has no '='")))?;
            match name {
                "stall" => script.stalls.push(parse_window(value).map_err(invalid)?),
                "error" => script
                    .source_errors
                    .push(parse_window(value).map_err(invalid)?),
                "encoder-error" => script
                    .encoder_errors
                    .push(parse_seconds(value).map_err(invalid)?),
                "size" => {
                    let (at, size) = value
                        .split_once(':')
                        .ok_or_else(|| invalid(format!("size '{value}' is not AT:WxH")))?;
                    let size = size
                        .parse::<Size>()
                        .map_err(|error| invalid(error.to_string()))?;
                    script
                        .resizes
                        .push((parse_seconds(at).map_err(invalid)?, size));
                }
                "audio-drift" => {
                    script.audio_drift_ppm = Some(parse_drift_ppm(value).map_err(invalid)?)
                }
                _ => return Err(invalid(format!("unknown event '{name}'"))),
            }
        }
        Ok(script)
    }
}

impl fmt::Display for FaultScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |time: Duration| time.as_secs_f64();
        let mut events = Vec::new();
        for stall in &self.stalls {
            let length = seconds(stall.end - stall.start);
            events.push(format!("stall={}+{length}", seconds(stall.start)));
        }
        for (at, size) in &self.resizes {
            events.push(format!("size={}:{size}", seconds(*at)));
        }
        for error in &self.source_errors {
            let length = seconds(error.end - error.start);
            events.push(format!("error={}+{length}", seconds(error.start)));
        }
        for at in &self.encoder_errors {
            events.push(format!("encoder-error={}", seconds(*at)));
        }
        if let Some(ppm) = self.audio_drift_ppm {
            events.push(format!("audio-drift={:+}%", f64::from(ppm) / 10_000.0));
        }
        f.write_str(&events.join(","))
    }
}

/// Parses `START+LENGTH` in seconds.
fn parse_window(text: &str) -> Result<Window, String> {
    let (start, length) = text
        .split_once('+')
        .ok_or_else(|| format!("'{text}' is not START+LENGTH"))?;
    let start = parse_seconds(start)?;
    Ok(Window {
        start,
        end: start + parse_seconds(length)?,
    })
}

/// Largest drift accepted, in parts per million: 5 %, far beyond any real
/// crystal (they stay within about 100 ppm), so a typo is caught.
const MAX_DRIFT_PPM: f64 = 50_000.0;

/// Parses a signed percentage such as `+0.1%` into parts per million.
fn parse_drift_ppm(text: &str) -> Result<i32, String> {
    let invalid = || format!("'{text}' is not a percentage such as +0.1%");
    let percent = text
        .strip_suffix('%')
        .and_then(|number| number.parse::<f64>().ok())
        .ok_or_else(invalid)?;
    let ppm = (percent * 10_000.0).round();
    if !ppm.is_finite() || ppm.abs() > MAX_DRIFT_PPM {
        return Err(format!("audio drift '{text}' is beyond 5%"));
    }
    Ok(ppm as i32)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn script_parses_every_event() {
        let script: FaultScript =
            "stall=3+5,size=6.5:320x240,error=4+3,encoder-error=5,audio-drift=+0.1%"
                .parse()
                .unwrap();
        assert_eq!(
            script.stalls,
            vec![Window {
                start: secs(3.0),
                end: secs(8.0)
            }]
        );
        assert_eq!(script.resizes, vec![(secs(6.5), Size::new(320, 240))]);
        assert_eq!(
            script.source_errors,
            vec![Window {
                start: secs(4.0),
                end: secs(7.0)
            }]
        );
        assert_eq!(script.encoder_errors, vec![secs(5.0)]);
        assert_eq!(script.audio_drift_ppm, Some(1000));
        assert_eq!(
            script.to_string(),
            "stall=3+5,size=6.5:320x240,error=4+3,encoder-error=5,audio-drift=+0.1%"
        );
    }

    #[test]
    fn script_rejects_invalid_events() {
        for text in [
            "stall=3",
            "stall=a+1",
            "size=3",
            "size=3:big",
            "error=-1+2",
            "boom=1",
            "stall",
            "audio-drift=0.1",
            "audio-drift=fast%",
            "audio-drift=+6%",
        ] {
            let error = text.parse::<FaultScript>().unwrap_err();
            assert!(error.to_string().contains(text), "{error}");
        }
    }

    #[test]
    fn drift_parses_sign_and_fraction() {
        let cases = [
            ("+0.1%", 1000),
            ("-0.05%", -500),
            ("0.0021%", 21),
            ("5%", 50_000),
        ];
        for (text, ppm) in cases {
            assert_eq!(parse_drift_ppm(text), Ok(ppm), "{text}");
        }
    }

    #[test]
    fn queries_follow_the_timetable() {
        let script: FaultScript = "stall=2+1,size=4:320x240,size=6:160x120,error=5+2"
            .parse()
            .unwrap();
        let initial = Size::new(640, 360);
        assert!(!script.is_silent(secs(1.9)));
        assert!(script.is_silent(secs(2.0)));
        assert!(script.is_silent(secs(2.9)));
        assert!(!script.is_silent(secs(3.0)));
        assert_eq!(script.size_at(secs(3.9), initial), initial);
        assert_eq!(script.size_at(secs(4.0), initial), Size::new(320, 240));
        assert_eq!(script.size_at(secs(9.0), initial), Size::new(160, 120));
        assert_eq!(script.unplugged_at(secs(4.9)), None);
        assert!(script.unplugged_at(secs(5.0)).is_some());
        assert_eq!(script.unplugged_at(secs(7.0)), None);
    }
}
