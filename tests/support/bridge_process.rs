//! The bridge binary as a running child process for fault tests: its log
//! goes to a file, and its memory and thread count are read from /proc
//! while it runs.

use super::standin::Standin;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BridgeProcess {
    child: Child,
    log: PathBuf,
    _directory: tempfile::TempDir,
}

/// How the process ended: its exit code and how long it took after the
/// request to stop.
pub struct Ended {
    pub code: Option<i32>,
    pub took: Duration,
}

impl BridgeProcess {
    /// Starts the bridge with `args`, its credentials acquired from
    /// `standin` through /v1, and the log at debug for the bridge.
    pub fn start(args: &[&str], standin: &Standin) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("bridge.log");
        let file = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(args)
            .args(["--api-url", &standin.origin, "--api-key-file"])
            .arg(standin.key_path())
            .env_remove("TRAX_API_KEY")
            .env_remove("TRAX_SESSION_TOKEN")
            .env_remove("TRAX_STREAM_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("RUST_LOG", "bridge=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the bridge binary runs");
        Self {
            child,
            log,
            _directory: directory,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns everything the bridge logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Counts the log lines that contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }

    /// Waits until the log has `count` lines that contain `text`; panics
    /// with the log after `timeout`.
    pub fn wait_for_log(&self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(text) < count {
            assert!(
                Instant::now() < deadline,
                "the bridge logged {:?} fewer than {count} times in {timeout:?}:\n{}",
                text,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// Threads of the process (Threads: of /proc/PID/status).
    pub fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    /// Open file descriptors of the process (the entries of /proc/PID/fd).
    pub fn open_fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the bridge is running")
            .count() as u64
    }

    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the bridge is running");
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/PID/status"));
        line[name.len()..]
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("cannot read {line:?}"))
    }

    /// Sends `signal` (such as `libc::SIGTERM`) to the bridge.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Sends SIGTERM and waits up to `bound` for the exit. Kills the
    /// process and returns `code: None` when it does not exit in time.
    pub fn terminate(&mut self, bound: Duration) -> Ended {
        self.signal(libc::SIGTERM);
        self.wait(bound)
    }

    /// Waits up to `bound` for the exit; kills the process after that.
    pub fn wait(&mut self, bound: Duration) -> Ended {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Ended {
                    code: status.code(),
                    took: started.elapsed(),
                };
            }
            if started.elapsed() > bound {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ended {
                    code: None,
                    took: started.elapsed(),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Lines of the bridge's log printed when a test fails while it runs.
const FAILURE_LOG_LINES: usize = 80;

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(FAILURE_LOG_LINES)..];
            eprintln!("the bridge's last log lines:\n{}", tail.join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` to the process `pid`, one of the test's own children.
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill on our own child's pid has no memory effects.
    let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}
