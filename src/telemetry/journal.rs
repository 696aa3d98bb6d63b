//! Logging in journald's native protocol, used when systemd connected
//! standard error to the journal.
//!
//! systemd sets `$JOURNAL_STREAM` to the `device:inode` of the stream it
//! gave the service (`systemd.exec(5)`). When standard error is that
//! stream, each event goes to journald's datagram socket as its own entry.
//! Its structured fields are `MESSAGE`, `PRIORITY`, the event's fields in
//! upper case (`CAUSE`, `DELAY_MS`), the enclosing spans' fields (`OUTPUT`,
//! `ATTEMPT`) and `DEVICE` once the source is known. The socket is
//! `/run/systemd/journal/socket`, or the path in `$BRIDGE_JOURNAL_SOCKET`.
//!
//! The wire form is `NAME=value\n` per field, and for a value that
//! contains a newline `NAME\n`, its length as a 64-bit little-endian
//! integer, the value and `\n` (systemd's "Native Journal Protocol").

use crate::capture::SourceSpec;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// journald's socket for native-protocol datagrams.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// The environment variable that names another socket, as tests do.
pub const SOCKET_ENV: &str = "BRIDGE_JOURNAL_SOCKET";

/// The maximum length of a field name that journald keeps.
const MAX_NAME_LENGTH: usize = 64;

static DEVICE: OnceLock<String> = OnceLock::new();

/// Sets the `DEVICE` field that every later entry carries. The first call
/// wins, since one process serves one device.
pub fn set_device(device: String) {
    let _ = DEVICE.set(device);
}

/// Returns the name of `source` for the `DEVICE` field: the V4L2 node's
/// path, or the `--device` form of the other sources.
pub fn device_name(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Test => "test".into(),
        SourceSpec::TestFaults { .. } => "test-faults".into(),
        SourceSpec::File { path } => format!("file:{}", path.display()),
        SourceSpec::V4l2 { device } => device.display().to_string(),
        SourceSpec::Decklink { index } => format!("decklink:{index}"),
        SourceSpec::Avf { index } => format!("avf:{index}"),
        SourceSpec::Libcamera { id: None } => "libcamera".into(),
        SourceSpec::Libcamera { id: Some(id) } => format!("libcamera:{id}"),
    }
}

/// Returns whether `$JOURNAL_STREAM` (`journal_stream`) names the stream
/// with this `device` and `inode`.
pub fn is_journal_stream(journal_stream: Option<&str>, device: u64, inode: u64) -> bool {
    let Some((stream_device, stream_inode)) = journal_stream.and_then(|v| v.trim().split_once(':'))
    else {
        return false;
    };
    stream_device.parse() == Ok(device) && stream_inode.parse() == Ok(inode)
}

/// Returns the device and inode of standard error.
fn stderr_identity() -> Option<(u64, u64)> {
    // SAFETY: fstat writes one `stat` through the valid pointer; a zeroed
    // `stat` is a valid value of that plain C struct.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::fstat(libc::STDERR_FILENO, &mut stat) };
    (result == 0).then_some((stat.st_dev, stat.st_ino))
}

/// Returns the journal layer when standard error is the journal's stream
/// and its socket accepts a connection. Otherwise it returns `None`, so
/// logs go to standard error as text.
pub fn layer_for_stderr() -> Option<JournalLayer> {
    let (device, inode) = stderr_identity()?;
    let stream = std::env::var("JOURNAL_STREAM").ok();
    if !is_journal_stream(stream.as_deref(), device, inode) {
        return None;
    }
    let path = std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match JournalLayer::connect(&path) {
        Ok(layer) => Some(layer),
        Err(error) => {
            eprintln!(
                "cannot log to the journal at {}: {error}; logging text to standard error",
                path.display()
            );
            None
        }
    }
}

/// A `tracing` layer that sends each event to journald as one entry.
pub struct JournalLayer {
    socket: UnixDatagram,
}

impl JournalLayer {
    /// Connects to the journal's datagram socket at `path`. Sends never
    /// block, so a slow journald cannot hold up a streaming thread that
    /// logs: an entry the socket cannot take at once goes to standard error.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }
}

/// A span's fields, as journal field names and text values.
struct SpanFields(Vec<(String, String)>);

/// Collects an event's or a span's fields.
#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Vec<(String, String)>,
}

impl FieldCollector {
    fn add(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else if let Some(name) = field_name(field.name()) {
            self.fields.retain(|(existing, _)| *existing != name);
            self.fields.push((name, value));
        }
    }
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut collector = FieldCollector::default();
        attributes.record(&mut collector);
        span.extensions_mut().insert(SpanFields(collector.fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut collector = FieldCollector::default();
        values.record(&mut collector);
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            for (name, value) in collector.fields {
                fields.retain(|(existing, _)| *existing != name);
                fields.push((name, value));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut span_fields: Vec<(String, String)> = Vec::new();
        if let Some(scope) = context.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (name, value) in fields {
                        span_fields.retain(|(existing, _)| existing != name);
                        span_fields.push((name.clone(), value.clone()));
                    }
                }
            }
        }
        let mut collector = FieldCollector::default();
        event.record(&mut collector);

