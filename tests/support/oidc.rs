//! Runs the OpenID provider `tests/peers/oidc/provider.mjs` and its headless
//! user `drive.mjs`, and makes the client side of the requests that the
//! login tests check against them (PKCE values, a loopback redirect
//! listener, token endpoint calls).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::nginx::TlsFiles;
use super::receiver::{free_udp_port, Receiver};
use super::standin::Standin;

pub const NODE: &str = "node";
pub const CLIENT_ID: &str = "bridge-test";
/// The "aud" of the provider's access tokens, its default RFC 8707 resource.
pub const AUDIENCE: &str = "https://api.trax.test";
pub const TEST_USER: &str = "tester";
pub const SCOPES: &str = "openid profile email";
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Path of a file in `tests/peers/oidc`.
pub fn oidc_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/oidc")
        .join(name)
}

/// Returns the `BROWSER` program that drives an authorization URL headlessly.
pub fn browser_script() -> PathBuf {
    oidc_script("browser.sh")
}

fn check_installed() {
    let package = oidc_script("node_modules/oidc-provider/package.json");
    assert!(
        package.exists(),
        "{} is missing; run scripts/install-peers.sh (it needs node and npm)",
        package.display()
    );
}

/// Options of `provider.mjs`; `None` keeps the script's default.
#[derive(Clone, Debug, Default)]
pub struct ProviderOptions {
    pub access_ttl_s: Option<u64>,
    pub refresh_ttl_s: Option<u64>,
    pub device_ttl_s: Option<u64>,
    pub device_interval_s: Option<u64>,
    /// Pending device polls per device code that get `slow_down`.
    pub slow_down_polls: Option<u64>,
    pub no_device_flow: bool,
    /// Whether to serve HTTPS with a certificate from a fresh test CA, which is in
    /// [`Provider::ca`].
    pub https: bool,
}

impl ProviderOptions {
    fn arguments(&self) -> Vec<String> {
        let mut arguments = Vec::new();
        let numbers = [
            ("--access-ttl", self.access_ttl_s),
            ("--refresh-ttl", self.refresh_ttl_s),
            ("--device-ttl", self.device_ttl_s),
            ("--device-interval", self.device_interval_s),
            ("--slow-down-polls", self.slow_down_polls),
        ];
        for (flag, value) in numbers {
            if let Some(value) = value {
                arguments.push(flag.to_string());
                arguments.push(value.to_string());
            }
        }
        if self.no_device_flow {
            arguments.push("--no-device-flow".to_string());
        }
        arguments
    }
}

/// A running `provider.mjs`, stopped with SIGTERM on drop. Its stderr (one
/// JSON line per request) goes to `log_path`.
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub client_id: String,
    pub audience: String,
    pub user: String,
    pub log_path: PathBuf,
    /// The CA certificate (PEM) of an HTTPS provider.
    pub ca: Option<PathBuf>,
    _directory: tempfile::TempDir,
}

