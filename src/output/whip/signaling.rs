//! The HTTP side of WHIP (RFC 9725): the OPTIONS request for ICE servers, the POST of the SDP offer that creates a session, and the
//! DELETE of its resource URL that ends it. No WebRTC here: the caller
//! builds the offer and applies the answer.
//!
//! reqwest's own redirect handling is off. This client follows only 307
//! and 308, which keep method, headers and body, at most [`MAX_REDIRECTS`]
//! hops per call, and sends the session token to another origin only when
//! the configuration allows it. Nothing is retried here: the supervisor
//! owns reconnects, and the [`OutputError`](crate::output::OutputError)
//! that each [`SignalingError`] becomes tells it whether to dial again.

mod error;

pub use error::SignalingError;

use super::link::{parse_link_headers, IceServer};
use crate::config::Secret;
use crate::trax::api::{
    find_tls_error, innermost_cause, is_timeout, read_ca_bundle, sanitize, USER_AGENT,
};
use reqwest::blocking::{Client, Response};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, LINK, LOCATION,
};
use reqwest::{Method, StatusCode};
use std::fmt;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::{debug, warn};
use url::{Host, Url};

/// Redirects followed per call before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Largest response body read. SDP answers are a few kilobytes.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Most characters of a response body quoted in an error message.
const MAX_DETAIL_CHARS: usize = 300;

const APPLICATION_SDP: &str = "application/sdp";

pub struct SignalingConfig {
    /// The WHIP endpoint, e.g.
    /// https://edge.example:8889/inputs/whip-<uuid>/whip (http:// allowed).
    pub endpoint: Url,
    /// A PEM file with extra CA certificates, trusted on top of the web PKI
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// Per request, from connecting to reading the whole body.
    pub timeout: Duration,
    /// Send the Bearer token to another origin when a redirect leads there.
    pub allow_cross_origin: bool,
}

/// A WHIP client for one endpoint. It keeps no session state, so one
/// client serves every connection of an output.
pub struct WhipClient {
    http: Client,
    endpoint: Url,
    timeout: Duration,
    allow_cross_origin: bool,
    /// Whether the clear-text warning has been logged.
    clear_text_warned: AtomicBool,
}

impl fmt::Debug for WhipClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhipClient")
            .field("endpoint", &without_query(&self.endpoint))
            .field("timeout", &self.timeout)
            .field("allow_cross_origin", &self.allow_cross_origin)
            .finish_non_exhaustive()
    }
}

/// The server's answer to a published offer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub sdp: String,
    /// Resolved absolute URL of the session resource; None when the server
    /// sent no Location, or one that is not an http(s) URL.
    pub resource: Option<Url>,
    pub etag: Option<String>,
    pub ice_servers: Vec<IceServer>,
}

