//! The systemd notification protocol (`sd_notify(3)`): `READY=1` once the
//! first output is live, `STATUS=` lines, `STOPPING=1` on a stop and
//! `WATCHDOG=1` pings while the media pipeline produces encoded frames.
//!
//! Messages are datagrams of `KEY=value` lines sent to the socket that
//! `$NOTIFY_SOCKET` names: a path, or an abstract socket name written with
//! a leading `@`. Without `$NOTIFY_SOCKET` nothing is sent.

use super::status::{State, StatusBoard};
use crate::pipeline::fanout::FrameCounter;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often the notifier looks for the first live output and for status
/// changes.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// Opens a notifier for the `NOTIFY_SOCKET` value `target`: an absolute
    /// path, or `@name` for an abstract socket.
    pub fn open(target: &str) -> io::Result<Self> {
        let address = if let Some(name) = target.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if target.starts_with('/') {
            SocketAddr::from_pathname(target)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unsupported NOTIFY_SOCKET '{target}': expected an absolute path \
                     or an abstract name starting with '@'"
                ),
            ));
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends one message of newline-separated `KEY=value` assignments.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.address)
            .map(drop)
    }
}

/// Returns the process's notifier, opened from `$NOTIFY_SOCKET` on first
/// use, or `None` when the variable is unset or unusable.
fn global() -> Option<&'static Notifier> {
    static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
    NOTIFIER
        .get_or_init(|| {
            let target = std::env::var("NOTIFY_SOCKET").ok()?;
            Notifier::open(&target)
                .inspect_err(|error| warn!(%error, "cannot notify the service manager"))
                .ok()
        })
        .as_ref()
}

/// Sends `message` to the service manager, if the bridge runs under one.
/// A failed send is logged at debug: notifications are advisory.
fn notify(message: &str) {
    if let Some(notifier) = global() {
        if let Err(error) = notifier.send(message) {
            debug!(%error, message, "failed to notify the service manager");
        }
    }
}

/// Set once `STOPPING=1` went out, so that no later `STATUS=` line
/// replaces "stopping: ..." while the outputs wind down.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Tells the service manager that the bridge is stopping, and why.
pub fn stopping(reason: &str) {
    STOPPING.store(true, Ordering::SeqCst);
    notify(&format!("STOPPING=1\nSTATUS=stopping: {reason}"));
}

/// Returns the watchdog interval from the `WATCHDOG_USEC` and
/// `WATCHDOG_PID` values, or `None` when there is no watchdog for process
/// `own_pid`: the interval is missing, not a positive number, or meant for
/// another process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|usec| *usec > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Returns the `STATUS=` text for `live` of `total` outputs live.
pub fn status_text(live: usize, total: usize) -> String {
    if live == 0 {
        format!("waiting for an output to go live (0 of {total})")
    } else {
        format!("streaming: {live} of {total} outputs live")
    }
}

