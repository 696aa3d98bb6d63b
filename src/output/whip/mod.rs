//! WHIP output (RFC 9725): the shared encode over WebRTC.
//!
//! `signaling` speaks HTTP to the WHIP endpoint (OPTIONS, POST, DELETE,
//! redirects, `Location`, `Link`), `link` reads the ICE servers that
//! `Link` headers name, and `answer` checks what the server accepted.
//! `local_addresses` picks the addresses ICE gathers on, and `peer` runs
//! webrtcbin with the RTP payloaders for one session.
//!
//! One session: ask for the ICE servers (OPTIONS), build the peer, wait
//! until every candidate is gathered, POST the offer, apply the answer,
//! wait for ICE and DTLS, then stream until the frame channel closes and
//! DELETE the session resource. If ICE fails and the answer named ICE
//! servers the offer did not use, the session is deleted and offered once
//! more with them.

pub mod answer;
pub mod link;
mod liveness;
mod local_addresses;
mod peer;
pub mod signaling;

use crate::config::Secret;
use crate::exit::ExitStatus;
use crate::output::{AudioCodec, Output, OutputError, Session};
use crate::pipeline::fanout::Received;
use crate::trax::credential::Credential;
use crate::trax::provider::CredentialSource;
use crate::trax::token::TALK_AUDIENCE;
use link::IceServer;
use liveness::RtcpWatch;
use peer::{Peer, PeerEvent};
use signaling::{SignalingConfig, WhipClient};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long ICE candidate gathering may take before the offer goes out with
/// the candidates found so far.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long ICE and DTLS may take after the answer. The TRaX edge drops a
/// session whose ICE has not connected within about 10 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a disconnected peer may take to recover before the session
/// counts as lost.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

/// How long the first keyframe may take to reach the output.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The minimum time between two IDRs requested by the peer (PLI or FIR), so
/// a peer on a lossy link cannot make every frame an IDR.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(1000);

const FRAME_POLL: Duration = Duration::from_millis(10);

/// Destination, credentials and options of one WHIP output.
#[derive(Clone, Debug)]
pub struct WhipSettings {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The stream path and the session token that may publish to it, asked
    /// for again before every session.
    pub credentials: Arc<dyn CredentialSource>,
    /// STUN and TURN servers to gather with, besides those the server names.
    pub ice_servers: Vec<IceServer>,
    /// Local addresses for ICE host candidates; empty: every interface.
    pub ice_addresses: Vec<std::net::IpAddr>,
    /// Extra CA certificates (PEM) trusted for HTTPS, besides the web PKI
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// Send the token along when a redirect leads to another origin.
    pub allow_cross_origin: bool,
    pub request_timeout: Duration,
}

impl WhipSettings {
    /// Returns the WHIP endpoint for `path`: `scheme://host:port/<path>/whip`.
    pub fn endpoint(&self, path: &str) -> Result<url::Url, String> {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let text = format!("{scheme}://{host}:{}/{path}/whip", self.port);
        url::Url::parse(&text).map_err(|error| format!("invalid WHIP endpoint '{text}': {error}"))
    }
}

/// Publishes the encode to one WHIP endpoint.
pub struct WhipOutput {
    settings: WhipSettings,
}

impl WhipOutput {
    pub fn new(settings: WhipSettings) -> Self {
        Self { settings }
    }

    /// Runs the checks made before every session and returns the endpoint,
    /// the token and the signaling client.
    fn prepare(&self) -> Result<Prepared, OutputError> {
        let publish = self.settings.credentials.current()?;
        let token = match &publish.credential {
            Credential::SessionToken(token) => token.clone(),
            Credential::StreamKey(_) => {
                return Err(usage(
                    "WHIP takes a session token as its Bearer, not a stream key: give a talk \
                     token through TRAX_SESSION_TOKEN or --token-file, or acquire one with \
                     --source",
                ))
            }
        };
        publish.check_claims(TALK_AUDIENCE)?;
        local_addresses::check_local(&self.settings.ice_addresses).map_err(usage)?;
        let endpoint = self.settings.endpoint(&publish.path).map_err(usage)?;
        let client = WhipClient::new(SignalingConfig {
            endpoint: endpoint.clone(),
            ca_file: self.settings.ca_file.clone(),
            timeout: self.settings.request_timeout,
            allow_cross_origin: self.settings.allow_cross_origin,
        })?;
        Ok(Prepared {
            endpoint,
            token,
            client,
        })
    }