/// A final response: not a redirect.
struct Exchange {
    /// The request as messages name it: method and URL without the query,
    /// and where redirects took it.
    request: String,
    /// URL of the request that got this response, after redirects.
    url: Url,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl WhipClient {
    /// Checks the endpoint and builds the HTTP client. Nothing is sent yet.
    pub fn new(config: SignalingConfig) -> Result<Self, SignalingError> {
        check_endpoint(&config.endpoint)?;
        let http = build_http_client(&config)?;
        Ok(Self {
            http,
            endpoint: config.endpoint,
            timeout: config.timeout,
            allow_cross_origin: config.allow_cross_origin,
            clear_text_warned: AtomicBool::new(false),
        })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends an authenticated OPTIONS to the endpoint and returns the ICE
    /// servers from its Link headers. Servers that do not support OPTIONS
    /// are normal, so 501 and client errors give an empty list. The
    /// exceptions are 401 (credentials rejected), 403, 408 and 429, which
    /// are errors, as are server errors.
    pub fn ice_servers(&self, token: &Secret) -> Result<Vec<IceServer>, SignalingError> {
        let exchange = self.exchange(Method::OPTIONS, &self.endpoint, token, None)?;
        match exchange.status.as_u16() {
            200..=299 => Ok(link_servers(&exchange.headers)),
            // Servers without OPTIONS support answer it in many ways (404,
            // 405, 501, even 400); only the POST's answer counts for them.
            401 | 403 | 408 | 429 => Err(status_error(exchange, token)),
            400..=499 | 501 => {
                debug!(
                    request = %exchange.request,
                    status = exchange.status.as_u16(),
                    "the WHIP server does not answer OPTIONS; no ICE servers from it"
                );
                Ok(Vec::new())
            }
            _ => Err(status_error(exchange, token)),
        }
    }

    /// POST the offer (Content-Type: application/sdp, Authorization:
    /// Bearer, Accept: application/sdp). Expects 201 with the answer body.
    pub fn publish(&self, token: &Secret, offer_sdp: &str) -> Result<Answer, SignalingError> {
        let exchange = self.exchange(Method::POST, &self.endpoint, token, Some(offer_sdp))?;
        if exchange.status != StatusCode::CREATED {
            if exchange.status.is_success() {
                let reason = "expected 201 Created with the SDP answer".to_string();
                return Err(protocol_error(&exchange, reason));
            }
            return Err(status_error(exchange, token));
        }

        let resource = resource_url(&exchange);
        let sdp = match answer_sdp(&exchange) {
            Ok(sdp) => sdp,
            Err(reason) => {
                // The server created a session that cannot stream: end it,
                // so that it does not hold the stream path until it times out.
                if let Some(url) = &resource {
                    if let Err(error) = self.delete(token, url) {
                        warn!(%error, "failed to delete the WHIP session whose answer was unusable");
                    }
                }
                return Err(protocol_error(&exchange, reason));
            }
        };
        let etag = header_text(&exchange.headers, ETAG);
        debug!(
            request = %exchange.request,
            resource = resource.as_ref().map(|url| url.as_str()).unwrap_or("-"),
            "WHIP session created"
        );
        Ok(Answer {
            sdp,
            resource,
            etag,
            ice_servers: link_servers(&exchange.headers),
        })
    }

    /// DELETE the session resource with the token. 200, 204 (any 2xx) and
    /// 404 count as done.
    pub fn delete(&self, token: &Secret, resource: &Url) -> Result<(), SignalingError> {
        let exchange = self.exchange(Method::DELETE, resource, token, None)?;
        if exchange.status.is_success() || exchange.status == StatusCode::NOT_FOUND {
            debug!(
                request = %exchange.request,
                status = exchange.status.as_u16(),
                "WHIP session ended"
            );
            return Ok(());
        }
        Err(status_error(exchange, token))
    }

    /// Sends one request, following 307 and 308 redirects, and returns the
    /// first response that is not one.
    fn exchange(
        &self,
        method: Method,
        url: &Url,
        token: &Secret,
        body: Option<&str>,
    ) -> Result<Exchange, SignalingError> {
        let authorization = bearer(token)?;
        let mut current = url.clone();
        let mut redirected_by: Option<StatusCode> = None;
        for _hop in 0..=MAX_REDIRECTS {
            let request = describe_request(&method, url, &current);
            match redirected_by {
                Some(status) => self.check_redirect_target(&request, status, &current)?,
                None => self.check_origin(&request, "the resource URL", &current)?,
            }
            self.warn_if_clear_text(&current);

            let response = self
                .send(&method, &current, &authorization, body)
                .map_err(|error| network_error(&request, &error, self.timeout))?;
            let status = response.status();
            debug!(
                method = %method,
                url = %without_query(&current),
                status = status.as_u16(),
                "WHIP response"
            );

            match status.as_u16() {
                307 | 308 => {
                    current = redirect_target(&request, status, &current, response.headers())?;
                    redirected_by = Some(status);
                }
                301..=303 => {
                    return Err(SignalingError::Redirect {
                        request,
                        status,
                        reason: "the server redirects with a status that drops the request body \
                                 or changes the method; set the endpoint to the final URL"
                            .into(),
                    });
                }
                _ => {
                    let headers = response.headers().clone();
                    let body = read_body(response, &request, status, self.timeout)?;
                    return Ok(Exchange {
                        request,
                        url: current,
                        status,
                        headers,
                        body,
                    });
                }
            }
        }

        Err(SignalingError::Redirect {
            request: describe_request(&method, url, &current),
            status: redirected_by.unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            reason: format!(
                "more than {MAX_REDIRECTS} redirects; set the endpoint to the final URL"
            ),
        })
    }

    fn send(
        &self,
        method: &Method,
        url: &Url,
        authorization: &HeaderValue,
        body: Option<&str>,
    ) -> reqwest::Result<Response> {
        let mut builder = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, authorization.clone());
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, APPLICATION_SDP)
                .header(ACCEPT, APPLICATION_SDP)
                .body(body.to_string());
        }
        builder.send()
    }

    /// Checks that a redirect target may receive the token: http(s), no
    /// downgrade from https to http, and the endpoint's origin unless
    /// cross-origin redirects are allowed.
    fn check_redirect_target(
        &self,
        request: &str,
        status: StatusCode,
        target: &Url,
    ) -> Result<(), SignalingError> {
        let redirect_error = |reason: String| SignalingError::Redirect {
            request: request.to_string(),
            status,
            reason,
        };
        if !matches!(target.scheme(), "http" | "https") {
            return Err(redirect_error(format!(
                "the redirect leads to a {}: URL; only http and https are followed",
                target.scheme()
            )));
        }
        if self.endpoint.scheme() == "https" && target.scheme() == "http" {
            return Err(redirect_error(format!(
                "the redirect leads from https to {}, where the session token would travel \
                 in clear text; it was not sent",
                without_query(target)
            )));
        }
        self.check_origin(request, &status.to_string(), target)
    }

    fn check_origin(&self, request: &str, via: &str, target: &Url) -> Result<(), SignalingError> {
        if self.allow_cross_origin || target.origin() == self.endpoint.origin() {
            return Ok(());
        }
        Err(SignalingError::CrossOrigin {
            request: request.to_string(),
            via: via.to_string(),
            target: without_query(target),
            origin: target.origin().ascii_serialization(),
        })
    }

    fn warn_if_clear_text(&self, url: &Url) {
        if url.scheme() != "http" || is_loopback(url) {
            return;
        }
        if !self.clear_text_warned.swap(true, Ordering::Relaxed) {
            warn!(
                url = %without_query(url),
                "the WHIP endpoint uses http:// on a host that is not loopback, so the session \
                 token travels in clear text; use https://"
            );
        }
    }
}

