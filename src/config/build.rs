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
use crate::trax::oauth::TokenStore;
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
    if args.device.is_none() {
        return Err(ConfigError::MissingDevice);
    }
    let first = |problems: Vec<Problem>| ConfigError::Invalid(problems[0].message.clone());
    let global = global_parts(args, env, &flag_name).map_err(first)?;
    if args.outputs.is_empty() && global.source_id.is_none() && global.record.is_none() {
        return Err(ConfigError::MissingOutput);
    }
    let credential = read_credential(args, env)?;
    if let Some(problem) = source_conflicts(
        &global,
        args.path.is_some(),
        credential.is_some(),
        &CLI_WORDING,
    )
    .into_iter()
    .next()
    {
        return Err(ConfigError::Invalid(problem.message));
    }
    let passphrase = read_secret(
        &cli_source(&SRT_PASSPHRASE, args.passphrase_file.as_deref()),
        env,
    )?;
    let turn_password = read_secret(
        &cli_source(&TURN_PASSWORD, args.turn_credential_file.as_deref()),
        env,
    )?;
    let ice =
        output_settings(args, passphrase.as_ref(), turn_password, &flag_name).map_err(first)?;

    let acquire = global.source_id.is_some();
    let common = OutputArgs {
        args,
        credential: credential.as_ref(),
        passphrase: passphrase.as_ref(),
        acquire,
        ice_servers: &ice.ice_servers,
        ice_addresses: &ice.ice_addresses,
        wording: &CLI_WORDING,
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
            .map(|url| build_output(url, &common).map_err(ConfigError::Invalid))
            .collect::<Result<Vec<_>, _>>()?
    };
    let has_whip = outputs.iter().any(OutputConfig::is_whip);
    if !has_whip
        && (!ice.ice_servers.is_empty() || !ice.ice_addresses.is_empty() || args.whip_cross_origin)
    {
        return Err(ConfigError::Invalid(
            "--ice-server, --ice-address and --whip-cross-origin apply to WHIP outputs only; \
             add a WHIP \
             --output (https://host:port/path/whip) or drop them"
                .into(),
        ));
    }
    Ok(assemble(args, global, outputs))
}

/// A setting that failed its check: the setting's key, as the config file
/// spells it (`bitrate`, `record_max_size`), and the message.
#[derive(Debug, Clone)]
pub struct Problem {
    pub key: &'static str,
    pub message: String,
}

impl Problem {
    fn new(key: &'static str, message: String) -> Self {
        Self { key, message }
    }
}

