//! Client for the TRaX Developer API (`/v1`): listing studios and sources,
//! acquiring a source's publishing credentials and checking the live
//! OpenAPI document for the operations the bridge needs.
//!
//! `docs/v1-api.md` is the contract. The parts of it that the public API
//! documentation does not show live in two files: `acquire.rs` (the
//! credential call) and `check.rs` (the list of operations).
//!
//! Requests are blocking, each with its own timeout. Network errors,
//! timeouts, `429` and `5xx` (except `503 write_disabled`) are retried a
//! bounded number of times with capped exponential backoff, and each retry
//! is logged at warn. The API key only ever leaves this module in the
//! `Authorization` header: errors and logs show server text only after
//! [`error::sanitize`] has removed the key and any token from it.

mod acquire;
mod check;
mod error;
mod lists;
mod origin;
mod retry;
mod rfc3339;
mod transport;

pub use acquire::{AcquiredCredentials, Protocol, ACQUIRE_METHOD, ACQUIRE_PATH};
pub use check::{CheckReport, Operation, REQUIRED_OPERATIONS};
pub use error::{ApiError, ServerDetail};
pub use lists::{Source, Studio, MAX_PAGES, PAGE_LIMIT};
pub use origin::API_PREFIX;
pub use retry::{backoff_delay, parse_retry_after, rate_limit_delay, RetryPolicy};

// Shared with the WHIP signaling client, which talks HTTPS the same way.
pub(crate) use error::sanitize;
pub(crate) use transport::{find_tls_error, innermost_cause, is_timeout, read_ca_bundle};

use crate::config::Secret;
use crate::trax::oauth::UserSession;
use reqwest::header::HeaderValue;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Per-request timeout when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("bridge/", env!("CARGO_PKG_VERSION"));

/// Settings for one API deployment: origin, key, CA file, timeout and
/// retry policy.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Scheme, host, port and any path prefix, without `/v1`, as in
    /// `https://api.example.com`. An origin that ends in `/v1` is accepted
    /// with a warning.
    pub origin: String,
    /// API key or OAuth access token. Listing and acquiring need it;
    /// `health` and the OpenAPI document do not.
    pub key: Option<Secret>,
    /// A PEM file with one or more extra CA certificates, trusted on top
    /// of the built-in web PKI roots, for deployments with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Limit on each request, from connecting to reading the whole body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ApiConfig {
    /// Returns a configuration for `origin` with no key and the default timeout
    /// and retry policy.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            key: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

/// Called with each delay between attempts. The default sleeps the thread;
/// a caller that must stay interruptible, or a test, passes its own.
pub type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// A client for one API deployment. Cloning is cheap and shares the
/// connection pool.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::blocking::Client,
    base_url: String,
    /// `Bearer <key>`, marked sensitive so the HTTP stack never prints it.
    authorization: Option<HeaderValue>,
    key: Option<Secret>,
    timeout: Duration,
    retry: RetryPolicy,
    sleep: Sleeper,
    /// A user's login, whose access token authenticates when no API key
    /// is set.
    login: Option<Arc<UserSession>>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.base_url)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Checks `config` and builds the HTTP client. Nothing is sent yet.
    pub fn new(config: ApiConfig) -> Result<Self, ApiError> {
        let base = origin::base_url(&config.origin).map_err(|reason| ApiError::InvalidOrigin {
            origin: origin::redact_origin(&config.origin),
            reason,
        })?;
        if base.had_prefix {
            warn!(
                base_url = %base.url,
                "the API URL already ends in {API_PREFIX}; the client does not add it again"
            );
        }
        check_settings(&config)?;
        let authorization = config.key.as_ref().map(authorization_header).transpose()?;
        let http = transport::build_http_client(&config, base.loopback)?;

        Ok(Self {
            http,
            base_url: base.url,
            authorization,
            key: config.key,
            timeout: config.timeout,
            retry: config.retry,
            sleep: Arc::new(std::thread::sleep),
            login: None,
        })
    }

    /// Authenticates with the access token of `login` when no API key is
    /// set, refreshing it before it expires and once after a `401`.
    pub fn with_login(mut self, login: Arc<UserSession>) -> Self {
        self.login = Some(login);
        self
    }

    /// Replaces the function that waits between attempts.
    pub fn with_sleeper(mut self, sleep: Sleeper) -> Self {
        self.sleep = sleep;
        self
    }

    /// Returns the origin followed by `/v1`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Calls `GET /v1/health`, which needs no key. Any 2xx is healthy.
    pub fn health(&self) -> Result<(), ApiError> {
        let request = transport::Request::get(self.endpoint(&["health"]), false);
        self.execute(&request).map(|_| ())
    }

    /// `base_url` with `segments` appended, each percent-encoded as one
    /// path segment.
    pub(crate) fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = url::Url::parse(&self.base_url).expect("base_url was parsed in new()");
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .extend(segments);
        url
    }
}

