//! SIGINT and SIGTERM as a channel, for a clean stop, and SIGHUP as
//! another, for a config reload.

use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Starts listening for SIGINT and SIGTERM; each signal that arrives is
/// sent on the channel.
pub fn listen() -> std::io::Result<Receiver<i32>> {
    forward(&[SIGINT, SIGTERM])
}

/// Starts listening for SIGHUP, which then no longer ends the process.
pub fn hangups() -> std::io::Result<Receiver<i32>> {
    forward(&[SIGHUP])
}

fn forward(wanted: &[i32]) -> std::io::Result<Receiver<i32>> {
    let mut signals = Signals::new(wanted)?;
    let (sender, receiver) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if sender.send(signal).is_err() {
                    break;
                }
            }
        })?;
    Ok(receiver)
}
