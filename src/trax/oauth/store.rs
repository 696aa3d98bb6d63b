//! Storage of a user's tokens between runs: the OS keystore where one
//! is reachable (Secret Service on Linux, the Keychain on macOS), otherwise
//! a JSON file only its owner may read.

use super::error::OAuthError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::warn;

/// Name of the token file in its directory.
pub const TOKEN_FILE_NAME: &str = "oauth-login.json";

/// Keystore service and account names of the stored login.
const KEYRING_SERVICE: &str = "bridge";
const KEYRING_ACCOUNT: &str = "trax-oauth-login";

/// A user's login: where it came from, the tokens and who they belong to.
#[derive(Clone, Deserialize, Serialize)]
pub struct StoredLogin {
    pub issuer: String,
    pub client_id: String,
    pub token_endpoint: String,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    /// The CA file the login used, so that refreshes trust the same CA.
    pub ca_file: Option<PathBuf>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Expiry of the access token, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// The user's subject, name and email from the verified ID token.
    pub subject: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("subject", &self.subject)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl StoredLogin {
    /// Returns who is logged in, for messages: name and email where known.
    pub fn who(&self) -> String {
        match (&self.name, &self.email, &self.subject) {
            (Some(name), Some(email), _) => format!("{name} <{email}>"),
            (None, Some(email), _) => email.clone(),
            (Some(name), None, _) => name.clone(),
            (None, None, Some(subject)) => format!("subject {subject}"),
            (None, None, None) => "an unknown user".into(),
        }
    }
}

/// Returns the seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The place of the stored login.
#[derive(Clone, Debug)]
pub enum TokenStore {
    /// The OS keystore, with the file as a fallback when it fails.
    Keyring { fallback: PathBuf },
    /// An owner-only JSON file.
    File(PathBuf),
}

impl TokenStore {
    /// Picks the store: a file in `state_dir` when one is given (or
    /// `$STATE_DIRECTORY` under systemd), else the keystore when this
    /// session has one, else the file in the user's state directory.
    pub fn locate(state_dir: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Self {
        if let Some(dir) = state_dir {
            return Self::File(dir.join(TOKEN_FILE_NAME));
        }
        if let Some(dir) = env("STATE_DIRECTORY").and_then(|dirs| first_dir(&dirs)) {
            return Self::File(dir.join(TOKEN_FILE_NAME));
        }
        let file = default_state_dir(env).join(TOKEN_FILE_NAME);
        if keystore_reachable(env) {
            Self::Keyring { fallback: file }
        } else {
            Self::File(file)
        }
    }

    /// Returns the token file this store writes, or falls back to.
    pub fn file_path(&self) -> &Path {
        match self {
            Self::Keyring { fallback } => fallback,
            Self::File(path) => path,
        }
    }

    /// Returns a place for messages: the file's path or the keystore.
    pub fn describe(&self) -> String {
        match self {
            Self::Keyring { .. } => KEYSTORE.into(),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// Returns whether a login is stored, without reading the tokens. A
    /// keystore that fails counts as containing one, so that [`Self::load`]
    /// reports why it cannot be read in place of "not logged in".
    pub fn has_login(&self) -> bool {
        if self.file_path().exists() {
            return true;
        }
        match self {
            Self::Keyring { .. } => !matches!(
                keyring_entry().and_then(|entry| entry.get_password()),
                Err(keyring::Error::NoEntry)
            ),
            Self::File(_) => false,
        }
    }

    /// Reads the stored login, `None` when there is none.
    pub fn load(&self) -> Result<Option<StoredLogin>, OAuthError> {
        Ok(self.load_with_place()?.map(|(login, _)| login))
    }

    /// Reads the stored login and returns it with its place for messages,
    /// `None` when there is none.
    ///
    /// With the keystore, the fallback file comes first: it exists only
    /// when the last save could not reach the keystore (a save to the
    /// keystore deletes it), so it is newer than any login the keystore
    /// still has. A keystore that fails without such a file is an error,
    /// because a login may be in it.
    pub fn load_with_place(&self) -> Result<Option<(StoredLogin, String)>, OAuthError> {
        let file = self.file_path();
        let Self::Keyring { .. } = self else {
            return Ok(read_file(file)?.map(|login| (login, self.describe())));
        };
        if let Some(login) = read_file(file)? {
            return Ok(Some((login, file.display().to_string())));
        }
        match keyring_entry().and_then(|entry| entry.get_password()) {
            Ok(json) => Ok(Some((parse(&json, KEYSTORE)?, KEYSTORE.into()))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(keystore_error(&error)),
        }
    }

    /// Stores `login`, replacing any earlier one. Returns where it went.
    ///
    /// When the keystore fails (locked, stopped, or the bus address leads
    /// nowhere), the login goes to the fallback file with a warning. The
    /// tokens must not be lost: a refresh may have rotated the refresh
    /// token, and a stream that is on air needs the new one.
    pub fn save(&self, login: &StoredLogin) -> Result<String, OAuthError> {
        let json = serde_json::to_string_pretty(login).expect("a login serializes");
        if let Self::Keyring { fallback } = self {
            match keyring_entry().and_then(|entry| entry.set_password(&json)) {
                Ok(()) => {
                    remove_file(fallback)?;
                    return Ok(KEYSTORE.into());
                }
                Err(error) => warn!(
                    error = %error,
                    file = %fallback.display(),
                    "cannot store the login in the system keystore; storing it in an owner-only \
                     file instead"
                ),
            }
        }
        write_file(self.file_path(), &json)?;
        Ok(self.file_path().display().to_string())
    }

    /// Checks that the token file's directory exists or can be created and
    /// takes new files, so that a login is not lost at its end. The keystore
    /// is not checked, since the file is only its fallback.
    pub fn check_writable(&self) -> Result<(), OAuthError> {
        let Self::File(path) = self else {
            return Ok(());
        };
        let file_error = |reason: String| OAuthError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir_error = |reason: String| OAuthError::StateDir {
            path: dir.to_path_buf(),
            reason,
        };
        create_private_dir(dir).map_err(|error| {
            dir_error(format!(
                "cannot create it: {error}; give --state-dir (or state_dir) a directory \
                 this user can create or write"
            ))
        })?;
        check_dir_permissions(dir)?;
        let probe = dir.join(format!(".{TOKEN_FILE_NAME}.{}.probe", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::NotADirectory {
                    return dir_error(
                        "it is not a directory: give --state-dir (or state_dir) a directory".into(),
                    );
                }
                file_error(format!(
                    "{error}: make {} writable for this user, or give --state-dir another \
                     directory",
                    dir.display()
                ))
            })?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// Takes an exclusive lock that serialises refreshes across processes,
    /// as of several services that share one state directory, or several
    /// runs of one desktop session that share the keystore. A refresh
    /// token that rotates must not be used twice. The lock file sits in
    /// the token file's directory, the fallback file's with the keystore.
    pub fn lock_for_refresh(&self) -> Result<fs::File, OAuthError> {
        let dir = self.file_path().parent().unwrap_or(Path::new("."));
        let lock_path = dir.join(format!(".{TOKEN_FILE_NAME}.lock"));
        let lock_error = |reason: String| OAuthError::TokenFile {
            path: lock_path.clone(),
            reason,
        };
        create_private_dir(dir)
            .map_err(|error| lock_error(format!("cannot create its directory: {error}")))?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|error| lock_error(format!("{error}: check the directory's permissions")))?;
        hand_to_directory_owner(&lock_path, dir).map_err(|error| lock_error(error.to_string()))?;
        // SAFETY: flock on a descriptor this function owns; the lock ends
        // when the returned file is dropped.
        let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if locked != 0 {
            return Err(lock_error(std::io::Error::last_os_error().to_string()));
        }
        Ok(file)
    }

    /// Deletes the stored login wherever it is. Returns whether one existed.
    /// A keystore that fails is only logged, because the login it may
    /// hold is unreachable to this process as well.
    pub fn delete(&self) -> Result<bool, OAuthError> {
        let mut deleted = false;
        if let Self::Keyring { .. } = self {
            match keyring_entry().and_then(|entry| entry.delete_credential()) {
                Ok(()) => deleted = true,
                Err(keyring::Error::NoEntry) => {}
                Err(error) => warn!(
                    error = %error,
                    "cannot delete the login from the system keystore; delete the item \
                     service=bridge username={KEYRING_ACCOUNT} there yourself"
                ),
            }
        }
        Ok(remove_file(self.file_path())? || deleted)
    }
}

/// The keystore's name in messages.
const KEYSTORE: &str = "the system keystore";

/// Converts a keystore failure into an error with the fix.
fn keystore_error(error: &keyring::Error) -> OAuthError {
    let fix = match error {
        keyring::Error::NoStorageAccess(_) => {
            "the keystore is locked or denied access: unlock it (log in to the desktop, or \
             unlock the login keyring), or give --state-dir DIR and run `bridge login` again to \
             keep the tokens in a file"
        }
        keyring::Error::PlatformFailure(_) => {
            "no Secret Service answers on the D-Bus session bus of DBUS_SESSION_BUS_ADDRESS: \
             start the desktop's keyring, or unset DBUS_SESSION_BUS_ADDRESS (or give --state-dir \
             DIR) and run `bridge login` again to keep the tokens in a file"
        }
        _ => {
            "delete the keystore's items with service=bridge and username=trax-oauth-login \
             (such as with `secret-tool clear service bridge username trax-oauth-login`), then \
             run `bridge login` again"
        }
    };
    OAuthError::Keystore {
        cause: error.to_string(),
        fix,
    }
}

fn first_dir(dirs: &str) -> Option<PathBuf> {
    dirs.split(':')
        .find(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_STATE_HOME/bridge`, else `~/.local/state/bridge`.
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("XDG_STATE_HOME").filter(|dir| dir.starts_with('/')) {
        return PathBuf::from(dir).join("bridge");
    }
    let home = env("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".local/state/bridge")
}

/// Returns whether a keystore may respond: the Keychain on macOS, a D-Bus session
/// bus (for Secret Service) on Linux. Without one, asking would only fail.
fn keystore_reachable(env: &dyn Fn(&str) -> Option<String>) -> bool {
    if cfg!(target_os = "macos") {
        return true;
    }
    env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|address| !address.is_empty())
}

// NOTE: tests/oauth_keystore.rs runs this against gnome-keyring-daemon
// (Secret Service) on a private session bus. The macOS Keychain has not run.
fn keyring_entry() -> keyring::Result<keyring::Entry> {
    keyring::Entry::new(KEYRING_SERVICE, KEYRING_ACCOUNT)
}

fn parse(json: &str, place: &str) -> Result<StoredLogin, OAuthError> {
    serde_json::from_str(json).map_err(|error| OAuthError::TokenFile {
        path: PathBuf::from(place),
        reason: format!(
            "it is not a stored login ({}): delete it and run `bridge login` again",
            json_error_kind(&error)
        ),
    })
}

/// Names the kind of JSON error without quoting the text, which contains
/// tokens.
fn json_error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "fields missing or of the wrong type",
        serde_json::error::Category::Eof => "cut short",
    }
}

/// Reads the token file, rejecting one that others may read or write or
/// that another user owns.
fn read_file(path: &Path) -> Result<Option<StoredLogin>, OAuthError> {
    let file_error = |reason: String| OAuthError::TokenFile {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            let dir = path.parent().unwrap_or(Path::new("."));
            return Err(OAuthError::StateDir {
                path: dir.to_path_buf(),
                reason: "it is not a directory: give --state-dir (or state_dir) a directory".into(),
            });
        }
        Err(error) => return Err(file_error(format!("{error}: check its permissions"))),
    };
    check_dir_permissions(path.parent().unwrap_or(Path::new(".")))?;
    if !metadata.is_file() {
        return Err(file_error("it is not a regular file: remove it".into()));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(OAuthError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    check_owner(path, &metadata)?;
    let bytes =
        fs::read(path).map_err(|error| file_error(format!("{error}: check its permissions")))?;
    let Ok(json) = String::from_utf8(bytes) else {
        return Err(file_error(
            "it is not a stored login (not UTF-8 text): delete it and run `bridge login` again"
                .into(),
        ));
    };
    parse(&json, &path.display().to_string()).map(Some)
}

/// Rejects a token file that another user owns, because that user could
/// replace the login the bridge acts with. Root may also read a file that
/// the directory's owner owns, since `write_file` hands it to that owner.
fn check_owner(path: &Path, metadata: &fs::Metadata) -> Result<(), OAuthError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let owner = metadata.uid();
    if owner == euid {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir_owner = fs::metadata(dir).map(|dir| dir.uid()).ok();
    if euid == 0 && dir_owner == Some(owner) {
        return Ok(());
    }
    Err(OAuthError::ForeignOwner {
        path: path.to_path_buf(),
        owner,
        user: euid,
    })
}

/// Writes the token file with mode 0600 through a temporary file and a
/// rename, so that a crash leaves the old file or the new one. Written by
/// root into a directory another user owns (a service's state directory),
/// the file goes to that user.
fn write_file(path: &Path, json: &str) -> Result<(), OAuthError> {
    let file_error = |reason: String| OAuthError::TokenFile {
        path: path.to_path_buf(),
        reason,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)
        .map_err(|error| file_error(format!("cannot create its directory: {error}")))?;
    let temporary = dir.join(format!(".{TOKEN_FILE_NAME}.{}", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|error| file_error(format!("{error}: check the directory's permissions")))?;
    let written = file
        .write_all(json.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| hand_to_directory_owner(&temporary, dir))
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(file_error(error.to_string()));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700, unless it exists.
/// Rejects a token file's directory that other users may write, since they
/// could rename a token file of their own into its place. A sticky directory
/// such as /tmp is accepted: there only the owner may rename or delete the
/// file, and `read_file` checks the file's own owner and mode.
fn check_dir_permissions(dir: &Path) -> Result<(), OAuthError> {
    let metadata = match fs::metadata(dir) {
        Ok(metadata) => metadata,
        // A missing directory is checked, or created, where it is used.
        Err(_) => return Ok(()),
    };
    let mode = metadata.permissions().mode();
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(OAuthError::LooseStateDir {
            path: dir.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Gives `file` to the owner of `dir` when root writes into another user's
/// directory.
fn hand_to_directory_owner(file: &Path, dir: &Path) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let owner = fs::metadata(dir)?;
    if euid == 0 && owner.uid() != 0 {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid()))?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<bool, OAuthError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(OAuthError::TokenFile {
            path: path.to_path_buf(),
            reason: format!("cannot delete it: {error}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> StoredLogin {
        StoredLogin {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "bridge-test".into(),
            token_endpoint: "http://127.0.0.1:1/token".into(),
            revocation_endpoint: None,
            end_session_endpoint: None,
            ca_file: None,
            access_token: "access-secret-123".into(),
            refresh_token: Some("refresh-secret-456".into()),
            expires_at: Some(unix_now() + 600),
            subject: Some("user-1".into()),
            name: None,
            email: Some("user@example.com".into()),
        }
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn locate_prefers_state_dir() {
        // A session bus left in a root shell's environment does not move
        // a service's tokens into that session's keystore.
        let env = env_of(&[
            ("STATE_DIRECTORY", "/var/lib/bridge"),
            ("HOME", "/home/u"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus"),
        ]);
        let store = TokenStore::locate(Some(Path::new("/srv/state")), &env);
        assert!(matches!(store, TokenStore::File(_)), "{store:?}");
        assert_eq!(store.file_path(), Path::new("/srv/state/oauth-login.json"));
        let store = TokenStore::locate(None, &env);
        assert!(matches!(store, TokenStore::File(_)), "{store:?}");
        assert_eq!(
            store.file_path(),
            Path::new("/var/lib/bridge/oauth-login.json")
        );
    }

    #[test]
    fn locate_without_session_bus_uses_file() {
        let env = env_of(&[("HOME", "/home/u")]);
        let store = TokenStore::locate(None, &env);
        assert!(matches!(store, TokenStore::File(_)), "{store:?}");
        assert_eq!(
            store.file_path(),
            Path::new("/home/u/.local/state/bridge/oauth-login.json")
        );
        let env = env_of(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/x/state")]);
        let store = TokenStore::locate(None, &env);
        assert_eq!(
            store.file_path(),
            Path::new("/x/state/bridge/oauth-login.json")
        );
    }

    #[test]
    fn file_round_trip_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(dir.path().join("sub/oauth-login.json"));
        store.save(&login()).unwrap();
        let mode = fs::metadata(store.file_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.access_token, "access-secret-123");
        assert!(store.delete().unwrap());
        assert!(store.load().unwrap().is_none());
        assert!(!store.delete().unwrap());
    }

    #[test]
    fn file_goes_to_directory_owner() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        // Root writes into a directory that uid 65534 owns, as an
        // operator's `sudo bridge login --state-dir /var/lib/bridge` does.
        // Any other user keeps its own files.
        let expected_uid = if euid == 0 {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
            65534
        } else {
            euid
        };
        let store = TokenStore::File(dir.path().join(TOKEN_FILE_NAME));
        store.save(&login()).unwrap();
        let metadata = fs::metadata(store.file_path()).unwrap();
        assert_eq!(metadata.uid(), expected_uid);
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert!(store.load().unwrap().is_some());
    }

    #[test]
    fn foreign_owner_rejected() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE_NAME);
        let store = TokenStore::File(path.clone());
        store.save(&login()).unwrap();
        let error = if euid == 0 {
            // Root's own directory, with a file that uid 65534 owns.
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            store.load().unwrap_err()
        } else {
            // Any other user checks a file that root owns.
            let root_file = Path::new("/etc/passwd");
            check_owner(root_file, &fs::metadata(root_file).unwrap()).unwrap_err()
        };
        let text = error.to_string();
        assert!(text.contains("owned by uid"), "{text}");
        assert!(text.contains(&format!("chown {euid}")), "{text}");
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
    }

    #[test]
    fn binary_file_is_not_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE_NAME);
        fs::write(&path, b"\xff\xfe\x00").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let text = TokenStore::File(path).load().unwrap_err().to_string();
        assert!(text.contains("not UTF-8"), "{text}");
        assert!(text.contains("bridge login"), "{text}");
        assert!(!text.contains("permissions"), "{text}");
    }

    #[test]
    fn state_dir_that_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("plain-file");
        fs::write(&not_a_dir, "").unwrap();
        let store = TokenStore::File(not_a_dir.join(TOKEN_FILE_NAME));
        let text = store.load().unwrap_err().to_string();
        assert!(text.contains("is not a directory"), "{text}");
        assert!(text.contains(&not_a_dir.display().to_string()), "{text}");
        assert!(text.contains("--state-dir"), "{text}");
        let error = store.check_writable().unwrap_err();
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        let text = error.to_string();
        assert!(text.contains("is not a directory"), "{text}");
        assert!(text.contains(&not_a_dir.display().to_string()), "{text}");
    }

    #[test]
    fn state_dir_not_creatable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "").unwrap();
        let under_file = file.join("state");
        let store = TokenStore::File(under_file.join(TOKEN_FILE_NAME));
        let error = store.check_writable().unwrap_err();
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        let text = error.to_string();
        assert!(text.contains("cannot create it"), "{text}");
        assert!(text.contains(&under_file.display().to_string()), "{text}");
    }

    #[test]
    fn loose_state_dir_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(dir.path().join(TOKEN_FILE_NAME));
        store.save(&login()).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();

        let dir_name = dir.path().display().to_string();
        for error in [
            store.load().unwrap_err(),
            store.check_writable().unwrap_err(),
        ] {
            assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
            let text = error.to_string();
            assert!(text.contains(&format!("chmod 700 {dir_name}")), "{text}");
            assert!(text.contains("mode 777"), "{text}");
        }
    }

    #[test]
    fn sticky_state_dir_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(dir.path().join(TOKEN_FILE_NAME));
        store.save(&login()).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        store.check_writable().unwrap();
        assert!(store.load().unwrap().is_some());
    }

    #[test]
    fn loose_file_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::File(dir.path().join("oauth-login.json"));
        store.save(&login()).unwrap();
        fs::set_permissions(store.file_path(), fs::Permissions::from_mode(0o644)).unwrap();
        let error = store.load().unwrap_err();
        let text = error.to_string();
        assert!(text.contains("chmod 600"), "{text}");
        assert!(
            text.contains(&store.file_path().display().to_string()),
            "{text}"
        );
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
    }

    #[test]
    fn broken_file_error_hides_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth-login.json");
        let store = TokenStore::File(path.clone());
        store.save(&login()).unwrap();
        let json = fs::read_to_string(&path).unwrap();
        fs::write(&path, &json[..json.len() / 2]).unwrap();
        let text = store.load().unwrap_err().to_string();
        assert!(!text.contains("access-secret-123"), "{text}");
        assert!(text.contains("bridge login"), "{text}");
    }

    #[test]
    fn debug_hides_tokens() {
        let text = format!("{:?}", login());
        assert!(!text.contains("access-secret-123"), "{text}");
        assert!(!text.contains("refresh-secret-456"), "{text}");
    }
}
