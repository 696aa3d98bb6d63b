//! The hand-over latency of each output: the time from an encoded frame
//! leaving the media pipeline's appsink (`Frame::captured`) to the output
//! handing that frame to its transport. SRT counts the `srt_sendmsg2` call
//! of the message that completes the frame's MPEG-TS packets, RTMP the
//! socket write of the frame's FLV tag, and WHIP the frame's last RTP packet
//! reaching webrtcbin's sink pad.
//!
//! Samples go into fixed log-scale histograms of atomic counters: one
//! `record` is a clock read, a binary search over 64 bounds and four atomic
//! operations per histogram, with no allocation and no lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bound of the first bucket, in microseconds.
const FIRST_BOUND_US: u64 = 50;

/// Bucket bounds grow by 2^(1/4) each, so four buckets span a doubling.
/// The factors are 2^(k/4) for k = 0..3, in ten-thousandths.
const OCTAVE_STEPS: [u64; 4] = [10_000, 11_892, 14_142, 16_818];

/// Finite bucket bounds: 50 µs to about 2.76 s. One more bucket counts
/// everything above the last bound.
pub const BOUNDS: usize = 64;

/// Upper bounds of the finite buckets, in microseconds, ascending. A
/// value is counted in the first bucket whose bound is at least the value.
pub const BUCKET_BOUNDS_US: [u64; BOUNDS] = bucket_bounds();

const fn bucket_bounds() -> [u64; BOUNDS] {
    let mut bounds = [0; BOUNDS];
    let mut index = 0;
    while index < BOUNDS {
        let octave = FIRST_BOUND_US << (index / 4);
        bounds[index] = octave * OCTAVE_STEPS[index % 4] / 10_000;
        index += 1;
    }
    bounds
}

/// Video frames an output may hold between taking them and handing them to
/// its transport before the oldest is forgotten. A muxer or payloader keeps
/// one or two frames at a time, so 128 covers any backlog worth timing.
pub const PENDING_FRAMES: usize = 128;

