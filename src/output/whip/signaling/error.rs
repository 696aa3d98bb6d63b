//! Failures of a WHIP exchange, and the [`OutputError`] each one becomes,
//! which decides whether the supervisor dials again, gives up on the
//! credentials, or gives up for good.

use crate::exit::ExitStatus;
use crate::output::OutputError;
use reqwest::StatusCode;
use std::path::PathBuf;

/// A failed WHIP request. Every message names the request (method and URL
/// without its query) and the HTTP status, or states that no response came.
/// Server text in a message has been through [`crate::trax::api::sanitize`],
/// so it carries no token.
#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    #[error("invalid WHIP endpoint '{endpoint}': {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    #[error("cannot use the CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    #[error("cannot build the WHIP HTTP client: {reason}")]
    Client { reason: String },

    /// The token cannot go into an `Authorization` header.
    #[error("the {kind} contains characters that an HTTP header cannot carry")]
    InvalidToken { kind: &'static str },

    /// `401`: the server rejected the token.
    #[error(
        "WHIP {request}: {status}: the server rejected the session token{detail}; check that \
         it is a talk token for this path"
    )]
    Unauthorized {
        request: String,
        status: StatusCode,
        detail: String,
    },

    /// A `4xx` that retrying cannot fix: `400`, `404`, `406` and the rest
    /// not listed under `Unavailable`.
    #[error("WHIP {request}: {status}{detail}: {hint}")]
    Rejected {
        request: String,
        status: StatusCode,
        detail: String,
        hint: &'static str,
    },

    /// `403`, `408`, `409`, `429` or `5xx`: a session that an earlier
    /// connection left behind, or a busy or failing server.
    #[error("WHIP {request}: {status}{detail}: {hint}")]
    Unavailable {
        request: String,
        status: StatusCode,
        detail: String,
        hint: &'static str,
    },

    /// No response (connection refused or reset, DNS failure, timeout), or
    /// a body that stopped arriving.
    #[error("WHIP {request}: {cause}")]
    Network {
        request: String,
        cause: String,
        timed_out: bool,
    },

    #[error("WHIP {request}: no response: TLS failed: {cause}{hint}")]
    Tls {
        request: String,
        cause: String,
        hint: &'static str,
    },

    /// A redirect this client does not follow.
    #[error("WHIP {request}: {status}: {reason}")]
    Redirect {
        request: String,
        status: StatusCode,
        reason: String,
    },

    /// A request that would carry the token to another origin than the
    /// endpoint's while the configuration does not allow it. `via` is the
    /// redirect status, or "the resource URL" for a DELETE.
    #[error(
        "WHIP {request}: {via}: {target} is on another origin ({origin}) than the endpoint, \
         so the session token was not sent there; set the endpoint to that URL, or allow \
         cross-origin redirects"
    )]
    CrossOrigin {
        request: String,
        via: String,
        target: String,
        origin: String,
    },

    /// A response that breaks the WHIP protocol, such as a `201` without an
    /// SDP answer.
    #[error("WHIP {request}: {status}: {reason}")]
    Protocol {
        request: String,
        status: StatusCode,
        reason: String,
    },
}

impl SignalingError {
    /// Builds the error for a final (not redirect) status that the call
    /// does not accept. `detail` is the sanitized response body, empty or
    /// as ` (server: "…")`.
    pub(super) fn from_status(request: String, status: StatusCode, detail: String) -> Self {
        let rejected = |hint| Self::Rejected {
            request: request.clone(),
            status,
            detail: detail.clone(),
            hint,
        };
        let unavailable = |hint| Self::Unavailable {
            request: request.clone(),
            status,
            detail: detail.clone(),
            hint,
        };
        match status.as_u16() {
            401 => Self::Unauthorized {
                request,
                status,
                detail,
            },
            400 => rejected(
                "the stream path is not configured on the server, or the server rejected the \
                 SDP offer",
            ),
            404 => rejected("no WHIP endpoint at this URL: check the host and the stream path"),
            406 => rejected(
                "the server rejected the offer's tracks or codecs: check which codecs the \
                 stream path accepts",
            ),
            403 | 409 => unavailable(
                "the stream path may still be held by an earlier session that has not timed \
                 out on the server yet",
            ),
            408 => unavailable("the server timed out waiting for the request"),
            429 => unavailable("the server is rate limiting requests"),
            503 => unavailable("the server is busy or down for maintenance"),
            _ if status.is_server_error() => unavailable("server error"),
            _ if status.is_redirection() => Self::Redirect {
                request,
                status,
                reason: "unexpected redirect status; set the endpoint to the final URL".into(),
            },
            _ if status.is_client_error() => rejected("the server rejected the request"),
            _ => Self::Protocol {
                request,
                status,
                reason: "unexpected status for this request".into(),
            },
        }
    }
}

