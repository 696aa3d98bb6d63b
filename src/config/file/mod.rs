//! The TOML config file (`bridge --config FILE`, `bridge check`): read into
//! layers (top level, the `[device."KEY"]` table that matches `--device`,
//! each `[[output]]`) and turned into the same checked `Config` as the
//! command line, through the checks in `config::build`. Every problem is
//! reported at once, each with its key path.

pub mod command;
pub mod device;
pub mod keys;
mod outputs;

use super::build::{self, Problem};
use super::credentials::{read_secret, EnvLookup, NamedSource};
use super::{Config, ConfigError};
use crate::cli::RunArgs;
use keys::{Entry, Errors, Layer};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

pub use device::DeviceDirs;

/// The settings given on the command line next to `--config`, each of
/// which wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub device: Option<String>,
    pub duration: Option<f64>,
    pub log_level: Option<String>,
}

/// A config file turned into a run's configuration.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The run-wide settings that applied, by key.
    pub global: Layer,
    /// Each output's identity and settings, in the order of `config.outputs`.
    pub outputs: Vec<OutputEntry>,
    /// One line per output and one for the run, for `bridge check`.
    pub summary: Vec<String>,
}

/// An output as the file names it.
#[derive(Debug, Clone)]
pub struct OutputEntry {
    /// The `name` key, else the URL.
    pub id: String,
    /// Every setting that applied to the output (its own, its device
    /// table's and the top level's).
    pub settings: Layer,
    /// A hash of the output's secrets as read, so a reload restarts an
    /// output whose token or passphrase changed in its file, variable or
    /// credential. Never shown.
    pub secrets: u64,
}

/// Two entries are equal when they name the same output with the same
/// values and secrets, wherever in the file the values stand.
impl PartialEq for OutputEntry {
    fn eq(&self, other: &Self) -> bool {
        let values = |layer: &Layer| -> Vec<(String, Value)> {
            layer
                .iter()
                .map(|(key, entry)| (key.clone(), entry.value.clone()))
                .collect()
        };
        self.id == other.id
            && self.secrets == other.secrets
            && values(&self.settings) == values(&other.settings)
    }
}

/// The file, read and split into its levels.
struct Document {
    top: Layer,
    outputs: Vec<Layer>,
    devices: Vec<DeviceTable>,
}

struct DeviceTable {
    key: String,
    layer: Layer,
    /// `None`: the top level's outputs apply.
    outputs: Option<Vec<Layer>>,
}

/// Loads `path` for `request.device`.
pub fn load(
    path: &Path,
    request: &Request,
    env: EnvLookup<'_>,
    dirs: &DeviceDirs,
) -> Result<Loaded, ConfigError> {
    let (document, mut errors) = read(path)?;
    let device_table = select_device(&document, request.device.as_deref(), dirs, &mut errors);
    let loaded = resolve(&document, device_table, request, env, &mut errors);
    finish(path, loaded, errors)
}

/// Checks `path` for `device`, or without one for the top level and every
/// device table; returns the summary lines.
pub fn check(
    path: &Path,
    device: Option<&str>,
    env: EnvLookup<'_>,
    dirs: &DeviceDirs,
) -> Result<Vec<String>, ConfigError> {
    if device.is_some() {
        let request = Request {
            device: device.map(str::to_string),
            ..Request::default()
        };
        return load(path, &request, env, dirs).map(|loaded| loaded.summary);
    }
    let (document, mut errors) = read(path)?;
    let mut summary = Vec::new();
    let has_device = document.top.contains_key("device");
    // The top level alone applies to a device that no table matches.
    let request = Request {
        device: (!has_device).then(|| "test".to_string()),
        ..Request::default()
    };
    let loaded = resolve(&document, None, &request, env, &mut errors);
    summary.extend(loaded.into_iter().flat_map(|loaded| loaded.summary));
    for (index, table) in document.devices.iter().enumerate() {
        // The key may be a udev name, which is no device spec. The run's
        // --device takes its place, so `test` stands in for it here. (A
        // file with device tables has no top-level `device` string.)
        let request = Request {
            device: Some("test".to_string()),
            ..Request::default()
        };
        let loaded = resolve(&document, Some(index), &request, env, &mut errors);
        for line in loaded.into_iter().flat_map(|loaded| loaded.summary) {
            summary.push(format!("device.{:?}: {line}", table.key));
        }
    }
    finish(path, Some(summary), errors)
}

