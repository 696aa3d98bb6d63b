//! The client's errors, the exit status each maps to, and the reading of
//! the API's error envelope `{"error":{"code","message","requestId"}}`.
//!
//! Every text that comes from the server passes through [`sanitize`] before
//! it reaches a message. It replaces the API key and anything shaped like a
//! JWT, drops control characters and caps the length. So a server that
//! echoes a request or sends HTML cannot put a secret or a terminal escape
//! into a log line.

use crate::config::Secret;
use crate::exit::ExitStatus;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// Maximum length of a non-envelope body excerpt in a message, in characters.
const MAX_EXCERPT_CHARS: usize = 200;
/// Maximum length of an envelope `message` in a message, in characters.
const MAX_MESSAGE_CHARS: usize = 500;
/// Maximum length of an error code or request id in a message, in characters.
pub(crate) const MAX_ID_CHARS: usize = 128;

/// The server's description of a failed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerDetail {
    pub status: u16,
    /// The envelope's `code`.
    pub code: Option<String>,
    /// The envelope's `message`.
    pub message: Option<String>,
    /// `X-Request-Id`, or the envelope's `requestId` without the header.
    pub request_id: Option<String>,
    /// The start of a body that is not an envelope, sanitized.
    pub excerpt: Option<String>,
}

impl fmt::Display for ServerDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, ", code '{code}'")?;
        }
        if let Some(message) = &self.message {
            write!(f, ", message '{message}'")?;
        }
        match &self.request_id {
            Some(request_id) => write!(f, ", request id '{request_id}'")?,
            None => write!(f, ", no request id")?,
        }
        if self.code.is_none() && self.message.is_none() {
            match &self.excerpt {
                Some(excerpt) => write!(f, ", body '{excerpt}'")?,
                None => write!(f, ", no error body")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API URL '{origin}': {reason}")]
    InvalidOrigin { origin: String, reason: String },

    #[error("invalid API client setting: {setting} is {value}: {fix}")]
    InvalidSetting {
        setting: &'static str,
        value: String,
        fix: &'static str,
    },

    #[error("cannot use the CA file '{}': {reason}", .path.display())]
    CaFile { path: PathBuf, reason: String },

    #[error(
        "the API key ({key}) contains a character an HTTP header cannot carry: copy the key \
         again, without spaces or line breaks"
    )]
    InvalidKey { key: Secret },

    #[error("{operation} needs an API key, and none is set: set an API key or access token")]
    MissingKey { operation: String },

    /// The user's login could not give a valid access token.
    #[error(transparent)]
    Login(#[from] crate::trax::oauth::OAuthError),

    #[error("cannot set up the HTTP client: {reason}")]
    Client { reason: String },

    #[error(
        "{operation}: the API rejected the API key ({detail}): check that the key or access \
         token is current and issued for this deployment"
    )]
    Unauthorized {
        operation: String,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: the API key lacks permission for this ({detail}): use a key whose role \
         allows it"
    )]
    Forbidden {
        operation: String,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: source '{source_id}' not found ({detail}): check the source id against \
         `bridge sources`"
    )]
    UnknownSource {
        operation: String,
        source_id: String,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: not found ({detail}): this deployment may not offer the operation; \
         `bridge api check` compares it with what the bridge needs"
    )]
    NotFound {
        operation: String,
        detail: Box<ServerDetail>,
    },

    #[error("{operation}: the API rejected the request as invalid ({detail})")]
    BadRequest {
        operation: String,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: writes are switched off on this deployment ({detail}): try again once \
         its operators switch writes back on"
    )]
    WriteDisabled {
        operation: String,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: rate limited by the API after {} ({detail}): wait a minute, then try \
         again",
        count_attempts(*.attempts)
    )]
    RateLimited {
        operation: String,
        attempts: u32,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation}: rate limited by the API, which asks for a wait of {requested_s} s, more \
         than the {max_s} s the client accepts ({detail}): try again later"
    )]
    RetryAfterTooLong {
        operation: String,
        requested_s: u64,
        max_s: u64,
        detail: Box<ServerDetail>,
    },

    #[error(
        "{operation} failed after {} with a server error ({detail}): the API is failing, try \
         again later",
        count_attempts(*.attempts)
    )]
    ServerError {
        operation: String,
        attempts: u32,
        detail: Box<ServerDetail>,
    },

    #[error("{operation}: unexpected response ({detail}){hint}")]
    UnexpectedStatus {
        operation: String,
        detail: Box<ServerDetail>,
        hint: &'static str,
    },

    #[error(
        "{operation} failed after {}: {cause}: check the network and the API URL",
        count_attempts(*.attempts)
    )]
    Transport {
        operation: String,
        attempts: u32,
        cause: String,
        timed_out: bool,
    },

    #[error("{operation}: TLS handshake failed: {cause}{hint}")]
    Tls {
        operation: String,
        cause: String,
        hint: &'static str,
    },

    #[error("{operation}: invalid response: {reason}")]
    InvalidResponse { operation: String, reason: String },

    #[error("{operation}: {reason}")]
    Pagination { operation: String, reason: String },

    #[error("invalid source id '{source_id}': {reason}")]
    InvalidSourceId { source_id: String, reason: String },
}