/// The naming of a setting in messages: `--bitrate` on the command line,
/// `bitrate` in the config file, whose errors add the key path in front.
pub type Naming<'a> = &'a dyn Fn(&'static str) -> String;

/// Names a setting by its command-line flag.
pub fn flag_name(key: &'static str) -> String {
    let flag = match key {
        "url" | "outputs" => "output",
        "ice_servers" => "ice-server",
        "ice_addresses" => "ice-address",
        "record_directory" => "record",
        "looped" => "loop",
        other => return format!("--{}", other.replace('_', "-")),
    };
    format!("--{flag}")
}

/// The phrases of messages that name other settings, as the command line
/// or the config file spells them.
pub struct Wording {
    /// The fix for a missing session token or stream key.
    pub credentials: &'static str,
    /// The fix for a missing session token.
    pub session_token: &'static str,
    pub source: &'static str,
    pub path: &'static str,
    /// The setting that holds an output's URL.
    pub output: &'static str,
    /// The fix for a missing API key.
    pub api_key: &'static str,
    /// How to remove a static session token or stream key.
    pub drop_credentials: &'static str,
}

const CLI_WORDING: Wording = Wording {
    credentials: "set TRAX_SESSION_TOKEN (or --token-file) or TRAX_STREAM_KEY (or \
                  --stream-key-file), or acquire them with --source",
    session_token: "set TRAX_SESSION_TOKEN (or --token-file), or acquire one with --source",
    source: "--source",
    path: "--path",
    output: "--output",
    api_key: "set TRAX_API_KEY or --api-key-file, or log in with `bridge login`",
    drop_credentials: "drop --token-file / --stream-key-file, unset TRAX_SESSION_TOKEN / \
                       TRAX_STREAM_KEY",
};

/// The settings that are not an output's, checked.
pub struct GlobalParts {
    source: crate::capture::SourceSpec,
    capture: CaptureRequest,
    encoder: crate::encode::EncoderName,
    profile: Option<Profile>,
    api: ApiSettings,
    pub source_id: Option<String>,
    pub record: Option<crate::output::record::RecordSettings>,
    status_listen: Option<std::net::SocketAddr>,
}

/// Checks every setting that is not an output's and returns every problem
/// found.
pub fn global_parts(
    args: &RunArgs,
    env: EnvLookup<'_>,
    name: Naming<'_>,
) -> Result<GlobalParts, Vec<Problem>> {
    let mut problems = Vec::new();
    // Both callers report a missing device themselves, before this.
    let source = keep(
        &mut problems,
        "device",
        args.device.as_deref().unwrap_or("test").parse(),
    );
    let size = keep(
        &mut problems,
        "size",
        args.size.as_deref().map(str::parse).transpose(),
    );
    let fps = keep(
        &mut problems,
        "fps",
        args.fps.as_deref().map(str::parse).transpose(),
    );
    let audio = keep(
        &mut problems,
        "audio",
        args.audio
            .parse()
            .map_err(|e: crate::capture::CaptureError| e.to_string()),
    );

    let encoder = keep(&mut problems, "encoder", args.encoder.parse());
    let profile = keep(
        &mut problems,
        "profile",
        args.profile.as_deref().map(str::parse).transpose(),
    );

    let status_listen = keep(
        &mut problems,
        "status_listen",
        args.status_listen
            .as_deref()
            .map(|text| status_listen(text, name))
            .transpose(),
    );
    let source_id = keep(
        &mut problems,
        "source",
        args.source
            .as_deref()
            .map(|id| check_source_id(id, name))
            .transpose(),
    );
    let api = match api_settings_named(&args.api, env, name) {
        Ok(api) => Some(api),
        Err(error) => {
            // An invalid timeout, or an API key that cannot be read.
            let key = match error {
                ConfigError::Invalid(_) => "api_timeout",
                _ => "api_key_file",
            };
            problems.push(Problem::new(key, error.to_string()));
            None
        }
    };
    problems.extend(check_ranges(args, name));

    let record = match super::recording::settings(args, name) {
        Ok(record) => Some(record),
        Err(record_problems) => {
            problems.extend(record_problems);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(GlobalParts {
        source: source.unwrap(),
        capture: CaptureRequest {
            size: size.unwrap(),
            fps: fps.unwrap(),
            audio: audio.unwrap(),
        },
        encoder: encoder.unwrap(),
        profile: profile.unwrap(),
        api: api.unwrap(),
        source_id: source_id.unwrap(),
        record: record.unwrap(),
        status_listen: status_listen.unwrap(),
    })
}

/// Returns the value, or `None` after noting the problem.
fn keep<T>(problems: &mut Vec<Problem>, key: &'static str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| problems.push(Problem::new(key, message)))
        .ok()
}

/// Checks what `--source` rules out: no API key, a path or a static
/// credential.
pub fn source_conflicts(
    global: &GlobalParts,
    path_given: bool,
    credential_given: bool,
    wording: &Wording,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if global.source_id.is_none() {
        return problems;
    }
    let source = wording.source;
    if global.api.key.is_none() && !global.api.login_store.has_login() {
        problems.push(Problem::new(
            "source",
            format!(
                "{source} needs an API key or a login to acquire credentials: {}",
                wording.api_key
            ),
        ));
    }
    if path_given {
        problems.push(Problem::new(
            "path",
            format!(
                "{} is not used with {source}: the API gives each output its path; drop {}",
                wording.path, wording.path
            ),
        ));
    }
    if credential_given {
        problems.push(Problem::new(
            "source",
            format!(
                "{source} acquires the session token through the API, but a token or stream \
                 key is set too: {}, or drop {source}",
                wording.drop_credentials
            ),
        ));
    }
    problems
}

/// Puts the checked parts together.
pub fn assemble(args: &RunArgs, global: GlobalParts, outputs: Vec<OutputConfig>) -> Config {
    let has_whip = outputs.iter().any(OutputConfig::is_whip);
    // Constrained Baseline is the one H.264 profile every WebRTC peer takes.
    let profile = match global.profile {
        Some(profile) => profile,
        None if has_whip => Profile::ConstrainedBaseline,
        None => Profile::High,
    };
    Config {
        source: global.source,
        looped: args.looped,
        capture: global.capture,
        encoder: global.encoder,
        bitrate_kbps: args.bitrate,
        gop_seconds: args.gop,
        profile,
        audio_bitrate_kbps: args.audio_bitrate,
        opus_bitrate_kbps: args.opus_bitrate,
        av_offset_ms: args.av_offset_ms,
        outputs,
        record: global.record,
        source_id: global.source_id,
        api: global.api,
        duration: (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration)),
        status_interval: (args.status_interval > 0.0)
            .then(|| Duration::from_secs_f64(args.status_interval)),
        status_listen: global.status_listen,
        reconnect_initial_delay: Duration::from_secs_f64(args.reconnect_initial_delay),
        reconnect_max_delay: Duration::from_secs_f64(args.reconnect_max_delay),
    }
}

/// An output's checked ICE settings.
pub struct OutputSettings {
    pub ice_servers: Vec<IceServer>,
    pub ice_addresses: Vec<std::net::IpAddr>,
}

/// Checks the settings each output has (from the command line, the same
/// for every output): SRT latency and encryption, ICE servers and
/// addresses, RTMP credential placement.
pub fn output_settings(
    args: &RunArgs,
    passphrase: Option<&Secret>,
    turn_password: Option<Secret>,
    name: Naming<'_>,
) -> Result<OutputSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    if !(20..=8000).contains(&args.latency) {
        problems.push(Problem::new(
            "latency",
            format!(
                "invalid {} {}: give milliseconds between 20 and 8000",
                name("latency"),
                args.latency
            ),
        ));
    }
    if let Err(problem) = check_passphrase(passphrase, args.pbkeylen, name) {
        problems.push(problem);
    }
    if let Err(error) = args.rtmp_credentials.parse::<Placement>() {
        problems.push(Problem::new("rtmp_credentials", error.to_string()));
    }
    let ice_servers = ice_servers(args, turn_password, name).unwrap_or_else(|problem| {
        problems.push(problem);
        Vec::new()
    });
    let mut ice_addresses = Vec::new();
    for text in &args.ice_addresses {
        match text.parse::<std::net::IpAddr>() {
            Ok(address) => ice_addresses.push(address),
            Err(_) => problems.push(Problem::new(
                "ice_addresses",
                format!(
                    "invalid {} '{text}': give a local IP address, such as 192.168.1.20",
                    name("ice_addresses")
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(OutputSettings {
            ice_servers,
            ice_addresses,
        })
    } else {
        Err(problems)
    }
}

fn status_listen(text: &str, name: Naming<'_>) -> Result<std::net::SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "invalid {} '{text}': give an IP address and port, such as \
             127.0.0.1:8181 (or 0.0.0.0:8181 for the local network)",
            name("status_listen")
        )
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

/// Checks the numeric settings that are not an output's.
fn check_ranges(args: &RunArgs, name: Naming<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut fail = |key: &'static str, fix: String| problems.push(Problem::new(key, fix));
    if let Some(bitrate) = args.bitrate {
        if !(100..=100_000).contains(&bitrate) {
            fail(
                "bitrate",
                format!(
                    "invalid {} {bitrate}: give kb/s between 100 and 100000",
                    name("bitrate")
                ),
            );
        }
    }
    if !(args.gop.is_finite() && args.gop > 0.0 && args.gop <= 20.0) {
        fail(
            "gop",
            format!(
                "invalid {} {}: give seconds between 0 and 20, such as 2",
                name("gop"),
                args.gop
            ),
        );
    }
    if !(16..=512).contains(&args.audio_bitrate) {
        fail(
            "audio_bitrate",
            format!(
                "invalid {} {}: give kb/s between 16 and 512",
                name("audio_bitrate"),
                args.audio_bitrate
            ),
        );
    }
    if !(16..=510).contains(&args.opus_bitrate) {
        fail(
            "opus_bitrate",
            format!(
                "invalid {} {}: give kb/s between 16 and 510",
                name("opus_bitrate"),
                args.opus_bitrate
            ),
        );
    }
    if args.av_offset_ms.abs() > 10_000 {
        fail(
            "av_offset_ms",
            format!(
                "invalid {} {}: give at most 10000 either way",
                name("av_offset_ms"),
                args.av_offset_ms
            ),
        );
    }
    // try_from_secs_f64 also rejects values too large for a Duration, which
    // from_secs_f64 in build would panic on.
    if Duration::try_from_secs_f64(args.duration).is_err() {
        fail(
            "duration",
            format!(
                "invalid {} {}: give seconds, or 0 to run until stopped",
                name("duration"),
                args.duration
            ),
        );
    }
    let interval = args.status_interval;
    if interval != 0.0 && !STATUS_INTERVAL_SECONDS.contains(&interval) {
        fail(
            "status_interval",
            format!(
                "invalid {} {interval}: give seconds between {} and {}, or 0 to show no status",
                name("status_interval"),
                STATUS_INTERVAL_SECONDS.start(),
                STATUS_INTERVAL_SECONDS.end()
            ),
        );
    }
    let max_delay_valid = (0.1..=600.0).contains(&args.reconnect_max_delay);
    if !max_delay_valid {
        fail(
            "reconnect_max_delay",
            format!(
                "invalid {} {}: give seconds between 0.1 and 600",
                name("reconnect_max_delay"),
                args.reconnect_max_delay
            ),
        );
    }
    let initial_range = 0.05..=args.reconnect_max_delay.max(0.05);
    if !initial_range.contains(&args.reconnect_initial_delay) {
        fail(
            "reconnect_initial_delay",
            format!(
                "invalid {} {}: give seconds between 0.05 and {} ({})",
                name("reconnect_initial_delay"),
                args.reconnect_initial_delay,
                name("reconnect_max_delay"),
                args.reconnect_max_delay
            ),
        );
    }
    if crate::telemetry::parse_level(&args.log_level).is_none() {
        fail(
            "log_level",
            format!(
                "invalid {} '{}': use error, warn, info, debug or trace",
                name("log_level"),
                args.log_level
            ),
        );
    }
    problems
}

/// Where a kind of secret comes from when nothing names its source.
pub struct DefaultSource {
    pub kind: &'static str,
    pub env_var: &'static str,
    pub credential: &'static str,
}

pub const SESSION_TOKEN: DefaultSource = DefaultSource {
    kind: "session token",
    env_var: "TRAX_SESSION_TOKEN",
    credential: "trax-session-token",
};
pub const STREAM_KEY: DefaultSource = DefaultSource {
    kind: "stream key",
    env_var: "TRAX_STREAM_KEY",
    credential: "trax-stream-key",
};
pub const SRT_PASSPHRASE: DefaultSource = DefaultSource {
    kind: "SRT passphrase",
    env_var: "TRAX_SRT_PASSPHRASE",
    credential: "trax-srt-passphrase",
};
pub const TURN_PASSWORD: DefaultSource = DefaultSource {
    kind: "TURN password",
    env_var: "TRAX_TURN_CREDENTIAL",
    credential: "trax-turn-credential",
};
pub const API_KEY: DefaultSource = DefaultSource {
    kind: "API key",
    env_var: "TRAX_API_KEY",
    credential: "trax-api-key",
};

/// The sources the command line reads a secret from: the file flag, then
/// the environment, then the systemd credential.
fn cli_source<'a>(default: &DefaultSource, file: Option<&'a std::path::Path>) -> SecretSource<'a> {
    SecretSource {
        kind: default.kind,
        file,
        env_var: Some(default.env_var),
        credential: Some(default.credential),
    }
}

fn read_credential(args: &RunArgs, env: EnvLookup<'_>) -> Result<Option<Credential>, ConfigError> {
    let token = read_secret(&cli_source(&SESSION_TOKEN, args.token_file.as_deref()), env)?;
    let key = read_secret(
        &cli_source(&STREAM_KEY, args.stream_key_file.as_deref()),
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

fn check_passphrase(
    passphrase: Option<&Secret>,
    pbkeylen: u32,
    name: Naming<'_>,
) -> Result<(), Problem> {
    if ![0, 16, 24, 32].contains(&pbkeylen) {
        return Err(Problem::new(
            "pbkeylen",
            format!(
                "invalid {} {pbkeylen}: use 16, 24 or 32 (bytes), or 0 for the listener's choice",
                name("pbkeylen")
            ),
        ));
    }
    match passphrase {
        Some(secret) if !(10..=79).contains(&secret.len()) => Err(Problem::new(
            "passphrase",
            format!(
                "the SRT passphrase is {} characters long; libsrt accepts 10 to 79",
                secret.len()
            ),
        )),
        None if pbkeylen != 0 => Err(Problem::new(
            "pbkeylen",
            format!(
                "{} {pbkeylen} needs a passphrase: {}",
                name("pbkeylen"),
                if name("pbkeylen") == "--pbkeylen" {
                    "set TRAX_SRT_PASSPHRASE or --passphrase-file"
                } else {
                    "set passphrase_file, passphrase_env or passphrase_credential"
                }
            ),
        )),
        _ => Ok(()),
    }
}

/// The arguments an output is built with.
pub struct OutputArgs<'a> {
    pub args: &'a RunArgs,
    pub credential: Option<&'a Credential>,
    pub passphrase: Option<&'a Secret>,
    pub acquire: bool,
    pub ice_servers: &'a [IceServer],
    pub ice_addresses: &'a [std::net::IpAddr],
    pub wording: &'a Wording,
}

pub fn build_output(url: &str, common: &OutputArgs<'_>) -> Result<OutputConfig, String> {
    let OutputArgs {
        args,
        credential,
        passphrase,
        acquire,
        wording,
        ..
    } = *common;
    let output = wording.output;
    let path_setting = wording.path;
    match output_url::parse(url).map_err(|e| e.to_string())? {
        OutputUrl::Srt { host, port } => {
            if acquire {
                let target = Some((host, port));
                return Ok(OutputConfig::Srt(srt_output(
                    target, None, args, passphrase,
                )));
            }
            let path = args.path.clone().ok_or_else(|| {
                format!(
                    "{output} {url} needs the stream path: add {path_setting}, e.g. \
                     {path_setting} inputs/srt-<uuid>"
                )
            })?;
            let credential = credential.cloned().ok_or_else(|| {
                format!("{output} {url} needs credentials: {}", wording.credentials)
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
                .map_err(|e| e.to_string())?;
            let credentials = if acquire {
                None
            } else {
                let path = path.or_else(|| args.path.clone()).ok_or_else(|| {
                    format!(
                        "{output} {url} needs the stream path: put it in the URL \
                         (rtmp://host:1935/inputs/rtmp-<uuid>) or add {path_setting}"
                    )
                })?;
                let credential = credential.cloned().ok_or_else(|| {
                    format!("{output} {url} needs credentials: {}", wording.credentials)
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
                    format!(
                        "{output} {url} needs the stream path: put it in the URL \
                         (https://host:8889/inputs/whip-<uuid>/whip) or add {path_setting}"
                    )
                })?;
                let token = match credential {
                    Some(Credential::SessionToken(token)) => token.clone(),
                    Some(Credential::StreamKey(_)) => {
                        return Err(format!(
                            "{output} {url} is WHIP, which takes a session token as its \
                             Bearer, not a stream key: {}",
                            wording.session_token
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{output} {url} needs a session token: {}",
                            wording.session_token
                        ))
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
fn ice_servers(
    args: &RunArgs,
    password: Option<Secret>,
    name: Naming<'_>,
) -> Result<Vec<IceServer>, Problem> {
    let is_turn = |url: &String| url.starts_with("turn:") || url.starts_with("turns:");
    let has_turn = args.ice_servers.iter().any(is_turn);
    let cli = name("ice_servers") == "--ice-server";
    if !has_turn && (args.turn_username.is_some() || password.is_some()) {
        return Err(Problem::new(
            "turn_username",
            if cli {
                "a TURN user name or password is set but no --ice-server is a turn: or turns: \
                 URL; add one, or drop --turn-username and the TURN password"
            } else {
                "a TURN user name or password is set but no ice_servers entry is a turn: or \
                 turns: URL; add one, or drop turn_username and the TURN password"
            }
            .into(),
        ));
    }
    if has_turn && (args.turn_username.is_none() || password.is_none()) {
        return Err(Problem::new(
            "ice_servers",
            if cli {
                "a TURN --ice-server needs --turn-username and a password in \
                 TRAX_TURN_CREDENTIAL or --turn-credential-file"
            } else {
                "a TURN server in ice_servers needs turn_username and a password from \
                 turn_credential_file, turn_credential_env or turn_credential_credential"
            }
            .into(),
        ));
    }
    args.ice_servers
        .iter()
        .map(|url| {
            let (username, password) = if is_turn(url) {
                (args.turn_username.clone(), password.clone())
            } else {
                (None, None)
            };
            IceServer::parse(url, username, password)
                // `why` names the URL with any userinfo redacted, so the
                // raw value, which may carry a password, is not repeated.
                .map_err(|why| {
                    Problem::new(
                        "ice_servers",
                        format!("invalid {}: {why}", name("ice_servers")),
                    )
                })
        })
        .collect()
}

pub fn srt_output(
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
    api_settings_named(args, env, &flag_name)
}

fn api_settings_named(
    args: &ApiArgs,
    env: EnvLookup<'_>,
    name: Naming<'_>,
) -> Result<ApiSettings, ConfigError> {
    if !(args.api_timeout.is_finite() && args.api_timeout > 0.0 && args.api_timeout <= 300.0) {
        return Err(ConfigError::Invalid(format!(
            "invalid {} {}: give seconds between 0 and 300",
            name("api_timeout"),
            args.api_timeout
        )));
    }
    let key = match &args.api_key_source {
        Some(source) => read_secret(&source.as_source(API_KEY.kind), env)?,
        None => read_secret(&cli_source(&API_KEY, args.api_key_file.as_deref()), env)?,
    };
    Ok(ApiSettings {
        origin: args.api_url.clone(),
        key,
        ca_file: args.api_ca_file.clone(),
        timeout: Duration::from_secs_f64(args.api_timeout),
        login_store: TokenStore::locate(args.state_dir.as_deref(), env),
    })
}

/// Checks a `--source` id: TRaX ids are letters, digits, `_` and `-`.
fn check_source_id(id: &str, name: Naming<'_>) -> Result<String, String> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(id.to_string())
    } else {
        Err(format!(
            "invalid {} '{id}': a source id has only letters, digits, '_' and '-' \
             (bridge sources lists them)",
            name("source")
        ))
    }
}