/// Rejects an endpoint the client cannot use: another scheme, no host, or
/// credentials in the URL (they would show in logs and the process list).
fn check_endpoint(endpoint: &Url) -> Result<(), SignalingError> {
    let invalid = |reason: &str| SignalingError::InvalidEndpoint {
        endpoint: without_query(endpoint),
        reason: reason.to_string(),
    };
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be https or http"));
    }
    if endpoint.host().is_none() {
        return Err(invalid("the URL has no host"));
    }
    if !endpoint.username().is_empty() || endpoint.password().is_some() {
        return Err(invalid(
            "the URL carries credentials; give the session token through the token file or \
             environment instead",
        ));
    }
    Ok(())
}

/// Builds the HTTP client: rustls with the web PKI roots plus the CA file,
/// TLS 1.2 or later, no automatic redirects, the timeout per request. The
/// proxy variables apply, except to a loopback endpoint, whose address a
/// proxy would take for its own.
fn build_http_client(config: &SignalingConfig) -> Result<Client, SignalingError> {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if is_loopback(&config.endpoint) {
        builder = builder.no_proxy();
    }
    if let Some(path) = &config.ca_file {
        for certificate in read_ca_file(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|error| SignalingError::Client {
        reason: innermost_cause(&error),
    })
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, SignalingError> {
    read_ca_bundle(path).map_err(|reason| SignalingError::CaFile {
        path: path.to_path_buf(),
        reason,
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => IpAddr::V4(address).is_loopback(),
        Some(Host::Ipv6(address)) => IpAddr::V6(address).is_loopback(),
        None => false,
    }
}

/// Builds the `Authorization` value, marked sensitive so that the HTTP stack
/// never prints it.
fn bearer(token: &Secret) -> Result<HeaderValue, SignalingError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| SignalingError::InvalidToken { kind: token.kind() })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Returns the URL for messages and logs without userinfo, query and
/// fragment, which may carry credentials.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn describe_request(method: &Method, first: &Url, current: &Url) -> String {
    let first_text = without_query(first);
    let current_text = without_query(current);
    if first_text == current_text {
        format!("{method} {first_text}")
    } else {
        format!("{method} {first_text} (redirected to {current_text})")
    }
}

/// Resolves the `Location` of a 307 or 308 against the URL that sent it.
fn redirect_target(
    request: &str,
    status: StatusCode,
    current: &Url,
    headers: &HeaderMap,
) -> Result<Url, SignalingError> {
    let redirect_error = |reason: String| SignalingError::Redirect {
        request: request.to_string(),
        status,
        reason,
    };
    let location = header_text(headers, LOCATION)
        .ok_or_else(|| redirect_error("the redirect has no Location header".into()))?;
    current.join(&location).map_err(|error| {
        redirect_error(format!(
            "the redirect's Location '{}' is not a URL ({error})",
            sanitize(&location, None, MAX_DETAIL_CHARS)
        ))
    })
}

/// Reads the body, up to [`MAX_BODY_BYTES`].
fn read_body(
    response: Response,
    request: &str,
    status: StatusCode,
    timeout: Duration,
) -> Result<Vec<u8>, SignalingError> {
    let mut body = Vec::new();
    let read = response.take(MAX_BODY_BYTES + 1).read_to_end(&mut body);
    if let Err(error) = read {
        let timed_out = error.kind() == io::ErrorKind::TimedOut || is_timeout(&error);
        let cause = if timed_out {
            format!("timed out after {} ms", timeout.as_millis())
        } else {
            format!("failed: {}", innermost_cause(&error))
        };
        return Err(SignalingError::Network {
            request: request.to_string(),
            cause: format!("{status}, then reading the body {cause}"),
            timed_out,
        });
    }
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(SignalingError::Protocol {
            request: request.to_string(),
            status,
            reason: format!("the response body is larger than {MAX_BODY_BYTES} bytes"),
        });
    }
    Ok(body)
}