/// The file's `log_level` for `device`: its device table's, else the top
/// level's. The logger starts before the file is checked, so this reads
/// the file on its own and ignores every other problem.
pub fn log_level(path: &Path, device: Option<&str>) -> Option<String> {
    let text = read_text(path).ok()?;
    let table: Table = toml::from_str(&text).ok()?;
    let top_level = || table.get("log_level")?.as_str().map(str::to_string);
    let device = device.or_else(|| table.get("device")?.as_str());
    let (Some(device), Some(Value::Table(tables))) = (device, table.get("device")) else {
        return top_level();
    };
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    let found = device::matching_keys(device, &names, &DeviceDirs::default());
    let from_table = match found.as_slice() {
        [key] => tables.get(*key)?.get("log_level"),
        _ => None,
    };
    from_table
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(top_level)
}

fn finish<T>(path: &Path, value: Option<T>, errors: Errors) -> Result<T, ConfigError> {
    match value {
        Some(value) if errors.0.is_empty() => Ok(value),
        _ => {
            // A value inherited by several outputs, or checked for several
            // device tables, fails the same way each time: list it once.
            let mut unique: Vec<String> = Vec::new();
            for error in errors.0 {
                if !unique.contains(&error) {
                    unique.push(error);
                }
            }
            Err(ConfigError::File {
                path: path.to_path_buf(),
                errors: unique,
            })
        }
    }
}

/// Reads and parses the file, and splits it into its levels; the errors
/// of unknown or misplaced keys are returned for the caller to add to.
fn read(path: &Path) -> Result<(Document, Errors), ConfigError> {
    let fail = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        errors: vec![message],
    };
    let text = read_text(path).map_err(fail)?;
    // The parser's own message quotes the line, which may hold a secret
    // written by mistake, so only its position and reason are shown.
    let table: Table = toml::from_str(&text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| position(&text, span.start))
            .unwrap_or((1, 1));
        fail(format!(
            "line {line}, column {column}: invalid TOML: {}",
            error.message().trim_end()
        ))
    })?;
    let mut errors = Errors::default();
    let document = split(table, &mut errors);
    Ok((document, errors))
}

/// The largest config file read. A real one is a few kilobytes, and the
/// bound keeps a wrong path such as /dev/zero from filling the memory.
const MAX_FILE_SIZE: u64 = 1 << 20;

/// Reads the file as UTF-8 text, with an error that says what to fix.
fn read_text(path: &Path) -> Result<String, String> {
    use std::io::{ErrorKind, Read};
    let cannot = |error: std::io::Error| {
        let fix = match error.kind() {
            ErrorKind::NotFound => "no such file: give the path of the config file",
            ErrorKind::IsADirectory => "a directory: give the path of the config file in it",
            ErrorKind::PermissionDenied => {
                "permission denied: make it readable by the user the bridge runs as"
            }
            _ => return format!("cannot read the config file: {error}"),
        };
        format!("cannot read the config file: {fix}")
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "the config file is larger than {} MiB: check that --config names the TOML file",
            MAX_FILE_SIZE >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let before = String::from_utf8_lossy(&error.as_bytes()[..valid]);
        let (line, column) = position(&before, valid);
        format!("line {line}, column {column}: not UTF-8 text: save the file as UTF-8")
    })
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    (line, column)
}

/// Splits the top-level table into its levels, checking every key.
fn split(table: Table, errors: &mut Errors) -> Document {
    let mut top = Layer::new();
    let mut outputs = Vec::new();
    let mut devices = Vec::new();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("output", value) => outputs = output_tables("output", value, errors),
            ("device", Value::Table(tables)) => {
                for (device_key, value) in tables {
                    devices.push(device_table(device_key, value, errors));
                }
            }
            (_, value) => {
                let allowed = [
                    keys::GLOBAL_KEYS,
                    keys::OUTPUT_KEYS,
                    &["record", "status", "output"],
                ];
                level_key("", &key, value, &allowed.concat(), &mut top, errors);
            }
        }
    }
    Document {
        top,
        outputs,
        devices,
    }
}

