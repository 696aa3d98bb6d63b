//! Runs each output as a small state machine: check, connect, stream, and on
//! failure back off and connect again. Outputs never retry on their own.
//!
//! ```text
//! preflight ─► connect+stream ─► clean stop ─► Finished
//!    │ fatal        │ rejected twice in a row ─► GaveUp (exit 3)
//!    ▼              │ other failure, or a transient preflight failure
//! GaveUp            ▼
//!              back off (0.5 s doubling to 10 s, jittered) ─► preflight …
//! ```

use crate::exit::ExitStatus;
use crate::output::{Output, OutputError, Session};
use crate::pipeline::fanout::FrameReceiver;
use crate::pipeline::KeyframeRequester;
use crate::telemetry::flood::{self, RepeatFilter, Verdict};
use crate::telemetry::status::OutputStatus;
use crossbeam_channel::{Receiver, TryRecvError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, warn};

/// Consecutive credential rejections after which an output gives up.
pub const MAX_REJECTIONS: u32 = 2;

/// A session that streamed at least this long resets the backoff. Time
/// spent dialing does not count: see [`FrameReceiver::mark_streaming`].
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

/// Capped exponential backoff with ±25 % jitter, so that many bridges that
/// lost the same server do not all dial again at the same instant.
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    rng: StdRng,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Self {
            policy,
            failures: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Returns the delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let doublings = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max);
        let factor = self.rng.random_range(0.75..=1.25);
        base.mul_f64(factor).min(self.policy.max)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The end of an output's supervision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bridge stopped cleanly.
    Finished,
    /// The output stopped trying; the process exits with `status` once every
    /// output has ended this way.
    GaveUp { status: ExitStatus, cause: String },
}

pub struct Supervisor {
    pub output: Box<dyn Output>,
    pub frames: FrameReceiver,
    pub keyframes: KeyframeRequester,
    pub has_audio: bool,
    pub policy: BackoffPolicy,
    /// Disconnected when the bridge is stopping: no new attempt starts then.
    pub stop: Receiver<()>,
    /// Disconnected when this output alone is to stop, as when a config
    /// reload removes or replaces it.
    pub output_stop: Receiver<()>,
    /// This output's status, shown on the terminal or in the log.
    pub status: OutputStatus,
}

