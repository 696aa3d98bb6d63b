//! Runs the bridge binary with a WHIP output: the talk token in a file,
//! the environment cleared of credentials, and a deadline.

use super::standin::Standin;
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a run may take beyond its `--duration` before the test kills it.
const EXIT_MARGIN: Duration = Duration::from_secs(40);

/// A finished run of the bridge binary.
pub struct BridgeRun {
    /// Exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stderr: String,
    /// Unix time just before the process was spawned, in seconds.
    pub started_unix_s: f64,
}

impl BridgeRun {
    /// Fails the test when `secret` appears in the bridge's standard error.
    pub fn assert_hides(&self, secret: &str, what: &str) {
        assert!(
            !self.stderr.contains(secret),
            "the bridge printed the {what}:\n{}",
            self.stderr
        );
    }
}

/// Returns the stream path and talk token the stand-in issues for a WHIP
/// publish of source `src_cam1`.
pub fn standin_talk_credentials(standin: &Standin) -> (String, String) {
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/sources/src_cam1/publish-credentials",
            standin.origin
        ))
        .bearer_auth(&standin.key)
        .json(&serde_json::json!({"protocol": "whip"}))
        .send()
        .expect("the stand-in replies to the credential POST");
    assert_eq!(response.status().as_u16(), 201, "credential POST failed");
    let body: Value = response.json().unwrap();
    (
        body["path"].as_str().unwrap().to_string(),
        body["token"].as_str().unwrap().to_string(),
    )
}

/// Writes `token` to `directory/token`, readable by its owner only, as the
/// bridge expects of a token file.
pub fn token_file(directory: &Path, token: &str) -> PathBuf {
    let path = directory.join("token");
    std::fs::write(&path, token).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Runs the bridge with `args` and the extra environment `envs`, and waits
/// for its exit. `duration_s` is the run's `--duration`, for the deadline.
pub fn run_bridge(args: &[&str], envs: &[(&str, &str)], duration_s: u64) -> BridgeRun {
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command.args(args);
    for name in [
        "TRAX_API_KEY",
        "TRAX_API_URL",
        "TRAX_SESSION_TOKEN",
        "TRAX_STREAM_KEY",
        "TRAX_TURN_CREDENTIAL",
        "CREDENTIALS_DIRECTORY",
    ] {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary starts");

    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(duration_s) + EXIT_MARGIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the bridge did not exit within {duration_s} s + {EXIT_MARGIN:?}; stderr:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    BridgeRun {
        code: status.code(),
        stderr: reader.join().unwrap_or_default(),
        started_unix_s,
    }
}
