//! Acquiring a source's publishing credentials: the one call in the client
//! that the public API documentation does not show yet.
//!
//! ASSUMED (see `docs/v1-api.md`): `POST /v1/sources/{sourceId}/publish-credentials`
//! with `{"protocol":"srt"}` returns `201` with `path`, `token` or
//! `streamKey`, an optional RFC 3339 `expiresAt` and an optional
//! `ingestUrl`. If the live API differs, this file changes: the method and
//! path constants, the request body in `acquire`, and the field names in
//! `parse_credentials`. The operation list in `check.rs` names the same
//! call, and a test there keeps the two in step.

use super::error::{sanitize, ApiError};
use super::rfc3339::parse_rfc3339;
use super::transport::Request;
use super::ApiClient;
use crate::config::Secret;
use crate::trax::credential::Credential;
use crate::trax::token::decode_claims;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};

/// The method of the credential call.
pub const ACQUIRE_METHOD: &str = "POST";

/// The path of the credential call below the `/v1` base URL. The
/// `{sourceId}` segment is replaced by the source id.
pub const ACQUIRE_PATH: &str = "/sources/{sourceId}/publish-credentials";

const SOURCE_ID_PLACEHOLDER: &str = "{sourceId}";

/// Maximum length of a source id the client sends, in characters.
const MAX_SOURCE_ID_CHARS: usize = 200;

/// The protocol an output publishes with. Each protocol gets its own
/// credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Srt,
    Rtmp,
    Whip,
}

impl Protocol {
    /// Returns the name the API uses: `srt`, `rtmp` or `whip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Srt => "srt",
            Self::Rtmp => "rtmp",
            Self::Whip => "whip",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Publishing credentials as the credential call returns them. `Debug`
/// shows the credential redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquiredCredentials {
    /// The path to publish on, as in `inputs/srt-5f0c`.
    pub path: String,
    /// A session token (a JWT) or a stream key.
    pub credential: Credential,
    /// `expiresAt`, or the session token's `exp` claim without it.
    pub expires_at: Option<SystemTime>,
    /// The ingest URL the API suggests. The user's output URL wins over it.
    pub ingest_url: Option<String>,
}

impl ApiClient {
    /// Acquires credentials for publishing `source_id` over `protocol`.
    ///
    /// NOTE: a failed attempt is retried like any other request, so a
    /// timeout after the server issued credentials makes it issue a second
    /// set. The first set is never used and lapses at its expiry.
    pub fn acquire(
        &self,
        source_id: &str,
        protocol: Protocol,
    ) -> Result<AcquiredCredentials, ApiError> {
        check_source_id(source_id)?;
        let method = Method::from_bytes(ACQUIRE_METHOD.as_bytes())
            .expect("ACQUIRE_METHOD is a valid HTTP method");
        let segments: Vec<&str> = ACQUIRE_PATH
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| match segment {
                SOURCE_ID_PLACEHOLDER => source_id,
                other => other,
            })
            .collect();
        let request = Request {
            method,
            url: self.endpoint(&segments),
            json_body: Some(json!({ "protocol": protocol.as_str() })),
            authenticated: true,
            source_id: Some(source_id.to_string()),
        };

        let reply = self.execute(&request)?;
        let acquired = parse_credentials(&reply.body, source_id, protocol).map_err(|reason| {
            ApiError::InvalidResponse {
                operation: request.operation(),
                reason: format!(
                    "{reason} (HTTP {}, request id '{}'); the credential call may have changed, \
                     `bridge api check` compares the API with what the bridge needs",
                    reply.status,
                    reply.request_id.as_deref().unwrap_or("-")
                ),
            }
        })?;
        debug!(
            source_id,
            %protocol,
            path = %acquired.path,
            kind = acquired.credential.kind(),
            "acquired publishing credentials"
        );
        Ok(acquired)
    }
}

fn check_source_id(source_id: &str) -> Result<(), ApiError> {
    let reason = if source_id.trim().is_empty() {
        "it is empty"
    } else if source_id.chars().any(char::is_control) {
        "it contains a control character"
    } else if source_id.chars().count() > MAX_SOURCE_ID_CHARS {
        "it is longer than 200 characters"
    } else {
        return Ok(());
    };
    Err(ApiError::InvalidSourceId {
        source_id: sanitize(source_id, None, 60),
        reason: format!("{reason}: give a source id as `bridge sources` lists them"),
    })
}

