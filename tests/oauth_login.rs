//! `bridge login`, `bridge logout` and the stored login against a real
//! OpenID provider on loopback (tests/peers/oidc/provider.mjs, node's
//! oidc-provider), driven headlessly by tests/peers/oidc/drive.mjs as the
//! browser, and the /v1 stand-in checking the user's access token.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::command_output::{assert_exit, assert_printed, output_text, run};
use support::oidc::{
    accepted_connections, IngestPeers, Provider, ProviderOptions, AUDIENCE, CLIENT_ID,
};
use support::standin::Standin;

const BRIDGE: &str = env!("CARGO_BIN_EXE_bridge");
fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oidc")
}

/// A state directory and the environment of every bridge run.
struct Login {
    state: tempfile::TempDir,
    issuer: String,
    ca: Option<PathBuf>,
}

impl Login {
    fn new(provider: &Provider) -> Self {
        Self {
            state: tempfile::tempdir().unwrap(),
            issuer: provider.issuer.clone(),
            ca: provider.ca.clone(),
        }
    }

    fn file(&self) -> PathBuf {
        self.state.path().join("oauth-login.json")
    }

    fn stored(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.file()).unwrap()).unwrap()
    }

    fn token(&self, field: &str) -> String {
        self.stored()[field].as_str().unwrap().to_string()
    }

    /// `bridge <args>` with the login flags, no API key and no session bus.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BRIDGE);
        command
            .args(args)
            .arg("--state-dir")
            .arg(self.state.path())
            .env_remove("TRAX_API_KEY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("STATE_DIRECTORY")
            .env("BROWSER", oidc_dir().join("browser.sh"))
            .stdin(Stdio::null());
        command
    }

    /// `bridge login` with this provider. A browser login waits 60 s for
    /// the redirect, and a device-code login waits for the code's expiry,
    /// since it rejects `--timeout`.
    fn login_command(&self, extra: &[&str]) -> Command {
        let mut args = vec!["login", "--oauth-issuer", &self.issuer];
        args.extend_from_slice(&["--oauth-client-id", CLIENT_ID]);
        if !extra.contains(&"--device-code") {
            args.extend_from_slice(&["--timeout", "60"]);
        }
        args.extend_from_slice(extra);
        let mut command = self.command(&args);
        if let Some(ca) = &self.ca {
            command.arg("--oauth-ca-file").arg(ca);
            command.env("NODE_EXTRA_CA_CERTS", ca);
        }
        command
    }

    fn login(&self) -> Output {
        run(self.login_command(&[]))
    }
}

/// Asserts that no output of any run shows a token of the stored login.
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

#[test]
fn pkce_login_stores_owner_only_file() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let output = login.login();
    assert_exit(&output, 0);
    assert_printed(&output, "logged in as Test User <tester@example.test>");

    let mode = std::fs::metadata(login.file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = login.stored();
    assert_eq!(stored["client_id"], CLIENT_ID);
    assert_eq!(stored["issuer"], provider.issuer.as_str());
    assert!(stored["refresh_token"].is_string(), "{stored}");

    let status = run(login.command(&["login", "--status"]));
    assert_exit(&status, 0);
    assert_printed(&status, "valid until");
    let tokens = [login.token("access_token"), login.token("refresh_token")];
    assert_no_tokens(&[&output, &status], &tokens);
}

#[test]
fn wrong_state_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let result = login.state.path().join("drive.json");
    let mut command = login.login_command(&[]);
    command
        .env("OIDC_DRIVE_STATE_OVERRIDE", "forged-state")
        .env("OIDC_DRIVE_RESULT", &result);
    let output = run(command);
    assert_exit(&output, 3);
    assert_printed(&output, "state does not match");
    assert!(!login.file().exists());
    // The driver writes its result once it has read the page, which may be
    // after the bridge has exited.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !result.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let driven: Value =
        serde_json::from_str(std::fs::read_to_string(&result).unwrap().trim()).unwrap();
    assert_eq!(driven["callback_status"], 400, "{driven}");
}

