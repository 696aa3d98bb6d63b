//! Logging: tracing to standard error, at the level `--log-level` sets
//! unless `RUST_LOG` is given.

use std::io::IsTerminal;
use tracing::Level;
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