    fn stream(&mut self, session: &Session<'_>) -> Result<(), OutputError> {
        let prepared = self.prepare()?;
        let span = tracing::info_span!("whip", endpoint = %prepared.endpoint);
        let _entered = span.enter();

        let mut servers = self.settings.ice_servers.clone();
        let offered = prepared.client.ice_servers(&prepared.token);
        match offered {
            Ok(found) => {
                if !found.is_empty() {
                    info!(
                        servers = %describe_servers(&found),
                        "the WHIP server named ICE servers before the offer"
                    );
                }
                add_new(&mut servers, found);
            }
            Err(error) => return Err(self.signaling_error(error)),
        }

        let mut retried = false;
        loop {
            match self.attempt(session, &prepared, &servers)? {
                Attempt::Done => return Ok(()),
                Attempt::IceFailed { named } => {
                    let before = servers.len();
                    add_new(&mut servers, named);
                    if retried || servers.len() == before {
                        return Err(OutputError::Transient(format!(
                            "ICE did not connect within {} s of the answer; check that UDP \
                             reaches the WHIP server, or give a TURN server with --ice-server",
                            CONNECT_TIMEOUT.as_secs()
                        )));
                    }
                    retried = true;
                    info!(
                        servers = %describe_servers(&servers),
                        "ICE failed; offering again with the ICE servers the answer named"
                    );
                }
            }
        }
    }

    /// One offer and answer: streams until the end of the frames or a
    /// failure. Deletes the session resource before returning.
    fn attempt(
        &self,
        session: &Session<'_>,
        prepared: &Prepared,
        servers: &[IceServer],
    ) -> Result<Attempt, OutputError> {
        // Each offer starts from a fresh IDR, whatever the GOP length.
        session.frames.start();
        session.keyframes.request();
        let Some(first) = first_keyframe(session)? else {
            return Ok(Attempt::Done);
        };
        let gather_on = if self.settings.ice_addresses.is_empty() {
            local_addresses::for_endpoint(&prepared.endpoint)
        } else {
            self.settings.ice_addresses.clone()
        };
        let mut peer =
            Peer::new(&first, session.has_audio, servers, &gather_on).map_err(|message| {
                OutputError::Fatal {
                    status: ExitStatus::Other,
                    message,
                }
            })?;
        peer.time_handover(session.status.clone());
        peer.push(first);
        let offer = negotiate_offer(&mut peer, session)?;
        let Some(offer) = offer else {
            return Ok(Attempt::Done);
        };

        let answer = prepared
            .client
            .publish(&prepared.token, &offer)
            .map_err(|error| self.signaling_error(error))?;
        let resource = Resource::new(&prepared.client, &prepared.token, answer.resource.clone());
        if answer.resource.is_none() {
            warn!(
                "the WHIP server sent no Location: the session cannot be ended cleanly and \
                 the server will notice the end only when media stops"
            );
        }
        let checked = answer::check(&answer.sdp, &offer).map_err(|message| OutputError::Fatal {
            status: ExitStatus::Usage,
            message: format!("{}: {message}", prepared.endpoint),
        })?;
        for note in &checked.warnings {
            warn!("{note}");
        }
        peer.apply_answer(&answer.sdp)
            .map_err(OutputError::Transient)?;

        let outcome = self.run_connected(&mut peer, session);
        peer.stop();
        resource.delete();
        match outcome? {
            Streamed::End => Ok(Attempt::Done),
            Streamed::IceFailed => Ok(Attempt::IceFailed {
                named: answer.ice_servers,
            }),
        }
    }

