//! The `[[output]]` tables: each output's settings over its device table's
//! and the top level's, its own secrets, and the shared checks.

use super::keys::{self, Errors, Layer};
use super::{display_key, read_named, secret_source, OutputEntry};
use crate::cli::RunArgs;
use crate::config::build::{self, DefaultSource, GlobalParts, OutputArgs, Problem, Wording};
use crate::config::credentials::{read_secret, EnvLookup, NamedSource, SecretSource};
use crate::config::output_url::{self, OutputUrl};
use crate::config::{OutputConfig, Secret};
use crate::trax::credential::Credential;
use std::path::PathBuf;
use toml::Value;

const FILE_WORDING: Wording = Wording {
    credentials: "set token_file, token_env or token_credential (or stream_key_file, \
                  stream_key_env or stream_key_credential) on the output, its device table or \
                  the top level, or set source to acquire them through the TRaX API",
    session_token: "set token_file, token_env or token_credential on the output, its device \
                    table or the top level, or set source to acquire one through the TRaX API",
    source: "source",
    path: "path",
    output: "url",
    api_key: "set api_key_file, api_key_env or api_key_credential, or TRAX_API_KEY, or log in \
              with `bridge login`",
    drop_credentials: "drop the token_* and stream_key_* keys",
};

/// The command-line wording of the URL parser's messages, each with the
/// config file's keys that replace it.
const URL_ERROR_KEYS: &[(&str, &str)] = &[
    (
        "TRAX_SESSION_TOKEN or --token-file",
        "token_file, token_env or token_credential",
    ),
    ("with --path", "with the path key"),
    ("from --path", "from the path key"),
    (
        "--latency and --passphrase-file",
        "the latency and passphrase_file keys",
    ),
    ("--rtmp-credentials", "rtmp_credentials"),
];

/// Keys that apply to one protocol only, with its name.
const PROTOCOL_KEYS: &[(&str, &str)] = &[
    ("latency", "SRT"),
    ("pbkeylen", "SRT"),
    ("passphrase_file", "SRT"),
    ("passphrase_env", "SRT"),
    ("passphrase_credential", "SRT"),
    ("rtmp_credentials", "RTMP"),
    ("ice_servers", "WHIP"),
    ("ice_addresses", "WHIP"),
    ("turn_username", "WHIP"),
    ("whip_cross_origin", "WHIP"),
    ("turn_credential_file", "WHIP"),
    ("turn_credential_env", "WHIP"),
    ("turn_credential_credential", "WHIP"),
];

/// The outputs, checked.
pub struct Built {
    pub configs: Vec<OutputConfig>,
    pub entries: Vec<OutputEntry>,
    pub summary: Vec<String>,
}

/// Builds every output of `layers` over `defaults`; `prefix` is the key
/// path of the array (`output` or `device."KEY".output`).
pub fn build_all(
    args: &RunArgs,
    defaults: &Layer,
    layers: &[Layer],
    prefix: &str,
    global: Option<&GlobalParts>,
    env: EnvLookup<'_>,
    errors: &mut Errors,
) -> Option<Built> {
    let before = errors.0.len();
    let acquire = match global {
        Some(global) => global.source_id.is_some(),
        None => args.source.is_some(),
    };
    let mut built = Built {
        configs: Vec::new(),
        entries: Vec::new(),
        summary: Vec::new(),
    };
    let mut path_given = false;
    let mut credential_given = false;
    for (index, own) in layers.iter().enumerate() {
        let output_path = format!("{prefix}[{index}]");
        let layer = keys::overlay(defaults, own);
        path_given |= layer.contains_key("path");
        let output = Output {
            path: &output_path,
            own,
            layer: &layer,
        };
        let Some((config, entry, summary, named_credential)) =
            output.build(args, acquire, env, errors)
        else {
            continue;
        };
        credential_given |= named_credential;
        if let Some(other) = built.entries.iter().position(|e| e.id == entry.id) {
            errors.at(
                &output_path,
                format!(
                    "{prefix}[{other}] has the same name or URL '{}'; give each output its \
                     own name = \"...\"",
                    entry.id
                ),
            );
        }
        built.configs.push(config);
        built.entries.push(entry);
        built.summary.push(summary);
    }

    if layers.is_empty() && acquire {
        let passphrase = default_secret(&build::SRT_PASSPHRASE, env, errors);
        built.configs.push(OutputConfig::Srt(build::srt_output(
            None,
            None,
            args,
            passphrase.as_ref(),
        )));
        built
            .summary
            .push("SRT output from the ingest URL the TRaX API returns".into());
    }
    if layers.is_empty() && !acquire && args.record.is_none() {
        errors.at(
            prefix,
            "no outputs: add an [[output]] table with url = \"srt://host:port\", set source = \
             \"ID\" to take the ingest URLs from the TRaX API, or add a [record] table to \
             record only",
        );
    }
    if let Some(global) = global {
        for problem in build::source_conflicts(global, path_given, credential_given, &FILE_WORDING)
        {
            errors.at(&display_key(problem.key), problem.message);
        }
    }
    (errors.0.len() == before).then_some(built)
}

