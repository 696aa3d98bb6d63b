//! A WHIP (RFC 9725) receiver on GStreamer's webrtcbin, inside the test
//! process. It is the second, independent receiver next to the aiortc peer
//! (`tests/peers/whip_receiver.py`) and replies the same way:
//!
//! - `POST /<path>/whip` with `Content-Type: application/sdp`: 201 with the
//!   answer (every candidate inside it, no trickle ICE), `Location:
//!   /<path>/whip/<session id>` and an `ETag`;
//! - `DELETE /<path>/whip/<session id>`: 200, and the session's recording
//!   ends; 404 for an unknown session.
//!
//! Checks in order: path shape (404), method (405), Bearer token (401),
//! Content-Type (415), SDP text (400), at most one video and one audio m-line
//! and no data channel (406), an answer from webrtcbin (406). Error bodies
//! are one line of text. ICE uses 127.0.0.1 only and no STUN or TURN server.
//! Each session records into `session-N/received.mkv` under the record
//! folder (see `whip_webrtcbin_session`).

use super::whip_http::{Request, Response, Server};
use super::whip_token::{TokenCheck, TokenPolicy};
use super::whip_webrtcbin_session::{Session, SessionReport};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub struct WebrtcbinOptions {
    /// Session N records into `record_dir/session-N/received.mkv`.
    pub record_dir: PathBuf,
    pub token: TokenPolicy,
}

pub struct WebrtcbinReceiver {
    pub port: u16,
    server: Option<Server>,
    state: Arc<State>,
}

struct State {
    record_dir: PathBuf,
    token_check: TokenCheck,
    /// The number of the last session created.
    last_number: AtomicU32,
    /// Every session by number, also after it closed, for `report`.
    sessions: Mutex<BTreeMap<u32, Arc<Session>>>,
    /// Open sessions by id.
    open: Mutex<HashMap<String, Arc<Session>>>,
}

impl WebrtcbinReceiver {
    /// Starts the HTTP server on a free port on 127.0.0.1. GStreamer must be
    /// initialised (`support::setup` does).
    pub fn start(options: WebrtcbinOptions) -> Result<Self, String> {
        let token_check = TokenCheck::new(options.token)?;
        let state = Arc::new(State {
            record_dir: options.record_dir,
            token_check,
            last_number: AtomicU32::new(0),
            sessions: Mutex::default(),
            open: Mutex::default(),
        });
        let handler_state = state.clone();
        let server = Server::start(Arc::new(move |request| handler_state.handle(request)))
            .map_err(|error| format!("the webrtcbin WHIP receiver cannot listen: {error}"))?;
        Ok(Self {
            port: server.address.port(),
            server: Some(server),
            state,
        })
    }

    /// Returns the WHIP endpoint URL of a stream path such as `inputs/whip-<uuid>`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}/whip", self.port)
    }

    /// Returns the report of session `number` (counted from 1).
    pub fn report(&self, number: u32) -> Option<SessionReport> {
        let sessions = self.state.sessions.lock().unwrap();
        sessions.get(&number).map(|session| session.report())
    }

    pub fn session_count(&self) -> usize {
        self.state.sessions.lock().unwrap().len()
    }
}

impl Drop for WebrtcbinReceiver {
    fn drop(&mut self) {
        self.server.take();
        let open: Vec<_> = self.state.open.lock().unwrap().drain().collect();
        for (_, session) in open {
            session.close();
        }
    }
}

impl State {
    fn handle(&self, request: &Request) -> Response {
        let (response, reason) = match self.route(request) {
            Ok(response) => (response, None),
            Err((response, reason)) => (response, Some(reason)),
        };
        tracing::info!(
            method = %request.method,
            target = %request.target,
            status = response.status,
            reason = reason.as_deref().unwrap_or(""),
            "webrtcbin WHIP receiver request"
        );
        response
    }

    fn route(&self, request: &Request) -> Result<Response, (Response, String)> {
        let Some((path, session_id)) = parse_target(&request.target) else {
            let message = format!(
                "no WHIP endpoint here: expected /<path>/whip, got {:?}",
                request.target
            );
            return Err(rejection(404, message));
        };
        match (session_id, request.method.as_str()) {
            (None, "POST") => self.create(request, &path),
            (None, "OPTIONS") => Ok(Response::text(204, "")
                .with_header("Allow", "OPTIONS, POST")
                .with_header("Accept-Post", "application/sdp")),
            (None, method) => Err(method_not_allowed(method, "OPTIONS, POST")),
            (Some(id), "DELETE") => self.delete(request, &path, &id),
            (Some(_), method) => Err(method_not_allowed(method, "DELETE")),
        }
    }