impl Supervisor {
    pub fn run(mut self) -> Outcome {
        let label = self.output.label();
        let mut backoff = Backoff::new(self.policy, rand::rng().random());
        let mut rejections = 0;
        let mut failures = RepeatFilter::new();

        for attempt in 1u64.. {
            // A new span per attempt, because tracing-subscriber's fmt
            // layer appends a recorded value to the span's fields, so one
            // span would log "attempt=1 attempt=2".
            let span = info_span!("output", output = %label, attempt);
            let _entered = span.enter();
            self.status.connecting(attempt);
            // A transient preflight failure backs off like a failed dial,
            // e.g. expired credentials while the API is unreachable. Any
            // other preflight failure ends the output.
            self.frames.take_streaming_since();
            let result = match self.output.preflight() {
                Err(error @ OutputError::Transient(_)) => Err(error),
                Err(error) => return give_up(error, &self.status),
                Ok(()) => {
                    // While a failure repeats unlogged, so do its attempts.
                    if failures.skipped_last() {
                        debug!("connecting");
                    } else {
                        info!("connecting");
                    }
                    let result = self.output.run_session(Session {
                        frames: &self.frames,
                        keyframes: &self.keyframes,
                        has_audio: self.has_audio,
                        status: &self.status,
                    });
                    self.frames.pause();
                    result
                }
            };

            let cause = match result {
                Ok(()) => {
                    info!("stopped cleanly");
                    self.status.stopped();
                    return Outcome::Finished;
                }
                Err(error @ OutputError::Fatal { .. }) => return give_up(error, &self.status),
                Err(OutputError::Rejected(cause)) => {
                    rejections += 1;
                    if rejections >= MAX_REJECTIONS {
                        let cause =
                            format!("{cause}; rejected {rejections} times in a row, giving up");
                        return give_up(OutputError::Rejected(cause), &self.status);
                    }
                    cause
                }
                Err(OutputError::Transient(cause)) => {
                    rejections = 0;
                    cause
                }
            };
            // A session that fails because the bridge is stopping, such as
            // a dial cut short by a second signal, is no failure to retry.
            if self.stop_requested() {
                info!(%cause, "stopping; the attempt in progress ended with an error");
                self.status.stopped();
                return Outcome::Finished;
            }
            if streamed_long_enough(self.frames.take_streaming_since(), Instant::now()) {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            let now = Instant::now();
            self.status.backing_off(&cause, now + delay);
            if let Verdict::Log { run } = failures.check(&cause, now) {
                warn!(
                    delay_ms = delay.as_millis() as u64,
                    cause = %flood::with_run(&cause, run),
                    "connection failed; reconnecting"
                );
            }
            let woken = crossbeam_channel::select! {
                recv(self.stop) -> _ => true,
                recv(self.output_stop) -> _ => true,
                default(delay) => false,
            };
            if woken {
                info!("stopping before the next attempt");
                self.status.stopped();
                return Outcome::Finished;
            }
        }
        unreachable!("the attempt counter does not run out")
    }

    /// Returns whether the bridge asked the outputs to stop: the stop
    /// channel has a message or its sender was dropped.
    fn stop_requested(&self) -> bool {
        [&self.stop, &self.output_stop]
            .iter()
            .any(|stop| !matches!(stop.try_recv(), Err(TryRecvError::Empty)))
    }
}

/// Returns whether a session that began streaming at `streaming_since`
/// (`None`: it never did) and ended at `ended` streamed for at least
/// `HEALTHY_SESSION`.
fn streamed_long_enough(streaming_since: Option<Instant>, ended: Instant) -> bool {
    streaming_since.is_some_and(|since| ended.saturating_duration_since(since) >= HEALTHY_SESSION)
}

fn give_up(error: OutputError, output_status: &OutputStatus) -> Outcome {
    let (status, cause) = match error {
        OutputError::Rejected(cause) => (ExitStatus::Credentials, cause),
        OutputError::Fatal { status, message } => (status, message),
        OutputError::Transient(cause) => (ExitStatus::Other, cause),
    };
    tracing::error!(%cause, "giving up on this output");
    output_status.gave_up(&cause);
    Outcome::GaveUp { status, cause }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fanout::Fanout;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    #[test]
    fn backoff_starts_at_configured_delay() {
        let policy = BackoffPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(3),
        };
        let mut backoff = Backoff::new(policy, 11);
        let first = backoff.next_delay().as_secs_f64();
        assert!((1.5..=2.5).contains(&first), "{first}");
        for _ in 0..5 {
            let delay = backoff.next_delay().as_secs_f64();
            assert!(delay <= 3.0 + 1e-9, "{delay}");
        }
    }

