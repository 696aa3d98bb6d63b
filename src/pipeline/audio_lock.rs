//! Keeps a live source's audio on the pipeline clock when the sound card's
//! crystal drifts against it:
//!
//! ```text
//! audio source ─► capssetter (audio-lock) ─► entry queue ─► selector ─► audiorate ─► audioconvert ─► audioresample ─► 48 kHz
//! ```
//!
//! A probe on the `capssetter` output fits the rate at which samples
//! really arrive against running time and relabels the caps with it,
//! rounded to 1 Hz. `audioresample` then converts that rate to 48 kHz, so
//! the difference is absorbed smoothly instead of by dropped or repeated
//! samples. The probe also stamps each buffer on a timeline at that rate,
//! anchored to the fitted arrival times, so the timestamps follow the
//! pipeline clock whatever the source put on them, and `audiorate` after
//! the selector receives a continuous stream.

use super::description::{ChainSpec, ElementSpec};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Name of the `capssetter` that relabels the rate, in each source bin.
pub const LOCK_NAME: &str = "audio-lock";

/// Time constant of the rate fit, in seconds: arrival jitter averages out
/// over it, and a crystal warming up is followed within a few of them.
const FIT_TIME_CONSTANT_S: f64 = 60.0;

/// Audio that must arrive before the fitted rate is used, in seconds.
const WARMUP_S: f64 = 5.0;

/// Largest distance between the timeline and the fitted arrival times
/// before the timeline is anchored again, in seconds. It is well under the
/// 40 ms that `audiorate` tolerates by default, so a step fills nothing.
///
/// NOTE: `audiorate` keeps its own sample count across these steps. A rate
/// that rounding to 1 Hz leaves up to 10 ppm off adds up to 40 ms in about
/// an hour, and `audiorate` then fills or drops once. Only whole-Hz drift
/// (the 48048 Hz test source) was run.
const MAX_TIMELINE_ERROR_S: f64 = 0.005;

/// A pause in arrivals longer than this, in seconds, starts a new fit: the
/// source stalled, and its samples no longer count from the same start.
const MAX_ARRIVAL_GAP_S: f64 = 0.25;

/// Largest fitted rate error against the nominal rate that is taken as a
/// crystal's, as a fraction (1 %, a bound chosen well above the ±100 ppm
/// to which crystal oscillators are commonly specified). A larger fit
/// comes from arrivals that do not follow the samples, such as the burst
/// a live source sends to catch up after the process was stopped
/// (SIGSTOP) or starved, and starts a new fit.
const MAX_RATE_ERROR: f64 = 0.01;

/// Smallest change of the measured rate, in Hz, that is logged at info
/// level again after the first.
const LOGGED_RATE_STEP_HZ: u32 = 10;

/// Appends the element whose caps carry the fitted rate to a live audio
/// chain. It passes caps through unchanged until the fit is ready.
pub fn locked(chain: &ChainSpec) -> ChainSpec {
    let mut chain = chain.clone();
    chain.push(ElementSpec::new("capssetter").named(LOCK_NAME));
    chain
}

/// Timestamps for one buffer, and a new rate for the caps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stamp {
    pub pts_ns: u64,
    pub duration_ns: u64,
    /// A rate to relabel the caps with, when it changed.
    pub new_rate_hz: Option<u32>,
}

/// A least-squares line through points that fade with a time constant,
/// here arrival time less sample time against sample time, in seconds.
#[derive(Clone, Copy, Debug, Default)]
struct FadingFit {
    weight: f64,
    sum_x: f64,
    sum_y: f64,
    sum_xx: f64,
    sum_xy: f64,
    last_x: f64,
}

impl FadingFit {
    fn add(&mut self, x: f64, y: f64) {
        let fade = (-(x - self.last_x).max(0.0) / FIT_TIME_CONSTANT_S).exp();
        self.weight = self.weight * fade + 1.0;
        self.sum_x = self.sum_x * fade + x;
        self.sum_y = self.sum_y * fade + y;
        self.sum_xx = self.sum_xx * fade + x * x;
        self.sum_xy = self.sum_xy * fade + x * y;
        self.last_x = x;
    }

