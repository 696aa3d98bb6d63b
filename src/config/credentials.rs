//! Reads secrets from a file, the environment or a systemd credential, in
//! that order. No secret is ever taken from a flag's value.

use super::{ConfigError, Secret};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest secret file read. Tokens, keys and passphrases are far shorter
/// (a streamid is at most 512 bytes), and the bound keeps a mistaken path
/// such as `/dev/zero` or a media file from filling memory.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Where one kind of secret may come from.
pub struct SecretSource<'a> {
    pub kind: &'static str,
    /// The file named by a flag such as `--token-file`.
    pub file: Option<&'a Path>,
    /// The environment variable, such as `TRAX_SESSION_TOKEN`.
    pub env_var: Option<&'a str>,
    /// The systemd credential name, read from `$CREDENTIALS_DIRECTORY`.
    pub credential: Option<&'a str>,
}

/// The one place a config file names for a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedSource {
    File(PathBuf),
    Env(String),
    Credential(String),
}

impl NamedSource {
    /// The source to read a secret of `kind` from.
    pub fn as_source(&self, kind: &'static str) -> SecretSource<'_> {
        let (file, env_var, credential) = match self {
            Self::File(path) => (Some(path.as_path()), None, None),
            Self::Env(name) => (None, Some(name.as_str()), None),
            Self::Credential(name) => (None, None, Some(name.as_str())),
        };
        SecretSource {
            kind,
            file,
            env_var,
            credential,
        }
    }

    /// Where the secret comes from, for messages: never the secret.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => format!("file {}", path.display()),
            Self::Env(name) => format!("environment variable {name}"),
            Self::Credential(name) => format!("systemd credential {name}"),
        }
    }
}

/// Looks up environment variables; tests pass their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the secret, or `None` when no source provides one.
pub fn read_secret(
    source: &SecretSource<'_>,
    env: EnvLookup<'_>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(path) = source.file {
        return read_secret_file(source.kind, path).map(Some);
    }
    if let Some(value) = source.env_var.and_then(env) {
        let value = value.trim();
        if value.is_empty() {
            return Err(ConfigError::EmptySecret {
                kind: source.kind,
                origin: source.env_var.unwrap_or_default().to_string(),
            });
        }
        return Ok(Some(Secret::new(source.kind, value)));
    }
    if let (Some(name), Some(directory)) = (source.credential, env("CREDENTIALS_DIRECTORY")) {
        let path = PathBuf::from(directory).join(name);
        if path.exists() {
            return read_secret_file(source.kind, &path).map(Some);
        }
    }
    Ok(None)
}

fn read_secret_file(kind: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let file_error = |reason: String| ConfigError::SecretFile {
        kind,
        path: path.to_path_buf(),
        reason,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_SECRET_FILE_BYTES + 1)
                .read_to_string(&mut text)
        })
        .map_err(|error| file_error(error.to_string()))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(file_error(format!(
            "it is longer than {MAX_SECRET_FILE_BYTES} bytes; put only the secret in it"
        )));
    }
    warn_if_readable_by_others(kind, path);
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::EmptySecret {
            kind,
            origin: path.display().to_string(),
        });
    }
    if value.contains('\n') {
        return Err(file_error(
            "it has more than one line; put only the secret in it".into(),
        ));
    }
    Ok(Secret::new(kind, value))
}

#[cfg(unix)]
fn warn_if_readable_by_others(kind: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the {kind} file is readable by every user; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_kind: &str, _path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(file: Option<&Path>) -> SecretSource<'_> {
        SecretSource {
            kind: "session token",
            file,
            env_var: Some("TRAX_SESSION_TOKEN"),
            credential: Some("trax-session-token"),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_wins_over_environment() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let env = env_of(&[("TRAX_SESSION_TOKEN", "from-env")]);
        let lookup = |name: &str| env.get(name).cloned();
        let secret = read_secret(&source(Some(&path)), &lookup).unwrap().unwrap();
        assert_eq!(secret.expose(), "from-file");
    }

    #[test]
    fn environment_then_systemd_credential() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("trax-session-token"), "from-cred").unwrap();
        let credentials = directory.path().to_str().unwrap();

        let env = env_of(&[
            ("TRAX_SESSION_TOKEN", " from-env "),
            ("CREDENTIALS_DIRECTORY", credentials),
        ]);
        let lookup = |name: &str| env.get(name).cloned();
        let secret = read_secret(&source(None), &lookup).unwrap().unwrap();
        assert_eq!(secret.expose(), "from-env");

        let env = env_of(&[("CREDENTIALS_DIRECTORY", credentials)]);
        let lookup = |name: &str| env.get(name).cloned();
        let secret = read_secret(&source(None), &lookup).unwrap().unwrap();
        assert_eq!(secret.expose(), "from-cred");
    }

    #[test]
    fn missing_everywhere_is_none() {
        let lookup = |_: &str| None;
        assert!(read_secret(&source(None), &lookup).unwrap().is_none());
    }

    #[test]
    fn bad_files_name_path_not_secret() {
        let directory = tempfile::tempdir().unwrap();
        let lookup = |_: &str| None;

        let missing = directory.path().join("absent");
        let error = read_secret(&source(Some(&missing)), &lookup).unwrap_err();
        assert!(error.to_string().contains("absent"), "{error}");

        let empty = directory.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = read_secret(&source(Some(&empty)), &lookup).unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");

        let two_lines = directory.path().join("two");
        std::fs::write(&two_lines, "secret-one\nsecret-two\n").unwrap();
        let error = read_secret(&source(Some(&two_lines)), &lookup).unwrap_err();
        assert!(!error.to_string().contains("secret-one"), "{error}");
    }

    #[test]
    fn oversized_file_is_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let lookup = |_: &str| None;
        let huge = directory.path().join("huge");
        std::fs::write(&huge, "a".repeat(1024 * 1024)).unwrap();

        let error = read_secret(&source(Some(&huge)), &lookup).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("huge"), "{message}");
        assert!(message.contains("longer than 65536 bytes"), "{message}");
        assert!(!message.contains("aaaa"), "{message}");
    }
}
