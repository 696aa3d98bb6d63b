//! Session token claims: decoding a compact JWS payload without verifying
//! its signature, and the checks made before dialing, so a token the edge
//! would reject fails here with a message that names the wrong claim.
//!
//! Only the edge can verify the signature. These checks catch the common
//! mistakes early (a token for another path, another service or an old
//! session) instead of a bare SRT rejection.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The audience the SRT and RTMP edge (MediaMTX) expects in `aud`.
pub const MEDIAMTX_AUDIENCE: &str = "trax-mediamtx";

/// The audience the edge expects in a WHIP (WebRTC publish) token.
pub const TALK_AUDIENCE: &str = "trax-mediamtx-talk";

/// The action a publishing token must carry.
pub const PUBLISH_ACTION: &str = "publish";

/// The claims the bridge checks. Other claims are ignored.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Claims {
    pub action: Option<String>,
    pub path: Option<String>,
    /// `aud`, which JWT allows as one string or an array of strings.
    #[serde(rename = "aud", default, deserialize_with = "audience_list")]
    pub audience: Vec<String>,
    /// `exp`: the expiry as seconds since the Unix epoch.
    #[serde(rename = "exp")]
    pub expires_unix_s: Option<f64>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("the session token is not a JWT: {reason}; copy the whole token as TRaX issued it")]
    NotJwt { reason: String },

    #[error(
        "the session token is for action {}, not '{PUBLISH_ACTION}': request a publish token \
         for this output",
        quoted_or_missing(.action)
    )]
    WrongAction { action: Option<String> },

    #[error(
        "the session token is for path {}, not '{expected}'{}: request a token for '{expected}' \
         or set the output path to the token's path",
        quoted_or_missing(.token_path),
        path_hint(.token_path.as_deref(), .expected)
    )]
    WrongPath {
        token_path: Option<String>,
        expected: String,
    },

    #[error(
        "the session token's audience {} does not include '{expected}': {}",
        audience_text(.audience),
        audience_hint(.expected)
    )]
    WrongAudience {
        audience: Vec<String>,
        expected: String,
    },

    #[error(
        "the session token expired {} ago (exp {expires_unix_s}): request a new token",
        format_duration(*.expired_for)
    )]
    Expired {
        expires_unix_s: f64,
        expired_for: Duration,
    },
}

/// Decodes the payload of a compact JWS (`header.payload.signature`)
/// without verifying the signature.
pub fn decode_claims(token: &str) -> Result<Claims, TokenError> {
    let not_jwt = |reason: String| TokenError::NotJwt { reason };

    if token.is_empty() {
        return Err(not_jwt("it is empty".to_string()));
    }
    if token.chars().any(|c| c.is_whitespace()) {
        return Err(not_jwt("it contains whitespace".to_string()));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(not_jwt(format!(
            "it has {} dot-separated parts, a compact JWT has 3",
            parts.len()
        )));
    }

    let header = decode_json_part(parts[0], "header").map_err(not_jwt)?;
    if !header.is_object() {
        return Err(not_jwt("its header is not a JSON object".to_string()));
    }
    let payload = decode_json_part(parts[1], "payload").map_err(not_jwt)?;
    if !payload.is_object() {
        return Err(not_jwt("its payload is not a JSON object".to_string()));
    }
    Claims::deserialize(payload)
        .map_err(|error| not_jwt(format!("its claims are invalid: {error}")))
}

/// Checks that `claims` allow publishing on `expected_path` at the edge
/// identified by `audience`, at time `now`. There is no clock leeway,
/// because the edge allows none.
pub fn check_publish(
    claims: &Claims,
    expected_path: &str,
    audience: &str,
    now: SystemTime,
) -> Result<(), TokenError> {
    if claims.action.as_deref() != Some(PUBLISH_ACTION) {
        return Err(TokenError::WrongAction {
            action: claims.action.clone(),
        });
    }
    if claims.path.as_deref() != Some(expected_path) {
        return Err(TokenError::WrongPath {
            token_path: claims.path.clone(),
            expected: expected_path.to_string(),
        });
    }
    if !claims.audience.iter().any(|entry| entry == audience) {
        return Err(TokenError::WrongAudience {
            audience: claims.audience.clone(),
            expected: audience.to_string(),
        });
    }
    // NOTE: a token without `exp` passes, as it does at the edge.
    if let Some(expires_unix_s) = claims.expires_unix_s {
        let now_unix_s = unix_seconds(now);
        if now_unix_s >= expires_unix_s {
            return Err(TokenError::Expired {
                expires_unix_s,
                expired_for: Duration::from_secs_f64(now_unix_s - expires_unix_s),
            });
        }
    }
    Ok(())
}