fn check_settings(config: &ApiConfig) -> Result<(), ApiError> {
    if config.timeout.is_zero() {
        return Err(ApiError::InvalidSetting {
            setting: "the request timeout",
            value: "0".into(),
            fix: "set a timeout above zero, as in 10 s",
        });
    }
    if config.retry.max_attempts == 0 {
        return Err(ApiError::InvalidSetting {
            setting: "the number of attempts",
            value: "0".into(),
            fix: "set at least 1 attempt",
        });
    }
    Ok(())
}

pub(crate) fn authorization_header(key: &Secret) -> Result<HeaderValue, ApiError> {
    let invalid = || ApiError::InvalidKey { key: key.clone() };
    let printable = key.expose().bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || !printable {
        return Err(invalid());
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origin: &str) -> ApiConfig {
        ApiConfig::new(origin)
    }

    #[test]
    fn base_url_appends_prefix() {
        let client = ApiClient::new(config("https://api.example.com/")).unwrap();
        assert_eq!(client.base_url(), "https://api.example.com/v1");
    }

    #[test]
    fn base_url_not_doubled() {
        let client = ApiClient::new(config("https://api.example.com/v1")).unwrap();
        assert_eq!(client.base_url(), "https://api.example.com/v1");
    }

    #[test]
    fn endpoint_encodes_segments() {
        let client = ApiClient::new(config("https://api.example.com")).unwrap();
        let url = client.endpoint(&["sources", "a/b?c", "publish-credentials"]);
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/sources/a%2Fb%3Fc/publish-credentials"
        );
    }

    #[test]
    fn rejects_bad_settings() {
        let mut zero_timeout = config("https://api.example.com");
        zero_timeout.timeout = Duration::ZERO;
        let mut zero_attempts = config("https://api.example.com");
        zero_attempts.retry.max_attempts = 0;
        for (config, expected) in [
            (zero_timeout, "the request timeout is 0"),
            (zero_attempts, "the number of attempts is 0"),
        ] {
            let error = ApiClient::new(config).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        }
    }

    #[test]
    fn rejects_unusable_keys() {
        for value in ["", "abc def", "abc\n", "clé"] {
            let mut config = config("https://api.example.com");
            config.key = Some(Secret::new("API key", value));
            let error = ApiClient::new(config).unwrap_err();
            assert!(matches!(error, ApiError::InvalidKey { .. }), "{value:?}");
            if !value.trim().is_empty() {
                assert!(!error.to_string().contains(value.trim()), "{error}");
            }
        }
    }

    #[test]
    fn invalid_origin_error_redacts_password() {
        let error = ApiClient::new(config("http://user:hunter2@api.example.com")).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("invalid API URL 'http://***@api.example.com'"),
            "{text}"
        );
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
    }

    #[test]
    fn debug_hides_key() {
        let mut config = config("https://api.example.com");
        config.key = Some(Secret::new("API key", "sekrit_value_123"));
        let client = ApiClient::new(config.clone()).unwrap();
        assert!(!format!("{client:?}").contains("sekrit_value_123"));
        assert!(!format!("{config:?}").contains("sekrit_value_123"));
    }
}
