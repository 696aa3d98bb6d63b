//! Credentials an output publishes with: a TRaX session token (a JWT the
//! edge verifies) or a plain stream key.

use crate::config::Secret;

/// Proof of the right to publish on a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A TRaX session token: a compact JWS whose claims name the action,
    /// the path and the audience.
    SessionToken(Secret),
    /// A stream key issued for one path.
    StreamKey(Secret),
}

impl Credential {
    /// Returns the secret, whichever kind it is.
    pub fn secret(&self) -> &Secret {
        match self {
            Self::SessionToken(secret) | Self::StreamKey(secret) => secret,
        }
    }

    /// Returns the kind's name for messages: "session token" or "stream key".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SessionToken(_) => "session token",
            Self::StreamKey(_) => "stream key",
        }
    }
}
