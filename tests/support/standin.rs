//! Runs `tests/peers/v1_standin.py`, the local stand-in for TRaX's /v1 API,
//! and drives its control endpoint.

use super::receiver::{peer_script, PYTHON};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Standin {
    child: Child,
    pub origin: String,
    pub key_file: PathBuf,
    pub key: String,
    _directory: tempfile::TempDir,
}

impl Standin {
    /// Starts the stand-in with a fresh API key and `extra` arguments, and
    /// waits until it listens.
    pub fn start(extra: &[&str]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let key = format!("sk_live_test_{}", std::process::id());
        let key_file = directory.path().join("api-key");
        std::fs::write(&key_file, &key).unwrap();

        let mut child = Command::new(PYTHON)
            .arg(peer_script("v1_standin.py"))
            .arg("--api-key-file")
            .arg(&key_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start /usr/bin/python3 tests/peers/v1_standin.py");

        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["event"] == "listening" {
                        let _ = sender.send(event["origin"].as_str().unwrap_or("").to_string());
                    }
                }
            }
        });
        let origin = receiver
            .recv_timeout(Duration::from_secs(15))
            .expect("the /v1 stand-in did not start listening");
        Self {
            child,
            origin,
            key_file,
            key,
            _directory: directory,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.origin)
    }

    /// Applies a `/_control` body and returns the new state.
    pub fn control(&self, body: Value) -> Value {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/_control", self.origin))
            .json(&body)
            .send()
            .expect("the stand-in's control endpoint answers");
        assert!(response.status().is_success(), "control {body} failed");
        response.json().unwrap()
    }

    /// The request counters of `/_control/stats`.
    pub fn stats(&self) -> Value {
        reqwest::blocking::get(format!("{}/_control/stats", self.origin))
            .expect("the stand-in's stats endpoint answers")
            .json()
            .unwrap()
    }

    /// How many requests an operation such as `GET /v1/sources` received.
    pub fn count(&self, operation: &str) -> u64 {
        self.stats()["operations"][operation].as_u64().unwrap_or(0)
    }

    pub fn key_path(&self) -> &Path {
        &self.key_file
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
