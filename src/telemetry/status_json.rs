//! The bridge's status as one document: the source, the input signal, the
//! encoder, the uptime and every output's figures. The status server sends
//! it as `/status.json` and renders `/metrics` from it.

use super::latency::Distribution;
use super::status::{Snapshot, State};
use crate::pipeline::observer::InputSignal;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Everything about the bridge itself that the document reports.
#[derive(Clone, Debug)]
pub struct BridgeFacts {
    /// The source summary the bridge logs at start, such as the device
    /// and its mode.
    pub source: String,
    pub input: InputSignal,
    /// Factory name of the encoder running now.
    pub encoder: &'static str,
    pub uptime: Duration,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusDocument {
    pub version: &'static str,
    pub uptime_s: f64,
    pub source: String,
    /// `source` or `slate`.
    pub input: &'static str,
    pub encoder: &'static str,
    pub outputs: Vec<OutputDocument>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutputDocument {
    /// Transport, host and path; never a credential.
    pub label: String,
    /// `srt`, `rtmp`, `rtmps`, `whip` or `record`.
    pub protocol: &'static str,
    /// `connecting`, `live`, `backing_off`, `stopped` or `gave_up`.
    pub state: &'static str,
    /// Seconds live, while live.
    pub live_s: Option<f64>,
    /// Seconds to the next attempt, while backing off.
    pub retry_in_s: Option<f64>,
    pub attempt: u64,
    pub reconnects: u64,
    pub bitrate_kbps: f64,
    pub bytes: u64,
    pub dropped_frames: u64,
    /// The cause of the last failure, redacted like every output error.
    pub last_error: Option<String>,
    /// libsrt's figures while an SRT connection is open.
    pub srt: Option<SrtDocument>,
    /// The hand-over latency since the current or last connection attempt
    /// began; `None` for the recording, which does not measure it.
    pub latency: Option<LatencyDocument>,
    /// The hand-over latency since the bridge started, for `/metrics`.
    #[serde(skip)]
    pub latency_total: Option<Distribution>,
}

/// Quantiles of the time from an encoded video frame leaving the media
/// pipeline's appsink to its hand-over to the transport (see
/// `telemetry::latency`). Each figure is the upper bound of its
/// histogram bucket, capped at the maximum, so it is at most 19% above the
/// true value. All are `None` until a frame was handed over.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct LatencyDocument {
    /// Always `connection`: the figures cover the current or last
    /// connection attempt.
    pub window: &'static str,
    /// Video frames measured.
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl LatencyDocument {
    fn new(distribution: &Distribution) -> Self {
        let count = distribution.count();
        let millis = |micros: u64| micros as f64 / 1000.0;
        Self {
            window: "connection",
            count,
            p50_ms: distribution.quantile_us(0.5).map(millis),
            p99_ms: distribution.quantile_us(0.99).map(millis),
            max_ms: (count > 0).then(|| millis(distribution.max_us)),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct SrtDocument {
    pub rtt_ms: f64,
    pub lost_packets: u64,
    pub retransmitted_packets: u64,
}

impl StatusDocument {
    pub fn new(facts: &BridgeFacts, snapshots: &[Snapshot], now: Instant) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: tenths(facts.uptime.as_secs_f64()),
            source: facts.source.clone(),
            input: facts.input.name(),
            encoder: facts.encoder,
            outputs: snapshots
                .iter()
                .map(|snapshot| OutputDocument::new(snapshot, now))
                .collect(),
        }
    }
}

impl OutputDocument {
    fn new(snapshot: &Snapshot, now: Instant) -> Self {
        let (live_s, retry_in_s) = match snapshot.state {
            State::Live { since } => (Some(now.saturating_duration_since(since)), None),
            State::BackingOff { retry_at } => (None, Some(retry_at.saturating_duration_since(now))),
            _ => (None, None),
        };
        let protocol = protocol(&snapshot.label);
        let measured = protocol != "record";
        Self {
            label: snapshot.label.clone(),
            protocol,
            state: snapshot.state.name(),
            live_s: live_s.map(|time| tenths(time.as_secs_f64())),
            retry_in_s: retry_in_s.map(|time| tenths(time.as_secs_f64())),
            attempt: snapshot.attempt,
            reconnects: snapshot.reconnects,
            bitrate_kbps: tenths(snapshot.bitrate_kbps),
            bytes: snapshot.bytes,
            dropped_frames: snapshot.dropped,
            last_error: snapshot.last_error.clone(),
            srt: snapshot.srt.map(|srt| SrtDocument {
                rtt_ms: srt.rtt_ms,
                lost_packets: srt.lost,
                retransmitted_packets: srt.retransmitted,
            }),
            latency: measured.then(|| LatencyDocument::new(&snapshot.latency_connection)),
            latency_total: measured.then(|| snapshot.latency_total.clone()),
        }
    }
}

/// Returns an output's protocol from its label's scheme: `srt://…`,
/// `rtmp://…`, `rtmps://…`, `http(s)://…` or `whip …` for WHIP, and
/// `record …` for the recording.
pub fn protocol(label: &str) -> &'static str {
    let scheme = label
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or_else(|| label.split(' ').next().unwrap_or_default());
    match scheme {
        "srt" => "srt",
        "rtmp" => "rtmp",
        "rtmps" => "rtmps",
        "http" | "https" | "whip" => "whip",
        "record" => "record",
        _ => "unknown",
    }
}

fn tenths(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::latency::Histogram;
    use crate::telemetry::status::SrtLinkStats;

    #[test]
    fn protocol_from_label() {
        let cases = [
            ("srt://127.0.0.1:8890 path=inputs/cam1", "srt"),
            ("rtmp://127.0.0.1:1935 path=inputs/cam1", "rtmp"),
            ("rtmps://[::1]:1936 path=inputs/cam1", "rtmps"),
            ("https://edge.example:8889/inputs/cam1/whip", "whip"),
            ("http://127.0.0.1:8889/inputs/cam1/whip", "whip"),
            ("whip edge.example:8889 path=inputs/cam1", "whip"),
            ("record /var/lib/bridge", "record"),
            ("carrier pigeon", "unknown"),
        ];
        for (label, expected) in cases {
            assert_eq!(protocol(label), expected, "{label}");
        }
    }

    #[test]
    fn document_lists_outputs() {
        let now = Instant::now() + Duration::from_secs(100);
        let connection_latency = Histogram::default();
        connection_latency.record(Duration::from_micros(800));
        connection_latency.record(Duration::from_micros(2500));
        let snapshots = [
            Snapshot {
                label: "srt://127.0.0.1:8890 path=inputs/cam1".into(),
                state: State::Live {
                    since: now - Duration::from_millis(12_340),
                },
                attempt: 2,
                reconnects: 1,
                last_error: Some("SRT connection lost".into()),
                bytes: 5_000_000,
                bitrate_kbps: 2480.44,
                dropped: 3,
                srt: Some(SrtLinkStats {
                    rtt_ms: 1.5,
                    lost: 4,
                    retransmitted: 5,
                }),

                latency_connection: connection_latency.distribution(),
                latency_total: Default::default(),
            },
            Snapshot {
                label: "rtmp://127.0.0.1:1935 path=inputs/cam1".into(),
                state: State::BackingOff {
                    retry_at: now + Duration::from_millis(2_500),
                },
                attempt: 4,
                reconnects: 3,
                last_error: Some("connection refused".into()),
                bytes: 0,
                bitrate_kbps: 0.0,
                dropped: 0,
                srt: None,
                latency_connection: Default::default(),
                latency_total: Default::default(),
            },
            Snapshot {
                label: "record /var/lib/bridge".into(),
                state: State::Live { since: now },
                attempt: 1,
                reconnects: 0,
                last_error: None,
                bytes: 0,
                bitrate_kbps: 0.0,
                dropped: 0,
                srt: None,
                latency_connection: Default::default(),
                latency_total: Default::default(),
            },
        ];
        let facts = BridgeFacts {
            source: "test pattern 320x240".into(),
            input: InputSignal::Slate,
            encoder: "x264enc",
            uptime: Duration::from_secs(61),
        };
        let document = StatusDocument::new(&facts, &snapshots, now);
        assert_eq!(document.input, "slate");
        assert_eq!(document.encoder, "x264enc");
        assert_eq!(document.uptime_s, 61.0);

        let srt = &document.outputs[0];
        assert_eq!(srt.protocol, "srt");
        assert_eq!(srt.state, "live");
        assert_eq!(srt.live_s, Some(12.3));
        assert_eq!(srt.retry_in_s, None);
        assert_eq!(srt.reconnects, 1);
        assert_eq!(srt.bitrate_kbps, 2480.4);
        assert_eq!(srt.dropped_frames, 3);
        assert_eq!(srt.srt.unwrap().lost_packets, 4);

        let rtmp = &document.outputs[1];
        assert_eq!(rtmp.protocol, "rtmp");
        assert_eq!(rtmp.state, "backing_off");
        assert_eq!(rtmp.retry_in_s, Some(2.5));
        assert_eq!(rtmp.srt, None);
        assert_eq!(rtmp.last_error.as_deref(), Some("connection refused"));

        let latency = srt.latency.unwrap();
        assert_eq!(latency.count, 2);
        assert_eq!(latency.p50_ms, Some(0.8));
        assert_eq!(latency.p99_ms, Some(2.5));
        assert_eq!(latency.max_ms, Some(2.5));
        assert_eq!(rtmp.latency.unwrap().count, 0);
        assert_eq!(rtmp.latency.unwrap().p50_ms, None);
        assert_eq!(document.outputs[2].protocol, "record");
        assert_eq!(document.outputs[2].latency, None);

        let json = serde_json::to_value(&document).unwrap();
        assert_eq!(json["outputs"][0]["srt"]["rtt_ms"], 1.5);
        assert!(json["outputs"][1]["srt"].is_null());
        assert_eq!(json["outputs"][0]["latency"]["window"], "connection");
        assert_eq!(json["outputs"][0]["latency"]["max_ms"], 2.5);
        assert!(json["outputs"][1]["latency"]["p99_ms"].is_null());
        assert!(json["outputs"][0].get("latency_total").is_none());
    }
}
