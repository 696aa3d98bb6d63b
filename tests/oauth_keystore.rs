//! The stored login in the OS keystore: `bridge login`, `login --status`,
//! a /v1 call with its refresh and `bridge logout` against a real Secret
//! Service (gnome-keyring-daemon on a private D-Bus session bus) and the
//! OpenID provider of tests/peers/oidc/. Also a locked keystore, a keystore
//! that stops, a bus address that leads nowhere, and a state directory
//! that keeps the tokens in a file although a session bus is set.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::command_output::{assert_exit, output_text, run};
use support::keystore::SecretService;
use support::oidc::{accepted_connections, oidc_script, IngestPeers, Provider, ProviderOptions};
use support::standin::Standin;

const BRIDGE: &str = env!("CARGO_BIN_EXE_bridge");

/// Attributes of the item the bridge stores: the `keyring` crate puts the
/// service and account names in `service` and `username`.
const ITEM: [(&str, &str); 2] = [("service", "bridge"), ("username", "trax-oauth-login")];

/// A Secret Service, an OpenID provider and the environment of every
/// bridge run in that session.
struct Session {
    keystore: SecretService,
    provider: Provider,
}

impl Session {
    fn start(options: ProviderOptions) -> Self {
        let keystore = SecretService::start();
        let provider = Provider::start(&options);
        Self { keystore, provider }
    }

    /// Starts a session whose provider serves HTTPS, which revocation needs.
    fn start_tls() -> Self {
        Self::start(ProviderOptions {
            https: true,
            ..Default::default()
        })
    }

    /// `bridge <args>` in this session: its bus, home and state directory,
    /// no API key, and the test browser.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BRIDGE);
        command
            .args(args)
            .env_remove("TRAX_API_KEY")
            .env_remove("STATE_DIRECTORY")
            .envs(self.keystore.env())
            .env("BROWSER", oidc_script("browser.sh"))
            .stdin(Stdio::null());
        if let Some(ca) = &self.provider.ca {
            command.env("NODE_EXTRA_CA_CERTS", ca);
        }
        command
    }

    fn login_command(&self, extra: &[&str]) -> Command {
        let mut args = vec![
            "login",
            "--oauth-issuer",
            &self.provider.issuer,
            "--oauth-client-id",
            &self.provider.client_id,
            "--timeout",
            "60",
        ];
        args.extend_from_slice(extra);
        let mut command = self.command(&args);
        if let Some(ca) = &self.provider.ca {
            command.arg("--oauth-ca-file").arg(ca);
        }
        command
    }

    fn login(&self) -> Output {
        run(self.login_command(&[]))
    }

    /// Reads the stored login from the keystore through secret-tool.
    fn stored(&self) -> Option<Value> {
        let json = self.keystore.lookup(&ITEM)?;
        Some(serde_json::from_str(&json).expect("the keystore item is not a stored login"))
    }

    fn token(&self, field: &str) -> String {
        let stored = self.stored().expect("no login in the keystore");
        stored[field].as_str().unwrap().to_string()
    }

    /// Object paths of the unlocked and the locked items of the login.
    fn items(&self) -> (Vec<String>, Vec<String>) {
        self.keystore.search_items(&ITEM)
    }

    fn token_file(&self) -> PathBuf {
        self.keystore.token_file()
    }
}

fn assert_contains(output: &Output, expected: &str) {
    let printed = output_text(output);
    assert!(
        printed.contains(expected),
        "expected {expected:?} in: {printed}"
    );
}

/// Asserts that no output of any run shows a token.
fn assert_no_tokens(outputs: &[&Output], tokens: &[String]) {
    for output in outputs {
        let printed = output_text(output);
        for token in tokens {
            assert!(
                !printed.contains(token.as_str()),
                "a token was printed: {printed}"
            );
        }
    }
}

fn file_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn standin_for(provider: &Provider) -> Standin {
    Standin::start(&[
        "--oidc-issuer",
        &provider.issuer,
        "--oidc-audience",
        &provider.audience,
    ])
}