#[test]
fn wrong_verifier_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    // The "browser" replaces the bridge's code challenge with another one,
    // so the code it delivers belongs to a verifier the bridge lacks.
    let browser = login.state.path().join("swap-challenge.sh");
    let other_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nurl=$(printf '%s' \"$1\" | sed 's/code_challenge=[^&]*/code_challenge={other_challenge}/')\nexec {} \"$url\"\n",
            oidc_dir().join("browser.sh").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut command = login.login_command(&[]);
    command.env("BROWSER", &browser);
    let output = run(command);
    assert_exit(&output, 3);
    let printed = output_text(&output);
    assert!(printed.contains("authorization code exchange"), "{printed}");
    assert!(printed.contains("invalid_grant"), "{printed}");
    assert!(!login.file().exists());
}

#[test]
fn denied_consent_exits_3() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let mut command = login.login_command(&[]);
    command.env("OIDC_DRIVE_DENY", "1");
    let output = run(command);
    assert_exit(&output, 3);
    assert_printed(&output, "access_denied");
}

#[test]
fn missing_client_id_says_where() {
    let state = tempfile::tempdir().unwrap();
    let output = run({
        let mut command = Command::new(BRIDGE);
        command
            .args(["login", "--state-dir"])
            .arg(state.path())
            .env_remove("TRAX_OAUTH_CLIENT_ID")
            .env_remove("TRAX_OAUTH_ISSUER");
        command
    });
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(printed.contains("--oauth-client-id"), "{printed}");
    assert!(printed.contains("register"), "{printed}");
}

#[test]
fn plain_http_issuer_rejected() {
    let state = tempfile::tempdir().unwrap();
    let output = run({
        let mut command = Command::new(BRIDGE);
        command
            .args(["login", "--oauth-client-id", CLIENT_ID])
            .args(["--oauth-issuer", "http://auth.example.invalid"])
            .arg("--state-dir")
            .arg(state.path());
        command
    });
    assert_exit(&output, 2);
    assert_printed(&output, "loopback");
}

#[test]
fn issuer_spelled_differently_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    // The provider names itself http://127.0.0.1:PORT, so the same server
    // reached as localhost is another issuer string.
    let mut login = Login::new(&provider);
    login.issuer = provider.issuer.replace("127.0.0.1", "localhost");
    let output = login.login();
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(printed.contains(&login.issuer), "{printed}");
    assert!(printed.contains(&provider.issuer), "{printed}");
    assert!(printed.contains("exactly as"), "{printed}");
    assert!(!login.file().exists());
}

/// Starts `bridge login --device-code`, waits for its prompt and returns
/// the child, the verification URI and the user code.
fn start_device_login(login: &Login) -> (Child, mpsc::Receiver<String>, String, String) {
    let mut command = login.login_command(&["--device-code"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let (sender, receiver) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut prompt = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while prompt.is_none() && Instant::now() < deadline {
        let Ok(line) = receiver.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        prompt = line
            .strip_prefix("To log in, open ")
            .and_then(|rest| rest.split_once(" on any device and enter the code "))
            .map(|(uri, code)| (uri.to_string(), code.to_string()));
        seen.push(line);
    }
    let Some((uri, code)) = prompt else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no device prompt; stderr: {seen:?}");
    };
    (child, receiver, uri, code)
}

fn drive_device(uri: &str, code: &str, deny: bool) -> Value {
    let mut command = Command::new("node");
    command.arg(oidc_dir().join("drive.mjs")).args([
        "device",
        "--verification-uri",
        uri,
        "--user-code",
        code,
    ]);
    if deny {
        command.arg("--deny");
    }
    let output = command.output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn finish(mut child: Child, lines: mpsc::Receiver<String>) -> (Option<i32>, String) {
    let mut stdout = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr: Vec<String> = lines.try_iter().collect();
    (status.code(), format!("{stdout}{}", stderr.join("\n")))
}

#[test]
fn device_flow_with_slow_down() {
    // Interval 1 s, and the first poll gets slow_down: the next ones must
    // come at least 1 + 5 s apart.
    let provider = Provider::start(&ProviderOptions {
        device_interval_s: Some(1),
        slow_down_polls: Some(1),
        ..Default::default()
    });
    let login = Login::new(&provider);
    let (child, lines, uri, code) = start_device_login(&login);
    std::thread::sleep(Duration::from_secs(9));
    let driven = drive_device(&uri, &code, false);
    assert_eq!(driven["outcome"], "approved", "{driven}");
    let (status, printed) = finish(child, lines);
    assert_eq!(status, Some(0), "{printed}");
    assert!(login.file().exists());

    let polls = provider.token_requests();
    assert!(polls.len() >= 2, "{} polls", polls.len());
    for pair in polls.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(5500),
            "polled {gap:?} after the previous poll: slow_down was not honoured"
        );
    }
    let tokens = [login.token("access_token"), login.token("refresh_token")];
    assert!(
        !printed.contains(&tokens[0]),
        "the access token was printed"
    );
    assert!(
        !printed.contains(&tokens[1]),
        "the refresh token was printed"
    );
}