fn device_table(key: String, value: Value, errors: &mut Errors) -> DeviceTable {
    let prefix = format!("device.{key:?}");
    let mut layer = Layer::new();
    let mut outputs = None;
    let Value::Table(table) = value else {
        errors.at(&prefix, "expected a table of settings for this device");
        return DeviceTable {
            key,
            layer,
            outputs,
        };
    };
    let globals: Vec<&str> = keys::GLOBAL_KEYS
        .iter()
        .copied()
        .filter(|name| *name != "device")
        .collect();
    let allowed = [
        &globals[..],
        keys::OUTPUT_KEYS,
        &["record", "status", "output"],
    ]
    .concat();
    for (name, value) in table {
        if name == "output" {
            outputs = Some(output_tables(&keys::join(&prefix, "output"), value, errors));
        } else {
            level_key(&prefix, &name, value, &allowed, &mut layer, errors);
        }
    }
    DeviceTable {
        key,
        layer,
        outputs,
    }
}

/// Reads one key of the top level or a device table.
fn level_key(
    prefix: &str,
    key: &str,
    value: Value,
    allowed: &[&str],
    layer: &mut Layer,
    errors: &mut Errors,
) {
    let path = keys::join(prefix, key);
    let sub_keys = match key {
        "record" => Some(keys::RECORD_KEYS),
        "status" => Some(keys::STATUS_KEYS),
        _ => None,
    };
    if let Some(sub_keys) = sub_keys {
        let Value::Table(table) = value else {
            errors.at(&path, format!("expected a table: [{key}]"));
            return;
        };
        for (name, value) in table {
            let sub_path = keys::join(&path, &name);
            if sub_keys.contains(&name.as_str()) {
                let entry = Entry {
                    value,
                    path: sub_path,
                };
                layer.insert(format!("{key}_{name}"), entry);
            } else {
                keys::reject_key(&sub_path, &name, sub_keys, errors);
            }
        }
    } else if allowed.contains(&key) {
        layer.insert(key.to_string(), Entry { value, path });
    } else {
        keys::reject_key(&path, key, allowed, errors);
    }
}

/// Reads an array of `[[output]]` tables.
fn output_tables(prefix: &str, value: Value, errors: &mut Errors) -> Vec<Layer> {
    let Value::Array(items) = value else {
        errors.at(prefix, "expected [[output]] tables");
        return Vec::new();
    };
    let allowed = [keys::OUTPUT_KEYS, keys::OUTPUT_ONLY_KEYS].concat();
    let mut outputs = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let output_path = format!("{prefix}[{index}]");
        let Value::Table(table) = item else {
            errors.at(&output_path, "expected an [[output]] table");
            continue;
        };
        let mut layer = Layer::new();
        for (key, value) in table {
            let path = keys::join(&output_path, &key);
            if allowed.contains(&key.as_str()) {
                layer.insert(key, Entry { value, path });
            } else {
                keys::reject_key(&path, &key, &allowed, errors);
            }
        }
        outputs.push(layer);
    }
    outputs
}

/// Picks the device table for `device`, if one matches.
fn select_device(
    document: &Document,
    device: Option<&str>,
    dirs: &DeviceDirs,
    errors: &mut Errors,
) -> Option<usize> {
    let device = device
        .map(str::to_string)
        .or_else(|| text_of(&document.top, "device"))?;
    let names: Vec<&str> = document.devices.iter().map(|t| t.key.as_str()).collect();
    let found = device::matching_keys(&device, &names, dirs);
    if found.len() > 1 {
        let list: Vec<String> = found.iter().map(|key| format!("device.{key:?}")).collect();
        errors.at(
            "device",
            format!(
                "{} tables match the device {device}: {}; keep one of them",
                found.len(),
                list.join(", ")
            ),
        );
    }
    let key = found.first()?;
    names.iter().position(|name| name == key)
}

fn text_of(layer: &Layer, key: &str) -> Option<String> {
    layer.get(key)?.value.as_str().map(str::to_string)
}

