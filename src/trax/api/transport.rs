//! Sending one request with its retries: building the HTTPS client, the
//! attempt loop, and turning statuses and network failures into
//! [`ApiError`]s.

use super::error::{sanitize, server_detail, ApiError, ServerDetail, MAX_ID_CHARS};
use super::retry::{backoff_delay, classify, parse_retry_after, rate_limit_delay};
use super::retry::{Disposition, WRITE_DISABLED_CODE};
use super::{ApiClient, ApiConfig, USER_AGENT};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::redirect::Policy;
use reqwest::Method;
use std::error::Error as StdError;
use std::io::{self, Read};
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};
use url::Url;

/// Largest response body the client reads. The OpenAPI document is the
/// biggest one expected, well under this.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Response header that carries the request id.
const REQUEST_ID_HEADER: &str = "x-request-id";

/// One API call, rebuilt into an HTTP request on every attempt.
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub json_body: Option<serde_json::Value>,
    /// Whether the call sends the API key.
    pub authenticated: bool,
    /// The source a `404` refers to, for calls on one source.
    pub source_id: Option<String>,
}

impl Request {
    pub fn get(url: Url, authenticated: bool) -> Self {
        Self {
            method: Method::GET,
            url,
            json_body: None,
            authenticated,
            source_id: None,
        }
    }

    /// The method and URL without the query, as messages name the call.
    pub fn operation(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        format!("{} {url}", self.method)
    }
}

/// A 2xx response.
pub(crate) struct Reply {
    pub status: u16,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
}

/// A failed attempt that may succeed on a later one.
enum Retryable {
    RateLimited {
        detail: ServerDetail,
        retry_after: Option<Duration>,
    },
    ServerError {
        detail: ServerDetail,
    },
    Network {
        cause: String,
        timed_out: bool,
    },
}

impl Retryable {
    fn cause(&self) -> String {
        match self {
            Self::RateLimited { detail, .. } => format!("rate limited ({detail})"),
            Self::ServerError { detail } => format!("server error ({detail})"),
            Self::Network { cause, .. } => cause.clone(),
        }
    }

    fn into_error(self, operation: String, attempts: u32) -> ApiError {
        match self {
            Self::RateLimited { detail, .. } => ApiError::RateLimited {
                operation,
                attempts,
                detail: Box::new(detail),
            },
            Self::ServerError { detail } => ApiError::ServerError {
                operation,
                attempts,
                detail: Box::new(detail),
            },
            Self::Network { cause, timed_out } => ApiError::Transport {
                operation,
                attempts,
                cause,
                timed_out,
            },
        }
    }
}

/// An attempt that got no usable response.
enum SendFailure {
    Http(reqwest::Error),
    BodyRead(io::Error),
    BodyTooLarge,
}

/// A raw response of any status.
struct Response {
    status: u16,
    request_id: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

/// Builds the HTTP client: rustls with the web PKI roots plus the
/// configured CA file, TLS 1.2 or later, no redirects (a redirect would
/// carry the key to wherever it points), `config.timeout` per request.
/// The proxy variables (`HTTPS_PROXY` and the like) apply, except to a
/// `loopback` origin: a proxy would take that address for itself.
pub(crate) fn build_http_client(
    config: &ApiConfig,
    loopback: bool,
) -> Result<reqwest::blocking::Client, ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .redirect(Policy::none());
    if loopback {
        builder = builder.no_proxy();
    }