impl Provider {
    /// Starts the provider on a free port and waits for its ready line.
    pub fn start(options: &ProviderOptions) -> Self {
        check_installed();
        let directory = tempfile::tempdir().unwrap();
        let log_path = directory.path().join("provider.log");
        let log = std::fs::File::create(&log_path).unwrap();

        let mut command = Command::new(NODE);
        command
            .arg(oidc_script("provider.mjs"))
            .args(options.arguments());
        let mut ca = None;
        if options.https {
            let files = TlsFiles::write(directory.path());
            command
                .arg("--tls-cert")
                .arg(&files.server_cert)
                .arg("--tls-key")
                .arg(&files.server_key);
            ca = Some(files.ca);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("failed to start node tests/peers/oidc/provider.mjs; is node installed?");

        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["event"] == "ready" {
                        let _ = sender.send(event);
                    }
                }
            }
        });
        let ready = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(ready) => ready,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("provider.mjs printed no ready line within 30 s; its stderr:\n{log}");
            }
        };
        let text = |name: &str| ready[name].as_str().unwrap_or_default().to_string();
        Self {
            issuer: text("issuer"),
            client_id: text("client_id"),
            audience: text("audience"),
            user: text("user"),
            child,
            log_path,
            ca,
            _directory: directory,
        }
    }

    /// Reads the request log written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Returns when each token endpoint request so far finished, in the
    /// provider's clock (`at_ms`, milliseconds since the Unix epoch).
    pub fn token_requests(&self) -> Vec<Duration> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["event"] == "request" && event["path"] == "/token")
            .map(|event| {
                let at_ms = event["at_ms"]
                    .as_u64()
                    .expect("a request line without at_ms");
                Duration::from_millis(at_ms)
            })
            .collect()
    }

    /// Fetches the discovery document with `client`.
    pub fn discovery(&self, client: &reqwest::blocking::Client) -> Value {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let response = client
            .get(&url)
            .send()
            .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
        assert!(
            response.status().is_success(),
            "GET {url} returned {}",
            response.status()
        );
        response.json().unwrap()
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The peers of a `--source` run with a user login: the /v1 stand-in,
/// which accepts `provider`'s access tokens and hands out an SRT ingest on a
/// free loopback port, and the SRT receiver listening on that port.
pub struct IngestPeers {
    pub standin: Standin,
    pub receiver: Receiver,
}

impl IngestPeers {
    pub fn start(provider: &Provider) -> Self {
        let port = free_udp_port();
        let ingest = format!("srt://127.0.0.1:{port}");
        let standin = Standin::start(&[
            "--oidc-issuer",
            &provider.issuer,
            "--oidc-audience",
            &provider.audience,
            "--ingest-srt",
            &ingest,
        ]);
        let receiver = Receiver::start(port, &["--jwks-url", &standin.jwks_url()]);
        Self { standin, receiver }
    }

    /// Arguments of a 3 s run of the test source as `src_cam1` through the
    /// stand-in.
    pub fn source_run_args(&self) -> Vec<String> {
        let args = [
            "--device",
            "test",
            "--size",
            "320x240",
            "--source",
            "src_cam1",
            "--duration",
            "3",
            "--api-url",
        ];
        let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        args.push(self.standin.origin.clone());
        args
    }

    /// Stops the receiver and returns its events.
    pub fn stop(self) -> Vec<Value> {
        self.receiver.stop()
    }
}

/// Counts the SRT connections that a receiver's events show it accepted.
pub fn accepted_connections(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|event| event["event"] == "connecting" && event["accepted"] == true)
        .count()
}

/// A PKCE code verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let mut random = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        let verifier = URL_SAFE_NO_PAD.encode(random);
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds an authorization request URL for the test client.
pub fn authorization_url(
    provider: &Provider,
    redirect_uri: &str,
    challenge: Option<&str>,
    state: &str,
) -> String {
    let mut url = url::Url::parse(&provider.endpoint("/auth")).unwrap();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", &provider.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPES)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        if let Some(challenge) = challenge {
            query
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    url.to_string()
}

