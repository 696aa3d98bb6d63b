//! RTMP and RTMPS output: FLV tags over an RTMP publish.
//!
//! `target` builds the app, tcUrl and stream name with the credentials
//! where the settings place them. `flv` turns frames into tags, and
//! `protocol` runs the command exchange on `rml_rtmp`'s chunking.
//! `transport` opens TCP or TLS, and `connection` drives one session on a
//! current-thread tokio runtime.
//!
//! Each session dials once, publishes until the frame channel closes or the
//! connection fails, and returns; the supervisor decides about redialing.

pub(crate) mod avc;
mod caps;
mod connection;
mod flv;
mod protocol;
pub mod target;
mod transport;

pub use connection::SessionStats;
pub use target::Placement;

use crate::exit::ExitStatus;
use crate::output::{Output, OutputError, Session};
use crate::trax::provider::CredentialSource;
use crate::trax::token::MEDIAMTX_AUDIENCE;
use connection::{Dial, SessionError};
use flv::FlvMuxer;
use protocol::Publisher;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::{Endpoint, PublishNames};

/// The RTMP port of the TRaX edge.
pub const RTMP_DEFAULT_PORT: u16 = 1935;

/// The RTMPS port of the TRaX edge.
pub const RTMPS_DEFAULT_PORT: u16 = 1936;

/// Destination, credentials and options of one RTMP output.
#[derive(Clone, Debug)]
pub struct RtmpSettings {
    /// RTMPS: TLS from the first byte, certificate and host name verified.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The stream path and the token or key that may publish to it, asked
    /// for again before every dial.
    pub credentials: Arc<dyn CredentialSource>,
    pub placement: Placement,
    /// Extra CA certificates (PEM) trusted for RTMPS, besides the web PKI
    /// roots. Plain RTMP does not read it.
    pub ca_file: Option<PathBuf>,
    /// Time allowed for each step of opening a session: TCP connect, TLS
    /// handshake, RTMP handshake, and the response to each command.
    pub connect_timeout_ms: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the RTMP host is empty: set the edge's host name or address")]
    EmptyHost,

    #[error(
        "the RTMP port is 0: set the edge's RTMP port ({RTMP_DEFAULT_PORT}, or \
         {RTMPS_DEFAULT_PORT} for RTMPS)"
    )]
    ZeroPort,

    #[error("the RTMP connect timeout is 0 ms: set a positive timeout")]
    ZeroTimeout,
}

/// Publishes the encode to one RTMP or RTMPS server.
pub struct RtmpOutput {
    settings: RtmpSettings,
    start_timestamp_ms: u32,
    last_session: SessionStats,
}

impl RtmpOutput {
    pub fn new(settings: RtmpSettings) -> Self {
        Self {
            settings,
            start_timestamp_ms: 0,
            last_session: SessionStats::default(),
        }
    }

    /// Starts each session's clock at `start_timestamp_ms` instead of 0.
    /// For tests: a value near 2^24 ms makes timestamps cross into RTMP's
    /// extended timestamp field within seconds.
    pub fn with_start_timestamp_ms(mut self, start_timestamp_ms: u32) -> Self {
        self.start_timestamp_ms = start_timestamp_ms;
        self
    }

