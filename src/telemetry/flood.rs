//! Throttling of repeated messages: the first of a run of identical
//! messages is logged, then at most one a second with the run's length, so
//! an output that fails fast, or many that fail together, cannot flood the
//! log.

use std::time::{Duration, Instant};

/// The shortest time between two lines for the same repeated message.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The decision about one occurrence of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it. `run` is how many times in a row the message has occurred,
    /// this time included: 1 for a new message.
    Log { run: u64 },
    /// Leave it out: the same message was logged less than
    /// `REPEAT_INTERVAL` ago.
    Skip,
}

/// Tracks one stream of messages, such as one output's failure causes.
#[derive(Debug, Default)]
pub struct RepeatFilter {
    last: Option<String>,
    run: u64,
    logged_at: Option<Instant>,
    skipped_last: bool,
}

impl RepeatFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides about `message`, occurring at `now`.
    pub fn check(&mut self, message: &str, now: Instant) -> Verdict {
        let verdict = self.decide(message, now);
        self.skipped_last = verdict == Verdict::Skip;
        verdict
    }

    /// Returns whether the last message checked was left out.
    pub fn skipped_last(&self) -> bool {
        self.skipped_last
    }

    fn decide(&mut self, message: &str, now: Instant) -> Verdict {
        if self.last.as_deref() != Some(message) {
            self.last = Some(message.to_string());
            self.run = 1;
            self.logged_at = Some(now);
            return Verdict::Log { run: 1 };
        }
        self.run += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REPEAT_INTERVAL);
        if !due {
            return Verdict::Skip;
        }
        self.logged_at = Some(now);
        Verdict::Log { run: self.run }
    }
}

/// Returns `message` with the run length appended once it repeats, such as
/// `timed out (repeated 12 times)`.
pub fn with_run(message: &str, run: u64) -> String {
    if run > 1 {
        format!("{message} (repeated {run} times)")
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn repeats_logged_once_a_second() {
        let start = Instant::now();
        let mut filter = RepeatFilter::new();
        let verdicts: Vec<Verdict> = [0, 100, 200, 900, 1000, 1100, 2500]
            .into_iter()
            .map(|millis| filter.check("timed out", at(start, millis)))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Log { run: 1 },
                Verdict::Skip,
                Verdict::Skip,
                Verdict::Skip,
                Verdict::Log { run: 5 },
                Verdict::Skip,
                Verdict::Log { run: 7 },
            ]
        );
    }

    #[test]
    fn new_message_logged_at_once() {
        let start = Instant::now();
        let mut filter = RepeatFilter::new();
        assert_eq!(filter.check("timed out", start), Verdict::Log { run: 1 });
        assert_eq!(filter.check("timed out", at(start, 10)), Verdict::Skip);
        assert!(filter.skipped_last());
        assert_eq!(
            filter.check("connection refused", at(start, 20)),
            Verdict::Log { run: 1 }
        );
        assert!(!filter.skipped_last());
        assert_eq!(
            filter.check("timed out", at(start, 30)),
            Verdict::Log { run: 1 }
        );
    }

    #[test]
    fn slow_repeats_each_logged_with_run() {
        let start = Instant::now();
        let mut filter = RepeatFilter::new();
        for (index, seconds) in [0, 2, 5, 10].into_iter().enumerate() {
            let verdict = filter.check("timed out", at(start, seconds * 1000));
            assert_eq!(
                verdict,
                Verdict::Log {
                    run: index as u64 + 1
                }
            );
        }
    }

    #[test]
    fn run_appended_to_repeats() {
        assert_eq!(with_run("timed out", 1), "timed out");
        assert_eq!(with_run("timed out", 12), "timed out (repeated 12 times)");
    }
}
