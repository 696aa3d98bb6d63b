//! When the client retries a request and how long it waits: the retry
//! policy, the capped exponential backoff, `Retry-After` parsing and the
//! sorting of responses into success, retry and failure. All of it is pure
//! arithmetic; the client in `transport.rs` does the sleeping.

use std::time::{Duration, SystemTime};

/// How often and how long the client retries a request that failed with a
/// network error, a timeout, `429` or a `5xx` other than `503
/// write_disabled`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included. At least 1.
    pub max_attempts: u32,
    /// Backoff before the second attempt. Each later backoff doubles.
    pub initial_backoff: Duration,
    /// Ceiling on one backoff.
    pub max_backoff: Duration,
    /// Maximum wait the client accepts from a `Retry-After` header. A
    /// server that asks for more ends the request with a rate-limit error.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts over about 4 s of backoff, and at most one minute per
    /// `Retry-After`.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The client's handling of an HTTP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// A 2xx: the caller reads the body.
    Success,
    /// `429`: retry after `Retry-After`, or after the backoff without one.
    RetryRateLimited,
    /// A `5xx` other than `503 write_disabled`: retry after the backoff.
    RetryServerError,
    /// Anything else: report it at once.
    Fail,
}

/// The error code of a `503` that means the deployment has writes switched
/// off. Retrying does not help, so the client does not.
pub(crate) const WRITE_DISABLED_CODE: &str = "write_disabled";

/// Sorts a response by its status and the envelope's error code.
pub(crate) fn classify(status: u16, error_code: Option<&str>) -> Disposition {
    match status {
        200..=299 => Disposition::Success,
        429 => Disposition::RetryRateLimited,
        503 if error_code == Some(WRITE_DISABLED_CODE) => Disposition::Fail,
        500..=599 => Disposition::RetryServerError,
        _ => Disposition::Fail,
    }
}

/// Returns the backoff before retry number `retry_index + 1` (0 for the
/// first retry): `initial_backoff * 2^retry_index`, capped at `max_backoff`,
/// of which the upper half is scaled by `jitter` (0.0 to 1.0). The result
/// thus lies between half the capped value and the capped value.
pub fn backoff_delay(policy: &RetryPolicy, retry_index: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(retry_index.min(31));
    let capped = policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff);
    let half = capped / 2;
    half + (capped - half).mul_f64(jitter.clamp(0.0, 1.0))
}

/// The wait before retrying a `429`, or `Err(requested)` when the server's
/// `Retry-After` exceeds `max_retry_after`.
///
/// With a `Retry-After`, the wait is that value plus up to
/// `initial_backoff` of jitter (so clients given the same time do not return
/// at once), capped at `max_retry_after`. Without one it is the backoff.
pub fn rate_limit_delay(
    policy: &RetryPolicy,
    retry_after: Option<Duration>,
    retry_index: u32,
    jitter: f64,
) -> Result<Duration, Duration> {
    let Some(requested) = retry_after else {
        return Ok(backoff_delay(policy, retry_index, jitter).min(policy.max_retry_after));
    };
    if requested > policy.max_retry_after {
        return Err(requested);
    }
    let spread = policy.initial_backoff.mul_f64(jitter.clamp(0.0, 1.0));
    Ok((requested + spread).min(policy.max_retry_after))
}

/// Parses a `Retry-After` value: delay seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`). A date in the past means no wait.
/// Returns `None` for anything else, and the caller falls back to the
/// backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A number beyond u64 is garbage, not a long wait.
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(30),
        }
    }

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let cases = [
            (0, 1.0, ms(100)),
            (1, 1.0, ms(200)),
            (2, 1.0, ms(400)),
            (3, 1.0, ms(800)),
            (4, 1.0, ms(1000)),
            (30, 1.0, ms(1000)),
            (u32::MAX, 1.0, ms(1000)),
        ];
        for (retry_index, jitter, expected) in cases {
            let delay = backoff_delay(&policy(), retry_index, jitter);
            assert_eq!(delay, expected, "retry {retry_index}");
        }
    }

    #[test]
    fn backoff_jitter_spans_upper_half() {
        let cases = [
            (0, 0.0, ms(50)),
            (0, 0.5, ms(75)),
            (3, 0.0, ms(400)),
            (4, 0.0, ms(500)),
            (4, -3.0, ms(500)),
            (4, 7.0, ms(1000)),
        ];
        for (retry_index, jitter, expected) in cases {
            let delay = backoff_delay(&policy(), retry_index, jitter);
            assert_eq!(delay, expected, "retry {retry_index}, jitter {jitter}");
        }
    }

    #[test]
    fn backoff_survives_huge_initial() {
        let policy = RetryPolicy {
            initial_backoff: Duration::MAX,
            max_backoff: Duration::from_secs(5),
            ..policy()
        };
        assert_eq!(backoff_delay(&policy, 10, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn rate_limit_delay_honours_retry_after() {
        let cases = [
            (Some(ms(2000)), 0.0, Ok(ms(2000))),
            (Some(ms(2000)), 1.0, Ok(ms(2100))),
            (Some(Duration::ZERO), 0.5, Ok(ms(50))),
            (Some(ms(29_950)), 1.0, Ok(ms(30_000))),
            (Some(ms(30_000)), 0.0, Ok(ms(30_000))),
            (Some(ms(30_001)), 0.0, Err(ms(30_001))),
            (None, 1.0, Ok(ms(400))),
        ];
        for (retry_after, jitter, expected) in cases {
            let delay = rate_limit_delay(&policy(), retry_after, 2, jitter);
            assert_eq!(delay, expected, "{retry_after:?}, jitter {jitter}");
        }
    }

    #[test]
    fn rate_limit_backoff_capped_by_max_retry_after() {
        let policy = RetryPolicy {
            max_backoff: Duration::from_secs(100),
            max_retry_after: Duration::from_secs(3),
            ..policy()
        };
        let delay = rate_limit_delay(&policy, None, 20, 1.0);
        assert_eq!(delay, Ok(Duration::from_secs(3)));
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00 GMT
        let cases = [
            ("0", Some(Duration::ZERO)),
            ("120", Some(Duration::from_secs(120))),
            (" 7 ", Some(Duration::from_secs(7))),
            (
                "Wed, 21 Oct 2015 07:28:10 GMT",
                Some(Duration::from_secs(10)),
            ),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::ZERO)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            (
                "Wednesday, 21-Oct-15 07:28:05 GMT",
                Some(Duration::from_secs(5)),
            ),
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("99999999999999999999999", None),
            ("2015-10-21T07:28:10Z", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "'{value}'");
        }
    }

    #[test]
    fn classify_statuses() {
        let cases = [
            (200, None, Disposition::Success),
            (201, None, Disposition::Success),
            (204, Some("x"), Disposition::Success),
            (301, None, Disposition::Fail),
            (400, None, Disposition::Fail),
            (401, None, Disposition::Fail),
            (403, None, Disposition::Fail),
            (404, None, Disposition::Fail),
            (429, None, Disposition::RetryRateLimited),
            (500, None, Disposition::RetryServerError),
            (502, Some("bad_gateway"), Disposition::RetryServerError),
            (503, None, Disposition::RetryServerError),
            (503, Some("unavailable"), Disposition::RetryServerError),
            (503, Some("write_disabled"), Disposition::Fail),
            (500, Some("write_disabled"), Disposition::RetryServerError),
            (599, None, Disposition::RetryServerError),
        ];
        for (status, code, expected) in cases {
            assert_eq!(classify(status, code), expected, "{status} {code:?}");
        }
    }
}
