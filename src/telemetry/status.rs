//! Each output's current status: its state, attempt, last error,
//! bytes and bitrate, dropped frames and, for SRT, the link's RTT, loss and
//! retransmissions.
//!
//! The supervisor and the output update an `OutputStatus` through cheap
//! calls: bytes are one atomic add, so they can be counted per packet, and
//! state changes take a short lock. The status reporter reads every
//! output's `Snapshot` from the `StatusBoard` a few times a second.

use super::latency::{Distribution, HandoverLatency};
use crate::pipeline::fanout::DropCounter;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The span of the bitrate average.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// An output's place in its cycle of dialing, streaming and backing off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    /// Preflight or dial under way.
    Connecting,
    /// Connected and sending media.
    Live { since: Instant },
    /// Waiting after a failure; the next attempt starts at `retry_at`.
    BackingOff { retry_at: Instant },
    /// Ended by a clean stop.
    Stopped,
    /// Ended for good after a failure retrying cannot fix.
    GaveUp,
}

impl State {
    /// Returns the state as one word for logs: `connecting`, `live`,
    /// `backing_off`, `stopped` or `gave_up`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Live { .. } => "live",
            State::BackingOff { .. } => "backing_off",
            State::Stopped => "stopped",
            State::GaveUp => "gave_up",
        }
    }
}

/// Link counters libsrt reports for the current SRT connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SrtLinkStats {
    /// Smoothed round-trip time.
    pub rtt_ms: f64,
    /// Packets the receiver reported lost since the connection opened.
    pub lost: u64,
    /// Packets sent again since the connection opened.
    pub retransmitted: u64,
}

/// One output's status at one instant, ready to print.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The output's label: transport, host and path, never a credential.
    pub label: String,
    pub state: State,
    /// The number of the current or last attempt, from 1; 0 before the
    /// first.
    pub attempt: u64,
    /// Attempts that followed a live or failed earlier attempt.
    pub reconnects: u64,
    /// The cause of the last failed attempt, redacted like every output
    /// error.
    pub last_error: Option<String>,
    /// Bytes sent since the bridge started, over every attempt.
    pub bytes: u64,
    /// The send rate over the last `RATE_WINDOW`.
    pub bitrate_kbps: f64,
    /// Frames the fan-out dropped because this output fell behind.
    pub dropped: u64,
    /// Present while an SRT connection is open.
    pub srt: Option<SrtLinkStats>,
    /// Hand-over latency since the current or last attempt began.
    pub latency_connection: Distribution,
    /// Hand-over latency since the bridge started.
    pub latency_total: Distribution,
}

/// Every output's status, in the order the outputs were added.
#[derive(Clone, Default)]
pub struct StatusBoard {
    outputs: Arc<Mutex<Vec<OutputStatus>>>,
}

impl StatusBoard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an output and returns the handle its supervisor and sessions
    /// update.
    pub fn add(&self, label: String, drops: DropCounter) -> OutputStatus {
        let status = OutputStatus::new(label, Some(drops));
        lock(&self.outputs).push(status.clone());
        status
    }

    /// Removes an output that has stopped for good, such as one a config
    /// reload removed or replaced.
    pub fn remove(&self, status: &OutputStatus) {
        lock(&self.outputs).retain(|shown| !Arc::ptr_eq(&shown.shared, &status.shared));
    }

    /// Takes every output's snapshot at `now`, which also adds a sample to
    /// each bitrate window.
    pub fn snapshots(&self, now: Instant) -> Vec<Snapshot> {
        let outputs = lock(&self.outputs).clone();
        outputs.iter().map(|status| status.snapshot(now)).collect()
    }

    /// Returns every output's state, without sampling the bitrate windows.
    pub fn states(&self) -> Vec<State> {
        let outputs = lock(&self.outputs).clone();
        outputs.iter().map(|status| status.fields().state).collect()
    }
}

/// The handle through which one output's status is updated. Clones share
/// the same status.
#[derive(Clone)]
pub struct OutputStatus {
    shared: Arc<Shared>,
}

struct Shared {
    label: String,
    bytes: AtomicU64,
    drops: Option<DropCounter>,
    latency: HandoverLatency,
    fields: Mutex<Fields>,
}

/// The parts of the status that change together, under one lock.
struct Fields {
    state: State,
    attempt: u64,
    reconnects: u64,
    last_error: Option<String>,
    srt: Option<SrtLinkStats>,
    rate: RateWindow,
}

