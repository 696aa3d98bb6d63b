//! Validated configuration: what the command line (or a config file)
//! requests, checked and with its defaults filled in.

pub mod build;
pub mod credentials;
pub mod file;
pub mod output_url;
pub mod rate;
pub mod recording;
pub mod secret;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::{CaptureRequest, SourceSpec};
use crate::encode::{EncoderName, Profile};
use crate::output::record::RecordSettings;
use crate::output::rtmp::{Placement, RtmpSettings};
use crate::output::srt::SrtSettings;
use crate::output::whip::link::IceServer;
use crate::output::whip::WhipSettings;
use crate::trax::provider::CredentialSource;

pub use build::build;
pub use rate::FrameRate;
pub use secret::Secret;

/// Everything one run needs, checked.
#[derive(Debug)]
pub struct Config {
    pub source: SourceSpec,
    /// Repeat a `file:` source.
    pub looped: bool,
    pub capture: CaptureRequest,
    pub encoder: EncoderName,
    /// `None`: derived from the encoded size.
    pub bitrate_kbps: Option<u32>,
    pub gop_seconds: f64,
    pub profile: Profile,
    pub audio_bitrate_kbps: u32,
    /// Opus bitrate for WHIP outputs.
    pub opus_bitrate_kbps: u32,
    pub av_offset_ms: i64,
    pub outputs: Vec<OutputConfig>,
    /// The local recording, with `--record`.
    pub record: Option<RecordSettings>,
    /// The TRaX source whose credentials /v1 provides, with `--source`.
    pub source_id: Option<String>,
    pub api: ApiSettings,
    /// `None`: run until a signal.
    pub duration: Option<Duration>,
    /// Time between status log lines; `None` shows no status.
    pub status_interval: Option<Duration>,
    /// Where the status HTTP server listens; `None`: no server.
    pub status_listen: Option<std::net::SocketAddr>,
    /// The maximum backoff delay between reconnect attempts.
    pub reconnect_max_delay: Duration,
    /// The first backoff delay after a failure.
    pub reconnect_initial_delay: Duration,
}

/// One destination and its transport settings.
#[derive(Debug)]
pub enum OutputConfig {
    Srt(SrtOutputConfig),
    Rtmp(RtmpOutputConfig),
    Whip(WhipOutputConfig),
}

impl OutputConfig {
    pub fn is_whip(&self) -> bool {
        matches!(self, Self::Whip(_))
    }
}

/// A WHIP output before its credentials are settled.
#[derive(Debug, Clone)]
pub struct WhipOutputConfig {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `None`: acquire the path and token through /v1.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    /// STUN and TURN servers from `--ice-server`, checked.
    pub ice_servers: Vec<IceServer>,
    /// Local addresses for ICE host candidates; empty: every interface.
    pub ice_addresses: Vec<IpAddr>,
    pub ca_file: Option<PathBuf>,
    pub allow_cross_origin: bool,
    pub request_timeout: Duration,
}

impl WhipOutputConfig {
    /// The output's settings once its credentials are settled.
    pub fn settle(&self, credentials: Arc<dyn CredentialSource>) -> WhipSettings {
        WhipSettings {
            tls: self.tls,
            host: self.host.clone(),
            port: self.port,
            credentials,
            ice_servers: self.ice_servers.clone(),
            ice_addresses: self.ice_addresses.clone(),
            ca_file: self.ca_file.clone(),
            allow_cross_origin: self.allow_cross_origin,
            request_timeout: self.request_timeout,
        }
    }
}

/// An RTMP or RTMPS output before its credentials are settled.
#[derive(Debug, Clone)]
pub struct RtmpOutputConfig {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `None`: acquire the path and token through /v1.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    pub placement: Placement,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_ms: u32,
}

impl RtmpOutputConfig {
    /// The output's settings once its credentials are settled.
    pub fn settle(&self, credentials: Arc<dyn CredentialSource>) -> RtmpSettings {
        RtmpSettings {
            tls: self.tls,
            host: self.host.clone(),
            port: self.port,
            credentials,
            placement: self.placement,
            ca_file: self.ca_file.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
        }
    }
}