    /// Waits for ICE and DTLS, then streams, video from the first IDR on.
    /// The encoder is asked for an IDR the moment DTLS connects and
    /// whenever the peer sends a PLI or FIR.
    fn run_connected(
        &self,
        peer: &mut Peer,
        session: &Session<'_>,
    ) -> Result<Streamed, OutputError> {
        let answered = Instant::now();
        let mut connected_at: Option<Instant> = None;
        let mut disconnected_since: Option<Instant> = None;
        let mut last_request: Option<Instant> = None;
        let mut rtcp = RtcpWatch::default();
        loop {
            while let Some(event) = peer.next_event() {
                match event {
                    PeerEvent::Connected => {
                        if connected_at.is_none() {
                            info!(
                                after_ms = answered.elapsed().as_millis() as u64,
                                "WebRTC connected; asking the encoder for an IDR"
                            );
                            peer.start_media();
                            session.status.live();
                            session.keyframes.request();
                            session.frames.mark_streaming();
                            last_request = Some(Instant::now());
                        }
                        connected_at.get_or_insert_with(Instant::now);
                        disconnected_since = None;
                    }
                    PeerEvent::Disconnected => {
                        warn!("WebRTC disconnected; waiting for it to recover");
                        disconnected_since.get_or_insert_with(Instant::now);
                    }
                    PeerEvent::Failed => {
                        if connected_at.is_none() {
                            return Ok(Streamed::IceFailed);
                        }
                        return Err(OutputError::Transient(
                            "the WebRTC connection failed (ICE or DTLS)".into(),
                        ));
                    }
                    PeerEvent::KeyframeRequested => {
                        let due =
                            last_request.is_none_or(|at| at.elapsed() >= KEYFRAME_REQUEST_INTERVAL);
                        if due && connected_at.is_some() {
                            tracing::debug!("the peer asked for a keyframe");
                            session.keyframes.request();
                            last_request = Some(Instant::now());
                        }
                    }
                    PeerEvent::RtcpReceived => rtcp.received(Instant::now()),
                    PeerEvent::DtlsClosed => {
                        return Err(OutputError::Transient(
                            "the WHIP server closed the DTLS connection".into(),
                        ));
                    }
                    PeerEvent::Error(message) => {
                        return Err(OutputError::Transient(format!("WebRTC: {message}")));
                    }
                }
            }
            if let Some(silence) = rtcp.lost_for(Instant::now()) {
                return Err(OutputError::Transient(format!(
                    "the WHIP receiver sent no RTCP for {} ms (allowed: {} ms), so the \
                     session counts as lost although ICE still shows it connected",
                    silence.as_millis(),
                    rtcp.allowed_silence().as_millis()
                )));
            }
            if connected_at.is_none() && answered.elapsed() > CONNECT_TIMEOUT {
                return Ok(Streamed::IceFailed);
            }
            if disconnected_since.is_some_and(|since| since.elapsed() > DISCONNECT_GRACE) {
                return Err(OutputError::Transient(format!(
                    "the WebRTC connection stayed down for {} s",
                    DISCONNECT_GRACE.as_secs()
                )));
            }
            match session.frames.recv_timeout(FRAME_POLL) {
                // The peer holds media back until the IDR asked for on
                // connect (see `Peer::start_media`).
                Ok(frame) => {
                    // Encoded bytes, before RTP; Opus audio included.
                    if connected_at.is_some() {
                        session.status.add_bytes(frame.size());
                    }
                    peer.push(frame);
                }
                Err(Received::Timeout | Received::Frame) => {}
                Err(Received::Closed) => {
                    if connected_at.is_none() {
                        warn!(
                            after_ms = answered.elapsed().as_millis() as u64,
                            "the stream ended before WebRTC connected, so no media reached \
                             the WHIP server"
                        );
                    }
                    info!(
                        video_frames = peer.video_frames(),
                        audio_frames = peer.audio_frames(),
                        "stream ended; closing the WHIP session"
                    );
                    return Ok(Streamed::End);
                }
            }
        }
    }

    fn signaling_error(&self, error: signaling::SignalingError) -> OutputError {
        let error = OutputError::from(error);
        if matches!(error, OutputError::Rejected(_)) {
            self.settings.credentials.invalidate();
        }
        error
    }
}

impl Output for WhipOutput {
    fn label(&self) -> String {
        let path = self.settings.credentials.path();
        match self.settings.endpoint(&path) {
            Ok(url) => url.to_string(),
            Err(_) => format!(
                "whip {}:{} path={path}",
                self.settings.host, self.settings.port
            ),
        }
    }

