//! The loopback listener that receives the browser's redirect after a
//! login (RFC 8252 section 7.3): `http://127.0.0.1:PORT/callback` on a
//! port the system picks.

use super::error::{excerpt, OAuthError};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tracing::debug;
use url::Url;

/// The path of the redirect URI.
pub const CALLBACK_PATH: &str = "/callback";

/// Largest request head read from the browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How long one browser connection may take to send its whole request head,
/// so that a client that sends a byte now and then cannot hold the listener.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the listener checks for a connection and the deadline.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The parameters of one request to the listener, sorted.
#[derive(Debug, PartialEq, Eq)]
enum Callback {
    Code {
        code: String,
        /// The issuer the provider names in the response (RFC 9207).
        issuer: Option<String>,
    },
    Error {
        code: String,
        description: String,
    },
    Invalid(&'static str),
    /// A request to the redirect path whose `state` is missing or differs
    /// from the one sent, whatever else it carries.
    StateMismatch,
    OtherPath,
}

/// The listener, bound before the browser opens.
pub struct RedirectListener {
    listener: TcpListener,
    redirect_uri: String,
}

impl RedirectListener {
    /// Binds 127.0.0.1 on a free port.
    pub fn bind() -> Result<Self, OAuthError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|error| OAuthError::Listener(error.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| OAuthError::Listener(error.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|error| OAuthError::Listener(error.to_string()))?
            .port();
        Ok(Self {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
        })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the redirect and returns its authorization code once its
    /// `state` matches `expected_state` and its `iss`, where the provider
    /// sends one (RFC 9207), is `issuer`. The browser gets a page that states
    /// how the login ended. Requests for other paths (such as a favicon)
    /// get a 404 and the wait goes on.
    pub fn wait_for_code(
        &self,
        expected_state: &str,
        issuer: &str,
        timeout: Duration,
    ) -> Result<String, OAuthError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(OAuthError::RedirectTimedOut {
                            redirect_uri: self.redirect_uri.clone(),
                            seconds: timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(POLL_INTERVAL);
                    continue;
                }
                Err(error) => return Err(OAuthError::Listener(error.to_string())),
            };
            if let Some(outcome) = handle_connection(stream, expected_state, issuer) {
                return outcome;
            }
        }
    }
}

/// Responds to one connection. Returns `None` when the wait goes on.
fn handle_connection(
    mut stream: TcpStream,
    expected_state: &str,
    expected_issuer: &str,
) -> Option<Result<String, OAuthError>> {
    let _ = stream.set_nonblocking(false);
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(error) => {
            debug!(%error, "unreadable request on the login redirect listener");
            return None;
        }
    };
    let (status, page, outcome) = match parse_request(&head, expected_state) {
        Callback::OtherPath => {
            respond(&mut stream, "404 Not Found", "Not found", "");
            return None;
        }
        Callback::Invalid(reason) => (
            "400 Bad Request",
            format!("The login failed: {reason}. Run bridge login again."),
            Err(OAuthError::InvalidResponse {
                operation: "the login redirect".into(),
                reason: reason.into(),
            }),
        ),
        Callback::Error { code, description } => (
            "200 OK",
            format!(
                "The login failed: the identity provider returned {}.",
                html_escape(&code)
            ),
            Err(OAuthError::AuthorizationDenied {
                code: excerpt(&code, 64),
                description: if description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", excerpt(&description, 200))
                },
            }),
        ),
        Callback::StateMismatch => (
            "400 Bad Request",
            "The login was rejected: the state in this redirect does not match the one \
             bridge sent, so the redirect may come from another site. Run bridge login again."
                .to_string(),
            Err(OAuthError::StateMismatch),
        ),
        Callback::Code {
            issuer: Some(issuer),
            ..
        } if issuer != expected_issuer => (
            "400 Bad Request",
            "The login was rejected: the response comes from another identity provider \
             than the one bridge sent you to. Run bridge login again."
                .to_string(),
            Err(OAuthError::IssuerMismatch {
                expected: expected_issuer.to_string(),
                got: excerpt(&issuer, 200),
            }),
        ),
        Callback::Code { code, .. } => (
            "200 OK",
            "Logged in. You can close this window and go back to bridge.".to_string(),
            Ok(code),
        ),
    };
    respond(&mut stream, status, "bridge login", &page);
    Some(outcome)
}