    #[test]
    fn backoff_doubles_to_cap_with_jitter() {
        let mut backoff = Backoff::new(BackoffPolicy::default(), 7);
        let delays: Vec<f64> = (0..8).map(|_| backoff.next_delay().as_secs_f64()).collect();
        let bases = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0];
        for (delay, base) in delays.iter().zip(bases) {
            assert!(*delay >= base * 0.75 - 1e-9, "{delay} below {base}");
            assert!(
                *delay <= (base * 1.25).min(10.0) + 1e-9,
                "{delay} above {base}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(625));
    }

    #[test]
    fn only_streaming_time_is_healthy() {
        let ended = Instant::now() + Duration::from_secs(60);
        let before = |seconds| Some(ended - Duration::from_secs(seconds));
        assert!(!streamed_long_enough(None, ended), "never streamed");
        assert!(!streamed_long_enough(before(9), ended), "9 s");
        assert!(streamed_long_enough(before(10), ended), "10 s");
        assert!(streamed_long_enough(before(40), ended), "40 s");
    }

    #[test]
    fn backoff_jitter_differs_between_seeds() {
        let first = Backoff::new(BackoffPolicy::default(), 1).next_delay();
        let second = Backoff::new(BackoffPolicy::default(), 2).next_delay();
        assert_ne!(first, second);
    }

    /// An output whose sessions end with scripted results.
    struct ScriptedOutput {
        results: VecDeque<Result<(), OutputError>>,
        preflight_error: Option<(ExitStatus, String)>,
        /// Preflights that fail transiently before the first that passes.
        preflight_transient: std::cell::Cell<u32>,
        sessions: Arc<Mutex<u32>>,
    }

    impl Output for ScriptedOutput {
        fn label(&self) -> String {
            "scripted".into()
        }

        fn preflight(&self) -> Result<(), OutputError> {
            if self.preflight_transient.get() > 0 {
                self.preflight_transient
                    .set(self.preflight_transient.get() - 1);
                return Err(OutputError::Transient("API unreachable".into()));
            }
            match &self.preflight_error {
                Some((status, message)) => Err(OutputError::Fatal {
                    status: *status,
                    message: message.clone(),
                }),
                None => Ok(()),
            }
        }

        fn run_session(&mut self, _session: Session<'_>) -> Result<(), OutputError> {
            *self.sessions.lock().unwrap() += 1;
            self.results.pop_front().unwrap_or(Ok(()))
        }
    }

    fn supervise(
        results: Vec<Result<(), OutputError>>,
        preflight_error: Option<(ExitStatus, String)>,
    ) -> (Outcome, u32) {
        supervise_with(results, preflight_error, 0)
    }

    fn supervise_with(
        results: Vec<Result<(), OutputError>>,
        preflight_error: Option<(ExitStatus, String)>,
        preflight_transient: u32,
    ) -> (Outcome, u32) {
        let sessions = Arc::new(Mutex::new(0));
        let (_stop_sender, stop) = crossbeam_channel::bounded(1);
        let supervisor = Supervisor {
            output: Box::new(ScriptedOutput {
                results: results.into(),
                preflight_error,
                preflight_transient: std::cell::Cell::new(preflight_transient),
                sessions: sessions.clone(),
            }),
            frames: Fanout::new().add_output(),
            keyframes: KeyframeRequester::default(),
            has_audio: false,
            policy: BackoffPolicy {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(4),
            },
            stop,
            output_stop: crossbeam_channel::never(),
            status: OutputStatus::detached("scripted"),
        };
        let outcome = supervisor.run();
        let count = *sessions.lock().unwrap();
        (outcome, count)
    }

    fn rejected() -> Result<(), OutputError> {
        Err(OutputError::Rejected(
            "token, path or passphrase rejected".into(),
        ))
    }

    fn transient() -> Result<(), OutputError> {
        Err(OutputError::Transient("timed out".into()))
    }

    #[test]
    fn two_rejections_in_a_row_give_up() {
        let (outcome, sessions) = supervise(vec![rejected(), rejected(), Ok(())], None);
        assert_eq!(sessions, 2);
        let Outcome::GaveUp { status, cause } = outcome else {
            panic!("expected to give up");
        };
        assert_eq!(status, ExitStatus::Credentials);
        assert!(cause.contains("rejected 2 times in a row"), "{cause}");
    }

    #[test]
    fn other_failure_breaks_rejection_run() {
        let results = vec![rejected(), transient(), rejected(), transient(), Ok(())];
        let (outcome, sessions) = supervise(results, None);
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(sessions, 5);
    }

    /// A writer into a buffer that the test reads afterwards.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_name_one_attempt() {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            // A repeated failure's next "connecting" is a debug line.
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let (outcome, sessions) = tracing::subscriber::with_default(subscriber, || {
            supervise(vec![transient(), transient(), Ok(())], None)
        });
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(sessions, 3);

        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        for line in log.lines().filter(|l| l.contains("output{")) {
            assert_eq!(line.matches("attempt=").count(), 1, "{line}");
        }
        let connecting: Vec<&str> = log
            .lines()
            .filter(|l| l.ends_with(": connecting"))
            .collect();
        assert_eq!(connecting.len(), 3, "{log}");
        for (index, line) in connecting.iter().enumerate() {
            let attempt = format!("attempt={}}}", index + 1);
            assert!(line.contains(&attempt), "{line}");
        }
    }

    #[test]
    fn preflight_error_never_dials() {
        let error = Some((ExitStatus::Usage, "streamid too long".to_string()));
        let (outcome, sessions) = supervise(vec![Ok(())], error);
        assert_eq!(sessions, 0);
        assert_eq!(
            outcome,
            Outcome::GaveUp {
                status: ExitStatus::Usage,
                cause: "streamid too long".into()
            }
        );
    }

    #[test]
    fn transient_preflight_error_retries() {
        // E.g. credentials that must be renewed while the API is down.
        let (outcome, sessions) = supervise_with(vec![Ok(())], None, 3);
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(sessions, 1);
    }

    /// Returns a supervisor whose output fails twice with a transient
    /// error, so that it backs off after the first attempt.
    fn failing_twice(stop: Receiver<()>, output_stop: Receiver<()>) -> Supervisor {
        Supervisor {
            output: Box::new(ScriptedOutput {
                results: vec![transient(), transient()].into(),
                preflight_error: None,
                preflight_transient: std::cell::Cell::new(0),
                sessions: Arc::new(Mutex::new(0)),
            }),
            frames: Fanout::new().add_output(),
            keyframes: KeyframeRequester::default(),
            has_audio: false,
            policy: BackoffPolicy::default(),
            stop,
            output_stop,
            status: OutputStatus::detached("scripted"),
        }
    }