/// Turns the levels that apply into a `Config`, noting every problem.
fn resolve(
    document: &Document,
    device_table: Option<usize>,
    request: &Request,
    env: EnvLookup<'_>,
    errors: &mut Errors,
) -> Option<Loaded> {
    let table = device_table.map(|index| &document.devices[index]);
    let (global, defaults) = split_scopes(&document.top);
    let (device_global, device_defaults) = table
        .map(|table| split_scopes(&table.layer))
        .unwrap_or_default();
    let global = keys::overlay(&global, &device_global);
    let defaults = keys::overlay(&defaults, &device_defaults);
    let (output_layers, output_prefix) = match table {
        Some(
            table @ DeviceTable {
                outputs: Some(outputs),
                ..
            },
        ) => (outputs, format!("device.{:?}.output", table.key)),
        _ => (&document.outputs, "output".to_string()),
    };

    let mut args = default_args();
    apply_global(&mut args, &global, errors);
    apply_request(&mut args, request);
    if args.device.is_none() {
        errors.at(
            "device",
            "missing: give --device (such as --device /dev/video0 or --device test), or set \
             device = \"...\" at the top level",
        );
        return None;
    }
    let api_key = secret_source(&global, "api_key", errors);
    args.api.api_key_source = api_key;

    let name = |key: &'static str| display_key(key);
    let global_parts = match build::global_parts(&args, env, &name) {
        Ok(parts) => Some(parts),
        Err(problems) => {
            report(&problems, &global, request, errors);
            None
        }
    };
    let built = outputs::build_all(
        &args,
        &defaults,
        output_layers,
        &output_prefix,
        global_parts.as_ref(),
        env,
        errors,
    );
    check_record_directory(&args, &global, errors);
    if let (Some(_), Some(entry)) = (&args.source, global.get("api_ca_file")) {
        check_ca_file(entry, errors);
    }
    let global_parts = global_parts?;
    let built = built?;
    let config = build::assemble(&args, global_parts, built.configs);
    let mut summary = vec![run_summary(&config, &args)];
    summary.extend(built.summary);
    Some(Loaded {
        config,
        global,
        outputs: built.entries,
        summary,
    })
}

/// Checks that the recording directory exists, so `bridge check` finds a
/// missing one. Whether it is writable is checked when a run starts.
fn check_record_directory(args: &RunArgs, layer: &Layer, errors: &mut Errors) {
    let Some(directory) = &args.record else {
        return;
    };
    if directory.as_os_str().is_empty() || directory.is_dir() {
        return;
    }
    let path = layer
        .get("record_directory")
        .map_or("record.directory", |entry| entry.path.as_str());
    errors.at(
        path,
        format!(
            "{} is not an existing directory: create it (mkdir -p) or name another",
            directory.display()
        ),
    );
}

/// Reads the PEM CA bundle a `ca_file` or `api_ca_file` key names, so that
/// `bridge check` finds what the run would reject.
fn check_ca_file(entry: &Entry, errors: &mut Errors) {
    let Some(file) = entry.value.as_str() else {
        return;
    };
    if let Err(reason) = crate::trax::api::read_ca_bundle(Path::new(file)) {
        errors.at(&entry.path, format!("cannot use {file}: {reason}"));
    }
}

/// Splits a level into its run-wide settings and its output defaults.
fn split_scopes(layer: &Layer) -> (Layer, Layer) {
    layer
        .iter()
        .map(|(key, entry)| (key.clone(), entry.clone()))
        .partition(|(key, _)| !keys::OUTPUT_KEYS.contains(&key.as_str()))
}

/// The command line's defaults, as a run without flags would have them.
fn default_args() -> RunArgs {
    use clap::Parser;
    crate::cli::Cli::try_parse_from(["bridge"])
        .map(|cli| cli.run)
        .expect("the command line without flags parses")
}

fn apply_request(args: &mut RunArgs, request: &Request) {
    if let Some(device) = &request.device {
        args.device = Some(device.clone());
    }
    if let Some(duration) = request.duration {
        args.duration = duration;
    }
    if let Some(level) = &request.log_level {
        args.log_level = level.clone();
    }
}

/// How a message names a setting; the key path goes in front of it.
fn display_key(key: &'static str) -> String {
    match key {
        "record_directory" => "record.directory".into(),
        "record_segment" => "record.segment".into(),
        "record_max_size" => "record.max_size".into(),
        "record_max_age" => "record.max_age".into(),
        "status_listen" => "status.listen".into(),
        "looped" => "loop".into(),
        other => other.into(),
    }
}

/// Notes problems from the shared checks under the key path of the value
/// at fault.
fn report(problems: &[Problem], layer: &Layer, request: &Request, errors: &mut Errors) {
    for problem in problems {
        let flag = match problem.key {
            "device" if request.device.is_some() => Some("--device"),
            "duration" if request.duration.is_some() => Some("--duration"),
            "log_level" if request.log_level.is_some() => Some("--log-level"),
            _ => None,
        };
        let path = match (flag, layer.get(problem.key)) {
            (Some(flag), _) => flag.to_string(),
            (None, Some(entry)) => entry.path.clone(),
            (None, None) => display_key(problem.key),
        };
        // Some shared messages start with the setting's name, which the
        // key path already gives.
        let prefix = format!("{}: ", display_key(problem.key));
        let message = problem
            .message
            .strip_prefix(&prefix)
            .unwrap_or(&problem.message);
        errors.at(&path, message);
    }
}