impl ApiError {
    /// Returns the exit status the process ends with when this error stops it.
    ///
    /// A wrong source id (`404` on acquisition or an unusable id) is a
    /// configuration error, like a `400` or a bad setting. A key the API
    /// rejects is a credential error. Everything the user cannot fix in
    /// the command line (network, rate limits, server errors, writes
    /// switched off, unexpected responses) is "other".
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::InvalidOrigin { .. }
            | Self::InvalidSetting { .. }
            | Self::CaFile { .. }
            | Self::InvalidKey { .. }
            | Self::MissingKey { .. }
            | Self::UnknownSource { .. }
            | Self::BadRequest { .. }
            | Self::InvalidSourceId { .. } => ExitStatus::Usage,
            Self::Unauthorized { .. } | Self::Forbidden { .. } => ExitStatus::Credentials,
            Self::Login(error) => error.exit_status(),
            Self::Client { .. }
            | Self::NotFound { .. }
            | Self::WriteDisabled { .. }
            | Self::RateLimited { .. }
            | Self::RetryAfterTooLong { .. }
            | Self::ServerError { .. }
            | Self::UnexpectedStatus { .. }
            | Self::Transport { .. }
            | Self::Tls { .. }
            | Self::InvalidResponse { .. }
            | Self::Pagination { .. } => ExitStatus::Other,
        }
    }

    /// Returns the server's detail, for errors that carry a response.
    pub fn server_detail(&self) -> Option<&ServerDetail> {
        match self {
            Self::Unauthorized { detail, .. }
            | Self::Forbidden { detail, .. }
            | Self::UnknownSource { detail, .. }
            | Self::NotFound { detail, .. }
            | Self::BadRequest { detail, .. }
            | Self::WriteDisabled { detail, .. }
            | Self::RateLimited { detail, .. }
            | Self::RetryAfterTooLong { detail, .. }
            | Self::ServerError { detail, .. }
            | Self::UnexpectedStatus { detail, .. } => Some(detail.as_ref()),
            _ => None,
        }
    }
}

fn count_attempts(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    }
}

/// Reads a failed response: the envelope when the body is one, else a
/// sanitized excerpt of the body. `header_request_id` wins over the
/// envelope's `requestId`.
pub(crate) fn server_detail(
    status: u16,
    header_request_id: Option<&str>,
    body: &[u8],
    key: Option<&Secret>,
) -> ServerDetail {
    let text = String::from_utf8_lossy(body);
    let envelope = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|value| value.get("error").filter(|e| e.is_object()).cloned());
    let field = |name: &str, max_chars: usize| {
        let value = envelope.as_ref()?.get(name)?.as_str()?;
        Some(sanitize(value, key, max_chars)).filter(|value| !value.is_empty())
    };

    let code = field("code", MAX_ID_CHARS);
    let message = field("message", MAX_MESSAGE_CHARS);
    let request_id = header_request_id
        .map(|value| sanitize(value, key, MAX_ID_CHARS))
        .filter(|value| !value.is_empty())
        .or_else(|| field("requestId", MAX_ID_CHARS));
    let excerpt = if envelope.is_some() {
        None
    } else {
        Some(sanitize(&strip_tags(&text), key, MAX_EXCERPT_CHARS)).filter(|value| !value.is_empty())
    };
    ServerDetail {
        status,
        code,
        message,
        request_id,
        excerpt,
    }
}