/// One `[[output]]` table with the defaults under it.
struct Output<'a> {
    path: &'a str,
    own: &'a Layer,
    layer: &'a Layer,
}

impl Output<'_> {
    /// Returns the output, its entry, its summary line and whether it names
    /// a token or stream key source.
    fn build(
        &self,
        global_args: &RunArgs,
        acquire: bool,
        env: EnvLookup<'_>,
        errors: &mut Errors,
    ) -> Option<(OutputConfig, OutputEntry, String, bool)> {
        let before = errors.0.len();
        // A missing or bad URL leaves the other keys to check, so that
        // every problem of the output is reported in one run.
        let url = self.required_url(errors);
        let name = self.layer.get("name").and_then(|entry| {
            keys::text(&entry.value, "a name")
                .map_err(|message| errors.at(&entry.path, message))
                .ok()
        });
        let protocol = url.as_deref().and_then(|url| self.protocol(url, errors));
        if let (Some(url), Some(protocol)) = (&url, protocol) {
            self.check_protocol_keys(protocol, errors);
            self.check_ca_file(url, errors);
        }

        let mut args = global_args.clone();
        for (key, entry) in self.layer {
            if let Err(message) = set_output(&mut args, key, &entry.value) {
                errors.at(&entry.path, message);
            }
        }
        let token = secret_source(self.layer, "token", errors);
        let stream_key = secret_source(self.layer, "stream_key", errors);
        let named_credential = token.is_some() || stream_key.is_some();
        let credential = self.credential(token.as_ref(), stream_key.as_ref(), acquire, env, errors);
        let passphrase = self.secret("passphrase", &build::SRT_PASSPHRASE, env, errors);
        let turn = self.secret("turn_credential", &build::TURN_PASSWORD, env, errors);
        let secrets = hash_secrets(credential.as_ref(), [passphrase.as_ref(), turn.as_ref()]);

        let name_key = |key: &'static str| display_key(key);
        let settings = match build::output_settings(&args, passphrase.as_ref(), turn, &name_key) {
            Ok(settings) => settings,
            Err(problems) => {
                self.report(&problems, errors);
                return None;
            }
        };
        if errors.0.len() != before {
            return None;
        }
        let (Some(url), Some(protocol)) = (url, protocol) else {
            return None;
        };
        let common = OutputArgs {
            args: &args,
            credential: credential.as_ref(),
            passphrase: passphrase.as_ref(),
            acquire,
            ice_servers: &settings.ice_servers,
            ice_addresses: &settings.ice_addresses,
            wording: &FILE_WORDING,
        };
        let config = build::build_output(&url, &common)
            .map_err(|message| errors.at(self.path, message))
            .ok()?;
        if protocol == "SRT" {
            self.check_streamid(args.path.as_deref(), credential.as_ref(), errors);
            if errors.0.len() != before {
                return None;
            }
        }
        let summary = self.summary(&url, name.as_deref(), &args, &token, &stream_key, acquire);
        let entry = OutputEntry {
            id: name.unwrap_or_else(|| url.clone()),
            settings: self.layer.clone(),
            secrets,
        };
        Some((config, entry, summary, named_credential))
    }

    /// Returns the protocol of `url`, or `None` after noting why the URL
    /// is invalid.
    fn protocol(&self, url: &str, errors: &mut Errors) -> Option<&'static str> {
        match output_url::parse(url) {
            Ok(OutputUrl::Srt { .. }) => Some("SRT"),
            Ok(OutputUrl::Rtmp { .. }) => Some("RTMP"),
            Ok(OutputUrl::Whip { .. }) => Some("WHIP"),
            Err(error) => {
                let mut message = error
                    .to_string()
                    .replacen("invalid --output", "invalid URL", 1);
                for (flag, key) in URL_ERROR_KEYS {
                    message = message.replace(flag, key);
                }
                errors.at(&keys::join(self.path, "url"), message);
                None
            }
        }
    }

    fn required_url(&self, errors: &mut Errors) -> Option<String> {
        let path = keys::join(self.path, "url");
        let Some(entry) = self.own.get("url") else {
            errors.at(
                &path,
                "missing: give the destination, such as url = \"srt://ingest.example:8890\"",
            );
            return None;
        };
        keys::text(&entry.value, "a URL such as \"srt://127.0.0.1:9000\"")
            .map_err(|message| errors.at(&path, message))
            .ok()
    }

    /// Rejects keys of another protocol set on the output itself; inherited
    /// ones are the defaults of other outputs and are left alone.
    fn check_protocol_keys(&self, protocol: &str, errors: &mut Errors) {
        for (key, wanted) in PROTOCOL_KEYS {
            if let Some(entry) = self.own.get(*key) {
                if *wanted != protocol {
                    errors.at(
                        &entry.path,
                        format!(
                            "applies to {wanted} outputs only, and this output is \
                             {protocol}; drop it"
                        ),
                    );
                }
            }
        }
    }

    /// Reads the CA file of an output that dials TLS, as the run does
    /// before capture; an SRT output has no use for one.
    fn check_ca_file(&self, url: &str, errors: &mut Errors) {
        if url.starts_with("srt://") {
            if let Some(entry) = self.own.get("ca_file") {
                errors.at(
                    &entry.path,
                    "applies to RTMPS and https WHIP outputs only, and this output is SRT; \
                     drop it",
                );
            }
            return;
        }
        let tls = url.starts_with("rtmps://") || url.starts_with("https://");
        if let (true, Some(entry)) = (tls, self.layer.get("ca_file")) {
            super::check_ca_file(entry, errors);
        }
    }

    /// Checks the streamid the output would send, as the run does before
    /// it dials, so that `bridge check` finds the same problems. Without a
    /// path or credential here, the TRaX API provides them at the run.
    fn check_streamid(
        &self,
        path: Option<&str>,
        credential: Option<&Credential>,
        errors: &mut Errors,
    ) {
        use crate::output::srt::streamid::{build_streamid, StreamIdError};
        let (Some(path), Some(credential)) = (path, credential) else {
            return;
        };
        let Err(error) = build_streamid(path, credential) else {
            return;
        };
        let at = match error {
            StreamIdError::EmptyCredential { .. } | StreamIdError::ColonInCredential { .. } => {
                match credential {
                    Credential::SessionToken(_) => self.source_path("token"),
                    Credential::StreamKey(_) => self.source_path("stream_key"),
                }
            }
            _ => self
                .layer
                .get("path")
                .map_or_else(|| self.path.to_string(), |entry| entry.path.clone()),
        };
        errors.at(&at, error);
    }

    fn credential(
        &self,
        token: Option<&NamedSource>,
        stream_key: Option<&NamedSource>,
        acquire: bool,
        env: EnvLookup<'_>,
        errors: &mut Errors,
    ) -> Option<Credential> {
        match (token, stream_key) {
            (Some(_), Some(_)) => {
                errors.at(
                    self.path,
                    "both a session token and a stream key source are set; keep only one",
                );
                None
            }
            (Some(source), None) => {
                let path = self.source_path("token");
                read_named(source, "session token", &path, env, errors)
                    .map(Credential::SessionToken)
            }
            (None, Some(source)) => {
                let path = self.source_path("stream_key");
                read_named(source, "stream key", &path, env, errors).map(Credential::StreamKey)
            }
            // With `source`, the API hands out the credentials.
            (None, None) if acquire => None,
            (None, None) => {
                let token = default_secret(&build::SESSION_TOKEN, env, errors);
                let key = default_secret(&build::STREAM_KEY, env, errors);
                match (token, key) {
                    (Some(_), Some(_)) => {
                        errors.at(
                            self.path,
                            "both TRAX_SESSION_TOKEN and TRAX_STREAM_KEY (or their systemd \
                             credentials) are set; unset one, or name a source with \
                             token_file, token_env or token_credential",
                        );
                        None
                    }
                    (Some(token), None) => Some(Credential::SessionToken(token)),
                    (None, Some(key)) => Some(Credential::StreamKey(key)),
                    (None, None) => None,
                }
            }
        }
    }

    /// Reads the passphrase or TURN password from the source the levels
    /// name, else from the default environment variable or credential.
    fn secret(
        &self,
        base: &str,
        default: &DefaultSource,
        env: EnvLookup<'_>,
        errors: &mut Errors,
    ) -> Option<Secret> {
        match secret_source(self.layer, base, errors) {
            Some(source) => {
                let path = self.source_path(base);
                read_named(&source, default.kind, &path, env, errors)
            }
            None => default_secret(default, env, errors),
        }
    }

    /// Returns the key path of the source of the secret named `base`.
    fn source_path(&self, base: &str) -> String {
        ["file", "env", "credential"]
            .iter()
            .find_map(|kind| self.layer.get(&format!("{base}_{kind}")))
            .map_or_else(|| self.path.to_string(), |entry| entry.path.clone())
    }

    fn report(&self, problems: &[Problem], errors: &mut Errors) {
        for problem in problems {
            let path = match problem.key {
                "passphrase" => self.source_path("passphrase"),
                key => self
                    .layer
                    .get(key)
                    .map_or_else(|| self.path.to_string(), |entry| entry.path.clone()),
            };
            errors.at(&path, &problem.message);
        }
    }

    fn summary(
        &self,
        url: &str,
        name: Option<&str>,
        args: &RunArgs,
        token: &Option<NamedSource>,
        stream_key: &Option<NamedSource>,
        acquire: bool,
    ) -> String {
        let mut line = format!("{}: {url}", self.path);
        if let Some(name) = name {
            line += &format!(" ({name})");
        }
        if let Some(path) = &args.path {
            line += &format!(", path {path}");
        }
        let credential = match (token, stream_key) {
            (Some(source), _) => format!("session token from {}", source.describe()),
            (_, Some(source)) => format!("stream key from {}", source.describe()),
            _ if acquire => "credentials from the TRaX API".to_string(),
            _ => "session token or stream key from TRAX_SESSION_TOKEN / TRAX_STREAM_KEY or \
                  their systemd credentials"
                .to_string(),
        };
        line + ", " + &credential
    }
}