/// Reads the credential call's response. The reasons it returns never
/// contain the token or stream key.
pub(crate) fn parse_credentials(
    body: &[u8],
    source_id: &str,
    protocol: Protocol,
) -> Result<AcquiredCredentials, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON ({error})"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "the body is not a JSON object".to_string())?;

    expect_echo(object, "sourceId", source_id)?;
    expect_echo(object, "protocol", protocol.as_str())?;

    let path = string_field(object, "path")?.ok_or("the field 'path' is missing")?;
    check_path(path)?;
    let credential = read_credential(object)?;
    let expires_at = read_expiry(object, &credential)?;
    let ingest_url = string_field(object, "ingestUrl")?
        .filter(|url| !url.is_empty())
        .map(str::to_string);

    Ok(AcquiredCredentials {
        path: path.to_string(),
        credential,
        expires_at,
        ingest_url,
    })
}

/// Returns the string field `name`, `None` when it is absent or null.
fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("the field '{name}' is not a string")),
    }
}

/// Checks that a field the response repeats from the request, when
/// present, matches it.
fn expect_echo(object: &Map<String, Value>, name: &str, expected: &str) -> Result<(), String> {
    match string_field(object, name)? {
        Some(actual) if actual != expected => Err(format!(
            "the field '{name}' is '{}', but the request was for '{expected}'",
            sanitize(actual, None, 60)
        )),
        _ => Ok(()),
    }
}

/// Checks the path the way the SRT streamid and the edge need it: letters,
/// digits, `_`, `.`, `-` and `/` between non-empty segments, none of them
/// `.` or `..`.
fn check_path(path: &str) -> Result<(), String> {
    let path_text = || sanitize(path, None, 100);
    if path.is_empty() {
        return Err("the field 'path' is empty".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if let Some(character) = path.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "the path '{}' contains '{}', and only letters, digits, '_', '.', '-' and '/' are \
             allowed",
            path_text(),
            character.escape_default()
        ));
    }
    if path
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(format!(
            "the path '{}' has an empty, '.' or '..' segment",
            path_text()
        ));
    }
    Ok(())
}

fn read_credential(object: &Map<String, Value>) -> Result<Credential, String> {
    let token = string_field(object, "token")?;
    let stream_key = string_field(object, "streamKey")?;
    match (token, stream_key) {
        (Some(""), _) => Err("the field 'token' is empty".into()),
        (Some(token), stream_key) => {
            if stream_key.is_some() {
                debug!("the response has both a token and a stream key; using the token");
            }
            Ok(Credential::SessionToken(Secret::new(
                "session token",
                token,
            )))
        }
        (None, Some("")) => Err("the field 'streamKey' is empty".into()),
        (None, Some(key)) => Ok(Credential::StreamKey(Secret::new("stream key", key))),
        (None, None) => Err("the response has neither 'token' nor 'streamKey'".into()),
    }
}

