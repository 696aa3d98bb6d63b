//! The status server: `/status.json`, `/metrics` (Prometheus), a status
//! page at `/` and the preview still at `/preview.jpg`, on the address
//! `--status-listen` gives. It has no authentication, so every response
//! carries only what the status line shows: labels, states and figures,
//! never a credential.
//!
//! One thread serves the requests in turn (each response is built in
//! memory and is a few kilobytes), and another samples the bitrate windows twice
//! a second, so the rates stay current when no status line is shown.

use super::metrics;
use super::status::StatusBoard;
use super::status_json::{BridgeFacts, StatusDocument};
use crate::exit::ExitStatus;
use crate::pipeline::media::{MediaPipeline, PipelineError};
use crate::pipeline::observer::MediaObserver;
use crate::pipeline::preview::Preview;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};

/// How often the sampling thread adds a sample to each bitrate window.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

const PAGE: &str = include_str!("status_page.html");

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "cannot serve the status page on {address}: the port is already in use by another \
         program; choose a free port (such as {}) or stop that program",
        next_port(address)
    )]
    InUse { address: SocketAddr },
    #[error(
        "cannot serve the status page on {address}: the address is not one of this machine's; \
         use 127.0.0.1:{} for this machine only, or 0.0.0.0:{} for every interface",
        address.port(),
        address.port()
    )]
    NotLocal { address: SocketAddr },
    #[error(
        "cannot serve the status page on {address}: permission denied (ports below 1024 need \
         privileges); choose a port from 1024 up, such as {}:8181",
        address.ip()
    )]
    Denied { address: SocketAddr },
    #[error("cannot serve the status page on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to start the status server: {0}")]
    Start(String),
    #[error("failed to add the preview to the media pipeline: {0}")]
    Preview(#[from] PipelineError),
}

impl HttpError {
    /// Returns the exit status: a listen address that cannot work is a
    /// configuration error (2).
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            HttpError::InUse { .. } | HttpError::NotLocal { .. } | HttpError::Denied { .. } => {
                ExitStatus::Usage
            }
            _ => ExitStatus::Other,
        }
    }
}

/// Returns `address` with the next port, to suggest in place of a taken one.
fn next_port(address: &SocketAddr) -> SocketAddr {
    let port = address.port().checked_add(1).unwrap_or(8181);
    SocketAddr::new(address.ip(), port)
}

/// A bound socket waiting for the pipeline to exist. Binding comes first,
/// so that an unusable address fails before capture starts.
pub struct StatusListener {
    listener: TcpListener,
    address: SocketAddr,
}

impl StatusListener {
    /// Binds `address`; `None` (no `--status-listen`) binds nothing.
    pub fn bind(address: Option<SocketAddr>) -> Result<Option<Self>, HttpError> {
        let Some(address) = address else {
            return Ok(None);
        };
        let listener = TcpListener::bind(address).map_err(|source| match source.kind() {
            ErrorKind::AddrInUse => HttpError::InUse { address },
            ErrorKind::AddrNotAvailable => HttpError::NotLocal { address },
            ErrorKind::PermissionDenied => HttpError::Denied { address },
            _ => HttpError::Bind { address, source },
        })?;
        let address = listener.local_addr().unwrap_or(address);
        Ok(Some(Self { listener, address }))
    }

    /// Adds the preview branch to `media` (before it starts) and starts
    /// serving `board` and the media pipeline's state.
    pub fn serve(
        self,
        media: &MediaPipeline,
        board: StatusBoard,
        source: &str,
    ) -> Result<StatusServer, HttpError> {
        let view = Arc::new(StatusView {
            board,
            media: media.observer(),
            preview: media.add_preview()?,
            source: source.to_string(),
            started: Instant::now(),
        });
        let server = Arc::new(
            Server::from_listener(self.listener, None)
                .map_err(|error| HttpError::Start(error.to_string()))?,
        );
        let serving = Arc::clone(&server);
        let served = Arc::clone(&view);
        let requests = std::thread::Builder::new()
            .name("status-http".into())
            .spawn(move || {
                while let Ok(request) = serving.recv() {
                    respond(request, &served);
                }
            })
            .map_err(|error| HttpError::Start(error.to_string()))?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let board = view.board.clone();
        let sampler = std::thread::Builder::new()
            .name("status-sample".into())
            .spawn(move || loop {
                match stopped.recv_timeout(SAMPLE_INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => {
                        board.snapshots(Instant::now());
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|error| HttpError::Start(error.to_string()))?;
        tracing::info!(
            url = %format!("http://{}/", self.address),
            "status page, /status.json and /metrics served"
        );
        Ok(StatusServer {
            server,
            stop: Some(stop),
            threads: vec![requests, sampler],
        })
    }
}

/// The running status server. Dropping it stops both threads.
pub struct StatusServer {
    server: Arc<Server>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.server.unblock();
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The state every response is built from.
struct StatusView {
    board: StatusBoard,
    media: MediaObserver,
    preview: Preview,
    source: String,
    started: Instant,
}

impl StatusView {
    fn document(&self) -> StatusDocument {
        let now = Instant::now();
        let facts = BridgeFacts {
            source: self.source.clone(),
            input: self.media.input_signal(),
            encoder: self.media.encoder(),
            uptime: now.saturating_duration_since(self.started),
        };
        StatusDocument::new(&facts, &self.board.snapshots(now), now)
    }
}

/// One response, before it is written.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Extra headers, as (name, value).
    headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }
}

fn respond(request: Request, view: &StatusView) {
    let reply = route(request.method(), request.url(), view);
    tracing::trace!(method = %request.method(), url = request.url(), status = reply.status, "status request");
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    let headers = [
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ];
    for (name, value) in headers.into_iter().chain(reply.headers) {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "failed to send a status response");
    }
}

/// Builds the response to `method` on `url`. HEAD gets GET's headers;
/// tiny_http leaves the body out.
fn route(method: &Method, url: &str, view: &StatusView) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let known = matches!(path, "/" | "/status.json" | "/metrics" | "/preview.jpg");
    if !known {
        return Reply::text(
            404,
            "not found: the status server serves /, /status.json, /metrics and /preview.jpg",
        );
    }
    if !matches!(method, Method::Get | Method::Head) {
        let mut reply = Reply::text(405, "method not allowed: use GET or HEAD");
        reply.headers.push(("Allow", "GET, HEAD"));
        return reply;
    }
    match path {
        "/" => Reply::new(200, "text/html; charset=utf-8", PAGE),
        "/status.json" => match serde_json::to_vec_pretty(&view.document()) {
            Ok(body) => Reply::new(200, "application/json", body),
            Err(error) => {
                tracing::warn!(%error, "failed to encode /status.json");
                Reply::text(500, &format!("failed to encode the status: {error}"))
            }
        },
        "/metrics" => Reply::new(
            200,
            metrics::CONTENT_TYPE,
            metrics::render(&view.document()),
        ),
        _ => match view.preview.latest() {
            Some(jpeg) => Reply::new(200, "image/jpeg", jpeg.to_vec()),
            None => Reply::text(
                503,
                "no preview yet: the first still comes within a second of the start",
            ),
        },
    }
}
