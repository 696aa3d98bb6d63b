//! Notices a receiver that vanished without closing the session.
//!
//! libnice's keepalives (STUN binding indications) need no reply, so when a
//! receiver's process dies, webrtcbin's connection state stays "connected"
//! (it did for the 48 s measured with libnice 0.1.21 and GStreamer 1.22).
//! What does stop is the receiver's RTCP (receiver reports, PLI, NACK),
//! which WebRTC receivers send while they receive. A session counts as lost
//! once the receiver has been silent for much longer than its own RTCP
//! rhythm: [`MIN_SILENCE`], or [`GAP_FACTOR`] times the longest gap seen
//! between two of its RTCP packets, whichever is longer.

use std::time::{Duration, Instant};

/// The minimum silence that counts as a lost receiver.
pub const MIN_SILENCE: Duration = Duration::from_secs(5);

/// Silence allowed, in multiples of the longest gap seen between two RTCP
/// packets of the receiver.
const GAP_FACTOR: u32 = 3;

/// The gap assumed before a second RTCP packet shows the receiver's own:
/// RFC 3550's minimum RTCP interval.
const ASSUMED_GAP: Duration = Duration::from_secs(5);

/// When the receiver's RTCP last arrived, and the longest gap seen.
/// Armed by the first RTCP packet, so a receiver that sends none is never
/// declared lost.
#[derive(Debug, Default)]
pub struct RtcpWatch {
    last: Option<Instant>,
    longest_gap: Option<Duration>,
}

impl RtcpWatch {
    /// Records an RTCP packet from the receiver that arrived at `now`.
    pub fn received(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            self.longest_gap = Some(self.longest_gap.map_or(gap, |longest| longest.max(gap)));
        }
        self.last = Some(now);
    }

    /// Returns how long the receiver has been silent at `now` when that is
    /// longer than it may be, `None` while it may still be.
    pub fn lost_for(&self, now: Instant) -> Option<Duration> {
        let silence = now.saturating_duration_since(self.last?);
        (silence > self.allowed_silence()).then_some(silence)
    }

    /// Returns the silence after which the receiver counts as lost.
    pub fn allowed_silence(&self) -> Duration {
        let gap = self.longest_gap.unwrap_or(ASSUMED_GAP);
        MIN_SILENCE.max(gap * GAP_FACTOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn never_lost_before_first_rtcp() {
        let start = Instant::now();
        let watch = RtcpWatch::default();
        assert_eq!(watch.lost_for(after(start, 600_000)), None);
    }

    #[test]
    fn lost_after_min_silence_for_fast_reports() {
        let start = Instant::now();
        let mut watch = RtcpWatch::default();
        for ms in [0, 700, 1_900, 2_500] {
            watch.received(after(start, ms));
        }
        assert_eq!(watch.allowed_silence(), MIN_SILENCE);
        assert_eq!(watch.lost_for(after(start, 7_500)), None);
        assert_eq!(
            watch.lost_for(after(start, 7_600)),
            Some(Duration::from_millis(5_100))
        );
    }

    #[test]
    fn slow_reports_allow_longer_silence() {
        let start = Instant::now();
        let mut watch = RtcpWatch::default();
        watch.received(after(start, 0));
        watch.received(after(start, 7_000));
        assert_eq!(watch.allowed_silence(), Duration::from_secs(21));
        assert_eq!(watch.lost_for(after(start, 27_000)), None);
        assert!(watch.lost_for(after(start, 28_500)).is_some());
    }

    #[test]
    fn one_report_assumes_rfc3550_interval() {
        let start = Instant::now();
        let mut watch = RtcpWatch::default();
        watch.received(after(start, 0));
        assert_eq!(watch.allowed_silence(), Duration::from_secs(15));
        assert_eq!(watch.lost_for(after(start, 14_000)), None);
        assert!(watch.lost_for(after(start, 15_500)).is_some());
    }

    #[test]
    fn new_report_ends_silence() {
        let start = Instant::now();
        let mut watch = RtcpWatch::default();
        watch.received(after(start, 0));
        watch.received(after(start, 1_000));
        watch.received(after(start, 5_500));
        assert_eq!(watch.lost_for(after(start, 10_000)), None);
    }
}
