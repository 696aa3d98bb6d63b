//! Holds back video until the first IDR after DTLS connects.
//!
//! The encoder is asked for an IDR the moment DTLS connects, but the P
//! frames encoded meanwhile can reach the receiver first. In one session
//! of eight against the aiortc receiver they did, and it failed to decode
//! them and sent a burst of PLIs.

use crate::output::MediaKind;

/// Whether video may go to the peer yet. Audio always may.
#[derive(Debug, Default)]
pub struct IdrGate {
    open: bool,
}

impl IdrGate {
    /// Returns whether a frame of `kind` goes to the peer, and opens the
    /// gate at the first keyframe once `connected`.
    pub fn admit(&mut self, kind: MediaKind, keyframe: bool, connected: bool) -> bool {
        if self.open || kind == MediaKind::Audio {
            return true;
        }
        self.open = connected && keyframe;
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::{Audio, Video};

    #[test]
    fn video_waits_for_idr_after_connect() {
        let mut gate = IdrGate::default();
        let cases = [
            (Video, true, false, false),
            (Video, false, false, false),
            (Audio, false, false, true),
            (Video, false, true, false),
            (Audio, false, true, true),
            (Video, true, true, true),
            (Video, false, true, true),
            (Video, false, false, true),
        ];
        for (step, (kind, keyframe, connected, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                gate.admit(kind, keyframe, connected),
                expected,
                "step {step}: {kind:?} keyframe={keyframe} connected={connected}"
            );
        }
    }
}
