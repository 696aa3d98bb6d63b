//! The status document in the Prometheus text exposition format (version
//! 0.0.4): one `# HELP` and `# TYPE` line per metric family, label values
//! escaped, counters named with `_total`, base units (seconds, bytes, bits
//! per second).

use super::status_json::{OutputDocument, StatusDocument};
use std::fmt::Write;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every state an output can be in, for `bridge_output_state`.
const STATES: [&str; 5] = ["connecting", "live", "backing_off", "stopped", "gave_up"];

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// A per-output metric: its name, kind, help text and value, `None` where
/// it does not apply (SRT figures on other transports).
struct OutputMetric {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&OutputDocument) -> Option<f64>,
}

const OUTPUT_METRICS: &[OutputMetric] = &[
    OutputMetric {
        name: "bridge_output_up",
        kind: Kind::Gauge,
        help: "1 while the output is live (connected and sending media), else 0.",
        value: |output| Some(f64::from(u8::from(output.state == "live"))),
    },
    OutputMetric {
        name: "bridge_output_attempts_total",
        kind: Kind::Counter,
        help: "Connection attempts since the bridge started.",
        value: |output| Some(output.attempt as f64),
    },
    OutputMetric {
        name: "bridge_output_reconnects_total",
        kind: Kind::Counter,
        help: "Attempts that followed a live or failed earlier attempt.",
        value: |output| Some(output.reconnects as f64),
    },
    OutputMetric {
        name: "bridge_output_sent_bytes_total",
        kind: Kind::Counter,
        help: "Bytes sent since the bridge started (MPEG-TS for SRT, RTMP bytes, \
               encoded frame bytes for WHIP and the recording).",
        value: |output| Some(output.bytes as f64),
    },
    OutputMetric {
        name: "bridge_output_bitrate_bits_per_second",
        kind: Kind::Gauge,
        help: "Send rate averaged over the last 5 s.",
        value: |output| Some(output.bitrate_kbps * 1000.0),
    },
    OutputMetric {
        name: "bridge_output_dropped_frames_total",
        kind: Kind::Counter,
        help: "Frames dropped because the output fell behind.",
        value: |output| Some(output.dropped_frames as f64),
    },
    OutputMetric {
        name: "bridge_output_srt_rtt_seconds",
        kind: Kind::Gauge,
        help: "libsrt's smoothed round-trip time, while an SRT connection is open.",
        value: |output| output.srt.map(|srt| srt.rtt_ms / 1000.0),
    },
    OutputMetric {
        name: "bridge_output_srt_lost_packets_total",
        kind: Kind::Counter,
        help: "Packets the SRT receiver reported lost on the current connection.",
        value: |output| output.srt.map(|srt| srt.lost_packets as f64),
    },
    OutputMetric {
        name: "bridge_output_srt_retransmitted_packets_total",
        kind: Kind::Counter,
        help: "Packets retransmitted on the current SRT connection.",
        value: |output| output.srt.map(|srt| srt.retransmitted_packets as f64),
    },
];

/// Renders `document` as Prometheus text.
pub fn render(document: &StatusDocument) -> String {
    let mut text = String::new();
    family(
        &mut text,
        "bridge_info",
        Kind::Gauge,
        "Always 1; the labels name the version and the encoder running now.",
    );
    sample(
        &mut text,
        "bridge_info",
        &[("version", document.version), ("encoder", document.encoder)],
        1.0,
    );
    family(
        &mut text,
        "bridge_uptime_seconds",
        Kind::Gauge,
        "Seconds since the bridge started.",
    );
    sample(&mut text, "bridge_uptime_seconds", &[], document.uptime_s);
    family(
        &mut text,
        "bridge_input_slate",
        Kind::Gauge,
        "1 while the NO SIGNAL slate is on air instead of the source, else 0.",
    );
    let slate = f64::from(u8::from(document.input == "slate"));
    sample(&mut text, "bridge_input_slate", &[], slate);

    family(
        &mut text,
        "bridge_output_state",
        Kind::Gauge,
        "1 for the output's current state, 0 for the others.",
    );
    for output in &document.outputs {
        for state in STATES {
            let labels = [
                ("output", output.label.as_str()),
                ("protocol", output.protocol),
                ("state", state),
            ];
            let value = f64::from(u8::from(output.state == state));
            sample(&mut text, "bridge_output_state", &labels, value);
        }
    }
    for metric in OUTPUT_METRICS {
        family(&mut text, metric.name, metric.kind, metric.help);
        for output in &document.outputs {
            if let Some(value) = (metric.value)(output) {
                let labels = [
                    ("output", output.label.as_str()),
                    ("protocol", output.protocol),
                ];
                sample(&mut text, metric.name, &labels, value);
            }
        }
    }
    handover_latency(&mut text, &document.outputs);
    text
}