/// Makes server text safe for a message: the key and JWT-shaped words
/// become `<redacted>`, control characters and runs of whitespace become
/// one space, and the result is cut to `max_chars` characters.
pub(crate) fn sanitize(text: &str, key: Option<&Secret>, max_chars: usize) -> String {
    let mut text = text.to_string();
    if let Some(key) = key.filter(|key| !key.is_empty()) {
        text = text.replace(key.expose(), "<redacted>");
    }
    let text = redact_jwts(&text);

    let mut clean = String::with_capacity(text.len().min(max_chars * 4));
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !clean.is_empty() {
            clean.push(' ');
        }
        clean.push_str(word);
    }

    if clean.chars().count() > max_chars {
        let cut: String = clean.chars().take(max_chars).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

/// Replaces each run of base64url characters and dots that starts with
/// `eyJ` (the encoding of `{"`) and contains two dots, as a compact JWS does.
fn redact_jwts(text: &str) -> String {
    let is_jws_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        output.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| !is_jws_char(c))
            .unwrap_or(candidate.len());
        let word = &candidate[..end];
        if word.matches('.').count() >= 2 {
            output.push_str("<redacted>");
        } else {
            output.push_str(word);
        }
        rest = &candidate[end..];
    }
    output.push_str(rest);
    output
}

