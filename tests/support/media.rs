//! Checks of what a peer received, with ffprobe and ffmpeg, and of what a
//! process printed.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Returns a process's standard output and standard error, one after the other.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Returns ffprobe's description of every stream in `file`.
pub fn ffprobe_streams(file: &Path) -> Vec<Value> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "ffprobe failed on {}",
        file.display()
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    parsed["streams"].as_array().cloned().unwrap_or_default()
}

/// Decodes the whole of `file` and returns the errors ffmpeg reported.
pub fn decode_errors(file: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("cannot run ffmpeg; run scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "ffmpeg cannot decode {}",
        file.display()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}
