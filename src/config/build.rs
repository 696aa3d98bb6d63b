//! Turns parsed command-line values into a checked `Config`.

use super::credentials::{read_secret, EnvLookup, SecretSource};
use super::output_url::{self, OutputUrl};
use super::{
    ApiSettings, Config, ConfigError, OutputConfig, RtmpOutputConfig, Secret, SrtOutputConfig,
    WhipOutputConfig,
};
use crate::capture::CaptureRequest;
use crate::cli::{ApiArgs, RunArgs};
use crate::encode::Profile;
use crate::output::rtmp::Placement;
use crate::output::whip::link::IceServer;
use crate::trax::credential::Credential;
use crate::trax::provider::{CredentialSource, StaticCredentials};
use std::sync::Arc;
use std::time::Duration;

/// How long an SRT caller waits for the handshake before giving up.
const SRT_CONNECT_TIMEOUT_MS: u32 = 3000;

/// How long each step of an RTMP connection (TCP, TLS, handshake, each
/// command's response) may take.
const RTMP_CONNECT_TIMEOUT_MS: u32 = 5000;

/// How long each WHIP request (OPTIONS, POST, DELETE) may take.
const WHIP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The range of a nonzero `--status-interval`, in seconds. Each interval
/// logs one line per output, so a shorter one floods the log.
const STATUS_INTERVAL_SECONDS: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;