impl OutputStatus {
    fn new(label: String, drops: Option<DropCounter>) -> Self {
        Self {
            shared: Arc::new(Shared {
                label,
                bytes: AtomicU64::new(0),
                drops,
                latency: HandoverLatency::default(),
                fields: Mutex::new(Fields {
                    state: State::Connecting,
                    attempt: 0,
                    reconnects: 0,
                    last_error: None,
                    srt: None,
                    rate: RateWindow::new(RATE_WINDOW),
                }),
            }),
        }
    }

    /// Creates a status that no board reads, for sessions run outside the bridge's
    /// supervisor, as in tests.
    pub fn detached(label: &str) -> Self {
        Self::new(label.to_string(), None)
    }

    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Marks the start of attempt `attempt`, a reconnect when an earlier
    /// attempt was live or failed.
    pub fn connecting(&self, attempt: u64) {
        let mut fields = self.fields();
        if matches!(fields.state, State::Live { .. } | State::BackingOff { .. }) {
            fields.reconnects += 1;
        }
        fields.state = State::Connecting;
        fields.attempt = attempt;
        fields.srt = None;
        self.shared.latency.new_connection();
    }

    /// Marks the output live: connected and sending media. Calling it
    /// again while live keeps the first time.
    pub fn live(&self) {
        let mut fields = self.fields();
        if !matches!(fields.state, State::Live { .. }) {
            fields.state = State::Live {
                since: Instant::now(),
            };
        }
    }

    /// Marks a failed attempt whose next one starts at `retry_at`.
    pub fn backing_off(&self, cause: &str, retry_at: Instant) {
        let mut fields = self.fields();
        fields.state = State::BackingOff { retry_at };
        fields.last_error = Some(cause.to_string());
        fields.srt = None;
    }

    pub fn stopped(&self) {
        let mut fields = self.fields();
        fields.state = State::Stopped;
        fields.srt = None;
    }

    pub fn gave_up(&self, cause: &str) {
        let mut fields = self.fields();
        fields.state = State::GaveUp;
        fields.last_error = Some(cause.to_string());
        fields.srt = None;
    }

    /// Counts bytes handed to the network (or the disk). One atomic add.
    pub fn add_bytes(&self, bytes: u64) {
        self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Returns the output's hand-over latency, which the output records
    /// per video frame.
    pub fn latency(&self) -> &HandoverLatency {
        &self.shared.latency
    }

    pub fn set_srt(&self, stats: SrtLinkStats) {
        self.fields().srt = Some(stats);
    }

    /// Returns the status at `now` and adds a sample to the bitrate window.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let bytes = self.shared.bytes.load(Ordering::Relaxed);
        let dropped = self.shared.drops.as_ref().map_or(0, DropCounter::get);
        let mut fields = self.fields();
        fields.rate.record(now, bytes);
        Snapshot {
            label: self.shared.label.clone(),
            state: fields.state,
            attempt: fields.attempt,
            reconnects: fields.reconnects,
            last_error: fields.last_error.clone(),
            bytes,
            bitrate_kbps: fields.rate.kbps(),
            dropped,
            srt: fields.srt,
            latency_connection: self.shared.latency.connection(),
            latency_total: self.shared.latency.total(),
        }
    }

    fn fields(&self) -> MutexGuard<'_, Fields> {
        lock(&self.shared.fields)
    }
}