/// Renders every measuring output's hand-over latency since the bridge
/// started as one histogram: cumulative `_bucket` samples per `le` bound,
/// then `+Inf`, `_sum` and `_count`.
fn handover_latency(text: &mut String, outputs: &[OutputDocument]) {
    const NAME: &str = "bridge_output_handover_latency_seconds";
    family(
        text,
        NAME,
        Kind::Histogram,
        "Time from an encoded video frame leaving the media pipeline to its hand-over \
         to the transport (SRT send, RTMP socket write, WHIP webrtcbin sink pad).",
    );
    let bucket = format!("{NAME}_bucket");
    for output in outputs {
        let Some(distribution) = &output.latency_total else {
            continue;
        };
        let labels = [
            ("output", output.label.as_str()),
            ("protocol", output.protocol),
        ];
        for (bound_us, count) in distribution.cumulative_us() {
            let le = seconds_from_micros(bound_us);
            let with_le = [labels[0], labels[1], ("le", le.as_str())];
            sample(text, &bucket, &with_le, count as f64);
        }
        let count = distribution.count() as f64;
        let with_le = [labels[0], labels[1], ("le", "+Inf")];
        sample(text, &bucket, &with_le, count);
        let sum_s = distribution.sum_us as f64 / 1e6;
        sample(text, &format!("{NAME}_sum"), &labels, sum_s);
        sample(text, &format!("{NAME}_count"), &labels, count);
    }
}