    /// Counters of the session that ran last (zero before the first).
    pub fn last_session(&self) -> SessionStats {
        self.last_session
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            tls: self.settings.tls,
            host: &self.settings.host,
            port: self.settings.port,
        }
    }

    /// Runs every pre-dial check and returns what the session sends, the
    /// credential forms to keep out of messages, and the TLS settings.
    fn prepare(&self) -> Result<Prepared, OutputError> {
        let settings = &self.settings;
        check_settings(settings).map_err(usage)?;
        let tls = if settings.tls {
            transport::server_name(&settings.host).map_err(usage)?;
            Some(transport::tls_config(settings.ca_file.as_deref()).map_err(usage)?)
        } else {
            None
        };

        let publish = settings.credentials.current()?;
        let names = target::publish_names(
            self.endpoint(),
            &publish.path,
            &publish.credential,
            settings.placement,
        )
        .map_err(usage)?;
        publish.check_claims(MEDIAMTX_AUDIENCE)?;

        let secret = publish.credential.secret().expose();
        let redactions = vec![secret.to_string(), target::encode_component(secret)];
        Ok(Prepared {
            names,
            redactions,
            kind: publish.credential.kind(),
            tls,
        })
    }

    fn dial_and_stream(&mut self, session: &Session<'_>) -> Result<(), OutputError> {
        let prepared = self.prepare()?;
        let dial = Dial {
            host: self.settings.host.clone(),
            port: self.settings.port,
            peer: self.endpoint().authority(),
            tls: prepared.tls,
            step_timeout: Duration::from_millis(self.settings.connect_timeout_ms.into()),
        };
        let span = tracing::info_span!(
            "rtmp",
            peer = %dial.peer,
            app = %prepared.names.app,
            stream = %prepared.names.stream_name,
        );
        let _entered = span.enter();

        let encoder_name = format!("bridge {}", env!("CARGO_PKG_VERSION"));
        let muxer = FlvMuxer::new(session.has_audio, &encoder_name, self.start_timestamp_ms);
        let publisher = Publisher::new(prepared.names, prepared.redactions);
        let started = Instant::now();
        let result = connection::run(&dial, publisher, muxer, session, &mut self.last_session);

        let stats = self.last_session;
        tracing::info!(
            bytes_sent = stats.bytes_sent,
            video_tags = stats.video_tags,
            audio_tags = stats.audio_tags,
            frames_without_pts = stats.frames_without_pts,
            duration_ms = started.elapsed().as_millis() as u64,
            frames_dropped_total = session.frames.dropped(),
            clean = result.is_ok(),
            "RTMP connection closed"
        );
        result.map_err(|error| self.output_error(error, prepared.kind))
    }

    /// Maps a session failure to what the supervisor acts on. A rejection
    /// of the credentials marks them rejected first, so the next dial gets
    /// new ones where the source can.
    fn output_error(&self, error: SessionError, kind: &str) -> OutputError {
        let credentials_rejected = matches!(
            error,
            SessionError::ClosedAfterPublish { .. }
                | SessionError::Protocol(
                    protocol::ProtocolError::Rejected {
                        credentials: true,
                        ..
                    },
                    _
                )
        );
        if credentials_rejected {
            self.settings.credentials.invalidate();
            return OutputError::Rejected(format!("{kind} rejected: {error}"));
        }
        match &error {
            SessionError::Transport(transport) if transport.is_certificate() => {
                OutputError::Fatal {
                    status: ExitStatus::Other,
                    message: error.to_string(),
                }
            }
            SessionError::Transport(transport) if transport.is_usage() => usage(error),
            SessionError::Caps(_) => OutputError::Fatal {
                status: ExitStatus::Other,
                message: error.to_string(),
            },
            _ => OutputError::Transient(error.to_string()),
        }
    }
}

/// Result of the pre-dial checks: the names to send, the credential forms
/// to keep out of messages, the credential kind and the TLS settings.
struct Prepared {
    names: PublishNames,
    redactions: Vec<String>,
    kind: &'static str,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Output for RtmpOutput {
    fn label(&self) -> String {
        format!(
            "{}://{} path={}",
            self.endpoint().scheme(),
            self.endpoint().authority(),
            self.settings.credentials.path()
        )
    }

    fn preflight(&self) -> Result<(), OutputError> {
        self.prepare().map(|_| ())
    }

    fn run_session(&mut self, session: Session<'_>) -> Result<(), OutputError> {
        self.last_session = SessionStats::default();

        let result = self.dial_and_stream(&session);
        session.frames.pause();
        result
    }
}

fn check_settings(settings: &RtmpSettings) -> Result<(), SettingsError> {
    if settings.host.is_empty() {
        return Err(SettingsError::EmptyHost);
    }
    if settings.port == 0 {
        return Err(SettingsError::ZeroPort);
    }
    if settings.connect_timeout_ms == 0 {
        return Err(SettingsError::ZeroTimeout);
    }
    Ok(())
}

