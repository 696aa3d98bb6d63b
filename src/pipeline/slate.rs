//! The slate: a still "NO SIGNAL" picture and silence that the encoder gets
//! while a live source delivers nothing, and the rules for when to show it.
//!
//! ```text
//! videotestsrc is-live=true pattern=black ! capsfilter (encode size, rate) ! textoverlay "NO SIGNAL"
//! audiotestsrc is-live=true wave=silence ! capsfilter (48 kHz stereo)
//! ```
//!
//! Both run for the whole stream into an `input-selector` beside the
//! source, so switching is a property change and the encoder and every
//! output run on untouched. [`Watch`] decides when to switch; it takes the
//! time as an argument and returns what to do, so its rules are tested
//! without a pipeline.

use super::description::{ChainSpec, ElementSpec};
use crate::config::{FrameRate, Size};
use std::time::{Duration, Instant};

/// How long a live source may deliver no video before the slate goes on
/// air. It is long enough to pass over a hiccup of a camera, which in low
/// light may drop to 5 fps (200 ms a frame). It is short enough that the
/// slate is on air well before a receiver that waits a few seconds gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Delay between attempts to open a failed source again.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// Text the slate shows.
pub const SLATE_TEXT: &str = "NO SIGNAL";

/// Describes the slate picture at the encode size and rate, in I420, which
/// every converter and `textoverlay` take.
pub fn video_chain(size: Size, fps: FrameRate) -> ChainSpec {
    let caps = format!(
        "video/x-raw,format=I420,width={},height={},framerate={fps},pixel-aspect-ratio=1/1",
        size.width, size.height
    );
    ChainSpec::new(vec![
        ElementSpec::new("videotestsrc")
            .named("slate")
            .property("is-live", true)
            .property("pattern", "black"),
        ElementSpec::caps_filter(&caps),
        ElementSpec::new("textoverlay")
            .property("text", SLATE_TEXT)
            .property("font-desc", "Sans Bold 28")
            .property("valignment", "center")
            .property("halignment", "center"),
    ])
}

/// Describes the slate's silence, 48 kHz stereo like every encode.
pub fn audio_chain() -> ChainSpec {
    ChainSpec::new(vec![
        ElementSpec::new("audiotestsrc")
            .named("slate-audio")
            .property("is-live", true)
            .property("wave", "silence"),
        ElementSpec::caps_filter("audio/x-raw,rate=48000,channels=2"),
    ])
}

/// Describes the switch between the source and the slate. Inactive inputs
/// drop their buffers at once (`sync-streams=false`), so neither input
/// ever waits on the other.
pub fn selector(name: &str) -> ElementSpec {
    ElementSpec::new("input-selector")
        .named(name)
        .property("sync-streams", false)
}

/// Describes what follows the audio selector. `audiorate` fills the gap
/// between the source's last samples and the slate's first with silence,
/// as `videorate` in the video tail repeats the last frame over it. So
/// receivers see no hole in either medium.
pub fn audio_fill() -> ElementSpec {
    ElementSpec::new("audiorate")
}

/// A change the pipeline makes after an event or a tick of the watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put the slate on air: the source stalled or failed.
    ShowSlate,
    /// Put the source back on air: it delivers again.
    ShowSource,
    /// Tear down the failed source and open it again.
    Reopen,
}

/// The state of the source as the watch tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// On air; `since` is when it went on air, which counts as its last
    /// buffer until a buffer arrives.
    OnAir { since: Instant },
    /// The slate is on air; the source is back with its first buffer after
    /// `since`.
    Lost { since: Instant },
    /// The source failed; the slate is on air until a reopen at `retry_at`
    /// delivers.
    Failed { retry_at: Instant },
}

/// The rules for switching between the source and the slate.
#[derive(Clone, Debug)]
pub struct Watch {
    state: State,
}