/// An SRT output before its credentials (and, with /v1, its address) are
/// known for sure.
#[derive(Debug, Clone)]
pub struct SrtOutputConfig {
    /// Host and port from `--output`; `None` takes the ingest URL /v1 returns.
    pub target: Option<(String, u16)>,
    /// `None`: acquire the path and token through /v1.
    pub credentials: Option<Arc<dyn CredentialSource>>,
    pub latency_ms: u32,
    pub passphrase: Option<Secret>,
    pub pbkeylen: u32,
    pub connect_timeout_ms: u32,
}

impl SrtOutputConfig {
    /// The output's settings once its address and credentials are settled.
    pub fn settle(
        &self,
        host: String,
        port: u16,
        credentials: Arc<dyn CredentialSource>,
    ) -> SrtSettings {
        SrtSettings {
            host,
            port,
            credentials,
            latency_ms: self.latency_ms,
            passphrase: self.passphrase.clone(),
            pbkeylen: self.pbkeylen,
            connect_timeout_ms: self.connect_timeout_ms,
        }
    }
}

/// How to reach the TRaX /v1 API, for `--source`.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub origin: String,
    /// API key or a user's OAuth access token.
    pub key: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// The store of a user's login, used when no API key is set.
    pub login_store: crate::trax::oauth::TokenStore,
}

/// Invalid command line or configuration (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("missing --device: name the source, e.g. --device /dev/video0, --device test or --device file:clip.mp4")]
    MissingDevice,
    #[error(
        "missing --output: give at least one destination, e.g. --output srt://ingest.example:8890, \
         --source ID to take the ingest URL from the TRaX API, or --record DIR to record only"
    )]
    MissingOutput,
    #[error(
        "--{flag} does not take a secret's value, which would show in the process list; \
         use {env_var} or --{flag}-file instead"
    )]
    SecretOnCommandLine {
        flag: &'static str,
        env_var: &'static str,
    },
    #[error("{} in {}:\n  {}", count_errors(errors.len()), path.display(), errors.join("\n  "))]
    File { path: PathBuf, errors: Vec<String> },
    #[error("the {kind} in {origin} is empty")]
    EmptySecret { kind: &'static str, origin: String },
    #[error("cannot read the {kind} file {}: {reason}", shown_path(path))]
    SecretFile {
        kind: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn count_errors(count: usize) -> String {
    match count {
        1 => "1 error".to_string(),
        count => format!("{count} errors"),
    }
}

/// The path of a secret file as error messages show it. A "path" that looks
/// like a key or token itself (someone typed the secret where its file
/// belongs) is not shown.
fn shown_path(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    let looks_secret = text.starts_with("sk_")
        || text.starts_with("eyJ")
        || (text.len() >= 32 && !text.contains(['/', '.']));
    if looks_secret {
        "<redacted: the value given looks like a secret itself; give the path of a file that \
         contains it>"
            .to_string()
    } else {
        text
    }
}

/// A picture size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid size '{text}': use WIDTHxHEIGHT, as in 1920x1080");
        let (width, height) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
        let width = width.trim().parse::<u32>().map_err(|_| invalid())?;
        let height = height.trim().parse::<u32>().map_err(|_| invalid())?;
        if width < 16 || height < 16 || width > 7680 || height > 4320 {
            return Err(format!(
                "invalid size '{text}': width and height must be between 16 and 7680x4320"
            ));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "invalid size '{text}': H.264 with 4:2:0 chroma needs an even width and height"
            ));
        }
        Ok(Self { width, height })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parses_and_rejects() {
        assert_eq!("1280x720".parse::<Size>(), Ok(Size::new(1280, 720)));
        assert_eq!("1920X1080".parse::<Size>(), Ok(Size::new(1920, 1080)));
        for text in ["1280", "x720", "1281x720", "8x8", "axb", "99999x10"] {
            let error = text.parse::<Size>().unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }
}
