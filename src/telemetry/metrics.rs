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
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
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
    text
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
    use crate::telemetry::status_json::SrtDocument;

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
        }
    }

    fn document() -> StatusDocument {
        StatusDocument {
            version: "0.1.0",
            uptime_s: 12.5,
            source: "test".into(),
            input: "source",
            encoder: "x264enc",
            outputs: vec![
                output(
                    "srt://127.0.0.1:8890 path=inputs/cam1",
                    "srt",
                    Some(SrtDocument {
                        rtt_ms: 1.5,
                        lost_packets: 3,
                        retransmitted_packets: 4,
                    }),
                ),
                output("record /tmp/a \"b\"\\c\nd", "record", None),
            ],
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
                assert_eq!(declared.last(), Some(&name), "{line}");
            }
        }
    }

    #[test]
    fn format_value_spells_specials() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
    }
}
