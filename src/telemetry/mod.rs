//! Logging: tracing to standard error, at the level `--log-level` sets
//! unless `RUST_LOG` is given, and each output's status (`status`) shown
//! live on a terminal or logged every `--status-interval` seconds, and
//! served over HTTP with `--status-listen` (`http`). Under systemd, logs
//! go to the journal with structured fields (`journal`) and the service
//! manager gets readiness and watchdog notifications (`notify`).

pub mod flood;
pub mod http;
mod http_server;
pub mod journal;
pub mod latency;
pub mod metrics;
pub mod notify;
pub mod reporter;
pub mod status;
pub mod status_json;
pub mod status_line;
pub mod terminal;

use std::io::IsTerminal;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn parse_level(text: &str) -> Option<Level> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(level: &str) {
    let level = parse_level(level).unwrap_or(Level::INFO);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("bridge={level}")));
    if let Some(journal) = journal::layer_for_stderr() {
        tracing_subscriber::registry()
            .with(filter)
            .with(journal)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(terminal::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Runs `f` with a subscriber for this thread that records every event at
/// every level, and returns the text it logged. For unit tests.
#[cfg(test)]
pub(crate) fn capture_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}
