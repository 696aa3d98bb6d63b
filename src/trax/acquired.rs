//! Publishing credentials acquired through /v1 for one source, renewed
//! before they expire.

use super::api::{AcquiredCredentials, ApiClient, ApiError, Protocol};
use super::provider::{CredentialSource, Publish};
use crate::exit::ExitStatus;
use crate::output::OutputError;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Credentials renewed this long before they expire, so that a redial never
/// meets an expired token, and so that an API outage near the expiry still
/// leaves time to retry.
pub const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// The share of a token's lifetime after which it is renewed when that comes
/// after `RENEW_MARGIN` before expiry, as it does for short-lived tokens.
const RENEW_AT_FRACTION: f64 = 0.8;

/// The shortest time between two acquisitions, so that tokens that arrive
/// already expired never make the bridge call the API in a tight loop.
const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(1);

/// Credentials acquired through /v1 for one source and protocol.
pub struct AcquiredSource {
    client: Arc<ApiClient>,
    source_id: String,
    protocol: Protocol,
    state: Mutex<HeldCredentials>,
}

struct HeldCredentials {
    credentials: AcquiredCredentials,
    acquired_at: SystemTime,
    /// Set when a server refused them: renew before the next dial.
    refused: bool,
}

impl fmt::Debug for AcquiredSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquiredSource")
            .field("source_id", &self.source_id)
            .field("protocol", &self.protocol)
            .field("path", &self.path())
            .finish()
    }
}

impl AcquiredSource {
    /// Acquires the first credentials. Errors keep the API's exit status.
    pub fn acquire(
        client: Arc<ApiClient>,
        source_id: &str,
        protocol: Protocol,
    ) -> Result<Arc<Self>, ApiError> {
        let credentials = client.acquire(source_id, protocol)?;
        log_acquired(source_id, &credentials);
        Ok(Arc::new(Self {
            client,
            source_id: source_id.to_string(),
            protocol,
            state: Mutex::new(HeldCredentials {
                credentials,
                acquired_at: SystemTime::now(),
                refused: false,
            }),
        }))
    }

    /// The ingest URL /v1 returned with the credentials, if any.
    pub fn ingest_url(&self) -> Option<String> {
        self.lock().credentials.ingest_url.clone()
    }

    /// When the held credentials should be renewed, if they expire at all.
    fn renew_at(&self) -> Option<SystemTime> {
        let held = self.lock();
        let expires_at = held.credentials.expires_at?;
        Some(renewal_time(held.acquired_at, expires_at))
    }

    /// Acquires new credentials and keeps them. A failure leaves the held
    /// ones in place.
    pub fn renew(&self) -> Result<(), ApiError> {
        let credentials = self.client.acquire(&self.source_id, self.protocol)?;
        log_acquired(&self.source_id, &credentials);
        *self.lock() = HeldCredentials {
            credentials,
            acquired_at: SystemTime::now(),
            refused: false,
        };
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeldCredentials> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renews the credentials in the background before they expire, until
    /// `stop` disconnects. Failed renewals are retried every few seconds.
    pub fn spawn_renewal(self: &Arc<Self>, stop: Receiver<()>) {
        let source = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("credentials".into())
            .spawn(move || source.renew_until_stopped(&stop));
        if let Err(error) = spawned {
            warn!(%error, "cannot start renewing credentials in the background; they are renewed before each dial");
        }
    }

    fn renew_until_stopped(&self, stop: &Receiver<()>) {
        const RETRY: Duration = Duration::from_secs(5);
        loop {
            let wait = match self.renew_at() {
                Some(at) => at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
                None => return,
            };
            if !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                return;
            }
            while let Err(error) = self.renew() {
                warn!(source = %self.source_id, %error, "renewing the publishing credentials failed; retrying");
                if !matches!(stop.recv_timeout(RETRY), Err(RecvTimeoutError::Timeout)) {
                    return;
                }
            }
        }
    }
}