#[test]
fn device_flow_denied() {
    let provider = Provider::start(&ProviderOptions {
        device_interval_s: Some(1),
        ..Default::default()
    });
    let login = Login::new(&provider);
    let (child, lines, uri, code) = start_device_login(&login);
    let driven = drive_device(&uri, &code, true);
    assert_eq!(driven["outcome"], "denied", "{driven}");
    let (status, printed) = finish(child, lines);
    assert_eq!(status, Some(3), "{printed}");
    assert!(printed.contains("denied"), "{printed}");
    assert!(!login.file().exists());
}

#[test]
fn device_code_expiry() {
    let provider = Provider::start(&ProviderOptions {
        device_interval_s: Some(1),
        device_ttl_s: Some(3),
        ..Default::default()
    });
    let login = Login::new(&provider);
    let (child, lines, _, _) = start_device_login(&login);
    let (status, printed) = finish(child, lines);
    assert_eq!(status, Some(3), "{printed}");
    assert!(printed.contains("device code expired"), "{printed}");
}

#[test]
fn unwritable_state_dir_before_login() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    // A plain file where the state directory should be.
    let not_a_dir = login.state.path().join("plain-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let mut command = Command::new(BRIDGE);
    command
        .args(["login", "--oauth-issuer", &provider.issuer])
        .args(["--oauth-client-id", CLIENT_ID, "--timeout", "60"])
        .arg("--state-dir")
        .arg(&not_a_dir)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("STATE_DIRECTORY")
        .env("BROWSER", oidc_dir().join("browser.sh"))
        .stdin(Stdio::null());
    let output = run(command);
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(
        printed.contains(&not_a_dir.display().to_string()),
        "{printed}"
    );
    assert!(printed.contains("not a directory"), "{printed}");
    assert!(!printed.contains("Log in to TRaX"), "{printed}");
    assert!(provider.token_requests().is_empty(), "{printed}");
}

#[test]
fn loose_state_dir_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let dir = login.state.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    let status = run(login.command(&["login", "--status"]));
    assert_exit(&status, 2);
    let printed = output_text(&status);
    assert!(
        printed.contains(&format!("chmod 700 {}", dir.display())),
        "{printed}"
    );

    let again = run(login.login_command(&["--no-browser"]));
    assert_exit(&again, 2);
    let printed = output_text(&again);
    assert!(printed.contains("chmod 700"), "{printed}");
    assert!(!printed.contains("Log in to TRaX"), "{printed}");
}

#[test]
fn device_code_rejects_timeout() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let output = run(login.login_command(&["--device-code", "--timeout", "30"]));
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(printed.contains("--timeout"), "{printed}");
    assert!(printed.contains("--device-code"), "{printed}");
    assert!(!login.file().exists());
}

#[test]
fn long_client_id_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let long_id = "a".repeat(100_000);
    let mut command = login.command(&["login", "--oauth-issuer", &provider.issuer]);
    command.env("TRAX_OAUTH_CLIENT_ID", &long_id);
    let output = run(command);
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(printed.contains("100000 bytes"), "{printed}");
    assert!(printed.contains("longer than 255 bytes"), "{printed}");
    assert!(!printed.contains(&long_id), "{printed}");
    assert!(provider.token_requests().is_empty(), "{printed}");
}

#[test]
fn device_flow_unknown_client() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    let output = run(login.command(&[
        "login",
        "--device-code",
        "--oauth-issuer",
        &provider.issuer,
        "--oauth-client-id",
        "unregistered-app",
    ]));
    assert_exit(&output, 3);
    let printed = output_text(&output);
    assert!(printed.contains("'unregistered-app'"), "{printed}");
    assert!(printed.contains("invalid_client"), "{printed}");
    assert!(printed.contains("--oauth-client-id"), "{printed}");
    assert!(!login.file().exists());
}