/// Returns `expiresAt`, or the session token's `exp` claim when
/// `expiresAt` is missing or unreadable.
fn read_expiry(
    object: &Map<String, Value>,
    credential: &Credential,
) -> Result<Option<SystemTime>, String> {
    if let Some(text) = string_field(object, "expiresAt")? {
        if let Some(time) = parse_rfc3339(text) {
            return Ok(Some(time));
        }
        warn!(
            expires_at = %sanitize(text, None, 60),
            "the API's expiresAt is not an RFC 3339 time; using the token's exp claim"
        );
    }
    let Credential::SessionToken(token) = credential else {
        return Ok(None);
    };
    let claims = decode_claims(token.expose())
        .map_err(|error| format!("the session token in it is unusable: {error}"))?;
    Ok(claims
        .expires_unix_s
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| UNIX_EPOCH + Duration::from_secs_f64(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const EXP_UNIX_S: u64 = 1_796_403_600;

    fn jwt(payload: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{header}.{payload}.c2lnbmF0dXJl")
    }

    fn token() -> String {
        jwt(&json!({"action": "publish", "path": "inputs/srt-1", "exp": EXP_UNIX_S}))
    }

    fn parse(body: &Value) -> Result<AcquiredCredentials, String> {
        parse_credentials(body.to_string().as_bytes(), "src_1", Protocol::Srt)
    }

    fn response() -> Value {
        json!({
            "sourceId": "src_1",
            "protocol": "srt",
            "path": "inputs/srt-5f0c",
            "token": token(),
            "expiresAt": "2026-12-04T17:00:30Z",
            "ingestUrl": "srt://ingest.example.com:8890",
            "unknown": {"nested": true},
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = response();
        body[field] = value;
        body
    }

    fn without(field: &str) -> Value {
        let mut body = response();
        body.as_object_mut().unwrap().remove(field);
        body
    }

    #[test]
    fn token_response_read() {
        let acquired = parse(&response()).unwrap();
        assert_eq!(acquired.path, "inputs/srt-5f0c");
        assert_eq!(
            acquired.credential,
            Credential::SessionToken(Secret::new("session token", token()))
        );
        assert_eq!(
            acquired.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(EXP_UNIX_S + 30))
        );
        assert_eq!(
            acquired.ingest_url.as_deref(),
            Some("srt://ingest.example.com:8890")
        );
    }

    #[test]
    fn stream_key_response_read() {
        let mut body = without("token");
        body["streamKey"] = json!("sk_abc");
        let acquired = parse(&body).unwrap();
        assert_eq!(
            acquired.credential,
            Credential::StreamKey(Secret::new("stream key", "sk_abc"))
        );
    }

    #[test]
    fn token_preferred_over_stream_key() {
        let acquired = parse(&with("streamKey", json!("sk_abc"))).unwrap();
        assert_eq!(acquired.credential.kind(), "session token");
    }

    #[test]
    fn expiry_falls_back_to_exp_claim() {
        let expected = Some(UNIX_EPOCH + Duration::from_secs(EXP_UNIX_S));
        for body in [
            without("expiresAt"),
            with("expiresAt", json!(null)),
            with("expiresAt", json!("soon")),
        ] {
            assert_eq!(parse(&body).unwrap().expires_at, expected, "{body}");
        }
    }

    #[test]
    fn stream_key_without_expiry() {
        let mut body = without("token");
        body.as_object_mut().unwrap().remove("expiresAt");
        body["streamKey"] = json!("sk_abc");
        assert_eq!(parse(&body).unwrap().expires_at, None);
    }

    #[test]
    fn optional_fields_absent() {
        let mut body = without("ingestUrl");
        for field in ["sourceId", "protocol"] {
            body.as_object_mut().unwrap().remove(field);
        }
        let acquired = parse(&body).unwrap();
        assert_eq!(acquired.ingest_url, None);
        assert_eq!(
            parse(&with("ingestUrl", json!(""))).unwrap().ingest_url,
            None
        );
    }

    #[test]
    fn invalid_responses_rejected() {
        let not_jwt = "not-a-jwt-secret-value";
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "not a JSON object"),
            (without("path"), "'path' is missing"),
            (with("path", json!("")), "'path' is empty"),
            (with("path", json!(5)), "'path' is not a string"),
            (with("path", json!("inputs/a b")), "contains ' '"),
            (with("path", json!("inputs/a:b")), "contains ':'"),
            (with("path", json!("inputs/\u{1b}x")), "contains '\\u{1b}'"),
            (
                with("path", json!("/inputs/a")),
                "empty, '.' or '..' segment",
            ),
            (with("path", json!("inputs/")), "empty, '.' or '..' segment"),
            (
                with("path", json!("inputs//a")),
                "empty, '.' or '..' segment",
            ),
            (
                with("path", json!("inputs/../a")),
                "empty, '.' or '..' segment",
            ),
            (without("token"), "neither 'token' nor 'streamKey'"),
            (with("token", json!("")), "'token' is empty"),
            (with("token", json!(42)), "'token' is not a string"),
            (
                {
                    let mut body = with("token", json!(not_jwt));
                    body.as_object_mut().unwrap().remove("expiresAt");
                    body
                },
                "the session token in it is unusable",
            ),
            (with("expiresAt", json!(17)), "'expiresAt' is not a string"),
            (
                with("sourceId", json!("src_2")),
                "'sourceId' is 'src_2', but the request was for 'src_1'",
            ),
            (
                with("protocol", json!("rtmp")),
                "'protocol' is 'rtmp', but the request was for 'srt'",
            ),
        ];
        for (body, expected) in cases {
            let error = parse(&body).unwrap_err();
            assert!(error.contains(expected), "{body}: '{error}'");
            assert!(!error.contains(not_jwt), "{error}");
        }
        let error = parse_credentials(b"<html>", "src_1", Protocol::Srt).unwrap_err();
        assert!(error.contains("not JSON"), "{error}");
    }

    #[test]
    fn reasons_never_show_token() {
        let secret_token = token();
        let cases = [
            with("path", json!("bad path")),
            with("sourceId", json!("src_9")),
        ];
        for body in cases {
            let error = parse(&body).unwrap_err();
            assert!(!error.contains(&secret_token), "{error}");
        }
        let debug = format!("{:?}", parse(&response()).unwrap());
        assert!(!debug.contains(&secret_token), "{debug}");
    }

    #[test]
    fn source_id_checked() {
        let long = "s".repeat(201);
        let cases = [
            ("", "it is empty"),
            ("  ", "it is empty"),
            ("a\nb", "control character"),
            (long.as_str(), "longer than 200"),
        ];
        for (source_id, expected) in cases {
            let error = check_source_id(source_id).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        }
        assert!(check_source_id("src_1").is_ok());
        assert!(check_source_id("a/b c").is_ok());
    }

    #[test]
    fn protocol_names() {
        let cases = [
            (Protocol::Srt, "srt"),
            (Protocol::Rtmp, "rtmp"),
            (Protocol::Whip, "whip"),
        ];
        for (protocol, expected) in cases {
            assert_eq!(protocol.to_string(), expected);
        }
    }
}
