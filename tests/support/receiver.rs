//! Runs `tests/peers/srt_receiver.py` and collects the JSON events it
//! prints, one per line.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const PYTHON: &str = "/usr/bin/python3";

pub fn peer_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Returns a UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

#[derive(Default)]
struct Events {
    lines: Vec<Value>,
    closed: bool,
}

pub struct Receiver {
    child: Child,
    events: Arc<(Mutex<Events>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    pub port: u16,
}

impl Receiver {
    /// Starts the receiver on `port` with `extra` arguments and waits until
    /// it listens.
    pub fn start(port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(peer_script("srt_receiver.py"))
            .args(["--port", &port.to_string(), "--stats-interval-ms", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start /usr/bin/python3 tests/peers/srt_receiver.py");

        let events = Arc::new((Mutex::new(Events::default()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "unparsed", "line": line}));
                sink.0.lock().unwrap().lines.push(value);
                sink.1.notify_all();
            }
            sink.0.lock().unwrap().closed = true;
            sink.1.notify_all();
        });

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            collected.lock().unwrap().push_str(&text);
        });

        let receiver = Self {
            child,
            events,
            stderr,
            port,
        };
        receiver.wait_for("listening", Duration::from_secs(10));
        receiver
    }

    /// Waits for the first event named `name`; panics after `timeout`.
    pub fn wait_for(&self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let (lock, condvar) = &*self.events;
        let mut events = lock.lock().unwrap();
        loop {
            if let Some(event) = events.lines.iter().find(|e| e["event"] == name) {
                return event.clone();
            }
            let now = Instant::now();
            if events.closed || now >= deadline {
                drop(events);
                panic!(
                    "receiver printed no '{name}' event; events: {:?}; stderr: {}",
                    self.events(),
                    self.stderr.lock().unwrap()
                );
            }
            events = condvar.wait_timeout(events, deadline - now).unwrap().0;
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.0.lock().unwrap().lines.clone()
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the receiver with SIGKILL, as a crash would, and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, waits for the exit, and returns every event.
    pub fn stop(mut self) -> Vec<Value> {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "receiver exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "receiver did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_for("stopped", Duration::from_secs(5));
        self.events()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