#[test]
fn device_flow_unavailable() {
    let provider = Provider::start(&ProviderOptions {
        no_device_flow: true,
        ..Default::default()
    });
    let login = Login::new(&provider);
    let output = run(login.login_command(&["--device-code"]));
    assert_exit(&output, 2);
    assert_printed(&output, "no device authorization endpoint");
}

#[test]
fn loose_token_file_rejected() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    std::fs::set_permissions(login.file(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let output = run(login.command(&["login", "--status"]));
    assert_exit(&output, 2);
    let printed = output_text(&output);
    assert!(printed.contains("chmod 600"), "{printed}");
    assert!(
        printed.contains(&login.file().display().to_string()),
        "{printed}"
    );
}

fn standin_for(provider: &Provider) -> Standin {
    Standin::start(&[
        "--oidc-issuer",
        &provider.issuer,
        "--oidc-audience",
        AUDIENCE,
    ])
}

/// Rewrites fields of the stored login, keeping its mode.
fn edit_stored(login: &Login, edit: impl FnOnce(&mut Value)) {
    let mut stored = login.stored();
    edit(&mut stored);
    std::fs::write(login.file(), serde_json::to_string(&stored).unwrap()).unwrap();
}

fn studios(login: &Login, standin: &Standin) -> Output {
    run(login.command(&["studios", "--api-url", &standin.origin]))
}

#[test]
fn api_calls_use_and_refresh_the_login() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let standin = standin_for(&provider);

    let first = studios(&login, &standin);
    assert_exit(&first, 0);
    let original = login.token("access_token");

    // An access token that expires within the margin is refreshed first.
    edit_stored(&login, |stored| {
        stored["expires_at"] = Value::from(bridge::trax::oauth::unix_now() + 10);
    });
    let refreshed = studios(&login, &standin);
    assert_exit(&refreshed, 0);
    let renewed = login.token("access_token");
    assert_ne!(renewed, original);
    assert_printed(&refreshed, "refreshed");

    // A token the API rejects is refreshed once and the call repeated.
    edit_stored(&login, |stored| {
        stored["access_token"] = Value::from("rejected.by.standin");
    });
    let after_401 = studios(&login, &standin);
    assert_exit(&after_401, 0);
    assert_printed(&after_401, "rejected the login's access token");
    let tokens = [
        original,
        renewed,
        login.token("access_token"),
        login.token("refresh_token"),
    ];
    assert_no_tokens(&[&first, &refreshed, &after_401], &tokens);
}

#[test]
fn failed_refresh_asks_for_login() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let standin = standin_for(&provider);
    edit_stored(&login, |stored| {
        stored["expires_at"] = Value::from(0);
        stored["refresh_token"] = Value::from("not-a-refresh-token");
    });
    let output = studios(&login, &standin);
    assert_exit(&output, 3);
    assert_printed(&output, "run `bridge login` again");
}

#[test]
fn unreachable_provider_keeps_login() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let standin = standin_for(&provider);
    let refresh_token = login.token("refresh_token");
    // A loopback port that was free a moment ago stands for a provider
    // that is down.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    edit_stored(&login, |stored| {
        stored["expires_at"] = Value::from(0);
        stored["token_endpoint"] = Value::from(format!("http://127.0.0.1:{closed_port}/token"));
    });
    let output = studios(&login, &standin);
    assert_exit(&output, 1);
    let printed = output_text(&output);
    assert!(printed.contains("the stored login is kept"), "{printed}");
    assert!(!printed.contains("run `bridge login` again"), "{printed}");
    assert_eq!(login.token("refresh_token"), refresh_token);
    assert_no_tokens(&[&output], &[refresh_token]);
}