fn hash_secrets(credential: Option<&Credential>, others: [Option<&Secret>; 2]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let credential = credential.map(|credential| match credential {
        Credential::SessionToken(secret) | Credential::StreamKey(secret) => secret,
    });
    for secret in std::iter::once(credential).chain(others) {
        secret.map(Secret::expose).hash(&mut hasher);
    }
    hasher.finish()
}

/// Reads a secret from its default sources, as the command line does
/// without a file flag.
fn default_secret(
    default: &DefaultSource,
    env: EnvLookup<'_>,
    errors: &mut Errors,
) -> Option<Secret> {
    let source = SecretSource {
        kind: default.kind,
        file: None,
        env_var: Some(default.env_var),
        credential: Some(default.credential),
    };
    read_secret(&source, env)
        .map_err(|error| errors.at(default.env_var, error))
        .ok()
        .flatten()
}

/// Sets an output setting of `layer` on `args`.
fn set_output(args: &mut RunArgs, key: &str, value: &Value) -> Result<(), String> {
    use keys::{count, flag, text, text_list};
    match key {
        "path" => args.path = Some(text(value, "a stream path such as \"inputs/srt-<uuid>\"")?),
        "latency" => args.latency = count(value, "milliseconds such as 300")?,
        "pbkeylen" => args.pbkeylen = count(value, "16, 24, 32 or 0")?,
        "rtmp_credentials" => {
            args.rtmp_credentials = text(value, "\"tcurl\", \"query\" or \"both\"")?
        }
        "ca_file" => args.ca_file = Some(PathBuf::from(text(value, "a file path")?)),
        "ice_servers" => args.ice_servers = text_list(value, "URLs such as \"stun:host:3478\"")?,
        "ice_addresses" => args.ice_addresses = text_list(value, "IP addresses")?,
        "turn_username" => args.turn_username = Some(text(value, "a user name")?),
        "whip_cross_origin" => args.whip_cross_origin = flag(value)?,
        // The secrets' sources are read by `secret_source`; `name` and
        // `url` by the caller.
        _ => {}
    }
    Ok(())
}
