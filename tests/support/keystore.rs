//! A real Secret Service for the tests: a private D-Bus session bus
//! (dbus-daemon) and gnome-keyring-daemon on it, with a login keyring
//! unlocked by a test password. Everything lives in a temporary directory,
//! and the bus activates no services, so nothing reaches the user's own
//! session or keyring.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The D-Bus name, path and interface of the Secret Service API.
const SECRETS_NAME: &str = "org.freedesktop.secrets";
const SECRETS_PATH: &str = "/org/freedesktop/secrets";
const SECRETS_INTERFACE: &str = "org.freedesktop.Secret.Service";

/// The collection that `gnome-keyring-daemon --unlock` creates and makes
/// the default.
const LOGIN_COLLECTION: &str = "/org/freedesktop/secrets/collection/login";

/// Password of the test keyring.
const KEYRING_PASSWORD: &str = "keystore-test-password";

/// Bus configuration: a session bus on a socket in `DIR`, open to the
/// processes of this user, without service activation, so that a stopped
/// keyring daemon stays stopped.
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=DIR/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// The bus and the keyring daemon, both killed on drop.
pub struct SecretService {
    dir: tempfile::TempDir,
    address: String,
    bus: Child,
    keyring: Option<Child>,
}

impl SecretService {
    /// Starts the bus and the keyring daemon and waits until the Secret
    /// Service owns its bus name. Panics when either program is missing, so that a
    /// machine without them fails the test instead of skipping it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "runtime", "data"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            BUS_CONFIG.replace("DIR", &dir.path().display().to_string()),
        )
        .unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start dbus-daemon (run scripts/install-deps.sh)");
        let mut address = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(bus.stdout.take().unwrap()),
            &mut address,
        )
        .unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no bus address: {address:?}"
        );

        let mut service = Self {
            dir,
            address,
            bus,
            keyring: None,
        };
        service.start_keyring();
        service
    }

    fn start_keyring(&mut self) {
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--foreground"])
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start gnome-keyring-daemon (run scripts/install-deps.sh)");
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        drop(stdin);
        self.keyring = Some(keyring);

        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.has_owner(SECRETS_NAME) {
            if let Some(status) = self.keyring.as_mut().unwrap().try_wait().unwrap() {
                panic!("gnome-keyring-daemon exited with {status} before it took {SECRETS_NAME}");
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not take {SECRETS_NAME} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Returns the environment of a process of this session: the bus, and a home,
    /// runtime and data directory inside the temporary directory.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", PathBuf::from(&self.address)),
            ("HOME", self.home()),
            ("XDG_RUNTIME_DIR", self.dir.path().join("runtime")),
            ("XDG_DATA_HOME", self.dir.path().join("data")),
            ("XDG_STATE_HOME", self.dir.path().join("home/.local/state")),
        ]
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Returns the token file that a login of this session writes when it does not use
    /// the keystore.
    pub fn token_file(&self) -> PathBuf {
        self.home().join(".local/state/bridge/oauth-login.json")
    }

    /// Returns the object paths of the unlocked and of the locked items
    /// whose attributes include `attributes`, through the Secret Service's
    /// SearchItems, which returns no secrets.
    pub fn search_items(&self, attributes: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let mut args = vec![attributes.len().to_string()];
        for (name, value) in attributes {
            args.push(name.to_string());
            args.push(value.to_string());
        }
        let reply = self.call(SECRETS_INTERFACE, "SearchItems", "a{ss}", &args);
        let paths = |index: usize| -> Vec<String> {
            reply["data"][index]
                .as_array()
                .unwrap_or_else(|| panic!("unexpected SearchItems reply: {reply}"))
                .iter()
                .map(|path| path.as_str().unwrap().to_string())
                .collect()
        };
        (paths(0), paths(1))
    }

    /// Reads the secret of the item with `attributes` through secret-tool.
    /// The caller keeps it out of its messages.
    pub fn lookup(&self, attributes: &[(&str, &str)]) -> Option<String> {
        let output = Command::new("secret-tool")
            .arg("lookup")
            .args(attributes.iter().flat_map(|(name, value)| [name, value]))
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run secret-tool (run scripts/install-deps.sh)");
        output
            .status
            .success()
            .then(|| String::from_utf8(output.stdout).unwrap())
    }

    /// Runs `secret-tool ARGS` in this session with `input` on stdin and
    /// returns whether it succeeded.
    pub fn secret_tool(&self, args: &[&str], input: &str) -> bool {
        let mut child = Command::new("secret-tool")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run secret-tool (run scripts/install-deps.sh)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait().unwrap().success()
    }

    /// Locks the login collection, as a screen lock or `seahorse` does.
    pub fn lock(&self) {
        let reply = self.call(
            SECRETS_INTERFACE,
            "Lock",
            "ao",
            &["1".into(), LOGIN_COLLECTION.into()],
        );
        let locked = &reply["data"][0];
        assert_eq!(
            locked[0], LOGIN_COLLECTION,
            "unexpected Lock reply: {reply}"
        );
    }

    /// Stops the keyring daemon, leaving the bus without a Secret Service.
    pub fn stop_keyring(&mut self) {
        if let Some(mut keyring) = self.keyring.take() {
            let _ = keyring.kill();
            let _ = keyring.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.has_owner(SECRETS_NAME) {
            assert!(
                Instant::now() < deadline,
                "{SECRETS_NAME} still has an owner 10 s after the keyring daemon stopped"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn has_owner(&self, name: &str) -> bool {
        let output = self.busctl(&[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            name,
        ]);
        let reply: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("busctl NameHasOwner failed: {output:?}"));
        reply["data"][0] == true
    }

    fn call(&self, interface: &str, method: &str, signature: &str, args: &[String]) -> Value {
        let mut command = vec!["call", SECRETS_NAME, SECRETS_PATH, interface, method];
        command.push(signature);
        command.extend(args.iter().map(String::as_str));
        let output = self.busctl(&command);
        assert!(
            output.status.success(),
            "busctl {method} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn busctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .arg("--json=short")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run busctl (run scripts/install-deps.sh)")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(mut keyring) = self.keyring.take() {
            let _ = keyring.kill();
            let _ = keyring.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
