//! A string that never shows itself in logs, errors or debug output.

use std::fmt;

/// A secret value: session token, stream key, passphrase, API key or a
/// streamid that carries one of them. `Debug` and `Display` print only what
/// kind of secret it is and its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    kind: &'static str,
    value: String,
}

impl Secret {
    pub fn new(kind: &'static str, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted, {} bytes>", self.kind, self.value.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_hides_value() {
        let secret = Secret::new("session token", "eyJhbGciOi.secret.part");
        assert_eq!(format!("{secret}"), "<session token redacted, 22 bytes>");
        assert!(!format!("{secret:?}").contains("secret.part"));
        assert_eq!(secret.expose(), "eyJhbGciOi.secret.part");
    }
}
