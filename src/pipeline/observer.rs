//! A read-only view of the media pipeline for the status server: whether
//! the slate is on air and which encoder runs now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The input the encoder gets now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSignal {
    /// The source's own picture and sound (always, for a clip).
    Source,
    /// The NO SIGNAL slate, while a live source delivers nothing.
    Slate,
}

impl InputSignal {
    /// Returns the signal as one word: `source` or `slate`.
    pub fn name(self) -> &'static str {
        match self {
            InputSignal::Source => "source",
            InputSignal::Slate => "slate",
        }
    }
}

/// Cheap to clone; every read is an atomic load or a short lock.
#[derive(Clone)]
pub struct MediaObserver {
    /// `None` for a clip, which has no slate.
    slate_on_air: Option<Arc<AtomicBool>>,
    encoder_factory: Arc<Mutex<&'static str>>,
}

impl MediaObserver {
    pub(super) fn new(
        slate_on_air: Option<Arc<AtomicBool>>,
        encoder_factory: Arc<Mutex<&'static str>>,
    ) -> Self {
        Self {
            slate_on_air,
            encoder_factory,
        }
    }

    pub fn input_signal(&self) -> InputSignal {
        match &self.slate_on_air {
            Some(flag) if flag.load(Ordering::Acquire) => InputSignal::Slate,
            _ => InputSignal::Source,
        }
    }

    /// Returns the factory name of the encoder running now, such as
    /// `x264enc`; it changes when a failed encoder is replaced.
    pub fn encoder(&self) -> &'static str {
        *self
            .encoder_factory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