/// Sets the run-wide values of `layer` on `args`.
fn apply_global(args: &mut RunArgs, layer: &Layer, errors: &mut Errors) {
    for (key, entry) in layer {
        if let Err(message) = set_global(args, key, &entry.value) {
            errors.at(&entry.path, message);
        }
    }
}

fn set_global(args: &mut RunArgs, key: &str, value: &Value) -> Result<(), String> {
    use keys::{count, flag, number, text, text_or_number, whole};
    let path = |value: &Value, what: &str| text(value, what).map(PathBuf::from);
    match key {
        "device" => args.device = Some(text(value, "a device such as \"/dev/video0\"")?),
        "loop" => args.looped = flag(value)?,
        "encoder" => args.encoder = text(value, "an encoder name such as \"auto\"")?,
        "size" => args.size = Some(text(value, "WIDTHxHEIGHT such as \"1280x720\"")?),
        "fps" => args.fps = Some(text_or_number(value, "a frame rate such as 30")?),
        "bitrate" => args.bitrate = Some(count(value, "kb/s such as 6000")?),
        "gop" => args.gop = number(value, "seconds such as 2")?,
        "profile" => args.profile = Some(text(value, "a profile such as \"high\"")?),
        "audio" => args.audio = text(value, "\"auto\", \"none\" or an ALSA device")?,
        "audio_bitrate" => args.audio_bitrate = count(value, "kb/s such as 128")?,
        "opus_bitrate" => args.opus_bitrate = count(value, "kb/s such as 96")?,
        "av_offset_ms" => args.av_offset_ms = whole(value, "milliseconds such as 0")?,
        "reconnect_initial_delay" => {
            args.reconnect_initial_delay = number(value, "seconds such as 0.5")?
        }
        "reconnect_max_delay" => args.reconnect_max_delay = number(value, "seconds such as 10")?,
        "status_interval" => args.status_interval = number(value, "seconds such as 10")?,
        "duration" => args.duration = number(value, "seconds, or 0")?,
        "log_level" => args.log_level = text(value, "a log level such as \"info\"")?,
        "source" => args.source = Some(text(value, "a TRaX source id")?),
        "api_url" => args.api.api_url = text(value, "an origin such as \"https://api.example\"")?,
        "api_ca_file" => args.api.api_ca_file = Some(path(value, "a file path")?),
        "api_timeout" => args.api.api_timeout = number(value, "seconds such as 10")?,
        "state_dir" => args.api.state_dir = Some(path(value, "a directory path")?),
        // Read by `bridge login` and `bridge logout`; a run takes the
        // issuer and client id from the stored login.
        "oauth_issuer" | "oauth_client_id" | "oauth_ca_file" => {
            text(value, "a URL, client id or file path")?;
        }
        "record_directory" => args.record = Some(path(value, "a directory path")?),
        "record_segment" => args.record_segment = number(value, "seconds such as 60")?,
        "record_max_size" => args.record_max_size = Some(text(value, "a size such as \"20G\"")?),
        "record_max_age" => args.record_max_age = Some(text(value, "an age such as \"7d\"")?),
        "status_listen" => {
            args.status_listen = Some(text(value, "an address such as \"127.0.0.1:8181\"")?)
        }
        // The API key's source is read by `secret_source`.
        _ => {}
    }
    Ok(())
}

