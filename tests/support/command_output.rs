//! Runs of a command to its end, and checks on what it printed and its
//! exit code.

use std::process::{Command, Output};

/// Runs `command` to its end and returns its output.
pub fn run(mut command: Command) -> Output {
    command.output().expect("cannot run the bridge")
}

/// Returns stdout followed by stderr, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the exit code, showing everything printed when it differs.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", output_text(output));
}

/// Asserts that stdout or stderr contains `text`, showing everything printed
/// when it does not.
pub fn assert_printed(output: &Output, text: &str) {
    let printed = output_text(output);
    assert!(printed.contains(text), "{printed}");
}
