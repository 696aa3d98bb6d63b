//! Runs `tests/peers/whip_mock.py`, the mock WHIP server, and reads the
//! requests it logs.

use super::receiver::{peer_script, PYTHON};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use url::Url;

/// The path the tests publish to.
pub const ENDPOINT_PATH: &str = "/inputs/cam/whip";

/// Certificate and key files for an HTTPS mock.
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// A TURN server for the mock's Link headers to name.
pub struct MockTurn<'a> {
    pub url: &'a str,
    pub username: &'a str,
    pub credential: &'a str,
}

pub struct WhipMock {
    child: Child,
    pub port: u16,
    pub origin: String,
    pub second_port: u16,
    pub second_origin: String,
    /// The Bearer token the mock expects.
    pub token: String,
    log_path: PathBuf,
    stderr_path: PathBuf,
    _directory: tempfile::TempDir,
}

impl WhipMock {
    /// Starts the mock over http:// in `scenario` and waits until it listens.
    pub fn start(scenario: &str) -> Self {
        Self::start_with(scenario, None)
    }

    /// Starts the mock in `scenario`, over https:// when `tls` is given, and
    /// waits until it listens. The token goes to the mock in a file.
    pub fn start_with(scenario: &str, tls: Option<TlsFiles<'_>>) -> Self {
        let token = format!("whip-test-token-{}-{}", std::process::id(), scenario);
        Self::launch(scenario, tls, token)
    }

    /// Starts the mock over http:// in `scenario`, expecting `token` as the
    /// Bearer, such as a talk token the bridge binary accepts.
    pub fn start_for_token(scenario: &str, token: &str) -> Self {
        Self::launch(scenario, None, token.to_string())
    }

    fn launch(scenario: &str, tls: Option<TlsFiles<'_>>, token: String) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let token_path = directory.path().join("token");
        std::fs::write(&token_path, &token).unwrap();
        let log_path = directory.path().join("requests.jsonl");
        let stderr_path = directory.path().join("stderr.txt");

        let mut command = Command::new(PYTHON);
        command
            .arg(peer_script("whip_mock.py"))
            .args(["--scenario", scenario])
            .arg("--token-file")
            .arg(&token_path)
            .arg("--log")
            .arg(&log_path);
        if let Some(tls) = tls {
            command
                .arg("--tls-cert")
                .arg(tls.cert)
                .arg("--tls-key")
                .arg(tls.key);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("cannot start /usr/bin/python3 tests/peers/whip_mock.py");

        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Keep reading so the mock never blocks on a full pipe.
            for _ in lines {}
        });
        let Ok(line) = receiver.recv_timeout(Duration::from_secs(15)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the WHIP mock printed no first line; stderr: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        let listening: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("the WHIP mock's first line {line:?}: {error}"));
        assert_eq!(listening["event"], "listening", "{line}");

        let port = |name: &str| listening[name].as_u64().unwrap() as u16;
        let text = |name: &str| listening[name].as_str().unwrap().to_string();
        Self {
            child,
            port: port("port"),
            origin: text("origin"),
            second_port: port("second_port"),
            second_origin: text("second_origin"),
            token,
            log_path,
            stderr_path,
            _directory: directory,
        }
    }

    /// The WHIP endpoint on the main listener.
    pub fn endpoint(&self) -> Url {
        Url::parse(&format!("{}{ENDPOINT_PATH}", self.origin)).unwrap()
    }

    /// Switches the scenario through the control endpoint and resets its
    /// counters.
    pub fn set_scenario(&self, scenario: &str) {
        self.control(serde_json::json!({ "scenario": scenario }));
    }

    /// Switches the scenario and makes the Link headers of the ok and
    /// options-ice scenarios name only this TURN server.
    pub fn set_scenario_with_turn(&self, scenario: &str, turn: &MockTurn<'_>) {
        self.control(serde_json::json!({
            "scenario": scenario,
            "turn": {
                "url": turn.url,
                "username": turn.username,
                "credential": turn.credential,
            },
        }));
    }

    fn control(&self, body: Value) {
        // The control call needs no trust: it goes to the mock this test
        // started on loopback.
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let response = client
            .post(format!("{}/_control", self.origin))
            .json(&body)
            .send()
            .expect("the WHIP mock's control endpoint responds");
        assert!(
            response.status().is_success(),
            "switching the WHIP mock to {} failed: {}",
            body["scenario"],
            response.text().unwrap_or_default()
        );
    }

    /// Returns every request logged so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Returns the logged requests with this method, oldest first.
    pub fn requests_with_method(&self, method: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|request| request["method"] == method)
            .collect()
    }

    /// Returns what the mock wrote to stderr, for failure messages.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for WhipMock {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