/// Reads the request head within `READ_TIMEOUT` in all, however the client
/// spreads its bytes.
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request head not complete in time",
            ));
        }
        stream.set_read_timeout(Some(remaining))?;
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if buffer.len() > MAX_REQUEST_BYTES {
            return Err(std::io::Error::other("request head too large"));
        }
    }
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// Reads the request line's target and sorts the redirect's parameters.
/// The `state` is checked first, so that a request this login did not cause
/// cannot end it with a made-up provider error.
fn parse_request(head: &str, expected_state: &str) -> Callback {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Callback::OtherPath;
    };
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        return Callback::OtherPath;
    };
    if method != "GET" || url.path() != CALLBACK_PATH {
        return Callback::OtherPath;
    }
    let parameter = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if parameter("state").as_deref() != Some(expected_state) {
        return Callback::StateMismatch;
    }
    if let Some(code) = parameter("error") {
        return Callback::Error {
            code,
            description: parameter("error_description").unwrap_or_default(),
        };
    }
    match parameter("code") {
        Some(code) => Callback::Code {
            code,
            issuer: parameter("iss"),
        },
        None => Callback::Invalid("the redirect has no authorization code"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, title: &str, text: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><p>{}</p></body></html>\n",
        html_escape(text)
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example.com";

    fn request(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    }

    #[test]
    fn requests_sorted() {
        let cases = [
            (
                "/callback?code=c1&state=s1",
                Callback::Code {
                    code: "c1".into(),
                    issuer: None,
                },
            ),
            (
                "/callback?code=c1&state=s1&iss=https%3A%2F%2Fa.example",
                Callback::Code {
                    code: "c1".into(),
                    issuer: Some("https://a.example".into()),
                },
            ),
            (
                "/callback?error=access_denied&error_description=no%20way&state=s1",
                Callback::Error {
                    code: "access_denied".into(),
                    description: "no way".into(),
                },
            ),
            ("/callback?code=c1", Callback::StateMismatch),
            ("/callback?code=c1&state=s2", Callback::StateMismatch),
            ("/callback?error=access_denied", Callback::StateMismatch),
            (
                "/callback?error=access_denied&state=forged",
                Callback::StateMismatch,
            ),
            ("/callback?state=forged", Callback::StateMismatch),
            (
                "/callback?state=s1",
                Callback::Invalid("the redirect has no authorization code"),
            ),
            ("/favicon.ico", Callback::OtherPath),
        ];
        for (target, expected) in cases {
            assert_eq!(parse_request(&request(target), "s1"), expected, "{target}");
        }
        assert_eq!(
            parse_request("POST /callback HTTP/1.1\r\n\r\n", "s1"),
            Callback::OtherPath
        );
    }

    fn deliver(uri: &str, target: &str) -> String {
        let port = Url::parse(uri).unwrap().port().unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(request(target).as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn wrong_state_rejected_with_page() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri().to_string();
        let browser = std::thread::spawn(move || {
            let favicon = deliver(&uri, "/favicon.ico");
            let page = deliver(&uri, "/callback?code=c1&state=forged");
            (favicon, page)
        });
        let error = listener
            .wait_for_code("expected", ISSUER, Duration::from_secs(10))
            .unwrap_err();
        let (favicon, page) = browser.join().unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(matches!(error, OAuthError::StateMismatch), "{error:?}");
        assert!(page.starts_with("HTTP/1.1 400"), "{page}");
        assert!(page.contains("does not match"), "{page}");
    }

    #[test]
    fn matching_state_returns_code() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri().to_string();
        let browser = std::thread::spawn(move || deliver(&uri, "/callback?code=c1&state=s1"));
        let code = listener
            .wait_for_code("s1", ISSUER, Duration::from_secs(10))
            .unwrap();
        assert_eq!(code, "c1");
        assert!(browser.join().unwrap().contains("Logged in"));
    }

    #[test]
    fn other_issuer_rejected() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri().to_string();
        let browser = std::thread::spawn(move || {
            deliver(
                &uri,
                "/callback?code=c1&state=s1&iss=https%3A%2F%2Fevil.example",
            )
        });
        let error = listener
            .wait_for_code("s1", ISSUER, Duration::from_secs(10))
            .unwrap_err();
        assert!(
            matches!(error, OAuthError::IssuerMismatch { .. }),
            "{error:?}"
        );
        assert!(browser
            .join()
            .unwrap()
            .contains("another identity provider"));
    }

    #[test]
    fn trickling_client_cut_off() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri().to_string();
        let port = Url::parse(&uri).unwrap().port().unwrap();
        // Sends one byte every 500 ms for at most 30 s, far past READ_TIMEOUT,
        // and reports whether the listener closed the connection meanwhile.
        let trickler = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            for _ in 0..60 {
                if stream.write_all(b"G").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            false
        });
        std::thread::sleep(Duration::from_millis(200));
        let browser = std::thread::spawn(move || deliver(&uri, "/callback?code=c1&state=s1"));
        let code = listener
            .wait_for_code("s1", ISSUER, Duration::from_secs(60))
            .unwrap();
        assert_eq!(code, "c1");
        assert!(browser.join().unwrap().contains("Logged in"));
        assert!(
            trickler.join().unwrap(),
            "the trickling client kept the listener"
        );
    }

    #[test]
    fn forged_error_is_state_mismatch() {
        let listener = RedirectListener::bind().unwrap();
        let uri = listener.redirect_uri().to_string();
        let browser = std::thread::spawn(move || {
            deliver(
                &uri,
                "/callback?error=access_denied&error_description=forged",
            )
        });
        let error = listener
            .wait_for_code("s1", ISSUER, Duration::from_secs(10))
            .unwrap_err();
        assert!(matches!(error, OAuthError::StateMismatch), "{error:?}");
        let page = browser.join().unwrap();
        assert!(page.starts_with("HTTP/1.1 400"), "{page}");
        assert!(!page.contains("forged"), "{page}");
    }

    #[test]
    fn wait_times_out() {
        let listener = RedirectListener::bind().unwrap();
        let error = listener
            .wait_for_code("s1", ISSUER, Duration::from_millis(200))
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("timed out"), "{text}");
        assert!(text.contains(listener.redirect_uri()), "{text}");
    }
}
