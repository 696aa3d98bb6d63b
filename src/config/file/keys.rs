//! The keys a config file may use, read into layers that remember where
//! each value came from, so every error names its key path.

use std::collections::BTreeMap;
use toml::Value;

/// Settings for the whole run, allowed at the top level and in
/// `[device."KEY"]` tables.
pub const GLOBAL_KEYS: &[&str] = &[
    "device",
    "loop",
    "encoder",
    "size",
    "fps",
    "bitrate",
    "gop",
    "profile",
    "audio",
    "audio_bitrate",
    "opus_bitrate",
    "av_offset_ms",
    "reconnect_initial_delay",
    "reconnect_max_delay",
    "status_interval",
    "duration",
    "log_level",
    "source",
    "api_url",
    "api_ca_file",
    "api_timeout",
    "api_key_file",
    "api_key_env",
    "api_key_credential",
    "state_dir",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_ca_file",
];

/// Keys of the `[record]` table, stored in a layer as `record_<key>`.
pub const RECORD_KEYS: &[&str] = &["directory", "segment", "max_size", "max_age"];

/// Keys of the `[status]` table, stored in a layer as `status_<key>`.
pub const STATUS_KEYS: &[&str] = &["listen"];

/// Settings of one output. At the top level or in a device table they are
/// the defaults of that level's outputs.
pub const OUTPUT_KEYS: &[&str] = &[
    "path",
    "latency",
    "pbkeylen",
    "rtmp_credentials",
    "ca_file",
    "ice_servers",
    "ice_addresses",
    "turn_username",
    "whip_cross_origin",
    "token_file",
    "token_env",
    "token_credential",
    "stream_key_file",
    "stream_key_env",
    "stream_key_credential",
    "passphrase_file",
    "passphrase_env",
    "passphrase_credential",
    "turn_credential_file",
    "turn_credential_env",
    "turn_credential_credential",
];

/// Keys only an `[[output]]` table has.
pub const OUTPUT_ONLY_KEYS: &[&str] = &["name", "url"];

/// Groups of secret-source keys. An output that names any key of a group
/// ignores that group's keys in the levels above it.
pub const SECRET_GROUPS: &[&[&str]] = &[
    &[
        "token_file",
        "token_env",
        "token_credential",
        "stream_key_file",
        "stream_key_env",
        "stream_key_credential",
    ],
    &["passphrase_file", "passphrase_env", "passphrase_credential"],
    &[
        "turn_credential_file",
        "turn_credential_env",
        "turn_credential_credential",
    ],
];

/// Keys that would put a secret's value into the file, with the secret's
/// kind (with its article) and the key prefix of its sources.
const INLINE_SECRETS: &[(&str, &str, &str)] = &[
    ("token", "a session token", "token"),
    ("session_token", "a session token", "token"),
    ("jwt", "a session token", "token"),
    ("stream_key", "a stream key", "stream_key"),
    ("key", "a stream key", "stream_key"),
    ("passphrase", "an SRT passphrase", "passphrase"),
    ("password", "a password", "turn_credential"),
    ("turn_credential", "a TURN password", "turn_credential"),
    ("turn_password", "a TURN password", "turn_credential"),
    ("api_key", "an API key", "api_key"),
];

/// A value and its key path, such as `device."usb-cam".output[1].latency`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    pub path: String,
}

/// The settings of one level, by key.
pub type Layer = BTreeMap<String, Entry>;

/// Collects every problem of a file, each with its key path.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<String>);

impl Errors {
    pub fn at(&mut self, path: &str, message: impl std::fmt::Display) {
        self.0.push(format!("{path}: {message}"));
    }
}

/// Joins a key path and a key, quoting the key where TOML needs it.
pub fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// Reports a key that is not one of `allowed`: a secret's value, or an
/// unknown key with the closest known one.
pub fn reject_key(path: &str, key: &str, allowed: &[&str], errors: &mut Errors) {
    if let Some((_, kind, base)) = INLINE_SECRETS.iter().find(|(name, ..)| *name == key) {
        errors.at(
            path,
            format!(
                "{kind} may not be written into the config file, where backups and \
                 logs of the file would carry it; put it in a file readable only by the \
                 bridge and set {base}_file = \"/etc/bridge/...\", or name an environment \
                 variable with {base}_env or a systemd credential with {base}_credential"
            ),
        );
        return;
    }
    if let Some(place) = misplaced(key, allowed) {
        errors.at(path, place);
        return;
    }
    match closest(key, allowed) {
        Some(known) => errors.at(path, format!("unknown key; did you mean `{known}`?")),
        None => errors.at(
            path,
            "unknown key; examples/bridge.toml lists every key".to_string(),
        ),
    }
}