#[test]
fn logout_revokes_and_deletes() {
    // oauth2 revokes only over HTTPS, so this provider serves TLS with a
    // test CA that the bridge gets through --oauth-ca-file.
    let provider = Provider::start(&ProviderOptions {
        https: true,
        ..Default::default()
    });
    let login = Login::new(&provider);
    let jar = login.state.path().join("cookies.json");
    let mut command = login.login_command(&[]);
    command.env("OIDC_DRIVE_COOKIE_JAR", &jar);
    let output = run(command);
    assert_exit(&output, 0);
    let refresh_token = login.token("refresh_token");
    let access_token = login.token("access_token");

    let mut command = login.command(&["logout"]);
    command.env("NODE_EXTRA_CA_CERTS", provider.ca.as_ref().unwrap());
    let logout = run(command);
    assert_exit(&logout, 0);
    let printed = output_text(&logout);
    assert!(printed.contains("revoked the refresh token"), "{printed}");
    assert!(
        printed.contains("/session/end?client_id=bridge-test"),
        "{printed}"
    );
    assert!(!login.file().exists());

    // The provider no longer takes the refresh token.
    let ca = std::fs::read(provider.ca.as_ref().unwrap()).unwrap();
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let response = http
        .post(format!("{}/token", provider.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_no_tokens(&[&output, &logout], &[refresh_token, access_token]);

    // The printed end-session URL ends the browser's session there.
    let end_session = printed
        .lines()
        .find_map(|line| line.split_once("too, open "))
        .map(|(_, url)| url.trim().to_string())
        .unwrap_or_else(|| panic!("no end-session URL in: {printed}"));
    let signed_out = Command::new("node")
        .arg(oidc_dir().join("drive.mjs"))
        .args(["authorize", &end_session])
        .env("OIDC_DRIVE_COOKIE_JAR", &jar)
        .env("NODE_EXTRA_CA_CERTS", provider.ca.as_ref().unwrap())
        .output()
        .unwrap();
    let driven: Value = serde_json::from_slice(&signed_out.stdout).unwrap_or(Value::Null);
    assert_eq!(driven["outcome"], "signed_out", "{driven}");

    let again = run(login.command(&["logout"]));
    assert_exit(&again, 0);
    assert_printed(&again, "not logged in");
}

#[test]
fn logout_over_http_reports_once() {
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let tokens = [login.token("access_token"), login.token("refresh_token")];

    let logout = run(login.command(&["logout"]));
    assert_exit(&logout, 1);
    let stdout = String::from_utf8_lossy(&logout.stdout);
    let stderr = String::from_utf8_lossy(&logout.stderr);
    assert!(stdout.contains("deleted the stored login"), "{stdout}");
    assert!(
        stdout.contains("/session/end?client_id=bridge-test"),
        "{stdout}"
    );
    assert!(!stdout.contains("could not be revoked"), "{stdout}");
    assert_eq!(
        stderr.matches("could not be revoked").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("/token/revocation is not https"),
        "{stderr}"
    );
    assert!(stderr.contains("stay valid until they expire"), "{stderr}");
    assert!(!login.file().exists());
    assert_no_tokens(&[&logout], &tokens);
}

#[test]
fn source_run_publishes_with_login() {
    let _guard = support::setup();
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);

    let peers = IngestPeers::start(&provider);
    let args = peers.source_run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(login.command(&args));
    let events = peers.stop();
    assert_exit(&output, 0);
    assert_printed(
        &output,
        "authenticating to the TRaX API with the stored login",
    );
    assert_eq!(accepted_connections(&events), 1, "{events:?}");
    let tokens = [login.token("access_token"), login.token("refresh_token")];
    assert_no_tokens(&[&output], &tokens);
}

#[test]
fn untrusted_provider_certificate_rejected() {
    let provider = Provider::start(&ProviderOptions {
        https: true,
        ..Default::default()
    });
    let mut login = Login::new(&provider);
    login.ca = None;
    let output = login.login();
    assert_exit(&output, 1);
    let printed = output_text(&output);
    assert!(printed.contains("failed to verify"), "{printed}");
    assert!(printed.contains("--oauth-ca-file"), "{printed}");
    assert!(!login.file().exists());
}

#[test]
fn concurrent_refreshes_share_one_token() {
    // Runs that share one state directory, like several cameras' services,
    // refresh at the same moment. Each must end with a valid token, even
    // when the provider rotates refresh tokens.
    let provider = Provider::start(&ProviderOptions::default());
    let login = Login::new(&provider);
    assert_exit(&login.login(), 0);
    let standin = standin_for(&provider);
    edit_stored(&login, |stored| {
        stored["expires_at"] = Value::from(0);
    });

    let runs: Vec<Child> = (0..3)
        .map(|_| {
            let mut command = login.command(&["studios", "--api-url", &standin.origin]);
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert_exit(&output, 0);
    }

    // One code exchange at login, then one refresh for all three runs.
    assert_eq!(provider.token_requests().len(), 2);
}