fn usage(error: impl std::fmt::Display) -> OutputError {
    OutputError::Fatal {
        status: ExitStatus::Usage,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::trax::credential::Credential;
    use crate::trax::provider::StaticCredentials;

    fn settings() -> RtmpSettings {
        RtmpSettings {
            tls: false,
            host: "127.0.0.1".to_string(),
            port: RTMP_DEFAULT_PORT,
            credentials: StaticCredentials::new(
                "inputs/rtmp-1234",
                Credential::StreamKey(Secret::new("stream key", "k3y")),
            ),
            placement: Placement::Tcurl,
            ca_file: None,
            connect_timeout_ms: 1000,
        }
    }

    #[test]
    fn label_names_scheme_peer_and_path() {
        let output = RtmpOutput::new(settings());
        assert_eq!(
            output.label(),
            "rtmp://127.0.0.1:1935 path=inputs/rtmp-1234"
        );
        let output = RtmpOutput::new(RtmpSettings {
            tls: true,
            host: "::1".to_string(),
            port: RTMPS_DEFAULT_PORT,
            ..settings()
        });
        assert_eq!(output.label(), "rtmps://[::1]:1936 path=inputs/rtmp-1234");
    }

    #[test]
    fn settings_checks() {
        let cases = [
            (
                RtmpSettings {
                    host: String::new(),
                    ..settings()
                },
                SettingsError::EmptyHost,
            ),
            (
                RtmpSettings {
                    port: 0,
                    ..settings()
                },
                SettingsError::ZeroPort,
            ),
            (
                RtmpSettings {
                    connect_timeout_ms: 0,
                    ..settings()
                },
                SettingsError::ZeroTimeout,
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(check_settings(&settings), Err(expected));
        }
        assert_eq!(check_settings(&settings()), Ok(()));
    }

    #[test]
    fn preflight_maps_statuses() {
        let cases = [
            (
                "inputs:x",
                Credential::StreamKey(Secret::new("stream key", "k3y")),
                ExitStatus::Usage,
                "the RTMP path \"inputs:x\" contains ':'",
            ),
            (
                "rtmp-1234",
                Credential::StreamKey(Secret::new("stream key", "k3y")),
                ExitStatus::Usage,
                "has no '/'",
            ),
            (
                "inputs/rtmp-1234",
                Credential::SessionToken(Secret::new("session token", "not-a-jwt")),
                ExitStatus::Credentials,
                "not a JWT",
            ),
        ];
        for (path, credential, expected_status, expected_text) in cases {
            let output = RtmpOutput::new(RtmpSettings {
                credentials: StaticCredentials::new(path, credential),
                ..settings()
            });
            match output.preflight() {
                Err(OutputError::Fatal { status, message }) => {
                    assert_eq!(status, expected_status, "{path}: {message}");
                    assert!(message.contains(expected_text), "{path}: {message}");
                    assert!(!message.contains("not-a-jwt"), "{message}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn preflight_reads_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let output = RtmpOutput::new(RtmpSettings {
            tls: true,
            ca_file: Some(dir.path().join("missing.pem")),
            ..settings()
        });
        match output.preflight() {
            Err(OutputError::Fatal { status, message }) => {
                assert_eq!(status, ExitStatus::Usage);
                assert!(message.starts_with("cannot use --ca-file"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn credentials_rejections_invalidate() {
        #[derive(Debug, Default)]
        struct Counting {
            invalidated: std::sync::atomic::AtomicU32,
        }
        impl CredentialSource for Counting {
            fn current(&self) -> Result<crate::trax::provider::Publish, OutputError> {
                unreachable!()
            }
            fn path(&self) -> String {
                "inputs/rtmp-1234".to_string()
            }
            fn invalidate(&self) {
                self.invalidated
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let source = Arc::new(Counting::default());
        let output = RtmpOutput::new(RtmpSettings {
            credentials: source.clone(),
            ..settings()
        });
        let rejection = |credentials: bool| {
            SessionError::Protocol(
                protocol::ProtocolError::Rejected {
                    command: "publish",
                    level: "error".to_string(),
                    code: "NetStream.Publish.Unauthorized".to_string(),
                    description: String::new(),
                    credentials,
                },
                "127.0.0.1:1935".to_string(),
            )
        };

        let error = output.output_error(rejection(true), "session token");
        assert!(
            matches!(&error, OutputError::Rejected(message)
            if message.starts_with("session token rejected: the RTMP server rejected publish: \
                                    NetStream.Publish.Unauthorized")),
            "{error:?}"
        );
        let closed = SessionError::ClosedAfterPublish {
            peer: "127.0.0.1:1935".to_string(),
        };
        assert!(matches!(
            output.output_error(closed, "stream key"),
            OutputError::Rejected(_)
        ));
        assert_eq!(
            source.invalidated.load(std::sync::atomic::Ordering::SeqCst),
            2
        );

        let error = output.output_error(rejection(false), "session token");
        assert!(matches!(error, OutputError::Transient(_)), "{error:?}");
        assert_eq!(
            source.invalidated.load(std::sync::atomic::Ordering::SeqCst),
            2
        );
    }
}
