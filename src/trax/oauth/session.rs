//! A stored user login as the credential of the /v1 client: the access
//! token, refreshed before it expires and once after the API rejects it.

use super::error::OAuthError;
use super::flow;
use super::provider::http_client;
use super::settings::is_loopback_url;
use super::store::{unix_now, StoredLogin, TokenStore};
use crate::config::Secret;
use std::sync::Mutex;
use std::time::Duration;
use tracing::info;

/// The access token is refreshed this long before it expires, so that a
/// request does not carry one that expires on the way while the clocks of
/// this machine and the provider agree within the margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A user's login, shared by every request of one process.
pub struct UserSession {
    store: TokenStore,
    login: Mutex<StoredLogin>,
}

impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSession")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl UserSession {
    /// Reads the login from `store`. Returns `None` when no user is logged in.
    pub fn load(store: TokenStore) -> Result<Option<Self>, OAuthError> {
        Ok(store.load()?.map(|login| Self {
            store,
            login: Mutex::new(login),
        }))
    }

    /// Returns who is logged in, for logs.
    pub fn who(&self) -> String {
        self.lock().who()
    }

    /// Returns an access token valid for at least [`REFRESH_MARGIN`],
    /// refreshing it first when needed.
    pub fn access_token(&self) -> Result<Secret, OAuthError> {
        let mut login = self.lock();
        let expires_soon = login
            .expires_at
            .is_some_and(|at| at <= unix_now() + REFRESH_MARGIN.as_secs());
        if expires_soon {
            self.refresh_locked(&mut login, "it expires within a minute")?;
        }
        Ok(secret(&login))
    }

    /// Refreshes after the API rejected `rejected`, unless another request
    /// has already replaced it.
    pub fn refresh_after_rejection(&self, rejected: &Secret) -> Result<Secret, OAuthError> {
        let mut login = self.lock();
        if login.access_token == rejected.expose() {
            self.refresh_locked(&mut login, "the API rejected it")?;
        }
        Ok(secret(&login))
    }

    fn refresh_locked(&self, login: &mut StoredLogin, reason: &str) -> Result<(), OAuthError> {
        let _lock = self.store.lock_for_refresh()?;
        // Another process may have refreshed while this one waited, and
        // its refresh token may have replaced the one held here.
        if let Some(current) = self.store.load()? {
            if current.access_token != login.access_token {
                *login = current;
                let fresh = login
                    .expires_at
                    .is_none_or(|at| at > unix_now() + REFRESH_MARGIN.as_secs());
                if fresh {
                    info!(user = %login.who(), "using the access token another process refreshed");
                    return Ok(());
                }
            }
        }

        let token_url =
            url::Url::parse(&login.token_endpoint).map_err(|error| OAuthError::RefreshFailed {
                reason: format!("the stored token endpoint is invalid ({error})"),
            })?;
        let http = http_client(login.ca_file.as_deref(), is_loopback_url(&token_url))?;
        // Only the provider's own rejection means the login is gone. A
        // provider that is down or returns an invalid response leaves the
        // refresh token valid, so that failure keeps exit 1 and a --source
        // run retries.
        let refreshed = flow::refresh(&http, login).map_err(|error| match error {
            OAuthError::RefreshFailed { .. } => error,
            OAuthError::Rejected { .. } => OAuthError::RefreshFailed {
                reason: error.to_string(),
            },
            other => OAuthError::RefreshUnavailable {
                cause: other.to_string(),
            },
        })?;
        let place = self.store.save(&refreshed)?;
        info!(
            user = %refreshed.who(),
            expires_in_s = refreshed.expires_at.map(|at| at.saturating_sub(unix_now())),
            stored_in = %place,
            "refreshed the login's access token because {reason}"
        );
        *login = refreshed;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoredLogin> {
        self.login
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn secret(login: &StoredLogin) -> Secret {
    Secret::new("OAuth access token", login.access_token.clone())
}