    #[test]
    fn stop_during_backoff_finishes() {
        let (stop_sender, stop) = crossbeam_channel::bounded(1);
        drop(stop_sender);
        let supervisor = failing_twice(stop, crossbeam_channel::never());
        let started = Instant::now();
        assert_eq!(supervisor.run(), Outcome::Finished);
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[test]
    fn output_stop_during_backoff_finishes() {
        let (_stop_sender, stop) = crossbeam_channel::bounded(1);
        let (output_stop_sender, output_stop) = crossbeam_channel::bounded(1);
        drop(output_stop_sender);
        let supervisor = failing_twice(stop, output_stop);
        assert_eq!(supervisor.run(), Outcome::Finished);
    }

    #[test]
    fn failure_while_stopping_not_retried() {
        let (stop_sender, stop) = crossbeam_channel::bounded(1);
        drop(stop_sender);
        let sessions = Arc::new(Mutex::new(0));
        let supervisor = Supervisor {
            output: Box::new(ScriptedOutput {
                results: vec![transient()].into(),
                preflight_error: None,
                preflight_transient: std::cell::Cell::new(0),
                sessions: sessions.clone(),
            }),
            frames: Fanout::new().add_output(),
            keyframes: KeyframeRequester::default(),
            has_audio: false,
            policy: BackoffPolicy::default(),
            stop,
            output_stop: crossbeam_channel::never(),
            status: OutputStatus::detached("scripted"),
        };

        let logs = crate::telemetry::capture_logs(|| {
            assert_eq!(supervisor.run(), Outcome::Finished);
        });
        assert!(!logs.contains("reconnecting"), "{logs}");
        assert!(
            logs.contains("stopping; the attempt in progress ended"),
            "{logs}"
        );
        assert_eq!(*sessions.lock().unwrap(), 1);
    }

    #[test]
    fn repeated_failures_logged_once() {
        let mut results: Vec<_> = (0..20).map(|_| transient()).collect();
        results.push(Ok(()));
        let status = OutputStatus::detached("scripted");
        let (_stop_sender, stop) = crossbeam_channel::bounded(1);
        let supervisor = Supervisor {
            output: Box::new(ScriptedOutput {
                results: results.into(),
                preflight_error: None,
                preflight_transient: std::cell::Cell::new(0),
                sessions: Arc::new(Mutex::new(0)),
            }),
            frames: Fanout::new().add_output(),
            keyframes: KeyframeRequester::default(),
            has_audio: false,
            policy: BackoffPolicy {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            stop,
            output_stop: crossbeam_channel::never(),
            status: status.clone(),
        };

        let logs = crate::telemetry::capture_logs(|| {
            assert_eq!(supervisor.run(), Outcome::Finished);
        });
        let failures = logs.matches("connection failed; reconnecting").count();
        assert_eq!(failures, 1, "{logs}");
        let snapshot = status.snapshot(Instant::now());
        assert_eq!(snapshot.attempt, 21);
        assert_eq!(snapshot.state, crate::telemetry::status::State::Stopped);
        assert_eq!(snapshot.last_error.as_deref(), Some("timed out"));
    }

    #[test]
    fn gave_up_shows_in_status() {
        let status = OutputStatus::detached("scripted");
        let (_stop_sender, stop) = crossbeam_channel::bounded(1);
        let supervisor = Supervisor {
            output: Box::new(ScriptedOutput {
                results: vec![rejected(), rejected()].into(),
                preflight_error: None,
                preflight_transient: std::cell::Cell::new(0),
                sessions: Arc::new(Mutex::new(0)),
            }),
            frames: Fanout::new().add_output(),
            keyframes: KeyframeRequester::default(),
            has_audio: false,
            policy: BackoffPolicy {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            stop,
            output_stop: crossbeam_channel::never(),
            status: status.clone(),
        };
        assert!(matches!(supervisor.run(), Outcome::GaveUp { .. }));
        let snapshot = status.snapshot(Instant::now());
        assert_eq!(snapshot.state, crate::telemetry::status::State::GaveUp);
        assert_eq!(snapshot.attempt, 2);
        let error = snapshot.last_error.unwrap();
        assert!(error.contains("rejected 2 times in a row"), "{error}");
    }
}
