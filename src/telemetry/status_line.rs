//! An output's status as text: a compact line for the terminal and one log
//! event with structured fields for everything else.

use super::status::{Snapshot, State};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The fields of a status log line, with the units in their names.
#[derive(Debug, PartialEq)]
pub struct LogFields {
    pub state: &'static str,
    pub attempts: u64,
    /// Whole seconds live, while live.
    pub live_s: Option<u64>,
    /// Seconds until the next attempt, while backing off.
    pub retry_in_s: Option<f64>,
    pub bytes: u64,
    pub bitrate_kbps: u64,
    pub dropped: u64,
    pub rtt_ms: Option<f64>,
    pub lost: Option<u64>,
    pub retransmitted: Option<u64>,
    /// The cause of the last failure, left out while live.
    pub last_error: Option<String>,
}

impl LogFields {
    pub fn new(snapshot: &Snapshot, now: Instant) -> Self {
        let live = matches!(snapshot.state, State::Live { .. });
        Self {
            state: snapshot.state.name(),
            attempts: snapshot.attempt,
            live_s: live_for(&snapshot.state, now).map(|live| live.as_secs()),
            retry_in_s: retry_in(&snapshot.state, now).map(|delay| tenths(delay.as_secs_f64())),
            bytes: snapshot.bytes,
            bitrate_kbps: snapshot.bitrate_kbps.round() as u64,
            dropped: snapshot.dropped,
            rtt_ms: snapshot.srt.map(|srt| tenths(srt.rtt_ms)),
            lost: snapshot.srt.map(|srt| srt.lost),
            retransmitted: snapshot.srt.map(|srt| srt.retransmitted),
            last_error: snapshot.last_error.clone().filter(|_| !live),
        }
    }
}

/// Logs one output's status at info. Fields that do not apply (SRT
/// counters on other transports, `retry_in_s` unless backing off) are left
/// out.
pub fn log(snapshot: &Snapshot, now: Instant) {
    let fields = LogFields::new(snapshot, now);
    tracing::info!(
        output = %snapshot.label,
        state = %fields.state,
        attempts = fields.attempts,
        live_s = fields.live_s,
        retry_in_s = fields.retry_in_s,
        bytes = fields.bytes,
        bitrate_kbps = fields.bitrate_kbps,
        dropped = fields.dropped,
        rtt_ms = fields.rtt_ms,
        lost = fields.lost,
        retransmitted = fields.retransmitted,
        last_error = fields.last_error.as_deref(),
        "output status"
    );
}

/// Returns one output's status as one line for a terminal, such as
/// `LIVE 0:01:05 | 2480 kb/s | rtt 1.2 ms, lost 0, retransmitted 0 |
/// dropped 0 | attempt 1 | srt://host:8890 path=p`. The state comes first
/// and the label and error last, so that a narrow terminal cuts those.
pub fn terminal_line(snapshot: &Snapshot, now: Instant) -> String {
    let mut line = match &snapshot.state {
        State::Connecting => "CONNECTING".to_string(),
        State::Live { .. } => {
            let live = live_for(&snapshot.state, now).unwrap_or_default();
            format!("LIVE {}", clock(live))
        }
        State::BackingOff { .. } => {
            let delay = retry_in(&snapshot.state, now).unwrap_or_default();
            format!("BACKING OFF, retry in {:.1} s", delay.as_secs_f64())
        }
        State::Stopped => "STOPPED".to_string(),
        State::GaveUp => "GAVE UP".to_string(),
    };
    let _ = write!(line, " | {:.0} kb/s", snapshot.bitrate_kbps);
    if let Some(srt) = snapshot.srt {
        let _ = write!(
            line,
            " | rtt {:.1} ms, lost {}, retransmitted {}",
            srt.rtt_ms, srt.lost, srt.retransmitted
        );
    }
    let _ = write!(
        line,
        " | dropped {} | attempt {} | {}",
        snapshot.dropped, snapshot.attempt, snapshot.label
    );
    let live = matches!(snapshot.state, State::Live { .. });
    if let Some(error) = snapshot.last_error.as_deref().filter(|_| !live) {
        let _ = write!(line, " | {error}");
    }
    line
}

fn live_for(state: &State, now: Instant) -> Option<Duration> {
    match state {
        State::Live { since } => Some(now.saturating_duration_since(*since)),
        _ => None,
    }
}