/// Writes a whole number of microseconds as decimal seconds without
/// trailing zeros, so `le` labels carry no binary rounding noise.
fn seconds_from_micros(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn family(text: &mut String, name: &str, kind: Kind, help: &str) {
    let _ = writeln!(text, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(text, "# TYPE {name} {}", kind.name());
}

fn sample(text: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    text.push_str(name);
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
            .collect();
        let _ = write!(text, "{{{}}}", pairs.join(","));
    }
    let _ = writeln!(text, " {}", format_value(value));
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Escapes help text: backslash and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a value as Go's `strconv.ParseFloat` reads it: whole numbers
/// without a fraction, `NaN` and `+Inf`/`-Inf` spelled out.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::latency::Histogram;
    use crate::telemetry::status_json::SrtDocument;
    use std::time::Duration;

    fn output(label: &str, protocol: &'static str, srt: Option<SrtDocument>) -> OutputDocument {
        OutputDocument {
            label: label.into(),
            protocol,
            state: "live",
            live_s: Some(10.0),
            retry_in_s: None,
            attempt: 2,
            reconnects: 1,
            bitrate_kbps: 2480.5,
            bytes: 1_234_567,
            dropped_frames: 0,
            last_error: None,
            srt,
            latency: None,
            latency_total: None,
        }
    }

    fn document() -> StatusDocument {
        let latency = Histogram::default();
        latency.record(Duration::from_micros(900));
        latency.record(Duration::from_micros(1500));
        latency.record(Duration::from_secs(4));
        let mut srt = output(
            "srt://127.0.0.1:8890 path=inputs/cam1",
            "srt",
            Some(SrtDocument {
                rtt_ms: 1.5,
                lost_packets: 3,
                retransmitted_packets: 4,
            }),
        );
        srt.latency_total = Some(latency.distribution());
        StatusDocument {
            version: "0.1.0",
            uptime_s: 12.5,
            source: "test".into(),
            input: "source",
            encoder: "x264enc",
            outputs: vec![srt, output("record /tmp/a \"b\"\\c\nd", "record", None)],
        }
    }

    #[test]
    fn render_samples_per_output() {
        let text = render(&document());
        let srt = "{output=\"srt://127.0.0.1:8890 path=inputs/cam1\",protocol=\"srt\"}";
        for line in [
            format!("bridge_output_reconnects_total{srt} 1"),
            format!("bridge_output_attempts_total{srt} 2"),
            format!("bridge_output_sent_bytes_total{srt} 1234567"),
            format!("bridge_output_bitrate_bits_per_second{srt} 2480500"),
            format!("bridge_output_srt_rtt_seconds{srt} 0.0015"),
            format!("bridge_output_srt_lost_packets_total{srt} 3"),
            "bridge_uptime_seconds 12.5".to_string(),
            "bridge_input_slate 0".to_string(),
            "bridge_info{version=\"0.1.0\",encoder=\"x264enc\"} 1".to_string(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        let live = "bridge_output_state{output=\"srt://127.0.0.1:8890 path=inputs/cam1\",\
                    protocol=\"srt\",state=\"live\"} 1";
        assert!(text.lines().any(|l| l == live), "{text}");
    }

    #[test]
    fn render_latency_histogram() {
        let text = render(&document());
        let name = "bridge_output_handover_latency_seconds";
        let srt = "output=\"srt://127.0.0.1:8890 path=inputs/cam1\",protocol=\"srt\"";
        for line in [
            format!("# TYPE {name} histogram"),
            format!("{name}_bucket{{{srt},le=\"0.00005\"}} 0"),
            format!("{name}_bucket{{{srt},le=\"0.000951\"}} 1"),
            format!("{name}_bucket{{{srt},le=\"0.001902\"}} 2"),
            format!("{name}_bucket{{{srt},le=\"2.755461\"}} 2"),
            format!("{name}_bucket{{{srt},le=\"+Inf\"}} 3"),
            format!("{name}_sum{{{srt}}} 4.0024"),
            format!("{name}_count{{{srt}}} 3"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        let buckets = text
            .lines()
            .filter(|line| line.starts_with(&format!("{name}_bucket{{{srt}")))
            .count();
        assert_eq!(buckets, crate::telemetry::latency::BOUNDS + 1);
        assert!(!text.contains(&format!("{name}_count{{output=\"record")));
    }

    #[test]
    fn render_escapes_label_values() {
        let text = render(&document());
        let escaped = "output=\"record /tmp/a \\\"b\\\"\\\\c\\nd\",protocol=\"record\"";
        assert!(text.contains(escaped), "{text}");
        assert!(!text.contains("bridge_output_srt_rtt_seconds{output=\"record"));
    }

    #[test]
    fn render_declares_each_family_once() {
        let text = render(&document());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|rest| rest.split(' ').next().unwrap())
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        for line in text.lines().filter(|line| line.starts_with("# TYPE")) {
            if line.ends_with(" counter") {
                assert!(
                    line.split(' ').nth(2).unwrap().ends_with("_total"),
                    "{line}"
                );
            }
        }
        // Every sample belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|family| family.ends_with("_seconds"))
                    .unwrap_or(name);
                assert_eq!(declared.last(), Some(&family), "{line}");
            }
        }
    }

    #[test]
    fn seconds_from_micros_trims_zeros() {
        assert_eq!(seconds_from_micros(50), "0.00005");
        assert_eq!(seconds_from_micros(2_755_461), "2.755461");
        assert_eq!(seconds_from_micros(1_000_000), "1");
        assert_eq!(seconds_from_micros(0), "0");
    }

    #[test]
    fn format_value_spells_specials() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
    }
}