impl From<SignalingError> for OutputError {
    fn from(error: SignalingError) -> Self {
        let message = error.to_string();
        let fatal = |status| OutputError::Fatal { status, message };
        match error {
            SignalingError::Unauthorized { .. } => OutputError::Rejected(error.to_string()),
            SignalingError::Unavailable { .. } | SignalingError::Network { .. } => {
                OutputError::Transient(error.to_string())
            }
            SignalingError::InvalidToken { .. } => fatal(ExitStatus::Credentials),
            SignalingError::InvalidEndpoint { .. }
            | SignalingError::CaFile { .. }
            | SignalingError::Rejected { .. }
            | SignalingError::Redirect { .. }
            | SignalingError::CrossOrigin { .. } => fatal(ExitStatus::Usage),
            // Retrying cannot fix a certificate or a server that does not
            // speak WHIP, as with RTMPS certificate errors.
            SignalingError::Client { .. }
            | SignalingError::Tls { .. }
            | SignalingError::Protocol { .. } => fatal(ExitStatus::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_error(status: u16) -> OutputError {
        let status = StatusCode::from_u16(status).unwrap();
        let error = SignalingError::from_status(
            "POST https://edge.example/inputs/cam/whip".into(),
            status,
            " (server: \"no\")".into(),
        );
        error.into()
    }

    #[test]
    fn statuses_map_to_output_errors() {
        let cases = [
            (401, "Rejected"),
            (400, "Fatal Usage"),
            (404, "Fatal Usage"),
            (406, "Fatal Usage"),
            (410, "Fatal Usage"),
            (301, "Fatal Usage"),
            (403, "Transient"),
            (408, "Transient"),
            (409, "Transient"),
            (429, "Transient"),
            (500, "Transient"),
            (502, "Transient"),
            (503, "Transient"),
            (200, "Fatal Other"),
        ];
        for (status, expected) in cases {
            let kind = match output_error(status) {
                OutputError::Rejected(_) => "Rejected",
                OutputError::Transient(_) => "Transient",
                OutputError::Fatal {
                    status: ExitStatus::Usage,
                    ..
                } => "Fatal Usage",
                OutputError::Fatal {
                    status: ExitStatus::Other,
                    ..
                } => "Fatal Other",
                OutputError::Fatal { .. } => "Fatal, another status",
            };
            assert_eq!(kind, expected, "{status}");
        }
    }

    #[test]
    fn messages_name_request_and_status() {
        for status in [400, 401, 403, 404, 406, 409, 503] {
            let message = output_error(status).to_string();
            assert!(
                message.starts_with("WHIP POST https://edge.example/inputs/cam/whip: "),
                "{message}"
            );
            assert!(message.contains(&status.to_string()), "{message}");
            assert!(message.contains("(server: \"no\")"), "{message}");
        }
    }

    #[test]
    fn hints_by_status() {
        let cases = [
            (401, "talk token for this path"),
            (400, "not configured"),
            (404, "no WHIP endpoint"),
            (406, "tracks or codecs"),
            (409, "earlier session"),
        ];
        for (status, hint) in cases {
            let message = output_error(status).to_string();
            assert!(message.contains(hint), "{status}: {message}");
        }
    }
}