fn retry_in(state: &State, now: Instant) -> Option<Duration> {
    match state {
        State::BackingOff { retry_at } => Some(retry_at.saturating_duration_since(now)),
        _ => None,
    }
}

/// Rounds to one decimal, so logs show `1.2` and not `1.2345678`.
fn tenths(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// `h:mm:ss`.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::status::SrtLinkStats;

    /// Returns an instant far enough from the clock's start to subtract an hour.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(4000)
    }

    fn live_srt(now: Instant) -> Snapshot {
        Snapshot {
            label: "srt://127.0.0.1:8890 path=inputs/cam1".into(),
            state: State::Live {
                since: now - Duration::from_secs(3725),
            },
            attempt: 1,
            reconnects: 0,
            last_error: Some("an earlier failure".into()),
            bytes: 1_234_567,
            bitrate_kbps: 2480.4,
            dropped: 0,
            srt: Some(SrtLinkStats {
                rtt_ms: 1.23,
                lost: 4,
                retransmitted: 5,
            }),

            latency_connection: Default::default(),
            latency_total: Default::default(),
        }
    }

    fn backing_off_rtmp(now: Instant) -> Snapshot {
        Snapshot {
            label: "rtmp://127.0.0.1:1935 path=inputs/cam1".into(),
            state: State::BackingOff {
                retry_at: now + Duration::from_millis(3240),
            },
            attempt: 4,
            reconnects: 3,
            last_error: Some("connection refused by 127.0.0.1:1935".into()),
            bytes: 0,
            bitrate_kbps: 0.0,
            dropped: 7,
            srt: None,
            latency_connection: Default::default(),
            latency_total: Default::default(),
        }
    }

    #[test]
    fn terminal_line_live_srt() {
        let now = later();
        assert_eq!(
            terminal_line(&live_srt(now), now),
            "LIVE 1:02:05 | 2480 kb/s | rtt 1.2 ms, lost 4, retransmitted 5 | dropped 0 | \
             attempt 1 | srt://127.0.0.1:8890 path=inputs/cam1"
        );
    }

    #[test]
    fn terminal_line_backing_off() {
        let now = later();
        assert_eq!(
            terminal_line(&backing_off_rtmp(now), now),
            "BACKING OFF, retry in 3.2 s | 0 kb/s | dropped 7 | attempt 4 | \
             rtmp://127.0.0.1:1935 path=inputs/cam1 | connection refused by 127.0.0.1:1935"
        );
    }

    #[test]
    fn log_fields_live_srt() {
        let now = later();
        let fields = LogFields::new(&live_srt(now), now);
        assert_eq!(
            fields,
            LogFields {
                state: "live",
                attempts: 1,
                live_s: Some(3725),
                retry_in_s: None,
                bytes: 1_234_567,
                bitrate_kbps: 2480,
                dropped: 0,
                rtt_ms: Some(1.2),
                lost: Some(4),
                retransmitted: Some(5),
                last_error: None,
            }
        );
    }

    #[test]
    fn log_fields_backing_off() {
        let now = later();
        let fields = LogFields::new(&backing_off_rtmp(now), now);
        assert_eq!(fields.state, "backing_off");
        assert_eq!(fields.retry_in_s, Some(3.2));
        assert_eq!(fields.live_s, None);
        assert_eq!(fields.rtt_ms, None);
        assert_eq!(
            fields.last_error.as_deref(),
            Some("connection refused by 127.0.0.1:1935")
        );
    }

    #[test]
    fn log_line_format() {
        let now = later();
        let logs = crate::telemetry::capture_logs(|| log(&live_srt(now), now));
        let expected = "output status output=srt://127.0.0.1:8890 path=inputs/cam1 state=live \
                        attempts=1 live_s=3725 bytes=1234567 bitrate_kbps=2480 dropped=0 \
                        rtt_ms=1.2 lost=4 retransmitted=5";
        assert!(logs.contains(expected), "{logs}");
        assert!(!logs.contains("retry_in_s"), "{logs}");
        assert!(!logs.contains("last_error"), "{logs}");

        let logs = crate::telemetry::capture_logs(|| log(&backing_off_rtmp(now), now));
        assert!(logs.contains("state=backing_off attempts=4"), "{logs}");
        assert!(logs.contains("retry_in_s=3.2"), "{logs}");
        assert!(
            logs.contains("last_error=\"connection refused by 127.0.0.1:1935\""),
            "{logs}"
        );
        assert!(!logs.contains("rtt_ms"), "{logs}");
    }
}