/// One latency distribution: a counter per bucket, the sum and the maximum.
pub struct Histogram {
    counts: [AtomicU64; BOUNDS + 1],
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one sample of `latency`.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
        self.max_us.fetch_max(micros, Ordering::Relaxed);
    }

    /// Clears every count. A sample recorded during the reset may be
    /// partly kept, which a status figure tolerates.
    pub fn reset(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
    }

    /// Copies the counts for reading.
    pub fn distribution(&self) -> Distribution {
        Distribution {
            counts: std::array::from_fn(|index| self.counts[index].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a `Histogram`'s counts at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    /// Samples per bucket; the last bucket is above the last bound.
    pub counts: [u64; BOUNDS + 1],
    pub sum_us: u64,
    pub max_us: u64,
}

impl Default for Distribution {
    fn default() -> Self {
        Histogram::default().distribution()
    }
}

impl Distribution {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Returns the `quantile` (0 to 1) in microseconds: the upper bound of
    /// the bucket that contains the sample of that rank, capped at the
    /// maximum, so the figure overstates by at most one bucket (19%).
    /// `None` without samples.
    pub fn quantile_us(&self, quantile: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &in_bucket) in self.counts.iter().enumerate() {
            seen += in_bucket;
            if seen >= rank {
                let bound = BUCKET_BOUNDS_US.get(index).copied().unwrap_or(u64::MAX);
                return Some(bound.min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// Returns each finite bucket's bound in microseconds with the number
    /// of samples at or below it, as a Prometheus histogram's `le` buckets.
    pub fn cumulative_us(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut seen = 0;
        BUCKET_BOUNDS_US
            .iter()
            .zip(&self.counts)
            .map(move |(&bound, &in_bucket)| {
                seen += in_bucket;
                (bound, seen)
            })
    }
}

/// One output's hand-over latency: since the bridge started, for the
/// metrics, and since the current connection attempt began, for the status.
#[derive(Default)]
pub struct HandoverLatency {
    total: Histogram,
    connection: Histogram,
}

impl HandoverLatency {
    /// Records the hand-over, now, of a frame that left the appsink at
    /// `captured`.
    pub fn record(&self, captured: Instant) {
        self.record_at(captured, Instant::now());
    }

    /// Records the hand-over, at `handed_over`, of a frame that left the
    /// appsink at `captured`.
    pub fn record_at(&self, captured: Instant, handed_over: Instant) {
        let latency = handed_over.saturating_duration_since(captured);
        self.total.record(latency);
        self.connection.record(latency);
    }

    /// Starts the per-connection distribution again.
    pub fn new_connection(&self) {
        self.connection.reset();
    }

    pub fn total(&self) -> Distribution {
        self.total.distribution()
    }

    pub fn connection(&self) -> Distribution {
        self.connection.distribution()
    }
}

/// Video frames an output has passed to a muxer or payloader, with the
/// instant each left the appsink, until the output sees the frame's data
/// go out. Keyed by the timestamp the payloader carries over to its
/// output, in nanoseconds, where the output matches by timestamp (WHIP);
/// SRT goes by order alone. Frames leave in the order they came, and
/// the queue never grows past `PENDING_FRAMES`, so it never allocates after
/// creation.
#[derive(Debug)]
pub struct PendingFrames {
    queue: VecDeque<(u64, Instant)>,
}

impl Default for PendingFrames {
    fn default() -> Self {
        Self {
            queue: VecDeque::with_capacity(PENDING_FRAMES),
        }
    }
}

impl PendingFrames {
    /// Adds a frame, forgetting the oldest when `PENDING_FRAMES` are
    /// waiting.
    pub fn push(&mut self, timestamp_ns: u64, captured: Instant) {
        if self.queue.len() == PENDING_FRAMES {
            self.queue.pop_front();
        }
        self.queue.push_back((timestamp_ns, captured));
    }

    /// Removes the frames from the front whose timestamp is below `limit_ns`
    /// and passes each one's capture instant to `done`.
    pub fn complete_before(&mut self, limit_ns: u64, done: impl FnMut(Instant)) {
        self.complete_while(|timestamp_ns| timestamp_ns < limit_ns, done);
    }

    /// Removes the frames from the front whose timestamp is at most
    /// `limit_ns` and passes each one's capture instant to `done`.
    pub fn complete_through(&mut self, limit_ns: u64, done: impl FnMut(Instant)) {
        self.complete_while(|timestamp_ns| timestamp_ns <= limit_ns, done);
    }

    /// Removes every frame and passes each one's capture instant to `done`.
    pub fn complete_all(&mut self, mut done: impl FnMut(Instant)) {
        for (_, captured) in self.queue.drain(..) {
            done(captured);
        }
    }

    /// Removes the oldest frame and returns its capture instant.
    pub fn pop_oldest(&mut self) -> Option<Instant> {
        self.queue.pop_front().map(|(_, captured)| captured)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn complete_while(&mut self, included: impl Fn(u64) -> bool, mut done: impl FnMut(Instant)) {
        while let Some(&(timestamp_ns, captured)) = self.queue.front() {
            if !included(timestamp_ns) {
                break;
            }
            self.queue.pop_front();
            done(captured);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(value: u64) -> Duration {
        Duration::from_micros(value)
    }

    #[test]
    fn bounds_ascend_by_fourth_root_of_two() {
        assert_eq!(BUCKET_BOUNDS_US[0], 50);
        assert_eq!(BUCKET_BOUNDS_US[1], 59);
        assert_eq!(BUCKET_BOUNDS_US[4], 100);
        assert_eq!(BUCKET_BOUNDS_US[40], 51_200);
        assert_eq!(BUCKET_BOUNDS_US[BOUNDS - 1], 2_755_461);
        for pair in BUCKET_BOUNDS_US.windows(2) {
            let ratio = pair[1] as f64 / pair[0] as f64;
            assert!(ratio > 1.15, "{pair:?}");
            assert!(ratio < 1.23, "{pair:?}");
        }
    }

    #[test]
    fn sub_millisecond_buckets_exist() {
        let below_1_ms = BUCKET_BOUNDS_US.iter().filter(|&&us| us < 1000).count();
        assert_eq!(below_1_ms, 18);
    }

    #[test]
    fn record_counts_bucket_sum_max() {
        let histogram = Histogram::default();
        histogram.record(micros(50));
        histogram.record(micros(51));
        histogram.record(micros(3_000_000));
        let distribution = histogram.distribution();
        assert_eq!(distribution.counts[0], 1, "50 µs is at the first bound");
        assert_eq!(distribution.counts[1], 1, "51 µs is above it");
        assert_eq!(distribution.counts[BOUNDS], 1, "3 s is past the last bound");
        assert_eq!(distribution.count(), 3);
        assert_eq!(distribution.sum_us, 3_000_101);
        assert_eq!(distribution.max_us, 3_000_000);
    }

    #[test]
    fn quantiles_of_empty_are_none() {
        let distribution = Distribution::default();
        assert_eq!(distribution.count(), 0);
        assert_eq!(distribution.quantile_us(0.5), None);
        assert_eq!(distribution.quantile_us(0.99), None);
    }

    #[test]
    fn quantiles_take_bucket_bound() {
        let histogram = Histogram::default();
        // 98 samples of 1 ms and 2 of 40 ms.
        for _ in 0..98 {
            histogram.record(micros(1000));
        }
        histogram.record(micros(40_000));
        histogram.record(micros(40_000));
        let distribution = histogram.distribution();
        let one_ms_bound = BUCKET_BOUNDS_US[BUCKET_BOUNDS_US.partition_point(|&b| b < 1000)];
        assert_eq!(distribution.quantile_us(0.5), Some(one_ms_bound));
        assert_eq!(distribution.quantile_us(0.98), Some(one_ms_bound));
        assert_eq!(distribution.quantile_us(0.99), Some(40_000));
        assert_eq!(distribution.quantile_us(1.0), Some(40_000));
        assert!(one_ms_bound >= 1000);
        assert!(one_ms_bound < 1190);
    }

    #[test]
    fn quantiles_never_exceed_max() {
        let histogram = Histogram::default();
        histogram.record(micros(1001));
        let distribution = histogram.distribution();
        assert_eq!(distribution.quantile_us(0.5), Some(1001));
        assert_eq!(distribution.quantile_us(0.0), Some(1001));
    }

    #[test]
    fn quantiles_ordered_p50_p99_max() {
        let histogram = Histogram::default();
        for step in 0..1000u64 {
            histogram.record(micros(100 + step * step));
        }
        let distribution = histogram.distribution();
        let p50 = distribution.quantile_us(0.5).unwrap();
        let p99 = distribution.quantile_us(0.99).unwrap();
        assert!(p50 <= p99, "{p50} {p99}");
        assert!(p99 <= distribution.max_us, "{p99} {}", distribution.max_us);
        // The true median is 100 + 500² µs; a bucket is at most 19% wide.
        let true_p50 = 100 + 499 * 499;
        assert!(p50 >= true_p50, "{p50}");
        assert!((p50 as f64) < true_p50 as f64 * 1.19, "{p50}");
    }

    #[test]
    fn overflow_quantile_is_max() {
        let histogram = Histogram::default();
        histogram.record(Duration::from_secs(10));
        assert_eq!(histogram.distribution().quantile_us(0.5), Some(10_000_000));
    }

    #[test]
    fn cumulative_buckets_end_at_finite_count() {
        let histogram = Histogram::default();
        histogram.record(micros(10));
        histogram.record(micros(2000));
        histogram.record(Duration::from_secs(5));
        let buckets: Vec<(u64, u64)> = histogram.distribution().cumulative_us().collect();
        assert_eq!(buckets.len(), BOUNDS);
        assert_eq!(buckets[0], (50, 1));
        assert_eq!(buckets[BOUNDS - 1].1, 2, "the 5 s sample is only in +Inf");
        assert!(buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    }

    #[test]
    fn reset_clears_connection_not_total() {
        let latency = HandoverLatency::default();
        let captured = Instant::now();
        latency.record_at(captured, captured + micros(700));
        latency.new_connection();
        latency.record_at(captured, captured + micros(300));
        assert_eq!(latency.total().count(), 2);
        assert_eq!(latency.total().max_us, 700);
        assert_eq!(latency.connection().count(), 1);
        assert_eq!(latency.connection().max_us, 300);
    }

    #[test]
    fn handover_before_capture_counts_zero() {
        let latency = HandoverLatency::default();
        let now = Instant::now();
        latency.record_at(now + micros(5), now);
        assert_eq!(latency.total().max_us, 0);
        assert_eq!(latency.total().counts[0], 1);
    }

    #[test]
    fn pending_frames_complete_in_order() {
        let start = Instant::now();
        let mut pending = PendingFrames::default();
        for index in 0..4u64 {
            pending.push(index * 100, start + micros(index));
        }
        let mut done = Vec::new();
        pending.complete_before(200, |captured| done.push(captured));
        assert_eq!(done, [start, start + micros(1)]);
        pending.complete_through(200, |captured| done.push(captured));
        assert_eq!(done.len(), 3);
        assert_eq!(pending.len(), 1);
        pending.complete_all(|captured| done.push(captured));
        assert_eq!(done.len(), 4);
        assert!(pending.is_empty());
    }

    #[test]
    fn pending_frames_stay_bounded() {
        let start = Instant::now();
        let mut pending = PendingFrames::default();
        for index in 0..(PENDING_FRAMES as u64 + 10) {
            pending.push(index, start);
        }
        assert_eq!(pending.len(), PENDING_FRAMES);
        let mut first = None;
        pending.complete_through(10, |_| {
            first.get_or_insert(());
        });
        assert_eq!(first, Some(()), "frame 10 is still there");
        assert_eq!(
            pending.len(),
            PENDING_FRAMES - 1,
            "frames 0 to 9 were forgotten"
        );
    }
}