/// Builds the configuration from the command line and the environment.
pub fn build(args: &RunArgs, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    reject_secret_flags(args)?;
    let invalid = ConfigError::Invalid;

    let source = args
        .device
        .as_deref()
        .ok_or(ConfigError::MissingDevice)?
        .parse()
        .map_err(invalid)?;
    let capture = CaptureRequest {
        size: args
            .size
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(invalid)?,
        fps: args
            .fps
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(invalid)?,
        audio: args
            .audio
            .parse()
            .map_err(|e: crate::capture::CaptureError| ConfigError::Invalid(e.to_string()))?,
    };
    check_ranges(args)?;

    let api = api_settings(&args.api, env)?;
    let source_id = args.source.as_deref().map(check_source_id).transpose()?;
    let record = super::recording::settings(args)?;
    if args.outputs.is_empty() && source_id.is_none() && record.is_none() {
        return Err(ConfigError::MissingOutput);
    }
    let credential = read_credential(args, env)?;
    if source_id.is_some() {
        if api.key.is_none() {
            return Err(ConfigError::Invalid(
                "--source needs an API key to acquire credentials: set TRAX_API_KEY or \
                 --api-key-file"
                    .into(),
            ));
        }
        if args.path.is_some() {
            return Err(ConfigError::Invalid(
                "--path is not used with --source: the API gives each output its path; drop --path"
                    .into(),
            ));
        }
        if credential.is_some() {
            return Err(ConfigError::Invalid(
                "--source acquires the session token through the API, but a token or stream \
                 key is set too: drop --token-file / --stream-key-file, unset \
                 TRAX_SESSION_TOKEN / TRAX_STREAM_KEY, or drop --source"
                    .into(),
            ));
        }
    }
    let passphrase = read_secret(
        &SecretSource {
            kind: "SRT passphrase",
            file: args.passphrase_file.as_deref(),
            env_var: "TRAX_SRT_PASSPHRASE",
            credential: "trax-srt-passphrase",
        },
        env,
    )?;
    check_passphrase(passphrase.as_ref(), args.pbkeylen)?;

    let acquire = source_id.is_some();
    let ice_servers = ice_servers(args, env)?;
    let ice_addresses = args
        .ice_addresses
        .iter()
        .map(|text| {
            text.parse::<std::net::IpAddr>().map_err(|_| {
                ConfigError::Invalid(format!(
                    "invalid --ice-address '{text}': give a local IP address, such as 192.168.1.20"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let common = OutputArgs {
        args,
        credential: credential.as_ref(),
        passphrase: passphrase.as_ref(),
        acquire,
        ice_servers: &ice_servers,
        ice_addresses: &ice_addresses,
    };
    let outputs = if args.outputs.is_empty() && !acquire {
        // Recording only.
        Vec::new()
    } else if args.outputs.is_empty() {
        vec![OutputConfig::Srt(srt_output(
            None,
            None,
            args,
            passphrase.as_ref(),
        ))]
    } else {
        args.outputs
            .iter()
            .map(|url| build_output(url, &common))
            .collect::<Result<Vec<_>, _>>()?
    };
    let has_whip = outputs.iter().any(OutputConfig::is_whip);
    if !has_whip && (!ice_servers.is_empty() || !ice_addresses.is_empty() || args.whip_cross_origin)
    {
        return Err(ConfigError::Invalid(
            "--ice-server, --ice-address and --whip-cross-origin apply to WHIP outputs only; \
             add a WHIP \
             --output (https://host:port/path/whip) or drop them"
                .into(),
        ));
    }
    // Constrained Baseline is the one H.264 profile every WebRTC peer takes.
    let profile = match &args.profile {
        Some(text) => text.parse().map_err(invalid)?,
        None if has_whip => Profile::ConstrainedBaseline,
        None => Profile::High,
    };

    Ok(Config {
        source,
        looped: args.looped,
        capture,
        encoder: args.encoder.parse().map_err(invalid)?,
        bitrate_kbps: args.bitrate,
        gop_seconds: args.gop,
        profile,
        audio_bitrate_kbps: args.audio_bitrate,
        opus_bitrate_kbps: args.opus_bitrate,
        av_offset_ms: args.av_offset_ms,
        outputs,
        record,
        source_id,
        api,
        duration: (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration)),
        status_interval: (args.status_interval > 0.0)
            .then(|| Duration::from_secs_f64(args.status_interval)),
        status_listen: args
            .status_listen
            .as_deref()
            .map(status_listen)
            .transpose()?,
        reconnect_initial_delay: Duration::from_secs_f64(args.reconnect_initial_delay),
        reconnect_max_delay: Duration::from_secs_f64(args.reconnect_max_delay),
    })
}

fn status_listen(text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "invalid --status-listen '{text}': give an IP address and port, such as \
             127.0.0.1:8181 (or 0.0.0.0:8181 for the local network)"
        ))
    })
}

fn reject_secret_flags(args: &RunArgs) -> Result<(), ConfigError> {
    let flags = [
        (args.token.is_some(), "token", "TRAX_SESSION_TOKEN"),
        (args.stream_key.is_some(), "stream-key", "TRAX_STREAM_KEY"),
        (
            args.passphrase.is_some(),
            "passphrase",
            "TRAX_SRT_PASSPHRASE",
        ),
    ];
    match flags.into_iter().find(|(given, _, _)| *given) {
        Some((_, flag, env_var)) => Err(ConfigError::SecretOnCommandLine { flag, env_var }),
        None => Ok(()),
    }
}

fn check_ranges(args: &RunArgs) -> Result<(), ConfigError> {
    let fail = |message: String| Err(ConfigError::Invalid(message));
    if let Some(bitrate) = args.bitrate {
        if !(100..=100_000).contains(&bitrate) {
            return fail(format!(
                "invalid --bitrate {bitrate}: give kb/s between 100 and 100000"
            ));
        }
    }
    if !(args.gop.is_finite() && args.gop > 0.0 && args.gop <= 20.0) {
        return fail(format!(
            "invalid --gop {}: give seconds between 0 and 20, such as 2",
            args.gop
        ));
    }
    if !(16..=512).contains(&args.audio_bitrate) {
        return fail(format!(
            "invalid --audio-bitrate {}: give kb/s between 16 and 512",
            args.audio_bitrate
        ));
    }
    if !(16..=510).contains(&args.opus_bitrate) {
        return fail(format!(
            "invalid --opus-bitrate {}: give kb/s between 16 and 510",
            args.opus_bitrate
        ));
    }
    if args.av_offset_ms.abs() > 10_000 {
        return fail(format!(
            "invalid --av-offset-ms {}: give at most 10000 either way",
            args.av_offset_ms
        ));
    }
    if !(20..=8000).contains(&args.latency) {
        return fail(format!(
            "invalid --latency {}: give milliseconds between 20 and 8000",
            args.latency
        ));
    }
    // try_from_secs_f64 also rejects values too large for a Duration, which
    // from_secs_f64 in build would panic on.
    if Duration::try_from_secs_f64(args.duration).is_err() {
        return fail(format!(
            "invalid --duration {}: give seconds, or 0 to run until stopped",
            args.duration
        ));
    }
    let interval = args.status_interval;
    if interval != 0.0 && !STATUS_INTERVAL_SECONDS.contains(&interval) {
        return fail(format!(
            "invalid --status-interval {interval}: give seconds between {} and {}, or 0 to \
             show no status",
            STATUS_INTERVAL_SECONDS.start(),
            STATUS_INTERVAL_SECONDS.end()
        ));
    }
    if !(0.1..=600.0).contains(&args.reconnect_max_delay) {
        return fail(format!(
            "invalid --reconnect-max-delay {}: give seconds between 0.1 and 600",
            args.reconnect_max_delay
        ));
    }
    if !(0.05..=args.reconnect_max_delay).contains(&args.reconnect_initial_delay) {
        return fail(format!(
            "invalid --reconnect-initial-delay {}: give seconds between 0.05 and \
             --reconnect-max-delay ({})",
            args.reconnect_initial_delay, args.reconnect_max_delay
        ));
    }
    if crate::telemetry::parse_level(&args.log_level).is_none() {
        return fail(format!(
            "invalid --log-level '{}': use error, warn, info, debug or trace",
            args.log_level
        ));
    }
    Ok(())
}

fn read_credential(args: &RunArgs, env: EnvLookup<'_>) -> Result<Option<Credential>, ConfigError> {
    let token = read_secret(
        &SecretSource {
            kind: "session token",
            file: args.token_file.as_deref(),
            env_var: "TRAX_SESSION_TOKEN",
            credential: "trax-session-token",
        },
        env,
    )?;
    let key = read_secret(
        &SecretSource {
            kind: "stream key",
            file: args.stream_key_file.as_deref(),
            env_var: "TRAX_STREAM_KEY",
            credential: "trax-stream-key",
        },
        env,
    )?;
    match (token, key) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(
            "both a session token and a stream key are set; give only one: drop --token-file \
             or --stream-key-file, or unset TRAX_SESSION_TOKEN or TRAX_STREAM_KEY"
                .into(),
        )),
        (Some(token), None) => Ok(Some(Credential::SessionToken(token))),
        (None, Some(key)) => Ok(Some(Credential::StreamKey(key))),
        (None, None) => Ok(None),
    }
}

