//! A coturn TURN server on loopback, for tests that need relay candidates.

use super::receiver::free_udp_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "bridge";
pub const PASSWORD: &str = "turn-test-password";

pub struct TurnServer {
    child: Child,
    pub port: u16,
    _directory: tempfile::TempDir,
    log: PathBuf,
}

impl TurnServer {
    /// Starts `turnserver` on 127.0.0.1 with one long-term user. Fails the
    /// test when coturn is missing (scripts/install-deps.sh installs it).
    pub fn start() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("turn.log");
        let port = free_udp_port();
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", "49152", "--max-port", "65535"])
            .args(["--lt-cred-mech", "--realm", "bridge.test"])
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .arg("--allow-loopback-peers")
            .arg("--userdb")
            .arg(directory.path().join("turndb"))
            .arg("--pidfile")
            .arg(directory.path().join("turn.pid"))
            .arg("--log-file")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run turnserver: install coturn (scripts/install-deps.sh)");
        let server = Self {
            child,
            port,
            _directory: directory,
            log,
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains("Total General servers") {
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("turnserver did not start:\n{}", self.log());
    }

    /// Returns the server as `--ice-server` takes it.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
