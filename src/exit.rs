//! Exit codes, as systemd units and scripts rely on them.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Finished: the duration ran out or a signal asked for a clean stop.
    Done = 0,
    /// Anything not covered below.
    Other = 1,
    /// Invalid command line or configuration, including a streamid that
    /// cannot be built.
    Usage = 2,
    /// Credentials rejected by a server, or token claims that do not fit.
    Credentials = 3,
    /// The capture device is missing, busy or offers no usable mode.
    Device = 4,
    /// No H.264 encoder passed its test encode.
    Encoder = 5,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that ends the process, with the exit status it maps to.
#[derive(Debug)]
pub struct Fatal {
    pub status: ExitStatus,
    pub error: anyhow::Error,
}

impl Fatal {
    pub fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Self {
            status,
            error: error.into(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}