    /// Returns the slope and the intercept, or `None` before two points.
    fn line(&self) -> Option<(f64, f64)> {
        let spread = self.weight * self.sum_xx - self.sum_x * self.sum_x;
        if spread <= f64::EPSILON {
            return None;
        }
        let slope = (self.weight * self.sum_xy - self.sum_x * self.sum_y) / spread;
        Some((slope, (self.sum_y - slope * self.sum_x) / self.weight))
    }
}

/// The first buffer of the current fit: its arrival and its PTS.
#[derive(Clone, Copy, Debug)]
struct Start {
    arrival_ns: u64,
    pts_ns: u64,
}

/// The rate fit and the timeline of one source.
#[derive(Debug)]
pub struct RateLock {
    nominal_hz: u32,
    applied_hz: u32,
    start: Option<Start>,
    last_arrival_ns: u64,
    /// Samples since `start`.
    samples: u64,
    fit: FadingFit,
    /// Timeline origin: its PTS and the sample count it stands for.
    anchor_pts_ns: u64,
    anchor_samples: u64,
}

impl RateLock {
    pub fn new(nominal_hz: u32) -> Self {
        Self {
            nominal_hz,
            applied_hz: nominal_hz,
            start: None,
            last_arrival_ns: 0,
            samples: 0,
            fit: FadingFit::default(),
            anchor_pts_ns: 0,
            anchor_samples: 0,
        }
    }

    pub fn nominal_hz(&self) -> u32 {
        self.nominal_hz
    }

    /// Stamps a buffer of `samples` that arrived at running time
    /// `arrival_ns` carrying `pts_ns`. Only the first buffer's PTS counts,
    /// as the offset between capture and arrival; later ones follow the
    /// timeline.
    pub fn stamp(&mut self, arrival_ns: u64, pts_ns: u64, samples: u64) -> Stamp {
        let gap_s = arrival_ns.saturating_sub(self.last_arrival_ns) as f64 / 1e9;
        self.last_arrival_ns = arrival_ns;
        let start = match self.start {
            Some(start) if gap_s <= MAX_ARRIVAL_GAP_S => start,
            _ => self.restart(arrival_ns, pts_ns),
        };

        let nominal = f64::from(self.nominal_hz);
        let x = self.samples as f64 / nominal;
        let elapsed_s = arrival_ns.saturating_sub(start.arrival_ns) as f64 / 1e9;
        self.fit.add(x, elapsed_s - x);

        let mut pts_ns = self.timeline_ns(self.samples);
        let mut new_rate_hz = None;
        if let Some((slope, intercept)) = self.fit.line().filter(|_| x >= WARMUP_S) {
            // The card's rate over the nominal one; infinite or negative
            // when arrivals kept up with no samples or ran ahead of them.
            let ratio = 1.0 / (1.0 + slope);
            if !ratio.is_finite() || (ratio - 1.0).abs() > MAX_RATE_ERROR {
                return self.restart_implausible(arrival_ns, pts_ns, samples);
            }
            let fitted_ns = start.pts_ns as f64 + (x + intercept + slope * x) * 1e9;
            let target_hz = (nominal * ratio).round() as u32;
            let error_s = (pts_ns as f64 - fitted_ns).abs() / 1e9;
            if target_hz != self.applied_hz || error_s > MAX_TIMELINE_ERROR_S {
                if target_hz != self.applied_hz {
                    new_rate_hz = Some(target_hz);
                }
                self.applied_hz = target_hz;
                self.anchor_pts_ns = fitted_ns.max(0.0) as u64;
                self.anchor_samples = self.samples;
                pts_ns = self.anchor_pts_ns;
            }
        }

        self.samples += samples;
        Stamp {
            pts_ns,
            duration_ns: self.timeline_ns(self.samples) - pts_ns,
            new_rate_hz,
        }
    }