#[test]
fn login_status_and_refresh_use_keystore() {
    // Access tokens live 30 s, within the refresh margin of 60 s, so the
    // /v1 call refreshes before it sends one.
    let session = Session::start(ProviderOptions {
        access_ttl_s: Some(30),
        ..Default::default()
    });
    let login = session.login();
    assert_exit(&login, 0);
    assert_contains(&login, "tokens stored in the system keystore");
    assert!(
        !session.token_file().exists(),
        "a token file was written next to the keystore"
    );
    let (unlocked, locked) = session.items();
    assert_eq!(unlocked.len(), 1, "unlocked items: {unlocked:?}");
    assert!(locked.is_empty(), "locked items: {locked:?}");
    let stored = session.stored().expect("no login in the keystore");
    assert_eq!(stored["client_id"], session.provider.client_id.as_str());
    assert_eq!(stored["issuer"], session.provider.issuer.as_str());
    let original_access = session.token("access_token");
    let original_refresh = session.token("refresh_token");

    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 0);
    assert_contains(&status, "logged in as Test User <tester@example.test>");
    assert_contains(&status, "tokens stored in the system keystore");

    let standin = standin_for(&session.provider);
    let studios = run(session.command(&["studios", "--api-url", &standin.origin]));
    assert_exit(&studios, 0);
    assert_contains(&studios, "refreshed");
    let renewed_access = session.token("access_token");
    assert_ne!(
        renewed_access, original_access,
        "the access token is unchanged"
    );
    assert!(
        !session.token_file().exists(),
        "the refresh wrote a token file next to the keystore"
    );
    assert_eq!(session.items().0.len(), 1, "the refresh added an item");

    let tokens = [
        original_access,
        original_refresh,
        renewed_access,
        session.token("refresh_token"),
    ];
    assert_no_tokens(&[&login, &status, &studios], &tokens);
}

#[test]
fn logout_deletes_keystore_item() {
    let session = Session::start_tls();
    let login = session.login();
    assert_exit(&login, 0);
    assert_eq!(session.items().0.len(), 1);
    let tokens = [
        session.token("access_token"),
        session.token("refresh_token"),
    ];

    let logout = run(session.command(&["logout"]));
    assert_exit(&logout, 0);
    assert_contains(&logout, "deleted the stored login of Test User");
    assert_contains(&logout, "revoked the refresh token");
    let (unlocked, locked) = session.items();
    assert!(unlocked.is_empty(), "unlocked items: {unlocked:?}");
    assert!(locked.is_empty(), "locked items: {locked:?}");
    assert!(session.stored().is_none());
    assert!(!session.token_file().exists());

    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 3);
    assert_contains(&status, "not logged in");
    assert_no_tokens(&[&login, &logout, &status], &tokens);
}

#[test]
fn locked_keystore_fails_then_falls_back() {
    let session = Session::start(ProviderOptions::default());
    assert_exit(&session.login(), 0);
    session.keystore.lock();
    assert_eq!(session.items().1.len(), 1, "the item is not locked");

    // The login is in the keystore but cannot be read. The error names
    // the keystore and the fix, in place of "not logged in".
    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 1);
    assert_contains(&status, "cannot read the login from the system keystore");
    assert_contains(&status, "unlock it");
    assert_contains(&status, "--state-dir");
    let standin = standin_for(&session.provider);
    let studios = run(session.command(&["studios", "--api-url", &standin.origin]));
    assert_exit(&studios, 1);
    assert_contains(&studios, "cannot read the login from the system keystore");

    // A new login cannot be lost: it goes to the owner-only file, with a
    // warning, and later runs read it from there.
    let login = session.login();
    assert_exit(&login, 0);
    assert_contains(&login, "cannot store the login in the system keystore");
    let file = session.token_file();
    assert_contains(&login, &format!("tokens stored in {}", file.display()));
    assert_eq!(file_mode(&file), 0o600);
    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 0);
    assert_contains(&status, &format!("tokens stored in {}", file.display()));
    let studios = run(session.command(&["studios", "--api-url", &standin.origin]));
    assert_exit(&studios, 0);
}

#[test]
fn stopped_keystore_fails_then_falls_back() {
    // HTTPS, so that the logout at the end can revoke.
    let mut session = Session::start_tls();
    assert_exit(&session.login(), 0);
    session.keystore.stop_keyring();

    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 1);
    assert_contains(&status, "cannot read the login from the system keystore");
    assert_contains(&status, "no Secret Service answers");

    let login = session.login();
    assert_exit(&login, 0);
    let file = session.token_file();
    assert_contains(&login, &format!("tokens stored in {}", file.display()));
    assert_eq!(file_mode(&file), 0o600);
    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 0);

    let logout = run(session.command(&["logout"]));
    assert_exit(&logout, 0);
    assert_contains(&logout, "cannot delete the login from the system keystore");
    assert_contains(&logout, "revoked the refresh token");
    assert!(!file.exists(), "logout left {}", file.display());
}

#[test]
fn dead_bus_address_uses_file() {
    let session = Session::start(ProviderOptions::default());
    let nowhere = format!(
        "unix:path={}",
        session.keystore.dir().join("no-bus-here").display()
    );
    let with_dead_bus = |mut command: Command| {
        command.env("DBUS_SESSION_BUS_ADDRESS", &nowhere);
        run(command)
    };

    let login = with_dead_bus(session.login_command(&[]));
    assert_exit(&login, 0);
    assert_contains(&login, "cannot store the login in the system keystore");
    let file = session.token_file();
    assert_contains(&login, &format!("tokens stored in {}", file.display()));
    assert_eq!(file_mode(&file), 0o600);

    let status = with_dead_bus(session.command(&["login", "--status"]));
    assert_exit(&status, 0);
    assert_contains(&status, &format!("tokens stored in {}", file.display()));

    // Nothing reached the real keystore on the live bus.
    assert!(session.items().0.is_empty());
}