fn check_passphrase(passphrase: Option<&Secret>, pbkeylen: u32) -> Result<(), ConfigError> {
    if ![0, 16, 24, 32].contains(&pbkeylen) {
        return Err(ConfigError::Invalid(format!(
            "invalid --pbkeylen {pbkeylen}: use 16, 24 or 32 (bytes), or 0 for the listener's choice"
        )));
    }
    match passphrase {
        Some(secret) if !(10..=79).contains(&secret.len()) => Err(ConfigError::Invalid(format!(
            "the SRT passphrase is {} characters long; libsrt accepts 10 to 79",
            secret.len()
        ))),
        None if pbkeylen != 0 => Err(ConfigError::Invalid(format!(
            "--pbkeylen {pbkeylen} needs a passphrase: set TRAX_SRT_PASSPHRASE or --passphrase-file"
        ))),
        _ => Ok(()),
    }
}

/// The arguments every `--output` is built with.
struct OutputArgs<'a> {
    args: &'a RunArgs,
    credential: Option<&'a Credential>,
    passphrase: Option<&'a Secret>,
    acquire: bool,
    ice_servers: &'a [IceServer],
    ice_addresses: &'a [std::net::IpAddr],
}

fn build_output(url: &str, common: &OutputArgs<'_>) -> Result<OutputConfig, ConfigError> {
    let OutputArgs {
        args,
        credential,
        passphrase,
        acquire,
        ..
    } = *common;
    match output_url::parse(url)? {
        OutputUrl::Srt { host, port } => {
            if acquire {
                let target = Some((host, port));
                return Ok(OutputConfig::Srt(srt_output(
                    target, None, args, passphrase,
                )));
            }
            let path = args.path.clone().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--output {url} needs the stream path: add --path, e.g. --path inputs/srt-<uuid>"
                ))
            })?;
            let credential = credential.cloned().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--output {url} needs credentials: set TRAX_SESSION_TOKEN (or --token-file) \
                     or TRAX_STREAM_KEY (or --stream-key-file), or acquire them with --source"
                ))
            })?;
            let credentials: Arc<dyn CredentialSource> = StaticCredentials::new(&path, credential);
            let target = Some((host, port));
            Ok(OutputConfig::Srt(srt_output(
                target,
                Some(credentials),
                args,
                passphrase,
            )))
        }
        OutputUrl::Rtmp {
            tls,
            host,
            port,
            path,
        } => {
            let placement = args
                .rtmp_credentials
                .parse::<Placement>()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let credentials = if acquire {
                None
            } else {
                let path = path.or_else(|| args.path.clone()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "--output {url} needs the stream path: put it in the URL \
                         (rtmp://host:1935/inputs/rtmp-<uuid>) or add --path"
                    ))
                })?;
                let credential = credential.cloned().ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "--output {url} needs credentials: set TRAX_SESSION_TOKEN (or \
                         --token-file) or TRAX_STREAM_KEY (or --stream-key-file), or acquire \
                         them with --source"
                    ))
                })?;
                Some(StaticCredentials::new(&path, credential) as Arc<dyn CredentialSource>)
            };
            Ok(OutputConfig::Rtmp(RtmpOutputConfig {
                tls,
                host,
                port,
                credentials,
                placement,
                ca_file: args.ca_file.clone(),
                connect_timeout_ms: RTMP_CONNECT_TIMEOUT_MS,
            }))
        }
        OutputUrl::Whip {
            tls,
            host,
            port,
            path,
        } => {
            let credentials = if acquire {
                None
            } else {
                let path = path.or_else(|| args.path.clone()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "--output {url} needs the stream path: put it in the URL \
                         (https://host:8889/inputs/whip-<uuid>/whip) or add --path"
                    ))
                })?;
                let token = match credential {
                    Some(Credential::SessionToken(token)) => token.clone(),
                    Some(Credential::StreamKey(_)) => {
                        return Err(ConfigError::Invalid(format!(
                            "--output {url} is WHIP, which takes a session token as its \
                             Bearer, not a stream key: set TRAX_SESSION_TOKEN or \
                             --token-file, or acquire one with --source"
                        )))
                    }
                    None => {
                        return Err(ConfigError::Invalid(format!(
                            "--output {url} needs a session token: set TRAX_SESSION_TOKEN \
                             (or --token-file), or acquire one with --source"
                        )))
                    }
                };
                Some(
                    StaticCredentials::new(&path, Credential::SessionToken(token))
                        as Arc<dyn CredentialSource>,
                )
            };
            Ok(OutputConfig::Whip(WhipOutputConfig {
                tls,
                host,
                port,
                credentials,
                ice_servers: common.ice_servers.to_vec(),
                ice_addresses: common.ice_addresses.to_vec(),
                ca_file: args.ca_file.clone(),
                allow_cross_origin: args.whip_cross_origin,
                request_timeout: WHIP_REQUEST_TIMEOUT,
            }))
        }
    }
}