    if let Some(path) = &config.ca_file {
        let certificates = read_ca_bundle(path).map_err(|reason| ApiError::CaFile {
            path: path.clone(),
            reason,
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }

    builder.build().map_err(|error| match &config.ca_file {
        Some(path) => ApiError::CaFile {
            path: path.clone(),
            reason: format!(
                "a certificate in it cannot be read ({}): give the CA certificate in PEM form",
                innermost_cause(&error)
            ),
        },
        None => ApiError::Client {
            reason: innermost_cause(&error),
        },
    })
}

impl ApiClient {
    /// Sends `request` until it succeeds, fails for good or runs out of
    /// attempts, and returns the 2xx response.
    pub(crate) fn execute(&self, request: &Request) -> Result<Reply, ApiError> {
        let login = match &self.login {
            Some(login) if request.authenticated && self.authorization.is_none() => login,
            _ => return self.execute_with(request, self.authorization.as_ref()),
        };
        let token = login.access_token()?;
        match self.execute_with(request, Some(&login_header(&token)?)) {
            Err(ApiError::Unauthorized { .. }) => {
                warn!(
                    operation = %request.operation(),
                    "the API rejected the login's access token; refreshing it once"
                );
                let token = login.refresh_after_rejection(&token)?;
                self.execute_with(request, Some(&login_header(&token)?))
            }
            other => other,
        }
    }

    /// Sends `request` with `authorization` until it succeeds, fails for
    /// good or runs out of attempts.
    fn execute_with(
        &self,
        request: &Request,
        authorization: Option<&HeaderValue>,
    ) -> Result<Reply, ApiError> {
        let operation = request.operation();
        let authorization = match (authorization, request.authenticated) {
            (Some(value), true) => Some(value),
            (None, true) => return Err(ApiError::MissingKey { operation }),
            (_, false) => None,
        };
        let max_attempts = self.retry.max_attempts;

        let mut attempt = 1;
        loop {
            let retryable = match self.send_once(request, authorization) {
                Ok(response) => match self.sort_response(request, response)? {
                    Ok(reply) => return Ok(reply),
                    Err(retryable) => retryable,
                },
                Err(failure) => self.sort_failure(request, failure)?,
            };
            if attempt >= max_attempts {
                return Err(retryable.into_error(operation, attempt));
            }

            let delay = self.retry_delay(&operation, &retryable, attempt)?;
            warn!(
                operation = %operation,
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                cause = %retryable.cause(),
                "TRaX API request failed, retrying"
            );
            (self.sleep)(delay);
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        request: &Request,
        authorization: Option<&HeaderValue>,
    ) -> Result<Response, SendFailure> {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone());
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value.clone());
        }
        if let Some(body) = &request.json_body {
            builder = builder.json(body);
        }
        let response = builder.send().map_err(SendFailure::Http)?;

        let header = |name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some(value.to_string())
        };
        let status = response.status().as_u16();
        let request_id = header(REQUEST_ID_HEADER)
            .map(|value| sanitize(&value, self.key.as_ref(), MAX_ID_CHARS));
        let retry_after = header(RETRY_AFTER.as_str());
        debug!(
            method = %request.method,
            url = %request.url,
            status,
            request_id = request_id.as_deref().unwrap_or("-"),
            "TRaX API response"
        );