/// The one source a level names for the secret whose keys start with
/// `base` (`token`, `api_key`), if any.
fn secret_source(layer: &Layer, base: &str, errors: &mut Errors) -> Option<NamedSource> {
    let given: Vec<(&str, &Entry)> = ["file", "env", "credential"]
        .into_iter()
        .filter_map(|kind| {
            layer
                .get(&format!("{base}_{kind}"))
                .map(|entry| (kind, entry))
        })
        .collect();
    if given.len() > 1 {
        let paths: Vec<&str> = given.iter().map(|(_, entry)| entry.path.as_str()).collect();
        errors.at(
            paths[0],
            format!(
                "{} name the same secret; keep one of them",
                paths.join(" and ")
            ),
        );
        return None;
    }
    let (kind, entry) = given.first()?;
    let what = match *kind {
        "file" => "the path of a file that contains only the secret",
        "env" => "the name of an environment variable",
        _ => "the name of a systemd credential",
    };
    let name = match keys::text(&entry.value, what) {
        Ok(name) if !name.trim().is_empty() => name,
        Ok(_) => {
            errors.at(&entry.path, format!("empty: give {what}"));
            return None;
        }
        Err(message) => {
            errors.at(&entry.path, message);
            return None;
        }
    };
    // A secret typed where its source's name belongs would be shown by
    // every message and summary that names the source, so it is not.
    let move_it = format!(
        "if it is the secret itself, remove it from the config file, put it in a file \
         readable only by the bridge and set {base}_file"
    );
    if *kind == "env" && !is_env_name(&name) {
        errors.at(
            &entry.path,
            format!(
                "not an environment variable name (letters, digits and '_', not starting \
                 with a digit); {move_it}"
            ),
        );
        return None;
    }
    if *kind == "credential" && (name.starts_with("eyJ") || name.starts_with("sk_")) {
        errors.at(
            &entry.path,
            format!("looks like the secret itself, not a systemd credential's name; {move_it}"),
        );
        return None;
    }
    Some(match *kind {
        "file" => NamedSource::File(PathBuf::from(name)),
        "env" => NamedSource::Env(name),
        _ => NamedSource::Credential(name),
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a secret from the source a level names; a named source that
/// holds nothing is an error, since the file asked for it.
fn read_named(
    source: &NamedSource,
    kind: &'static str,
    path: &str,
    env: EnvLookup<'_>,
    errors: &mut Errors,
) -> Option<super::Secret> {
    match read_secret(&source.as_source(kind), env) {
        Ok(Some(secret)) => Some(secret),
        Ok(None) => {
            let missing = match source {
                NamedSource::Env(name) => format!("the environment variable {name} is not set"),
                NamedSource::Credential(name) => format!(
                    "the systemd credential {name} is not in $CREDENTIALS_DIRECTORY; add \
                     LoadCredential={name}:/path or SetCredentialEncrypted= to the unit"
                ),
                NamedSource::File(file) => format!("{} is empty", file.display()),
            };
            errors.at(path, format!("no {kind}: {missing}"));
            None
        }
        Err(error) => {
            errors.at(path, error);
            None
        }
    }
}

fn run_summary(config: &Config, args: &RunArgs) -> String {
    let mut line = format!(
        "device {}, encoder {}",
        args.device.as_deref().unwrap_or("?"),
        args.encoder
    );
    if let Some(size) = &args.size {
        line += &format!(", size {size}");
    }
    if let Some(fps) = &args.fps {
        line += &format!(", {fps} fps");
    }
    if let Some(bitrate) = config.bitrate_kbps {
        line += &format!(", {bitrate} kb/s");
    }
    line += &format!(", profile {}", config.profile.caps_name());
    if let Some(record) = &config.record {
        line += &format!(", recording to {}", record.directory.display());
    }
    if let Some(listen) = config.status_listen {
        line += &format!(", status on {listen}");
    }
    if let Some(source) = &config.source_id {
        line += &format!(", credentials from the API for source {source}");
    }
    line
}

/// The login settings of a config file's top level.
#[derive(Debug, Default)]
pub struct OAuthKeys {
    pub oauth_issuer: Option<String>,
    pub oauth_client_id: Option<String>,
    pub oauth_ca_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

/// Reads the login settings (`oauth_issuer`, `oauth_client_id`,
/// `oauth_ca_file`, `state_dir`) from the top level of `path`, for `bridge
/// login` and `bridge logout`. The rest of the file is checked by a run and
/// by `bridge check`.
pub fn oauth_keys(path: &Path) -> Result<OAuthKeys, ConfigError> {
    let (document, mut errors) = read(path)?;
    let mut keys = OAuthKeys::default();
    for (key, entry) in &document.top {
        let slot = match key.as_str() {
            "oauth_issuer" => &mut keys.oauth_issuer,
            "oauth_client_id" => &mut keys.oauth_client_id,
            "oauth_ca_file" | "state_dir" => {
                match keys::text(&entry.value, "a path") {
                    Ok(text) if key == "oauth_ca_file" => keys.oauth_ca_file = Some(text.into()),
                    Ok(text) => keys.state_dir = Some(text.into()),
                    Err(message) => errors.at(&entry.path, message),
                }
                continue;
            }
            _ => continue,
        };
        match keys::text(&entry.value, "a string") {
            Ok(text) => *slot = Some(text),
            Err(message) => errors.at(&entry.path, message),
        }
    }
    finish(path, Some(keys), errors)
}