        let payload = entry(
            event.metadata(),
            &collector,
            &span_fields,
            DEVICE.get().map(String::as_str),
        );
        if let Err(error) = self.socket.send(&payload) {
            // NOTE: an entry larger than the socket's datagram limit would
            // need a memfd passed with SCM_RIGHTS, which this layer does
            // not do. Such an entry, like any other that fails, goes to
            // standard error as text, which systemd also stores.
            let mut stderr = io::stderr().lock();
            let _ = writeln!(
                stderr,
                "{} (journal send failed: {error})",
                message_text(&collector, &span_fields)
            );
        }
    }
}

/// Returns the journal entry for one event, in the native protocol.
fn entry(
    metadata: &tracing::Metadata<'_>,
    event: &FieldCollector,
    span_fields: &[(String, String)],
    device: Option<&str>,
) -> Vec<u8> {
    let mut payload = Vec::new();
    put(&mut payload, "MESSAGE", &message_text(event, span_fields));
    put(&mut payload, "PRIORITY", priority(metadata.level()));
    put(&mut payload, "SYSLOG_IDENTIFIER", "bridge");
    put(&mut payload, "TARGET", metadata.target());
    if let Some(file) = metadata.file() {
        put(&mut payload, "CODE_FILE", file);
    }
    if let Some(line) = metadata.line() {
        put(&mut payload, "CODE_LINE", &line.to_string());
    }
    if let Some(device) = device {
        put(&mut payload, "DEVICE", device);
    }
    let from_spans = span_fields
        .iter()
        .filter(|(name, _)| !event.fields.iter().any(|(own, _)| own == name));
    for (name, value) in from_spans.chain(&event.fields) {
        if !is_reserved(name) {
            put(&mut payload, name, value);
        }
    }
    payload
}

/// Returns the names this layer sets itself, which fields may not replace.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER" | "TARGET" | "CODE_FILE" | "CODE_LINE"
    ) || name == "DEVICE"
}

/// Returns the `MESSAGE` text: the output and attempt, when a span carries
/// them, the message and then the event's fields, as the text log shows
/// them.
fn message_text(event: &FieldCollector, span_fields: &[(String, String)]) -> String {
    let mut text = String::new();
    for (name, value) in span_fields {
        let _ = write!(text, "{}={value} ", name.to_ascii_lowercase());
    }
    if !text.is_empty() {
        text.pop();
        text.push_str(": ");
    }
    text.push_str(event.message.as_deref().unwrap_or(""));
    for (name, value) in &event.fields {
        let _ = write!(text, " {}={value}", name.to_ascii_lowercase());
    }
    text
}

/// Returns syslog's priority for `level`.
fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        Level::DEBUG | Level::TRACE => "7",
    }
}

/// Returns `name` as a journal field name: upper case ASCII letters,
/// digits and `_`, starting with a letter, at most 64 characters. `None`
/// when nothing is left.
fn field_name(name: &str) -> Option<String> {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = upper.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    let name: String = trimmed.chars().take(MAX_NAME_LENGTH).collect();
    (!name.is_empty()).then_some(name)
}

/// Appends one field in the native protocol.
fn put(payload: &mut Vec<u8>, name: &str, value: &str) {
    payload.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        payload.push(b'\n');
        payload.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        payload.push(b'=');
    }
    payload.extend_from_slice(value.as_bytes());
    payload.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_matches_device_and_inode() {
        assert!(is_journal_stream(Some("8:12345"), 8, 12345));
        assert!(!is_journal_stream(Some("8:12345"), 8, 12346));
        assert!(!is_journal_stream(Some("9:12345"), 8, 12345));
        assert!(!is_journal_stream(Some("812345"), 8, 12345));
        assert!(!is_journal_stream(Some(""), 0, 0));
        assert!(!is_journal_stream(None, 8, 12345));
    }

    #[test]
    fn field_names_follow_journal_rules() {
        let cases = [
            ("output", Some("OUTPUT")),
            ("delay_ms", Some("DELAY_MS")),
            ("log.target", Some("LOG_TARGET")),
            ("_private", Some("PRIVATE")),
            ("2fa", Some("FA")),
            ("__", None),
        ];
        for (name, expected) in cases {
            assert_eq!(field_name(name).as_deref(), expected, "{name}");
        }
        assert_eq!(field_name(&"a".repeat(80)).unwrap().len(), MAX_NAME_LENGTH);
    }

    #[test]
    fn put_uses_binary_form_for_newlines() {
        let mut payload = Vec::new();
        put(&mut payload, "MESSAGE", "one line");
        assert_eq!(payload, b"MESSAGE=one line\n");

        let mut payload = Vec::new();
        put(&mut payload, "MESSAGE", "a\nb");
        let mut expected = b"MESSAGE\n".to_vec();
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"a\nb\n");
        assert_eq!(payload, expected);
    }

    #[test]
    fn message_text_shows_span_and_event_fields() {
        let event = FieldCollector {
            message: Some("connection failed; reconnecting".into()),
            fields: vec![("DELAY_MS".into(), "500".into())],
        };
        let spans = [
            ("OUTPUT".to_string(), "srt://127.0.0.1:9000".to_string()),
            ("ATTEMPT".to_string(), "2".to_string()),
        ];
        assert_eq!(
            message_text(&event, &spans),
            "output=srt://127.0.0.1:9000 attempt=2: connection failed; reconnecting delay_ms=500"
        );
    }
}