    /// Starts a new fit at this buffer after a fit outside
    /// `MAX_RATE_ERROR`, and returns to the nominal rate, since the fit
    /// measured no crystal.
    fn restart_implausible(&mut self, arrival_ns: u64, pts_ns: u64, samples: u64) -> Stamp {
        tracing::warn!(
            nominal_hz = self.nominal_hz,
            "audio arrived out of step with its sample count, as after a stall: \
             measuring its clock again"
        );
        self.restart(arrival_ns, pts_ns);
        let new_rate_hz = (self.applied_hz != self.nominal_hz).then_some(self.nominal_hz);
        self.applied_hz = self.nominal_hz;
        self.samples = samples;
        Stamp {
            pts_ns,
            duration_ns: self.timeline_ns(samples) - pts_ns,
            new_rate_hz,
        }
    }

    fn restart(&mut self, arrival_ns: u64, pts_ns: u64) -> Start {
        let start = Start { arrival_ns, pts_ns };
        self.start = Some(start);
        self.samples = 0;
        self.fit = FadingFit::default();
        self.anchor_pts_ns = pts_ns;
        self.anchor_samples = 0;
        start
    }

    fn timeline_ns(&self, samples: u64) -> u64 {
        let since_anchor = (samples - self.anchor_samples) as u128;
        let ns = since_anchor * 1_000_000_000 / u128::from(self.applied_hz);
        self.anchor_pts_ns + ns as u64
    }
}

