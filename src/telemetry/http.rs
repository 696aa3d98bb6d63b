//! The status server: `/status.json`, `/metrics` (Prometheus), a status
//! page at `/` and the preview still at `/preview.jpg`, on the address
//! `--status-listen` gives. It has no authentication, so every response
//! carries only what the status line shows: labels, states and figures,
//! never a credential.
//!
//! `http_server` serves the requests, each connection on a thread of its
//! own with bounded size and time, and another thread samples the bitrate
//! windows twice a second, so the rates stay current when no status line
//! is shown.

use super::http_server::{Handler, HttpServer, Reply};
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
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    // The cause is not a `source`, so that the printed cause chain does not
    // repeat it.
    #[error(
        "cannot serve the status page on {address}: {cause}; use an address of this machine, \
         such as 127.0.0.1:{} for this machine only, or 0.0.0.0:{} for every interface",
        address.port(),
        address.port()
    )]
    Bind {
        address: SocketAddr,
        cause: std::io::Error,
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
            HttpError::InUse { .. }
            | HttpError::NotLocal { .. }
            | HttpError::Denied { .. }
            | HttpError::Bind { .. } => ExitStatus::Usage,
            _ => ExitStatus::Other,
        }
    }
}

/// Returns `address` with the next port, to suggest in place of a taken one.
fn next_port(address: &SocketAddr) -> SocketAddr {
    let port = address.port().checked_add(1).unwrap_or(8181);
    SocketAddr::new(address.ip(), port)
}

/// How often a status address that another program is using is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// The status server's socket, waiting for the pipeline to exist. Binding
/// comes first, so that an address that can never work fails before capture
/// starts.
pub struct StatusListener {
    socket: Socket,
    address: SocketAddr,
}

enum Socket {
    Bound(TcpListener),
    /// Another program is bound to the port. The feed matters more than the page,
    /// so the bridge streams without the server and binds it once the port
    /// is free, such as when two cameras' units were given the same port.
    Taken,
}

impl StatusListener {
    /// Binds `address`; `None` (no `--status-listen`) binds nothing. A port
    /// in use is logged as an error and tried again while the bridge runs;
    /// any other failure is an error.
    pub fn bind(address: Option<SocketAddr>) -> Result<Option<Self>, HttpError> {
        let Some(address) = address else {
            return Ok(None);
        };
        match try_bind(address) {
            Ok(listener) => {
                let address = listener.local_addr().unwrap_or(address);
                Ok(Some(Self {
                    socket: Socket::Bound(listener),
                    address,
                }))
            }
            Err(error @ HttpError::InUse { .. }) => {
                tracing::error!(
                    "{error}; streaming without the status page, and trying the port again \
                     every {} s",
                    RETRY_INTERVAL.as_secs()
                );
                Ok(Some(Self {
                    socket: Socket::Taken,
                    address,
                }))
            }
            Err(error) => Err(error),
        }
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
        let board = view.board.clone();
        let handler: Arc<Handler> = Arc::new(move |method: &str, target: &str| {
            let reply = route(method, target, &view);
            tracing::trace!(method, target, status = reply.status, "status request");
            reply
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let server = Arc::new(Mutex::new(None));
        let retry = match self.socket {
            Socket::Bound(listener) => {
                let started = HttpServer::start(listener, handler)
                    .map_err(|error| HttpError::Start(error.to_string()))?;
                *lock(&server) = Some(started);
                announce(self.address);
                None
            }
            Socket::Taken => Some(retry_bind(
                self.address,
                handler,
                Arc::clone(&server),
                stopped.clone(),
            )?),
        };
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
        Ok(StatusServer {
            server,
            stop: Some(stop),
            sampler: Some(sampler),
            retry,
        })
    }
}

fn try_bind(address: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(address).map_err(|source| match source.kind() {
        ErrorKind::AddrInUse => HttpError::InUse { address },
        ErrorKind::AddrNotAvailable => HttpError::NotLocal { address },
        ErrorKind::PermissionDenied => HttpError::Denied { address },
        _ => HttpError::Bind {
            address,
            cause: source,
        },
    })
}

fn announce(address: SocketAddr) {
    tracing::info!(
        url = %format!("http://{address}/"),
        "status page, /status.json and /metrics served"
    );
}

fn lock(server: &Mutex<Option<HttpServer>>) -> MutexGuard<'_, Option<HttpServer>> {
    server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tries `address` every `RETRY_INTERVAL` until it binds, then starts the
/// server into `server`; ends early when `stopped` disconnects.
fn retry_bind(
    address: SocketAddr,
    handler: Arc<Handler>,
    server: Arc<Mutex<Option<HttpServer>>>,
    stopped: crossbeam_channel::Receiver<()>,
) -> Result<JoinHandle<()>, HttpError> {
    std::thread::Builder::new()
        .name("status-bind".into())
        .spawn(move || loop {
            match stopped.recv_timeout(RETRY_INTERVAL) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            match try_bind(address) {
                Ok(listener) => match HttpServer::start(listener, Arc::clone(&handler)) {
                    Ok(started) => {
                        *lock(&server) = Some(started);
                        announce(address);
                        return;
                    }
                    Err(error) => {
                        tracing::error!(%address, %error, "failed to start the status server");
                        return;
                    }
                },
                Err(HttpError::InUse { .. }) => {}
                Err(error) => {
                    tracing::error!("{error}; streaming without the status page");
                    return;
                }
            }
        })
        .map_err(|error| HttpError::Start(error.to_string()))
}

/// The running status server. Dropping it stops accepting connections
/// and stops the sampling thread.
pub struct StatusServer {
    /// `None` while another program is bound to the port.
    server: Arc<Mutex<Option<HttpServer>>>,
    stop: Option<Sender<()>>,
    sampler: Option<JoinHandle<()>>,
    /// The thread that binds a taken port once it is free.
    retry: Option<JoinHandle<()>>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in [self.sampler.take(), self.retry.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
        lock(&self.server).take();
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

/// Builds the response to `method` on `url`. HEAD gets GET's reply, and
/// the server leaves the body out.
fn route(method: &str, url: &str, view: &StatusView) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let known = matches!(path, "/" | "/status.json" | "/metrics" | "/preview.jpg");
    if !known {
        return Reply::text(
            404,
            "not found: the status server serves /, /status.json, /metrics and /preview.jpg",
        );
    }
    if !matches!(method, "GET" | "HEAD") {
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