impl CredentialSource for AcquiredSource {
    fn current(&self) -> Result<Publish, OutputError> {
        let (refused, expires_at) = {
            let held = self.lock();
            (held.refused, held.credentials.expires_at)
        };
        if renewal_due(refused, self.renew_at(), expires_at, SystemTime::now()) {
            if let Err(error) = self.renew() {
                let expired = self
                    .lock()
                    .credentials
                    .expires_at
                    .is_some_and(|at| at <= SystemTime::now());
                if expired || refused {
                    return Err(api_error(error));
                }
                warn!(
                    %error,
                    "renewing the publishing credentials failed; dialing with the held ones, \
                     which have not expired"
                );
            }
        }
        let held = self.lock();
        if let Some(expires_at) = held.credentials.expires_at {
            if expires_at <= SystemTime::now() {
                return Err(OutputError::Fatal {
                    status: ExitStatus::Credentials,
                    message: format!(
                        "the API issued credentials for source {} that had already expired; \
                         the clocks of this machine and the API disagree, or the API's token \
                         lifetime is wrong: check the time here (timedatectl) and ask the \
                         deployment's operators",
                        self.source_id
                    ),
                });
            }
        }
        Ok(Publish {
            path: held.credentials.path.clone(),
            credential: held.credentials.credential.clone(),
        })
    }

    fn path(&self) -> String {
        self.lock().credentials.path.clone()
    }

    fn invalidate(&self) {
        self.lock().refused = true;
    }
}

/// Returns when to renew credentials acquired at `acquired_at` that expire
/// at `expires_at`: `RENEW_MARGIN` before expiry, or after
/// `RENEW_AT_FRACTION` of the lifetime when that is later (short-lived
/// tokens), and never sooner than `MIN_RENEW_INTERVAL` after acquisition.
fn renewal_time(acquired_at: SystemTime, expires_at: SystemTime) -> SystemTime {
    let lifetime = expires_at
        .duration_since(acquired_at)
        .unwrap_or(Duration::ZERO);
    let by_fraction = acquired_at + lifetime.mul_f64(RENEW_AT_FRACTION);
    let by_margin = expires_at.checked_sub(RENEW_MARGIN).unwrap_or(acquired_at);
    let earliest = acquired_at + MIN_RENEW_INTERVAL;
    by_margin.max(by_fraction).max(earliest)
}

/// Whether credentials must be renewed before a dial at `now`: a server
/// refused them, their renewal time has come, or they have expired. The last
/// matters for credentials that arrive (nearly) expired: their renewal time
/// waits for `MIN_RENEW_INTERVAL`, but a dial must not wait for it.
fn renewal_due(
    refused: bool,
    renew_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    now: SystemTime,
) -> bool {
    refused || renew_at.is_some_and(|at| at <= now) || expires_at.is_some_and(|at| at <= now)
}

/// Maps an API failure during a redial: transient failures (exit 1) let the
/// supervisor retry later, others end the output.
fn api_error(error: ApiError) -> OutputError {
    match error.exit_status() {
        ExitStatus::Other => {
            OutputError::Transient(format!("cannot renew the publishing credentials: {error}"))
        }
        status => OutputError::Fatal {
            status,
            message: format!("cannot renew the publishing credentials: {error}"),
        },
    }
}

fn log_acquired(source_id: &str, credentials: &AcquiredCredentials) {
    let expires_in_s = credentials
        .expires_at
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .map(|left| left.as_secs());
    info!(
        source = source_id,
        path = %credentials.path,
        credential = credentials.credential.kind(),
        expires_in_s,
        "acquired publishing credentials"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_due_before_dial() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let earlier = Some(now - Duration::from_millis(200));
        let later = Some(now + Duration::from_millis(800));
        let cases = [
            // (refused, renew_at, expires_at, due)
            (false, later, Some(now + Duration::from_secs(60)), false),
            (false, None, None, false),
            (true, later, later, true),
            (false, earlier, later, true),
            (false, Some(now), later, true),
            // Arrived nearly expired: renewal waits, the expiry does not.
            (false, later, earlier, true),
            (false, None, earlier, true),
        ];
        for (refused, renew_at, expires_at, due) in cases {
            assert_eq!(
                renewal_due(refused, renew_at, expires_at, now),
                due,
                "refused {refused}, renew_at {renew_at:?}, expires_at {expires_at:?}"
            );
        }
    }

    #[test]
    fn renewal_time_by_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let seconds = Duration::from_secs;
        let cases = [
            // (lifetime, renew after), both in seconds from acquisition
            (600, 540),
            (100, 80),
            (3, 2),
            (0, 1),
        ];
        for (lifetime, expected) in cases {
            let at = renewal_time(start, start + seconds(lifetime));
            let after = at.duration_since(start).unwrap();
            assert_eq!(after.as_secs(), expected, "lifetime {lifetime} s");
        }
        let expired = renewal_time(start, start - seconds(60));
        assert_eq!(expired, start + MIN_RENEW_INTERVAL);
    }
}