/// Says where a key that another level takes belongs, if it is one.
fn misplaced(key: &str, allowed: &[&str]) -> Option<&'static str> {
    // The top level and device tables take the run-wide settings; output
    // tables and the [record] and [status] tables do not.
    let run_wide_level = allowed.contains(&"bitrate");
    let run_wide_key = GLOBAL_KEYS.contains(&key) || key == "record" || key == "status";
    if OUTPUT_ONLY_KEYS.contains(&key) {
        Some("belongs in an [[output]] table: put it after an [[output]] line")
    } else if run_wide_level && RECORD_KEYS.contains(&key) {
        Some("belongs in the [record] table: put it after a [record] line")
    } else if run_wide_level && STATUS_KEYS.contains(&key) {
        Some("belongs in the [status] table: put it after a [status] line")
    } else if run_wide_level && key == "device" {
        Some("a device table applies to the device its key names; drop it")
    } else if !run_wide_level && run_wide_key {
        Some(
            "a run-wide setting, not an output's: set it at the top level or in a \
             [device.\"KEY\"] table",
        )
    } else {
        None
    }
}

/// Finds the known key closest to `key`, if it is close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Puts `upper` over `lower`: a key of `upper` wins, and a secret group
/// named in `upper` drops that group's keys from `lower`.
pub fn overlay(lower: &Layer, upper: &Layer) -> Layer {
    let mut merged = lower.clone();
    for group in SECRET_GROUPS {
        if group.iter().any(|key| upper.contains_key(*key)) {
            for key in *group {
                merged.remove(*key);
            }
        }
    }
    for (key, entry) in upper {
        merged.insert(key.clone(), entry.clone());
    }
    merged
}

fn found(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number with a fraction",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// The value as text; `expected` describes it for the error.
pub fn text(value: &Value, expected: &str) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => Err(format!("expected {expected}, found {}", found(other))),
    }
}

/// A string, or a number written as one (`fps = 30` or `fps = "30000/1001"`).
pub fn text_or_number(value: &Value, expected: &str) -> Result<String, String> {
    match value {
        Value::Integer(number) => Ok(number.to_string()),
        Value::Float(number) => Ok(number.to_string()),
        other => text(other, expected),
    }
}

pub fn whole(value: &Value, expected: &str) -> Result<i64, String> {
    match value {
        Value::Integer(number) => Ok(*number),
        other => Err(format!("expected {expected}, found {}", found(other))),
    }
}

/// A whole number that fits a `u32`.
pub fn count(value: &Value, expected: &str) -> Result<u32, String> {
    let number = whole(value, expected)?;
    u32::try_from(number).map_err(|_| format!("invalid value {number}: expected {expected}"))
}

/// A number, whole or not.
pub fn number(value: &Value, expected: &str) -> Result<f64, String> {
    match value {
        Value::Integer(number) => Ok(*number as f64),
        Value::Float(number) => Ok(*number),
        other => Err(format!("expected {expected}, found {}", found(other))),
    }
}

pub fn flag(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(flag) => Ok(*flag),
        other => Err(format!("expected true or false, found {}", found(other))),
    }
}

pub fn text_list(value: &Value, expected: &str) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items.iter().map(|item| text(item, expected)).collect(),
        other => Err(format!(
            "expected an array of {expected}, found {}",
            found(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggests_known_key() {
        assert_eq!(closest("bitrat", GLOBAL_KEYS), Some("bitrate"));
        assert_eq!(closest("latncy", OUTPUT_KEYS), Some("latency"));
        assert_eq!(closest("colour", GLOBAL_KEYS), None);
    }

    #[test]
    fn key_paths_quote_odd_keys() {
        assert_eq!(join("", "bitrate"), "bitrate");
        assert_eq!(join("device", "usb-cam"), "device.usb-cam");
        assert_eq!(join("device", "/dev/video0"), "device.\"/dev/video0\"");
    }
}