#[test]
fn state_dir_beats_session_bus() {
    // A root shell may keep a desktop's DBUS_SESSION_BUS_ADDRESS. The
    // service's state directory, given as --state-dir or as systemd's
    // STATE_DIRECTORY, must still get the tokens, not the keystore.
    let session = Session::start(ProviderOptions::default());
    let state = tempfile::tempdir().unwrap();
    let login = run(session.login_command(&["--state-dir", &state.path().display().to_string()]));
    assert_exit(&login, 0);
    let file = state.path().join("oauth-login.json");
    assert_contains(&login, &format!("tokens stored in {}", file.display()));
    assert_eq!(file_mode(&file), 0o600);
    assert!(
        session.items().0.is_empty(),
        "the login went to the keystore"
    );

    let unit_state = tempfile::tempdir().unwrap();
    let mut command = session.login_command(&[]);
    command.env("STATE_DIRECTORY", unit_state.path());
    let login = run(command);
    assert_exit(&login, 0);
    let file = unit_state.path().join("oauth-login.json");
    assert_contains(&login, &format!("tokens stored in {}", file.display()));
    assert!(
        session.items().0.is_empty(),
        "the login went to the keystore"
    );
    assert!(!session.token_file().exists());
}

#[test]
fn concurrent_refreshes_with_keystore() {
    // Several runs of one desktop session, such as one per camera, refresh
    // at the same moment. The provider rotates refresh tokens, so a run
    // that sends one another run has already used is rejected unless the
    // refreshes take turns. Access tokens live 30 s, within the margin of
    // 60 s, so every run refreshes.
    let session = Session::start(ProviderOptions {
        access_ttl_s: Some(30),
        ..Default::default()
    });
    assert_exit(&session.login(), 0);
    let standin = standin_for(&session.provider);

    let runs: Vec<std::process::Child> = (0..3)
        .map(|_| {
            let mut command = session.command(&["studios", "--api-url", &standin.origin]);
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert_exit(&output, 0);
    }

    // The refresh token left in the keystore is the current one.
    let after = run(session.command(&["studios", "--api-url", &standin.origin]));
    assert_exit(&after, 0);
    assert_eq!(session.items().0.len(), 1, "the refreshes added items");
}

#[test]
fn duplicate_keystore_items_rejected() {
    // Another program stored a second item with the bridge's attributes.
    // The bridge cannot tell which is its login, so it names the command
    // that clears both.
    let session = Session::start(ProviderOptions::default());
    assert_exit(&session.login(), 0);
    let mut attributes = vec!["store", "--label=copy"];
    for (name, value) in ITEM {
        attributes.extend([name, value]);
    }
    // The extra attribute keeps gnome-keyring from replacing the item.
    attributes.extend([
        "target",
        "default",
        "application",
        "rust-keyring",
        "copy",
        "1",
    ]);
    assert!(session.keystore.secret_tool(&attributes, "{}"));
    assert_eq!(session.items().0.len(), 2, "the second item is missing");

    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 1);
    assert_contains(&status, "cannot read the login from the system keystore");
    let clear = "secret-tool clear service bridge username trax-oauth-login";
    assert_contains(&status, clear);

    let clear_args: Vec<&str> = clear.split(' ').skip(1).collect();
    assert!(session.keystore.secret_tool(&clear_args, ""));
    let status = run(session.command(&["login", "--status"]));
    assert_exit(&status, 3);
    assert_contains(&status, "not logged in");
}

#[test]
fn source_run_uses_keystore_login() {
    // A --source run reads the login from the keystore and, with access
    // tokens that live 30 s (within the 60 s margin), refreshes it and
    // stores the new tokens there from the run's own threads.
    let _guard = support::setup();
    let session = Session::start(ProviderOptions {
        access_ttl_s: Some(30),
        ..Default::default()
    });
    assert_exit(&session.login(), 0);
    let original_access = session.token("access_token");

    let peers = IngestPeers::start(&session.provider);
    let args = peers.source_run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(session.command(&args));
    let events = peers.stop();
    assert_exit(&output, 0);
    assert_contains(
        &output,
        "authenticating to the TRaX API with the stored login",
    );
    assert_contains(&output, "stored_in=the system keystore");
    assert_eq!(accepted_connections(&events), 1, "{events:?}");
    let renewed_access = session.token("access_token");
    assert_ne!(
        renewed_access, original_access,
        "the access token is unchanged"
    );
    assert!(!session.token_file().exists());
    let tokens = [
        original_access,
        renewed_access,
        session.token("refresh_token"),
    ];
    assert_no_tokens(&[&output], &tokens);
}