        let mut body = Vec::new();
        response
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(SendFailure::BodyRead)?;
        if body.len() as u64 > MAX_BODY_BYTES {
            return Err(SendFailure::BodyTooLarge);
        }
        Ok(Response {
            status,
            request_id,
            retry_after,
            body,
        })
    }

    /// Returns the reply for a 2xx, what to retry for a retryable status,
    /// and the error for any other.
    fn sort_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<Result<Reply, Retryable>, ApiError> {
        let status = response.status;
        if (200..300).contains(&status) {
            return Ok(Ok(Reply {
                status,
                request_id: response.request_id,
                body: response.body,
            }));
        }

        let detail = server_detail(
            status,
            response.request_id.as_deref(),
            &response.body,
            self.key.as_ref(),
        );
        match classify(status, detail.code.as_deref()) {
            Disposition::RetryRateLimited => {
                let retry_after = response
                    .retry_after
                    .as_deref()
                    .and_then(|value| parse_retry_after(value, SystemTime::now()));
                Ok(Err(Retryable::RateLimited {
                    detail,
                    retry_after,
                }))
            }
            Disposition::RetryServerError => Ok(Err(Retryable::ServerError { detail })),
            Disposition::Success | Disposition::Fail => Err(status_error(request, detail)),
        }
    }

    /// Returns what to retry for a network failure, or the error for one
    /// that retrying cannot fix.
    fn sort_failure(&self, request: &Request, failure: SendFailure) -> Result<Retryable, ApiError> {
        let operation = request.operation();
        let timeout_text = || format!("timed out after {} ms", self.timeout.as_millis());
        match failure {
            SendFailure::BodyTooLarge => Err(ApiError::InvalidResponse {
                operation,
                reason: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            }),
            SendFailure::BodyRead(error) => {
                let timed_out = error.kind() == io::ErrorKind::TimedOut || is_timeout(&error);
                let cause = if timed_out {
                    timeout_text()
                } else {
                    format!("reading the response failed: {}", innermost_cause(&error))
                };
                Ok(Retryable::Network { cause, timed_out })
            }
            SendFailure::Http(error) => {
                if let Some(tls) = find_tls_error(&error) {
                    return Err(tls_error(operation, tls));
                }
                let timed_out = error.is_timeout();
                let cause = if timed_out {
                    timeout_text()
                } else if error.is_connect() {
                    format!("cannot connect: {}", innermost_cause(&error))
                } else {
                    innermost_cause(&error)
                };
                Ok(Retryable::Network { cause, timed_out })
            }
        }
    }

    fn retry_delay(
        &self,
        operation: &str,
        retryable: &Retryable,
        attempt: u32,
    ) -> Result<Duration, ApiError> {
        let jitter = rand::random::<f64>();
        let retry_index = attempt - 1;
        let Retryable::RateLimited {
            detail,
            retry_after,
        } = retryable
        else {
            return Ok(backoff_delay(&self.retry, retry_index, jitter));
        };
        rate_limit_delay(&self.retry, *retry_after, retry_index, jitter).map_err(|requested| {
            ApiError::RetryAfterTooLong {
                operation: operation.to_string(),
                requested_s: requested.as_secs(),
                max_s: self.retry.max_retry_after.as_secs(),
                detail: Box::new(detail.clone()),
            }
        })
    }
}

/// Returns the `Authorization` header for a login's access token.
fn login_header(token: &crate::config::Secret) -> Result<HeaderValue, ApiError> {
    super::authorization_header(token)
}

/// Returns the error for a status that is neither a success nor retried.
fn status_error(request: &Request, detail: ServerDetail) -> ApiError {
    let operation = request.operation();
    let detail = Box::new(detail);
    match (detail.status, &request.source_id) {
        (400, _) => ApiError::BadRequest { operation, detail },
        (401, _) => ApiError::Unauthorized { operation, detail },
        (403, _) => ApiError::Forbidden { operation, detail },
        (404, Some(source_id)) => ApiError::UnknownSource {
            operation,
            source_id: source_id.clone(),
            detail,
        },
        (404, None) => ApiError::NotFound { operation, detail },
        (503, _) if detail.code.as_deref() == Some(WRITE_DISABLED_CODE) => {
            ApiError::WriteDisabled { operation, detail }
        }
        (300..=399, _) => ApiError::UnexpectedStatus {
            operation,
            detail,
            hint: ": the API URL redirects elsewhere; set it to the final address",
        },
        _ => ApiError::UnexpectedStatus {
            operation,
            detail,
            hint: "",
        },
    }
}

fn tls_error(operation: String, error: &rustls::Error) -> ApiError {
    use rustls::CertificateError as Certificate;
    let hint = match error {
        rustls::Error::InvalidCertificate(
            Certificate::UnknownIssuer | Certificate::BadSignature,
        ) => {
            ": the server's certificate is not trusted; for a deployment with a private CA, \
             give that CA's certificate (PEM) with --api-ca-file"
        }
        rustls::Error::InvalidCertificate(
            Certificate::NotValidForName | Certificate::NotValidForNameContext { .. },
        ) => ": the certificate is for another host name; use that name in the API URL",
        rustls::Error::InvalidCertificate(
            Certificate::Expired
            | Certificate::ExpiredContext { .. }
            | Certificate::NotValidYet
            | Certificate::NotValidYetContext { .. },
        ) => ": the certificate is outside its validity period; check this machine's clock",
        _ => "",
    };
    ApiError::Tls {
        operation,
        cause: error.to_string(),
        hint,
    }
}

