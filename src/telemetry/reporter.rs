//! Shows the status board: redrawn in place twice a second when standard
//! error is a terminal, otherwise one log line per output every interval.

use super::status::StatusBoard;
use super::{status_line, terminal};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the bitrate windows are sampled and the terminal redrawn.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// The place the status is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Status lines redrawn at the bottom of the terminal.
    Terminal,
    /// One log line per output every interval.
    Log { interval: Duration },
}

/// The thread that shows the status. Dropping it stops the thread and
/// erases the terminal's status lines.
pub struct StatusReporter {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    mode: Mode,
}

impl StatusReporter {
    /// Starts showing `board`: on the terminal when standard error is one,
    /// else in the log every `interval`. `None` (`--status-interval 0`)
    /// shows nothing in either place.
    pub fn start(board: StatusBoard, interval: Option<Duration>) -> Option<Self> {
        let interval = interval.filter(|interval| !interval.is_zero())?;
        let mode = if terminal::is_terminal() {
            Mode::Terminal
        } else {
            Mode::Log { interval }
        };
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("status".into())
            .spawn(move || {
                let tick = SAMPLE_INTERVAL.min(interval);
                let mut next_log = Instant::now() + interval;
                loop {
                    match stopped.recv_timeout(tick) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let now = Instant::now();
                    let snapshots = board.snapshots(now);
                    match mode {
                        Mode::Terminal => terminal::show(
                            snapshots
                                .iter()
                                .map(|snapshot| status_line::terminal_line(snapshot, now))
                                .collect(),
                        ),
                        Mode::Log { .. } if now >= next_log => {
                            for snapshot in &snapshots {
                                status_line::log(snapshot, now);
                            }
                            next_log += interval;
                            // A thread held up for more than an interval
                            // skips the lines it missed.
                            if next_log <= now {
                                next_log = now + interval;
                            }
                        }
                        Mode::Log { .. } => {}
                    }
                }
            })
            .map_err(|error| tracing::warn!(%error, "cannot start the status thread; no status is shown"))
            .ok()?;
        Some(Self {
            stop: Some(stop),
            thread: Some(thread),
            mode,
        })
    }
}

impl Drop for StatusReporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if self.mode == Mode::Terminal {
            terminal::clear();
        }
    }
}