fn decode_json_part(part: &str, name: &str) -> Result<serde_json::Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("its {name} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("its {name} is not JSON"))
}

fn audience_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Audience>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Audience::One(entry)) => vec![entry],
        Some(Audience::Many(entries)) => entries,
    })
}

fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

fn quoted_or_missing(value: &Option<String>) -> String {
    match value {
        Some(value) => format!("'{value}'"),
        None => "(no claim)".to_string(),
    }
}

/// Explains a near miss: a path that matches except for case or a
/// trailing slash.
fn path_hint(token_path: Option<&str>, expected: &str) -> &'static str {
    let Some(token_path) = token_path else {
        return "";
    };
    let trimmed = token_path.trim_end_matches('/');
    let slash_differs = trimmed != token_path;
    if slash_differs && trimmed == expected {
        " (they differ only by a trailing slash)"
    } else if token_path.eq_ignore_ascii_case(expected) {
        " (they differ only by case, and paths are case-sensitive)"
    } else if slash_differs && trimmed.eq_ignore_ascii_case(expected) {
        " (they differ only by case and a trailing slash)"
    } else {
        ""
    }
}

fn audience_text(audience: &[String]) -> String {
    if audience.is_empty() {
        return "(no claim)".to_string();
    }
    let quoted: Vec<String> = audience.iter().map(|entry| format!("'{entry}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Names the token to request for an output whose edge expects `expected`.
fn audience_hint(expected: &str) -> &'static str {
    if expected == TALK_AUDIENCE {
        "request a WebRTC publish token for the WHIP output"
    } else {
        "request a token for the SRT/RTMP edge"
    }
}

/// Formats a duration as hours, minutes and seconds, as in "1h 2m 3s".
fn format_duration(duration: Duration) -> impl fmt::Display {
    let total_s = duration.as_secs();
    let (hours, minutes, seconds) = (total_s / 3600, total_s / 60 % 60, total_s % 60);
    if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW_UNIX_S: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_UNIX_S)
    }

    fn token_with(payload: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{header}.{payload}.c2lnbmF0dXJl")
    }

    fn good_claims() -> serde_json::Value {
        json!({
            "action": "publish",
            "path": "live/cam1",
            "aud": "trax-mediamtx",
            "exp": NOW_UNIX_S + 600,
            "sub": "ignored",
        })
    }

    fn check(payload: serde_json::Value) -> Result<(), TokenError> {
        let claims = decode_claims(&token_with(&payload))?;
        check_publish(&claims, "live/cam1", MEDIAMTX_AUDIENCE, now())
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut payload = good_claims();
        payload[field] = value;
        payload
    }

    fn without(field: &str) -> serde_json::Value {
        let mut payload = good_claims();
        payload.as_object_mut().unwrap().remove(field);
        payload
    }

    #[test]
    fn decode_reads_claims() {
        let claims = decode_claims(&token_with(&good_claims())).unwrap();
        assert_eq!(claims.action.as_deref(), Some("publish"));
        assert_eq!(claims.path.as_deref(), Some("live/cam1"));
        assert_eq!(claims.audience, vec!["trax-mediamtx".to_string()]);
        assert_eq!(claims.expires_unix_s, Some((NOW_UNIX_S + 600) as f64));
    }

    #[test]
    fn decode_accepts_audience_array() {
        let payload = with("aud", json!(["trax-whip", "trax-mediamtx"]));
        let claims = decode_claims(&token_with(&payload)).unwrap();
        assert_eq!(claims.audience, vec!["trax-whip", "trax-mediamtx"]);
    }

    #[test]
    fn decode_rejects_non_jwt() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let array = URL_SAFE_NO_PAD.encode("[1,2]");
        let bad_aud = URL_SAFE_NO_PAD.encode(r#"{"aud":5}"#);
        let cases = [
            ("".to_string(), "it is empty"),
            ("abc def".to_string(), "whitespace"),
            ("sk_live_1234".to_string(), "has 1 dot-separated parts"),
            ("a.b.c.d.e".to_string(), "has 5 dot-separated parts"),
            (format!("{header}.!!!.sig"), "payload is not base64url"),
            ("e30.e30".to_string(), "has 2 dot-separated parts"),
            (format!("{header}.bm90IGpzb24.sig"), "payload is not JSON"),
            ("bm90IGpzb24.e30.sig".to_string(), "header is not JSON"),
            (
                format!("{header}.{array}.sig"),
                "payload is not a JSON object",
            ),
            (format!("{header}.{bad_aud}.sig"), "claims are invalid"),
        ];
        for (token, expected) in cases {
            let error = decode_claims(&token).unwrap_err();
            assert!(
                matches!(error, TokenError::NotJwt { .. }),
                "{token}: {error:?}"
            );
            assert!(error.to_string().contains(expected), "{token}: {error}");
        }
    }

    #[test]
    fn check_accepts_good_claims() {
        assert_eq!(check(good_claims()), Ok(()));
        assert_eq!(check(without("exp")), Ok(()));
        assert_eq!(check(with("aud", json!(["x", "trax-mediamtx"]))), Ok(()));
    }

    #[test]
    fn check_rejects_each_bad_claim() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "read action",
                with("action", json!("read")),
                "is for action 'read', not 'publish'",
            ),
            (
                "no action",
                without("action"),
                "is for action (no claim), not 'publish'",
            ),
            (
                "other path",
                with("path", json!("live/cam2")),
                "is for path 'live/cam2', not 'live/cam1': request",
            ),
            (
                "path differs by case",
                with("path", json!("Live/Cam1")),
                "not 'live/cam1' (they differ only by case, and paths are case-sensitive)",
            ),
            (
                "path with trailing slash",
                with("path", json!("live/cam1/")),
                "not 'live/cam1' (they differ only by a trailing slash)",
            ),
            (
                "path differs by case and slash",
                with("path", json!("LIVE/cam1/")),
                "(they differ only by case and a trailing slash)",
            ),
            ("no path", without("path"), "is for path (no claim)"),
            (
                "other audience",
                with("aud", json!("trax-whip")),
                "audience ['trax-whip'] does not include 'trax-mediamtx'",
            ),
            (
                "audience array without edge",
                with("aud", json!(["a", "b"])),
                "audience ['a', 'b'] does not include",
            ),
            (
                "no audience",
                without("aud"),
                "audience (no claim) does not include",
            ),
            (
                "expired",
                with("exp", json!(NOW_UNIX_S - 3725)),
                "expired 1h 2m 5s ago (exp 1699996275)",
            ),
            (
                "expires now",
                with("exp", json!(NOW_UNIX_S)),
                "expired 0s ago",
            ),
        ];
        for (name, payload, expected) in cases {
            let error = check(payload).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{name}: '{error}' lacks '{expected}'"
            );
        }
    }

    #[test]
    fn audience_hint_names_the_output() {
        let claims = decode_claims(&token_with(&good_claims())).unwrap();
        let error = check_publish(&claims, "live/cam1", TALK_AUDIENCE, now())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not include 'trax-mediamtx-talk'"),
            "{error}"
        );
        assert!(error.contains("for the WHIP output"), "{error}");
        assert!(!error.contains("SRT/RTMP"), "{error}");

        let error = check(with("aud", json!(TALK_AUDIENCE)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("for the SRT/RTMP edge"), "{error}");
    }

    #[test]
    fn check_error_kinds_are_distinct() {
        let cases = [
            (with("action", json!("read")), "WrongAction"),
            (with("path", json!("x")), "WrongPath"),
            (with("aud", json!("x")), "WrongAudience"),
            (with("exp", json!(1)), "Expired"),
        ];
        for (payload, variant) in cases {
            let error = check(payload).unwrap_err();
            assert!(format!("{error:?}").starts_with(variant), "{error:?}");
        }
    }

    #[test]
    fn format_duration_units() {
        assert_eq!(format_duration(Duration::from_secs(59)).to_string(), "59s");
        assert_eq!(
            format_duration(Duration::from_secs(61)).to_string(),
            "1m 1s"
        );
        assert_eq!(
            format_duration(Duration::from_secs(7200)).to_string(),
            "2h 0m 0s"
        );
    }
}