/// Adds the probe that fits and relabels the rate to the lock element of
/// `bin`, if it has one.
pub fn attach(bin: &gst::Bin) {
    let Some(setter) = bin.by_name(LOCK_NAME) else {
        return;
    };
    if let Some(sink) = setter.static_pad("sink") {
        pin_source_rate(&sink);
    }
    let Some(pad) = setter.static_pad("src") else {
        return;
    };
    let lock: Mutex<Option<RateLock>> = Mutex::new(None);
    // The last rate logged at info level; 0 before the first.
    let logged_hz = AtomicU32::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(setter) = pad.parent_element() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(nominal_hz) = input_rate(&setter) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(arrival) = setter.current_running_time() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(frame_bytes) = frame_bytes(pad).filter(|bytes| *bytes > 0) else {
            return gst::PadProbeReturn::Ok;
        };
        let samples = buffer.size() as u64 / frame_bytes;

        let mut lock = lock.lock().unwrap_or_else(|p| p.into_inner());
        let lock = match lock.as_mut() {
            Some(lock) if lock.nominal_hz() == nominal_hz => lock,
            _ => lock.insert(RateLock::new(nominal_hz)),
        };
        let stamp = lock.stamp(arrival.nseconds(), pts.nseconds(), samples);
        let buffer = buffer.make_mut();
        buffer.set_pts(gst::ClockTime::from_nseconds(stamp.pts_ns));
        buffer.set_duration(gst::ClockTime::from_nseconds(stamp.duration_ns));
        if let Some(rate_hz) = stamp.new_rate_hz {
            // The fit moves by 1 Hz back and forth many times a minute, so
            // only the first rate and moves of LOGGED_RATE_STEP_HZ or more
            // are logged at info level.
            let logged = logged_hz.load(Ordering::Relaxed);
            if logged == 0 || logged.abs_diff(rate_hz) >= LOGGED_RATE_STEP_HZ {
                logged_hz.store(rate_hz, Ordering::Relaxed);
                tracing::info!(
                    nominal_hz,
                    measured_hz = rate_hz,
                    "audio clock differs from the pipeline clock: resampling from the measured rate"
                );
            } else {
                tracing::debug!(nominal_hz, measured_hz = rate_hz, "audio rate relabelled");
            }
            let caps = gst::Caps::builder("audio/x-raw")
                .field("rate", rate_hz as i32)
                .build();
            setter.set_property("caps", &caps);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Keeps the source at the rate it negotiated first. Without this, a
/// renegotiation (a reconfigure event, as after a pause) asks downstream
/// for caps, finds the relabelled rate there and moves the source to it:
/// the fit then measures against a new nominal rate, and each relabel
/// moves the source again. The probe runs after each caps query on the
/// lock's input is answered and narrows the answer to the current rate
/// where that leaves anything.
fn pin_source_rate(sink: &gst::Pad) {
    sink.add_probe(
        gst::PadProbeType::QUERY_DOWNSTREAM | gst::PadProbeType::PULL,
        |pad, info| {
            let Some(rate) = pad
                .current_caps()
                .and_then(|caps| caps.structure(0)?.get::<i32>("rate").ok())
            else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(query) = info.query_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            if let gst::QueryViewMut::Caps(caps_query) = query.view_mut() {
                let Some(result) = caps_query.result_owned() else {
                    return gst::PadProbeReturn::Ok;
                };
                let pin = gst::Caps::builder("audio/x-raw")
                    .field("rate", rate)
                    .build();
                let pinned = result.intersect(&pin);
                if !pinned.is_empty() {
                    caps_query.set_result(&pinned);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Returns the sample rate the source declares, on the lock's input.
fn input_rate(setter: &gst::Element) -> Option<u32> {
    let caps = setter.static_pad("sink")?.current_caps()?;
    let rate = caps.structure(0)?.get::<i32>("rate").ok()?;
    u32::try_from(rate).ok()
}

/// Returns the bytes of one sample of every channel in `pad`'s caps.
fn frame_bytes(pad: &gst::Pad) -> Option<u64> {
    let caps = pad.current_caps()?;
    let info = gst_audio::AudioInfo::from_caps(&caps).ok()?;
    Some(u64::from(info.bpf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of 1024-sample buffers from a card making
    /// `actual_hz` samples a second while declaring 48 kHz, stamped by
    /// sample count, and returns the last stamp and the rate applied then.
    fn run(actual_hz: f64, seconds: f64, jitter_ns: u64) -> (Stamp, u32, u64) {
        let mut lock = RateLock::new(48_000);
        let mut samples = 0u64;
        let mut last = None;
        let mut applied = 48_000;
        let mut arrival_ns = 0;
        while (samples as f64) < actual_hz * seconds {
            samples += 1024;
            let wobble = (samples / 1024 % 7) * jitter_ns;
            arrival_ns = (samples as f64 / actual_hz * 1e9) as u64 + wobble;
            let pts_ns = (samples - 1024) * 1_000_000_000 / 48_000;
            let stamp = lock.stamp(arrival_ns, pts_ns, 1024);
            if let Some(rate) = stamp.new_rate_hz {
                applied = rate;
            }
            last = Some(stamp);
        }
        (last.unwrap(), applied, arrival_ns)
    }

    #[test]
    fn fast_card_is_relabeled_and_kept_on_clock() {
        let (stamp, applied, arrival_ns) = run(48_048.0, 120.0, 300_000);
        assert_eq!(applied, 48_048);
        let end_ns = stamp.pts_ns + stamp.duration_ns;
        let error_ms = (end_ns as f64 - arrival_ns as f64).abs() / 1e6;
        assert!(error_ms < 3.0, "timeline {error_ms} ms off the arrivals");
    }

    #[test]
    fn slow_card_is_relabeled() {
        let (_, applied, _) = run(47_995.2, 60.0, 300_000);
        assert_eq!(applied, 47_995);
    }

    #[test]
    fn exact_card_keeps_rate_and_timestamps() {
        let (stamp, applied, _) = run(48_000.0, 30.0, 0);
        assert_eq!(applied, 48_000);
        let samples = (stamp.pts_ns as f64 * 48_000.0 / 1e9).round() as u64;
        assert_eq!(
            samples % 1024,
            0,
            "PTS {} is off the sample grid",
            stamp.pts_ns
        );
    }

    #[test]
    fn timeline_is_continuous() {
        let mut lock = RateLock::new(48_000);
        let mut expected = None;
        for index in 0..20_000u64 {
            let arrival_ns = ((index + 1) * 1024) as f64 / 48_048.0 * 1e9;
            let stamp = lock.stamp(arrival_ns as u64, index * 21_333_333, 1024);
            if let (Some(expected), None) = (expected, stamp.new_rate_hz) {
                let step = (stamp.pts_ns as i64 - expected as i64).abs();
                assert!(step <= 5_100_000, "buffer {index} jumps {step} ns");
            }
            expected = Some(stamp.pts_ns + stamp.duration_ns);
        }
    }

    #[test]
    fn catch_up_burst_keeps_rate_near_nominal() {
        let mut lock = RateLock::new(48_000);
        let buffer_ns = 1024 * 1_000_000_000 / 48_000;
        let mut pts_ns = 0u64;
        let mut arrival_ns = 0u64;
        let mut applied = 48_000;
        let mut feed = |lock: &mut RateLock, arrival_ns: u64, pts_ns: u64| {
            if let Some(rate) = lock.stamp(arrival_ns, pts_ns, 1024).new_rate_hz {
                assert!(
                    (47_520..=48_480).contains(&rate),
                    "rate {rate} Hz applied at {arrival_ns} ns"
                );
                applied = rate;
            }
        };
        // 20 s in real time, then the process stops for 35 s. The source
        // then sends the 35 s it owes within 50 ms, and real time follows.
        for _ in 0..(20_000_000_000 / buffer_ns) {
            pts_ns += buffer_ns;
            arrival_ns = pts_ns;
            feed(&mut lock, arrival_ns, pts_ns);
        }
        let resume_ns = arrival_ns + 35_000_000_000;
        let owed = 35_000_000_000 / buffer_ns;
        for index in 0..owed {
            pts_ns += buffer_ns;
            feed(&mut lock, resume_ns + index * 50_000_000 / owed, pts_ns);
        }
        for _ in 0..(30_000_000_000 / buffer_ns) {
            pts_ns += buffer_ns;
            feed(&mut lock, pts_ns, pts_ns);
        }
        assert_eq!(applied, 48_000);
    }

    #[test]
    fn stall_starts_a_new_fit() {
        let mut lock = RateLock::new(48_000);
        lock.stamp(21_000_000, 0, 1024);
        let after = lock.stamp(2_000_000_000, 1_900_000_000, 1024);
        assert_eq!(after.pts_ns, 1_900_000_000);
    }

    /// Returns the rate on the source's output once it has negotiated.
    fn source_rate(source: &gst::Element) -> Option<i32> {
        let caps = source.static_pad("src")?.current_caps()?;
        caps.structure(0)?.get::<i32>("rate").ok()
    }

    #[test]
    fn relabel_leaves_source_rate() {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let make = |factory: &str| gst::ElementFactory::make(factory).build().unwrap();
        let source = make("audiotestsrc");
        source.set_property("is-live", true);
        let setter = gst::ElementFactory::make("capssetter")
            .name(LOCK_NAME)
            .build()
            .unwrap();
        let resample = make("audioresample");
        let filter = make("capsfilter");
        filter.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000)
                .build(),
        );
        let sink = make("fakesink");
        let elements = [&source, &setter, &resample, &filter, &sink];
        pipeline.add_many(elements).unwrap();
        gst::Element::link_many(elements).unwrap();
        attach(pipeline.upcast_ref());
        pipeline.set_state(gst::State::Playing).unwrap();

        let wait_for_rate = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while source_rate(&source).is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            source_rate(&source)
        };
        assert_eq!(wait_for_rate(), Some(48_000));

        // What the probe does once the fit is ready, then a renegotiation.
        setter.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_100)
                .build(),
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        setter
            .static_pad("sink")
            .unwrap()
            .push_event(gst::event::Reconfigure::new());
        std::thread::sleep(std::time::Duration::from_millis(500));
        let rate = source_rate(&source);
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(
            rate,
            Some(48_000),
            "the source followed the relabelled rate"
        );
    }
}
