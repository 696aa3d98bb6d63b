//! Sources of an output's publishing credentials: fixed for the run
//! (a token or stream key given by the user, here), or acquired through /v1
//! and renewed before they expire (`acquired`). Outputs ask for them before
//! every dial.

use super::credential::Credential;
use super::token;
use crate::exit::ExitStatus;
use crate::output::OutputError;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A stream path and the credential that may publish to it.
#[derive(Clone, Debug)]
pub struct Publish {
    pub path: String,
    pub credential: Credential,
}

impl Publish {
    /// Checks a session token's claims against this path before a dial:
    /// action, path, `audience` and expiry. A stream key has no claims.
    pub fn check_claims(&self, audience: &str) -> Result<(), OutputError> {
        let Credential::SessionToken(token) = &self.credential else {
            return Ok(());
        };
        token::decode_claims(token.expose())
            .and_then(|claims| {
                token::check_publish(&claims, &self.path, audience, SystemTime::now())
            })
            .map_err(|error| OutputError::Fatal {
                status: ExitStatus::Credentials,
                message: error.to_string(),
            })
    }
}

/// Hands out the credentials to dial with.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// Returns credentials fit to dial with now. An acquiring source renews
    /// them first when they expire within its margin.
    fn current(&self) -> Result<Publish, OutputError>;

    /// Returns the stream path, for logs.
    fn path(&self) -> String;

    /// Marks the held credentials as refused by a server, so the next
    /// `current` acquires new ones where the source can.
    fn invalidate(&self) {}
}

/// Credentials given by the user, the same for the whole run.
#[derive(Debug)]
pub struct StaticCredentials {
    publish: Publish,
}

impl StaticCredentials {
    pub fn new(path: &str, credential: Credential) -> Arc<Self> {
        Arc::new(Self {
            publish: Publish {
                path: path.to_string(),
                credential,
            },
        })
    }
}

impl CredentialSource for StaticCredentials {
    fn current(&self) -> Result<Publish, OutputError> {
        Ok(self.publish.clone())
    }

    fn path(&self) -> String {
        self.publish.path.clone()
    }
}