/// Locks `mutex`, going on with its value if a thread panicked while
/// holding it: a status is only read for display.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A moving average of a byte counter's rate over a fixed span.
#[derive(Debug)]
pub struct RateWindow {
    span: Duration,
    /// (time, counter value), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            samples: VecDeque::new(),
        }
    }

    /// Adds the counter's value at `now` and drops the samples the window
    /// no longer needs. The newest sample older than the span stays,
    /// so the average covers the whole span once it has run that long.
    pub fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        while self
            .samples
            .get(1)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.span)
        {
            self.samples.pop_front();
        }
    }

    /// Returns the average rate between the oldest and the newest sample, in
    /// kilobits per second; 0 with fewer than two samples. A counter that
    /// went backwards counts as 0.
    pub fn kbps(&self) -> f64 {
        let (Some((first_at, first)), Some((last_at, last))) =
            (self.samples.front(), self.samples.back())
        else {
            return 0.0;
        };
        let seconds = last_at.saturating_duration_since(*first_at).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        last.saturating_sub(*first) as f64 * 8.0 / 1000.0 / seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn rate_window_averages_over_span() {
        let start = Instant::now();
        let mut window = RateWindow::new(Duration::from_secs(5));
        assert_eq!(window.kbps(), 0.0);
        window.record(start, 0);
        assert_eq!(window.kbps(), 0.0);

        // 125 000 bytes a second is 1000 kb/s.
        for second in 1..=10 {
            window.record(at(start, second * 1000), second * 125_000);
        }
        assert!((window.kbps() - 1000.0).abs() < 1e-6, "{}", window.kbps());
        assert_eq!(window.samples.len(), 6, "{:?}", window.samples);
    }

    #[test]
    fn rate_window_forgets_old_rate() {
        let start = Instant::now();
        let mut window = RateWindow::new(Duration::from_secs(2));
        window.record(start, 0);
        window.record(at(start, 1000), 1_000_000);
        assert!(window.kbps() > 7000.0);

        // The counter stops; within one span the rate falls to 0.
        for millis in [1500, 2000, 2500, 3000] {
            window.record(at(start, millis), 1_000_000);
        }
        assert_eq!(window.kbps(), 0.0);
    }

    #[test]
    fn rate_window_partial_span() {
        let start = Instant::now();
        let mut window = RateWindow::new(Duration::from_secs(5));
        window.record(start, 0);
        window.record(at(start, 500), 31_250);
        assert!((window.kbps() - 500.0).abs() < 1e-6, "{}", window.kbps());
    }

    #[test]
    fn rate_window_counter_going_back() {
        let start = Instant::now();
        let mut window = RateWindow::new(Duration::from_secs(5));
        window.record(start, 500);
        window.record(at(start, 1000), 100);
        assert_eq!(window.kbps(), 0.0);
    }

    #[test]
    fn status_follows_attempts() {
        let status = OutputStatus::detached("srt://127.0.0.1:9000 path=live/cam1");
        let now = Instant::now();
        let first = status.snapshot(now);
        assert_eq!(first.state, State::Connecting);
        assert_eq!(first.attempt, 0);
        assert_eq!(first.reconnects, 0);
        assert_eq!(first.last_error, None);

        status.connecting(1);
        assert_eq!(status.snapshot(now).reconnects, 0);
        status.live();
        let State::Live { since } = status.snapshot(now).state else {
            panic!("not live after live()");
        };
        status.live();
        assert_eq!(status.snapshot(now).state, State::Live { since });

        status.set_srt(SrtLinkStats {
            rtt_ms: 1.5,
            lost: 2,
            retransmitted: 3,
        });
        assert_eq!(status.snapshot(now).srt.unwrap().lost, 2);

        let retry_at = now + Duration::from_secs(2);
        status.backing_off("SRT connection lost", retry_at);
        let backing_off = status.snapshot(now);
        assert_eq!(backing_off.state, State::BackingOff { retry_at });
        assert_eq!(backing_off.srt, None);
        assert_eq!(
            backing_off.last_error.as_deref(),
            Some("SRT connection lost")
        );

        status.connecting(2);
        let connecting = status.snapshot(now);
        assert_eq!(connecting.state, State::Connecting);
        assert_eq!(connecting.attempt, 2);
        assert_eq!(connecting.reconnects, 1);
        assert_eq!(
            connecting.last_error.as_deref(),
            Some("SRT connection lost")
        );

        status.gave_up("rejected 2 times in a row");
        let gave_up = status.snapshot(now);
        assert_eq!(gave_up.state, State::GaveUp);
        assert_eq!(gave_up.state.name(), "gave_up");
        assert_eq!(
            gave_up.last_error.as_deref(),
            Some("rejected 2 times in a row")
        );
    }

    #[test]
    fn status_counts_bytes_across_clones() {
        let status = OutputStatus::detached("rtmp://127.0.0.1:1935 path=live/cam1");
        let writer = status.clone();
        writer.add_bytes(1000);
        writer.add_bytes(500);
        assert_eq!(status.snapshot(Instant::now()).bytes, 1500);
    }

    #[test]
    fn board_keeps_order_and_dropped() {
        let board = StatusBoard::new();
        let fanout = crate::pipeline::fanout::Fanout::new();
        let first = fanout.add_output();
        let second = fanout.add_output();
        board.add("first".into(), first.drop_counter());
        board.add("second".into(), second.drop_counter());
        let labels: Vec<String> = board
            .snapshots(Instant::now())
            .into_iter()
            .map(|snapshot| snapshot.label)
            .collect();
        assert_eq!(labels, ["first", "second"]);
    }
}