/// The thread that sends `READY=1`, `STATUS=` and `WATCHDOG=1`. Dropping it
/// stops the thread.
pub struct ServiceNotifier {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServiceNotifier {
    /// Starts notifying when `$NOTIFY_SOCKET` is set; `None` otherwise.
    /// `frames` counts the encoded video frames: a watchdog ping goes out
    /// only when it advanced since the last one, so a bridge whose
    /// pipeline hangs stops pinging and the service manager restarts it.
    pub fn start(board: StatusBoard, frames: FrameCounter) -> Option<Self> {
        global()?;
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        if let Some(interval) = watchdog {
            info!(
                watchdog_ms = interval.as_millis() as u64,
                "the service manager's watchdog is on"
            );
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let mut state = NotifyState::new(frames, watchdog.map(|interval| interval / 2));
                loop {
                    match stopped.recv_timeout(POLL_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    for message in state.tick(&board, Instant::now()) {
                        notify(&message);
                    }
                }
            })
            .ok()?;
        Some(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ServiceNotifier {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The notifier's progress: whether it sent `READY=1`, the last `STATUS=`
/// and the watchdog's schedule.
struct NotifyState {
    frames: FrameCounter,
    ready: bool,
    /// The live and total output counts of the last `STATUS=`.
    last_status: Option<(usize, usize)>,
    /// Half the watchdog interval, when there is a watchdog.
    ping_every: Option<Duration>,
    next_ping: Instant,
    /// The frame count at the last ping.
    pinged_frames: u64,
    /// Whether the bridge is stopping: `STOPPING` outside the tests.
    stopping: &'static AtomicBool,
}

impl NotifyState {
    fn new(frames: FrameCounter, ping_every: Option<Duration>) -> Self {
        Self {
            frames,
            ready: false,
            last_status: None,
            ping_every,
            next_ping: Instant::now(),
            pinged_frames: 0,
            stopping: &STOPPING,
        }
    }

    /// Returns the messages due at `now`.
    fn tick(&mut self, board: &StatusBoard, now: Instant) -> Vec<String> {
        let mut messages = Vec::new();
        let states = board.states();
        let live = states
            .iter()
            .filter(|state| matches!(state, State::Live { .. }))
            .count();
        let counts = (live, states.len());
        let stopping = self.stopping.load(Ordering::SeqCst);
        if !stopping && (self.last_status != Some(counts) || (!self.ready && live > 0)) {
            let mut message = format!("STATUS={}", status_text(live, states.len()));
            if !self.ready && live > 0 {
                self.ready = true;
                message.insert_str(0, "READY=1\n");
                info!("an output is live; notified the service manager");
            }
            self.last_status = Some(counts);
            messages.push(message);
        }
        if let Some(every) = self.ping_every {
            if now >= self.next_ping {
                self.next_ping = now + every;
                let frames = self.frames.get();
                if frames > self.pinged_frames {
                    self.pinged_frames = frames;
                    messages.push("WATCHDOG=1".into());
                } else if frames > 0 {
                    warn!(
                        frames,
                        "no encoded frame since the last watchdog ping; not pinging"
                    );
                }
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fanout::Fanout;

    #[test]
    fn watchdog_interval_cases() {
        let cases = [
            (Some("6000000"), None, Some(Duration::from_secs(6))),
            (Some("6000000"), Some("42"), Some(Duration::from_secs(6))),
            (Some("6000000"), Some("43"), None),
            (Some("6000000"), Some("x"), None),
            (Some("0"), None, None),
            (Some("-5"), None, None),
            (Some("ten"), None, None),
            (None, Some("42"), None),
        ];
        for (usec, pid, expected) in cases {
            assert_eq!(
                watchdog_interval(usec, pid, 42),
                expected,
                "WATCHDOG_USEC={usec:?} WATCHDOG_PID={pid:?}"
            );
        }
    }

    #[test]
    fn open_rejects_relative_target() {
        let error = Notifier::open("run/notify").unwrap_err();
        assert!(error.to_string().contains("run/notify"), "{error}");
    }

    #[test]
    fn notifier_reaches_abstract_socket() {
        let name = format!("bridge-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::open(&format!("@{name}")).unwrap();
        notifier.send("READY=1").unwrap();
        let mut buffer = [0u8; 64];
        let length = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"READY=1");
    }

    #[test]
    fn ready_once_first_output_live() {
        let fanout = Fanout::new();
        let board = StatusBoard::new();
        let first = board.add("one".into(), fanout.add_output().drop_counter());
        let second = board.add("two".into(), fanout.add_output().drop_counter());
        let mut state = NotifyState::new(fanout.frame_counter(), None);
        let now = Instant::now();

        let messages = state.tick(&board, now);
        assert_eq!(
            messages,
            ["STATUS=waiting for an output to go live (0 of 2)"]
        );
        assert!(state.tick(&board, now).is_empty());

        first.live();
        let messages = state.tick(&board, now);
        assert_eq!(messages, ["READY=1\nSTATUS=streaming: 1 of 2 outputs live"]);

        second.live();
        first.backing_off("down", now);
        first.live();
        let messages = state.tick(&board, now);
        assert_eq!(messages, ["STATUS=streaming: 2 of 2 outputs live"]);
        first.backing_off("down", now);
        let messages = state.tick(&board, now);
        assert_eq!(messages, ["STATUS=streaming: 1 of 2 outputs live"]);
    }

    #[test]
    fn no_status_after_stopping() {
        let fanout = Fanout::new();
        let board = StatusBoard::new();
        let first = board.add("one".into(), fanout.add_output().drop_counter());
        let second = board.add("two".into(), fanout.add_output().drop_counter());
        let mut state = NotifyState::new(fanout.frame_counter(), None);
        let stopping: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        state.stopping = stopping;
        let now = Instant::now();

        first.live();
        second.live();
        let messages = state.tick(&board, now);
        assert_eq!(messages, ["READY=1\nSTATUS=streaming: 2 of 2 outputs live"]);

        stopping.store(true, Ordering::SeqCst);
        first.stopped();
        let messages = state.tick(&board, now);
        assert!(messages.is_empty(), "{messages:?}");
    }

    #[test]
    fn watchdog_pings_only_when_frames_advance() {
        let frames = FrameCounter::default();
        let board = StatusBoard::new();
        let every = Duration::from_secs(1);
        let mut state = NotifyState::new(frames.clone(), Some(every));
        let start = Instant::now();
        let pings = |messages: Vec<String>| messages.iter().filter(|m| *m == "WATCHDOG=1").count();

        assert_eq!(pings(state.tick(&board, start)), 0, "no frame yet");
        frames.increment();
        assert_eq!(pings(state.tick(&board, start)), 0, "not due yet");
        assert_eq!(pings(state.tick(&board, start + every)), 1);
        assert_eq!(pings(state.tick(&board, start + every * 2)), 0, "stalled");
        frames.increment();
        assert_eq!(pings(state.tick(&board, start + every * 2)), 0, "not due");
        assert_eq!(pings(state.tick(&board, start + every * 3)), 1);
    }
}
