//! Shared pieces of the integration tests: the test encode, the receiver
//! peers (SRT, RTMP and the two WHIP receivers), token minting and a log
//! capture.

#![allow(dead_code)]

pub mod bridge_process;
pub mod command_output;
pub mod encoder;
pub mod fault_peers;
pub mod h264_frames;
pub mod keystore;
pub mod media;
pub mod nginx;
pub mod oidc;
pub mod receiver;
pub mod rtmp_server;
pub mod standin;
pub mod timeline;
pub mod turn;
pub mod udp_relay;
pub mod whip_bridge;
pub mod whip_http;
pub mod whip_mock;
pub mod whip_receiver;
pub mod whip_token;
pub mod whip_webrtcbin;
pub mod whip_webrtcbin_session;

use receiver::{peer_script, PYTHON};
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Mints a token with `tests/peers/mint_token.py` and the given arguments.
pub fn mint_token(args: &[&str]) -> String {
    let output = run_mint_token(args);
    assert!(
        output.status.success(),
        "mint_token.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Like `mint_token`, but `None` when the script fails, as it does for a
/// streamid length that base64url cannot reach.
pub fn try_mint_token(args: &[&str]) -> Option<String> {
    let output = run_mint_token(args);
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_string())
}

fn run_mint_token(args: &[&str]) -> std::process::Output {
    Command::new(PYTHON)
        .arg(peer_script("mint_token.py"))
        .args(args)
        .output()
        .expect("cannot run /usr/bin/python3 tests/peers/mint_token.py")
}

/// Everything any test of this binary logged through `tracing`, at every
/// level.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Default::default)
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(data);
        if std::env::var_os("BRIDGE_TEST_LOG").is_some() {
            std::io::stderr().write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the log capture once and serializes the tests that use it: the
/// machine's two cores cannot run several real-time encodes at once.
pub fn setup() -> MutexGuard<'static, ()> {
    static INSTALL: OnceLock<()> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| CaptureWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        gstreamer::init().unwrap();
    });
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
