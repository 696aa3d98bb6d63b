//! Runs `tests/peers/whip_receiver.py`, the aiortc WHIP receiver, with the
//! project's `.venv/bin/python`, and reads the reports it writes.

use super::receiver::peer_script;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How the aiortc receiver checks Bearer tokens.
pub enum AiortcToken<'a> {
    /// ES256 via the JWKS at this URL, with the WHIP claims.
    Jwks(&'a str),
    /// The token must equal this file's content.
    File(&'a Path),
}

pub struct AiortcReceiver {
    child: Child,
    pub port: u16,
    pub record_dir: PathBuf,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

/// Returns the project's virtual environment Python, failing the test with
/// what to run when it or aiortc is missing.
pub fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-peers.sh to create it with aiortc",
        python.display()
    );
    let probe = Command::new(&python)
        .args(["-c", "import aiortc"])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
    assert!(
        probe.status.success(),
        "{} cannot import aiortc: run scripts/install-peers.sh; {}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

impl AiortcReceiver {
    /// Starts the receiver, recording into `record_dir`, with `extra`
    /// arguments (such as `--pli-after-s 2`), and waits until it listens.
    pub fn start(record_dir: &Path, token: AiortcToken, extra: &[&str]) -> Self {
        let mut command = Command::new(venv_python());
        command
            .arg(peer_script("whip_receiver.py"))
            .arg("--record-dir")
            .arg(record_dir);
        match token {
            AiortcToken::Jwks(url) => command.args(["--jwks-url", url]),
            AiortcToken::File(file) => command.arg("--token-file").arg(file),
        };
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start .venv/bin/python tests/peers/whip_receiver.py");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(count) = pipe.read(&mut chunk) {
                if count == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&chunk[..count]);
                collected.lock().unwrap().push_str(&text);
            }
        });

        let events = Arc::new(Mutex::new(Vec::new()));
        let (port_sender, port_receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["event"] == "listening" {
                    let _ = port_sender.send(event["port"].as_u64().unwrap_or(0) as u16);
                }
                sink.lock().unwrap().push(event);
            }
        });

        let port = port_receiver
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "whip_receiver.py did not start listening in {START_TIMEOUT:?}; stderr: {}",
                    stderr.lock().unwrap()
                )
            });
        Self {
            child,
            port,
            record_dir: record_dir.to_path_buf(),
            events,
            stderr,
        }
    }

    /// Returns the WHIP endpoint URL of a stream path such as `inputs/whip-<uuid>`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}/whip", self.port)
    }

    pub fn session_dir(&self, session: u32) -> PathBuf {
        self.record_dir.join(format!("session-{session}"))
    }

    /// Reads session `session`'s report.json, or `None` before it exists.
    pub fn report(&self, session: u32) -> Option<Value> {
        let text = std::fs::read_to_string(self.session_dir(session).join("report.json")).ok()?;
        Some(serde_json::from_str(&text).expect("report.json is JSON"))
    }

    /// Returns every JSON event the receiver printed so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Returns what the receiver logged to stderr so far, one line per request.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the receiver printed an event named `name` for `session`.
    pub fn wait_for(&self, name: &str, session: u32, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events()
                .into_iter()
                .find(|event| event["event"] == name && event["session"] == session);
            if let Some(event) = found {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "whip_receiver.py printed no {name:?} event for session {session}; events: {:?}; \
                 stderr: {}",
                self.events(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads session `session`'s video_times.txt (see `read_video_times`).
    pub fn video_times(&self, session: u32) -> Vec<(f64, u32, bool)> {
        read_video_times(&self.session_dir(session))
    }

    /// Sends SIGTERM and waits for the exit, so every report is final.
    pub fn stop(mut self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "whip_receiver.py did not exit after SIGTERM; stderr: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads a session directory's video_times.txt: per access unit, its
/// arrival time (Unix seconds), RTP timestamp and whether it is an IDR.
/// A receiver that was killed leaves the file up to its last line.
pub fn read_video_times(session_dir: &Path) -> Vec<(f64, u32, bool)> {
    let text = std::fs::read_to_string(session_dir.join("video_times.txt")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let arrival = fields.next()?.parse().ok()?;
            let rtp = fields.next()?.parse().ok()?;
            let idr = fields.next()? == "1";
            Some((arrival, rtp, idr))
        })
        .collect()
}

impl Drop for AiortcReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