    fn audio_codec(&self) -> AudioCodec {
        AudioCodec::Opus
    }

    fn preflight(&self) -> Result<(), OutputError> {
        self.prepare().map(|_| ())
    }

    fn run_session(&mut self, session: Session<'_>) -> Result<(), OutputError> {
        let result = self.stream(&session);
        session.frames.pause();
        result
    }
}

struct Prepared {
    endpoint: url::Url,
    token: Secret,
    client: WhipClient,
}

enum Attempt {
    Done,
    /// ICE did not connect; `named` are the ICE servers the answer named.
    IceFailed {
        named: Vec<IceServer>,
    },
}

enum Streamed {
    End,
    IceFailed,
}

/// The session resource on the server, deleted once: after streaming, or
/// when dropped because the session ended early (an answer that fails its
/// checks), so no session stays behind holding the stream path.
struct Resource<'a> {
    client: &'a WhipClient,
    token: &'a Secret,
    url: Option<url::Url>,
}

impl<'a> Resource<'a> {
    fn new(client: &'a WhipClient, token: &'a Secret, url: Option<url::Url>) -> Self {
        Self { client, token, url }
    }

    fn delete(mut self) {
        self.delete_once();
    }

    fn delete_once(&mut self) {
        let Some(url) = self.url.take() else { return };
        match self.client.delete(self.token, &url) {
            Ok(()) => info!("WHIP session deleted"),
            Err(error) => warn!(%error, "failed to delete the WHIP session"),
        }
    }
}

impl Drop for Resource<'_> {
    fn drop(&mut self) {
        self.delete_once();
    }
}

/// Waits for the first video keyframe of the session. `None`: the stream
/// ended first.
fn first_keyframe(session: &Session<'_>) -> Result<Option<crate::output::Frame>, OutputError> {
    let deadline = Instant::now() + FIRST_FRAME_TIMEOUT;
    loop {
        match session.frames.recv_timeout(FRAME_POLL) {
            Ok(frame) if frame.kind == crate::output::MediaKind::Video && frame.is_keyframe() => {
                return Ok(Some(frame))
            }
            Ok(_) | Err(Received::Timeout | Received::Frame) => {}
            Err(Received::Closed) => return Ok(None),
        }
        if Instant::now() > deadline {
            return Err(OutputError::Transient(format!(
                "no keyframe came from the encoder within {} s",
                FIRST_FRAME_TIMEOUT.as_secs()
            )));
        }
    }
}

/// Feeds frames to the peer until its offer is ready with every candidate
/// gathered (or `GATHER_TIMEOUT` passed). `None`: the stream ended first.
fn negotiate_offer(peer: &mut Peer, session: &Session<'_>) -> Result<Option<String>, OutputError> {
    let started = Instant::now();
    loop {
        if let Some(offer) = peer.offer_ready(started.elapsed() > GATHER_TIMEOUT) {
            if started.elapsed() > GATHER_TIMEOUT {
                warn!(
                    "ICE gathering did not finish within {} s; offering the candidates found",
                    GATHER_TIMEOUT.as_secs()
                );
            }
            return offer.map(Some).map_err(OutputError::Transient);
        }
        if let Some(PeerEvent::Error(message)) = peer.next_event() {
            return Err(OutputError::Transient(format!("WebRTC: {message}")));
        }
        match session.frames.recv_timeout(FRAME_POLL) {
            Ok(frame) => peer.push(frame),
            Err(Received::Timeout | Received::Frame) => {}
            Err(Received::Closed) => return Ok(None),
        }
        if started.elapsed() > GATHER_TIMEOUT * 2 {
            return Err(OutputError::Transient(
                "webrtcbin made no offer; its caps never settled".into(),
            ));
        }
    }
}

/// Adds the servers of `found` that `servers` lacks.
fn add_new(servers: &mut Vec<IceServer>, found: Vec<IceServer>) {
    for server in found {
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
}

fn describe_servers(servers: &[IceServer]) -> String {
    servers
        .iter()
        .map(IceServer::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

fn usage(message: impl ToString) -> OutputError {
    OutputError::Fatal {
        status: ExitStatus::Usage,
        message: message.to_string(),
    }
}