    fn create(&self, request: &Request, path: &str) -> Result<Response, (Response, String)> {
        self.authorize(request, path)?;
        let content_type = request
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if content_type != "application/sdp" {
            let message = format!("Content-Type {content_type:?} is not application/sdp");
            return Err(rejection(415, message));
        }
        let Ok(offer) = std::str::from_utf8(&request.body) else {
            return Err(rejection(400, "offer is not UTF-8 text".to_string()));
        };
        if !offer.starts_with("v=0") {
            let message = "offer is not SDP: it does not start with v=0".to_string();
            return Err(rejection(400, message));
        }
        check_media_lines(offer).map_err(|(status, message)| rejection(status, message))?;

        let number = self.last_number.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{:032x}", rand::random::<u128>());
        let directory = self.record_dir.join(format!("session-{number}"));
        let (session, answer) =
            Session::negotiate(number, id.clone(), path.to_string(), offer, &directory)
                .map_err(|error| rejection(error.status, error.message))?;
        let session = Arc::new(session);
        self.sessions
            .lock()
            .unwrap()
            .insert(number, session.clone());
        self.open.lock().unwrap().insert(id.clone(), session);

        let etag = format!("\"{:016x}\"", rand::random::<u64>());
        Ok(Response {
            status: 201,
            headers: Vec::new(),
            body: answer.into_bytes(),
        }
        .with_header("Content-Type", "application/sdp")
        .with_header("Location", &format!("/{path}/whip/{id}"))
        .with_header("ETag", &etag))
    }

    fn delete(
        &self,
        request: &Request,
        path: &str,
        id: &str,
    ) -> Result<Response, (Response, String)> {
        let session = self.open.lock().unwrap().get(id).cloned();
        let Some(session) = session.filter(|session| session.path == path) else {
            return Err(rejection(404, "no such WHIP session".to_string()));
        };
        self.authorize(request, path)?;
        self.open.lock().unwrap().remove(id);
        session.note_delete();
        session.close();
        Ok(Response::text(200, "session closed"))
    }

    fn authorize(&self, request: &Request, path: &str) -> Result<(), (Response, String)> {
        let token = request.header("authorization").and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match self.token_check.reject_reason(token, path) {
            None => Ok(()),
            Some(reason) => {
                let response =
                    Response::text(401, &reason).with_header("WWW-Authenticate", "Bearer");
                Err((response, reason))
            }
        }
    }
}

fn rejection(status: u16, message: String) -> (Response, String) {
    (Response::text(status, &message), message)
}

fn method_not_allowed(method: &str, allowed: &str) -> (Response, String) {
    let message = format!("method {method} is not allowed here; allowed: {allowed}");
    (
        Response::text(405, &message).with_header("Allow", allowed),
        message,
    )
}

/// Splits `/<path>/whip[/<session id>]` into the path and the session id.
/// Path segments contain letters, digits and `._~-`, and are not `.` or `..`.
/// A session id is 32 lower-case hex digits.
pub fn parse_target(target: &str) -> Option<(String, Option<String>)> {
    let target = target.split('?').next()?;
    let segments: Vec<&str> = target.strip_prefix('/')?.split('/').collect();
    let whip_index = segments.iter().rposition(|segment| *segment == "whip")?;
    let session_id = match &segments[whip_index + 1..] {
        [] => None,
        [id] if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Some(id.to_string())
        }
        _ => return None,
    };
    let path = &segments[..whip_index];
    let valid_segment = |segment: &&str| {
        !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
    };
    if path.is_empty() || !path.iter().all(valid_segment) {
        return None;
    }
    Some((path.join("/"), session_id))
}

/// Rejects offers with more than one video or audio m-line, a data channel
/// or no m-line, returning the HTTP status and the reason.
pub fn check_media_lines(offer: &str) -> Result<(), (u16, String)> {
    let kinds: Vec<&str> = offer
        .lines()
        .filter_map(|line| line.strip_prefix("m="))
        .map(|line| line.split(' ').next().unwrap_or(""))
        .collect();
    let count = |kind: &str| kinds.iter().filter(|entry| **entry == kind).count();
    if kinds.is_empty() {
        return Err((400, "offer has no m-line".to_string()));
    }
    for kind in ["video", "audio"] {
        if count(kind) > 1 {
            let message = format!(
                "offer has {} {kind} m-lines; at most 1 is accepted",
                count(kind)
            );
            return Err((406, message));
        }
    }
    if count("application") > 0 {
        let message = "offer has a data channel (application m-line); none is accepted";
        return Err((406, message.to_string()));
    }
    if let Some(other) = kinds
        .iter()
        .find(|kind| !matches!(**kind, "video" | "audio"))
    {
        return Err((
            406,
            format!("offer has an m-line of unsupported kind {other:?}"),
        ));
    }
    Ok(())
}