impl Watch {
    /// Starts with the source on air at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            state: State::OnAir { since: now },
        }
    }

    pub fn is_slate_on_air(&self) -> bool {
        !matches!(self.state, State::OnAir { .. })
    }

    /// Checks the source at `now`, given when its last buffer arrived.
    pub fn tick(&mut self, now: Instant, last_buffer: Option<Instant>) -> Option<Action> {
        match self.state {
            State::OnAir { since } => {
                let last = last_buffer.map_or(since, |last| last.max(since));
                if now.saturating_duration_since(last) < STALL_TIMEOUT {
                    return None;
                }
                self.state = State::Lost { since: now };
                Some(Action::ShowSlate)
            }
            State::Lost { since } => {
                if last_buffer.is_none_or(|last| last <= since) {
                    return None;
                }
                self.state = State::OnAir { since: now };
                Some(Action::ShowSource)
            }
            State::Failed { retry_at } => (now >= retry_at).then_some(Action::Reopen),
        }
    }

    /// Records that the source failed at `now`. Returns `ShowSlate` unless
    /// the slate is already on air.
    pub fn source_failed(&mut self, now: Instant) -> Option<Action> {
        let was_on_air = !self.is_slate_on_air();
        self.state = State::Failed {
            retry_at: now + REOPEN_INTERVAL,
        };
        was_on_air.then_some(Action::ShowSlate)
    }

    /// Records a reopened source, which goes on air with its first buffer.
    pub fn reopened(&mut self, now: Instant) {
        self.state = State::Lost { since: now };
    }

    /// Records a failed reopen; the next one is due after `REOPEN_INTERVAL`.
    pub fn reopen_failed(&mut self, now: Instant) {
        self.state = State::Failed {
            retry_at: now + REOPEN_INTERVAL,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(milliseconds: u64) -> Duration {
        Duration::from_millis(milliseconds)
    }

    #[test]
    fn stall_shows_slate_and_buffer_ends_it() {
        let start = Instant::now();
        let mut watch = Watch::new(start);
        assert_eq!(watch.tick(start + ms(500), Some(start + ms(400))), None);
        assert_eq!(watch.tick(start + ms(1300), Some(start + ms(400))), None);
        let lost = start + ms(1400);
        assert_eq!(
            watch.tick(lost, Some(start + ms(400))),
            Some(Action::ShowSlate)
        );
        assert!(watch.is_slate_on_air());
        assert_eq!(watch.tick(lost + ms(100), Some(start + ms(400))), None);
        assert_eq!(
            watch.tick(lost + ms(5000), Some(lost + ms(4950))),
            Some(Action::ShowSource)
        );
        assert!(!watch.is_slate_on_air());
    }

    #[test]
    fn source_silent_from_start_shows_slate() {
        let start = Instant::now();
        let mut watch = Watch::new(start);
        assert_eq!(watch.tick(start + ms(999), None), None);
        assert_eq!(watch.tick(start + ms(1000), None), Some(Action::ShowSlate));
    }

    #[test]
    fn failure_reopens_until_source_delivers() {
        let start = Instant::now();
        let mut watch = Watch::new(start);
        let failed = start + ms(3000);
        assert_eq!(watch.source_failed(failed), Some(Action::ShowSlate));
        assert_eq!(watch.tick(failed + ms(1999), Some(failed)), None);
        let retry = failed + REOPEN_INTERVAL;
        assert_eq!(watch.tick(retry, Some(failed)), Some(Action::Reopen));
        watch.reopen_failed(retry);
        assert_eq!(watch.tick(retry + ms(1000), Some(failed)), None);
        let second = retry + REOPEN_INTERVAL;
        assert_eq!(watch.tick(second, Some(failed)), Some(Action::Reopen));
        watch.reopened(second);
        assert_eq!(watch.tick(second + ms(100), Some(failed)), None);
        assert_eq!(
            watch.tick(second + ms(300), Some(second + ms(250))),
            Some(Action::ShowSource)
        );
    }

    #[test]
    fn failure_while_lost_keeps_slate() {
        let start = Instant::now();
        let mut watch = Watch::new(start);
        assert_eq!(watch.tick(start + ms(1000), None), Some(Action::ShowSlate));
        assert_eq!(watch.source_failed(start + ms(1500)), None);
        assert!(watch.is_slate_on_air());
    }
}