/// Reads `--ice-server`, with the TURN user name and password for the TURN
/// servers among them.
fn ice_servers(args: &RunArgs, env: EnvLookup<'_>) -> Result<Vec<IceServer>, ConfigError> {
    let credential = read_secret(
        &SecretSource {
            kind: "TURN password",
            file: args.turn_credential_file.as_deref(),
            env_var: "TRAX_TURN_CREDENTIAL",
            credential: "trax-turn-credential",
        },
        env,
    )?;
    let is_turn = |url: &String| url.starts_with("turn:") || url.starts_with("turns:");
    let has_turn = args.ice_servers.iter().any(is_turn);
    if !has_turn && (args.turn_username.is_some() || credential.is_some()) {
        return Err(ConfigError::Invalid(
            "a TURN user name or password is set but no --ice-server is a turn: or turns: \
             URL; add one, or drop --turn-username and the TURN password"
                .into(),
        ));
    }
    if has_turn && (args.turn_username.is_none() || credential.is_none()) {
        return Err(ConfigError::Invalid(
            "a TURN --ice-server needs --turn-username and a password in \
             TRAX_TURN_CREDENTIAL or --turn-credential-file"
                .into(),
        ));
    }
    let servers = args
        .ice_servers
        .iter()
        .map(|url| {
            let (username, password) = if is_turn(url) {
                (args.turn_username.clone(), credential.clone())
            } else {
                (None, None)
            };
            IceServer::parse(url, username, password)
                // `why` names the URL with any userinfo redacted, so the
                // raw value, which may carry a password, is not repeated.
                .map_err(|why| ConfigError::Invalid(format!("invalid --ice-server: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(servers)
}

fn srt_output(
    target: Option<(String, u16)>,
    credentials: Option<Arc<dyn CredentialSource>>,
    args: &RunArgs,
    passphrase: Option<&Secret>,
) -> SrtOutputConfig {
    SrtOutputConfig {
        target,
        credentials,
        latency_ms: args.latency,
        passphrase: passphrase.cloned(),
        pbkeylen: args.pbkeylen,
        connect_timeout_ms: SRT_CONNECT_TIMEOUT_MS,
    }
}

/// Reads where the /v1 API is and its key.
pub fn api_settings(args: &ApiArgs, env: EnvLookup<'_>) -> Result<ApiSettings, ConfigError> {
    if !(args.api_timeout.is_finite() && args.api_timeout > 0.0 && args.api_timeout <= 300.0) {
        return Err(ConfigError::Invalid(format!(
            "invalid --api-timeout {}: give seconds between 0 and 300",
            args.api_timeout
        )));
    }
    let key = read_secret(
        &SecretSource {
            kind: "API key",
            file: args.api_key_file.as_deref(),
            env_var: "TRAX_API_KEY",
            credential: "trax-api-key",
        },
        env,
    )?;
    Ok(ApiSettings {
        origin: args.api_url.clone(),
        key,
        ca_file: args.api_ca_file.clone(),
        timeout: Duration::from_secs_f64(args.api_timeout),
    })
}

/// Checks a `--source` id: TRaX ids are letters, digits, `_` and `-`.
fn check_source_id(id: &str) -> Result<String, ConfigError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(id.to_string())
    } else {
        Err(ConfigError::Invalid(format!(
            "invalid --source '{id}': a source id has only letters, digits, '_' and '-' \
             (bridge sources lists them)"
        )))
    }
}