/// Posts a form to the token (or another) endpoint and returns the status
/// and the JSON body (`Value::Null` when the body is not JSON).
pub fn post_form(
    client: &reqwest::blocking::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = client
        .post(url)
        .form(form)
        .send()
        .unwrap_or_else(|error| panic!("POST {url} failed: {error}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Decodes the claims of a JWT without verifying it.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A loopback HTTP listener for the redirect URI. It replies 200 to the
/// first request and passes on that request's path and query.
pub struct RedirectListener {
    pub port: u16,
    receiver: mpsc::Receiver<url::Url>,
}

impl RedirectListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                return;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|read| read > 2) {
                header.clear();
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/");
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
            );
            let mut rest = Vec::new();
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = reader.read_to_end(&mut rest);
            if let Ok(url) = url::Url::parse(&format!("http://127.0.0.1:{port}{target}")) {
                let _ = sender.send(url);
            }
        });
        Self { port, receiver }
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits for the request to the redirect URI; `None` after `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<url::Url> {
        self.receiver.recv_timeout(timeout).ok()
    }
}

/// Reads one query parameter.
pub fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Options of `drive.mjs`.
#[derive(Clone, Debug, Default)]
pub struct DriveOptions {
    pub user: Option<String>,
    /// Passed in the environment (OIDC_DRIVE_PASSWORD), never as an argument.
    pub password: Option<String>,
    pub deny: bool,
    pub state_override: Option<String>,
    /// Test CA for an HTTPS provider (NODE_EXTRA_CA_CERTS).
    pub ca_file: Option<PathBuf>,
    /// File that keeps the provider's session cookies between runs
    /// (OIDC_DRIVE_COOKIE_JAR), as a browser profile would.
    pub cookie_jar: Option<PathBuf>,
}

/// The result line of `drive.mjs` and its exit status.
pub struct DriveResult {
    pub result: Value,
    pub status: ExitStatus,
    pub stderr: String,
}

impl DriveResult {
    pub fn outcome(&self) -> &str {
        self.result["outcome"].as_str().unwrap_or("")
    }
}

fn run_driver(arguments: &[&str], options: &DriveOptions, user_code: Option<&str>) -> DriveResult {
    check_installed();
    let mut command = Command::new(NODE);
    command.arg(oidc_script("drive.mjs")).args(arguments);

    if let Some(user) = &options.user {
        command.args(["--user", user]);
    }
    if options.deny {
        command.arg("--deny");
    }
    if let Some(state) = &options.state_override {
        command.args(["--state-override", state]);
    }
    if let Some(password) = &options.password {
        command.env("OIDC_DRIVE_PASSWORD", password);
    }
    if let Some(code) = user_code {
        command.env("OIDC_DRIVE_USER_CODE", code);
    }
    if let Some(ca) = &options.ca_file {
        command.env("NODE_EXTRA_CA_CERTS", ca);
    }
    if let Some(jar) = &options.cookie_jar {
        command.env("OIDC_DRIVE_COOKIE_JAR", jar);
    }

    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("failed to run node tests/peers/oidc/drive.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = stdout
        .lines()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .unwrap_or_else(|| panic!("drive.mjs printed no result line; stderr:\n{stderr}"));
    DriveResult {
        result,
        status: output.status,
        stderr,
    }
}

/// Signs in and consents (or denies) for an authorization request URL, then
/// delivers the provider's redirect to the redirect URI.
pub fn drive_authorize(url: &str, options: &DriveOptions) -> DriveResult {
    run_driver(&["authorize", url], options, None)
}

/// Enters a device flow's user code at `verification_uri`, signs in and
/// approves (or denies).
pub fn drive_device(
    verification_uri: &str,
    user_code: &str,
    options: &DriveOptions,
) -> DriveResult {
    run_driver(
        &["device", "--verification-uri", verification_uri],
        options,
        Some(user_code),
    )
}

/// Builds an RP-initiated logout URL that names the client (instead of an
/// ID token hint, which would put a token into the driver's arguments).
pub fn end_session_url(provider: &Provider, post_logout_redirect_uri: &str, state: &str) -> String {
    let mut url = url::Url::parse(&provider.endpoint("/session/end")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &provider.client_id)
        .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
        .append_pair("state", state);
    url.to_string()
}

/// Revokes a token at the provider's revocation endpoint (RFC 7009) and
/// returns the HTTP status.
pub fn revoke(
    client: &reqwest::blocking::Client,
    provider: &Provider,
    token: &str,
    hint: &str,
) -> u16 {
    let url = provider.endpoint("/token/revocation");
    let form = [
        ("client_id", provider.client_id.as_str()),
        ("token", token),
        ("token_type_hint", hint),
    ];
    post_form(client, &url, &form).0
}

/// Builds a blocking HTTP client that trusts `ca_file` as well as the usual roots.
pub fn http_client(ca_file: Option<&Path>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20));
    if let Some(ca_file) = ca_file {
        let pem = std::fs::read(ca_file).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}