/// Reads the certificates of a PEM CA bundle. The error says what is wrong
/// and how to fix it, without the path, which the caller's error names.
pub(crate) fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path)
        .map_err(|error| format!("{error}: check the path and its permissions"))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        format!(
            "it is not a PEM certificate bundle ({})",
            innermost_cause(&error)
        )
    })?;
    if certificates.is_empty() {
        return Err(
            "it contains no '-----BEGIN CERTIFICATE-----' block: give the CA certificate in \
             PEM form"
                .into(),
        );
    }
    Ok(certificates)
}

/// Finds the rustls error in a chain of errors, where hyper wraps it in an
/// `io::Error`. `io::Error::source` skips the wrapped error itself, so each
/// `io::Error` is opened with `get_ref`.
pub(crate) fn find_tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = error
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = find_tls_error(inner) {
                return Some(tls);
            }
        }
        current = error.source();
    }
    None
}

pub(crate) fn is_timeout(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout)
}

/// Returns the last error in the chain, which names the cause without the URL
/// prefixes that the wrappers add.
pub(crate) fn innermost_cause(error: &(dyn StdError + 'static)) -> String {
    let mut current = error;
    loop {
        let next = match current
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
        match next {
            Some(next) => current = next,
            None => return current.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source_id: Option<&str>) -> Request {
        Request {
            method: Method::POST,
            url: Url::parse("https://api.example.com/v1/sources/s1/x?cursor=abc").unwrap(),
            json_body: None,
            authenticated: true,
            source_id: source_id.map(str::to_string),
        }
    }

    fn detail(status: u16, code: Option<&str>) -> ServerDetail {
        ServerDetail {
            status,
            code: code.map(str::to_string),
            message: None,
            request_id: Some("req_1".into()),
            excerpt: None,
        }
    }

    #[test]
    fn operation_drops_query() {
        assert_eq!(
            request(None).operation(),
            "POST https://api.example.com/v1/sources/s1/x"
        );
    }

    #[test]
    fn status_errors_by_status() {
        let cases = [
            (400, None, None, "BadRequest"),
            (401, None, None, "Unauthorized"),
            (403, Some("s1"), None, "Forbidden"),
            (404, Some("s1"), None, "UnknownSource"),
            (404, None, None, "NotFound"),
            (503, None, Some("write_disabled"), "WriteDisabled"),
            (302, None, None, "UnexpectedStatus"),
            (409, None, None, "UnexpectedStatus"),
        ];
        for (status, source_id, code, variant) in cases {
            let error = status_error(&request(source_id), detail(status, code));
            assert!(
                format!("{error:?}").starts_with(variant),
                "{status}: {error:?}"
            );
            assert!(error.to_string().contains("req_1"), "{status}: {error}");
        }
    }

    #[test]
    fn redirect_error_has_hint() {
        let error = status_error(&request(None), detail(301, None));
        assert!(error.to_string().contains("redirects elsewhere"), "{error}");
    }

    #[test]
    fn innermost_cause_opens_io_errors() {
        let inner = io::Error::other("deep cause");
        let outer = io::Error::other(inner);
        assert_eq!(innermost_cause(&outer), "deep cause");
    }

    #[test]
    fn tls_error_found_inside_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, tls);
        let outer = io::Error::other(wrapped);
        let found = find_tls_error(&outer);
        assert!(
            matches!(found, Some(rustls::Error::InvalidCertificate(_))),
            "{found:?}"
        );
        let error = tls_error("GET x".into(), found.unwrap());
        assert!(error.to_string().contains("private CA"), "{error}");
    }
}