/// Drops `<…>` tags from a body that looks like HTML, so a proxy's error
/// page reads as its text.
fn strip_tags(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_string();
    }
    let mut output = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                output.push(' ');
            }
            _ if !in_tag => output.push(c),
            _ => {}
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "trx_live_k3y_abcdef123456";

    fn key() -> Secret {
        Secret::new("API key", KEY)
    }

    fn detail(status: u16, header: Option<&str>, body: &str) -> ServerDetail {
        server_detail(status, header, body.as_bytes(), Some(&key()))
    }

    #[test]
    fn envelope_fields_read() {
        let body = r#"{"error":{"code":"forbidden","message":"No access","requestId":"req_9"},
                      "extra":1}"#;
        let detail = detail(403, None, body);
        assert_eq!(detail.status, 403);
        assert_eq!(detail.code.as_deref(), Some("forbidden"));
        assert_eq!(detail.message.as_deref(), Some("No access"));
        assert_eq!(detail.request_id.as_deref(), Some("req_9"));
        assert_eq!(detail.excerpt, None);
        assert_eq!(
            detail.to_string(),
            "HTTP 403, code 'forbidden', message 'No access', request id 'req_9'"
        );
    }

    #[test]
    fn header_request_id_wins() {
        let body = r#"{"error":{"code":"x","message":"y","requestId":"from_body"}}"#;
        let detail = detail(400, Some("from_header"), body);
        assert_eq!(detail.request_id.as_deref(), Some("from_header"));
    }

    #[test]
    fn empty_header_request_id_falls_back() {
        let body = r#"{"error":{"code":"x","requestId":"from_body"}}"#;
        let detail = detail(400, Some("  "), body);
        assert_eq!(detail.request_id.as_deref(), Some("from_body"));
    }

    #[test]
    fn partial_envelopes() {
        let cases = [
            (
                r#"{"error":{"code":"teapot"}}"#,
                "HTTP 500, code 'teapot', no request id",
            ),
            (
                r#"{"error":{"message":"m","code":5}}"#,
                "HTTP 500, message 'm', no request id",
            ),
            (r#"{"error":{}}"#, "HTTP 500, no request id, no error body"),
        ];
        for (body, expected) in cases {
            assert_eq!(detail(500, None, body).to_string(), expected, "{body}");
        }
    }

    #[test]
    fn non_envelope_bodies_give_excerpts() {
        let long = "x".repeat(500);
        let cases = [
            ("", "HTTP 502, request id 'r1', no error body"),
            (
                "Bad Gateway\n",
                "HTTP 502, request id 'r1', body 'Bad Gateway'",
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>",
                "HTTP 502, request id 'r1', body '502 Bad Gateway nginx'",
            ),
            (
                r#"{"message":"upstream down"}"#,
                r#"HTTP 502, request id 'r1', body '{"message":"upstream down"}'"#,
            ),
            (
                r#"{"error":"flat"}"#,
                r#"HTTP 502, request id 'r1', body '{"error":"flat"}'"#,
            ),
            (
                "a\u{1b}[31mred\u{7}",
                "HTTP 502, request id 'r1', body 'a [31mred'",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                detail(502, Some("r1"), body).to_string(),
                expected,
                "{body:?}"
            );
        }
        let excerpt = detail(502, None, &long).excerpt.unwrap();
        assert_eq!(excerpt.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
    }

    #[test]
    fn invalid_utf8_body_still_reads() {
        let detail = server_detail(500, None, b"oops \xff\xfe end", None);
        assert_eq!(detail.excerpt.as_deref(), Some("oops \u{fffd}\u{fffd} end"));
    }

    #[test]
    fn key_never_in_detail() {
        let echo = format!("Authorization: Bearer {KEY}");
        let envelope =
            format!(r#"{{"error":{{"code":"{KEY}","message":"{echo}","requestId":"{KEY}"}}}}"#);
        for body in [echo.clone(), envelope] {
            let detail = detail(401, None, &body);
            let text = detail.to_string();
            assert!(!text.contains(KEY), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        let text = detail(401, Some(KEY), "").to_string();
        assert!(!text.contains(KEY), "{text}");
    }

    #[test]
    fn jwts_redacted() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJwYXRoIjoiYSJ9.c2lnbmF0dXJl";
        let cases = [
            (
                format!("token {jwt} leaked"),
                "token <redacted> leaked".to_string(),
            ),
            (format!("\"{jwt}\""), "\"<redacted>\"".to_string()),
            ("eyJonly.one".to_string(), "eyJonly.one".to_string()),
            ("no token here".to_string(), "no token here".to_string()),
        ];
        for (text, expected) in cases {
            assert_eq!(sanitize(&text, None, 500), expected, "{text}");
        }
    }

    #[test]
    fn sanitize_caps_by_characters() {
        let text = "é".repeat(10);
        assert_eq!(sanitize(&text, None, 3), "ééé…");
        assert_eq!(sanitize(&text, None, 10), text);
    }

    #[test]
    fn exit_statuses() {
        let detail = Box::new(detail(400, None, ""));
        let operation = || "GET /v1/x".to_string();
        let cases = [
            (
                ApiError::Unauthorized {
                    operation: operation(),
                    detail: detail.clone(),
                },
                ExitStatus::Credentials,
            ),
            (
                ApiError::Forbidden {
                    operation: operation(),
                    detail: detail.clone(),
                },
                ExitStatus::Credentials,
            ),
            (
                ApiError::UnknownSource {
                    operation: operation(),
                    source_id: "s".into(),
                    detail: detail.clone(),
                },
                ExitStatus::Usage,
            ),
            (
                ApiError::BadRequest {
                    operation: operation(),
                    detail: detail.clone(),
                },
                ExitStatus::Usage,
            ),
            (
                ApiError::WriteDisabled {
                    operation: operation(),
                    detail: detail.clone(),
                },
                ExitStatus::Other,
            ),
            (
                ApiError::RateLimited {
                    operation: operation(),
                    attempts: 3,
                    detail: detail.clone(),
                },
                ExitStatus::Other,
            ),
            (
                ApiError::Transport {
                    operation: operation(),
                    attempts: 3,
                    cause: "timed out".into(),
                    timed_out: true,
                },
                ExitStatus::Other,
            ),
            (
                ApiError::InvalidOrigin {
                    origin: "x".into(),
                    reason: "y".into(),
                },
                ExitStatus::Usage,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.exit_status(), expected, "{error:?}");
        }
    }

    #[test]
    fn invalid_key_message_redacts() {
        let error = ApiError::InvalidKey { key: key() };
        let text = error.to_string();
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("API key redacted"), "{text}");
    }
}