fn network_error(request: &str, error: &reqwest::Error, timeout: Duration) -> SignalingError {
    if let Some(tls) = find_tls_error(error) {
        return SignalingError::Tls {
            request: request.to_string(),
            cause: tls.to_string(),
            hint: tls_hint(tls),
        };
    }
    let cause = if error.is_timeout() {
        format!("no response: timed out after {} ms", timeout.as_millis())
    } else if error.is_connect() {
        format!("no response: cannot connect: {}", innermost_cause(error))
    } else {
        format!("no response: {}", innermost_cause(error))
    };
    SignalingError::Network {
        request: request.to_string(),
        timed_out: error.is_timeout(),
        cause,
    }
}

fn tls_hint(error: &rustls::Error) -> &'static str {
    use rustls::CertificateError as Certificate;
    match error {
        rustls::Error::InvalidCertificate(
            Certificate::UnknownIssuer | Certificate::BadSignature,
        ) => {
            ": the server's certificate is not trusted; for a server with a private CA, give \
             that CA's certificate (PEM) as the output's CA file"
        }
        rustls::Error::InvalidCertificate(
            Certificate::NotValidForName | Certificate::NotValidForNameContext { .. },
        ) => ": the certificate is for another host name; use that name in the endpoint URL",
        rustls::Error::InvalidCertificate(
            Certificate::Expired
            | Certificate::ExpiredContext { .. }
            | Certificate::NotValidYet
            | Certificate::NotValidYetContext { .. },
        ) => ": the certificate is outside its validity period; check this machine's clock",
        _ => "",
    }
}

/// Builds the error for a status the call does not accept, quoting the
/// body.
fn status_error(exchange: Exchange, token: &Secret) -> SignalingError {
    let text = String::from_utf8_lossy(&exchange.body);
    let excerpt = sanitize(&text, Some(token), MAX_DETAIL_CHARS);
    let detail = if excerpt.is_empty() {
        String::new()
    } else {
        format!(" (server: \"{excerpt}\")")
    };
    SignalingError::from_status(exchange.request, exchange.status, detail)
}

fn protocol_error(exchange: &Exchange, reason: String) -> SignalingError {
    SignalingError::Protocol {
        request: exchange.request.clone(),
        status: exchange.status,
        reason,
    }
}

/// Returns the SDP answer of a 201, which must be an `application/sdp`
/// body that starts with `v=0`.
fn answer_sdp(exchange: &Exchange) -> Result<String, String> {
    let content_type = header_text(&exchange.headers, CONTENT_TYPE);
    let media_type = content_type
        .as_deref()
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|value| value.eq_ignore_ascii_case(APPLICATION_SDP)) {
        let shown = content_type.map_or("none".to_string(), |value| {
            format!("'{}'", sanitize(&value, None, 80))
        });
        return Err(format!(
            "the answer's Content-Type is {shown}, not {APPLICATION_SDP}: the server may not \
             be a WHIP endpoint"
        ));
    }
    let sdp = String::from_utf8(exchange.body.clone())
        .map_err(|_| "the SDP answer is not UTF-8".to_string())?;
    if sdp.trim().is_empty() {
        return Err("the response has no SDP answer: the body is empty".into());
    }
    if !sdp.trim_start().starts_with("v=0") {
        return Err("the SDP answer does not start with 'v=0'".into());
    }
    Ok(sdp)
}

/// Resolves the `Location` of a 201 against the URL of the request that got
/// it. A missing Location, or one that is not an http(s) URL, gives `None`.
fn resource_url(exchange: &Exchange) -> Option<Url> {
    let location = header_text(&exchange.headers, LOCATION)?;
    match exchange.url.join(&location) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        _ => {
            warn!(
                request = %exchange.request,
                location = %sanitize(&location, None, MAX_DETAIL_CHARS),
                "the WHIP server's Location is not an http(s) URL; the session cannot be ended \
                 with DELETE"
            );
            None
        }
    }
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    let value = headers.get(name)?;
    Some(String::from_utf8_lossy(value.as_bytes()).trim().to_string())
}

fn link_servers(headers: &HeaderMap) -> Vec<IceServer> {
    let values: Vec<String> = headers
        .get_all(LINK)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    parse_link_headers(values.iter().map(String::as_str))
}

#[cfg(test)]
mod tests;
