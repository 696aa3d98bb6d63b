//! One WHIP session of the webrtcbin receiver: its pipeline, the
//! offer/answer exchange and the counters of what arrived.
//!
//! ```text
//! webrtcbin ─┬─ rtph264depay ─ h264parse ─┬─ matroskamux ─ filesink session-N/received.mkv
//!            └─ rtpopusdepay ─ opusparse ─┘
//! ```
//!
//! The muxer's pads are requested from the offer's m-lines before any media
//! flows, because matroskamux takes no new pads once it has written its
//! header. A closed session sends EOS into the muxer so the file is complete.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(5);
const LOOPBACK_ADDRESS: &str = "127.0.0.1";

/// What a session received and when, in Unix seconds.
#[derive(Clone, Debug, Default)]
pub struct SessionReport {
    pub session: u32,
    pub id: String,
    pub path: String,
    pub post_unix_s: f64,
    pub connected_unix_s: Option<f64>,
    /// H.264 access units after h264parse.
    pub video_buffers: u64,
    /// Access units without the delta-unit flag, which h264parse clears on IDR.
    pub video_keyframes: u64,
    pub first_keyframe_unix_s: Option<f64>,
    /// Caps of the parsed H.264 stream: size, profile, level.
    pub video_caps: Option<String>,
    /// Opus packets after opusparse.
    pub audio_buffers: u64,
    pub first_audio_unix_s: Option<f64>,
    pub audio_caps: Option<String>,
    pub delete_received: bool,
    pub closed: bool,
    pub recording: PathBuf,
}

/// Why an offer produced no answer, with the HTTP status to reply with.
#[derive(Debug)]
pub struct NegotiationError {
    pub status: u16,
    pub message: String,
}

impl NegotiationError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

pub struct Session {
    pub number: u32,
    pub id: String,
    pub path: String,
    pipeline: gst::Pipeline,
    mux: gst::Element,
    report: Arc<Mutex<SessionReport>>,
    closing: Arc<AtomicBool>,
    finalized: Arc<(Mutex<bool>, Condvar)>,
}

impl Session {
    /// Builds the pipeline for `offer` and returns the session with the
    /// answer's SDP, which contains every local candidate.
    pub fn negotiate(
        number: u32,
        id: String,
        path: String,
        offer: &str,
        directory: &Path,
    ) -> Result<(Self, String), NegotiationError> {
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|error| NegotiationError::new(400, format!("offer is not SDP: {error}")))?;
        std::fs::create_dir_all(directory).map_err(|error| {
            NegotiationError::new(
                500,
                format!("cannot create {}: {error}", directory.display()),
            )
        })?;
        let report = SessionReport {
            session: number,
            id: id.clone(),
            path: path.clone(),
            post_unix_s: unix_now(),
            recording: directory.join("received.mkv"),
            ..SessionReport::default()
        };
        let session = Self::build(number, id, path, &offer, report).map_err(|error| {
            NegotiationError::new(500, format!("cannot build the pipeline: {error}"))
        })?;
        match session.answer(offer) {
            Ok(answer) => Ok((session, answer)),
            Err(error) => {
                session.close();
                Err(error)
            }
        }
    }

    pub fn report(&self) -> SessionReport {
        self.report.lock().unwrap().clone()
    }

    pub fn note_delete(&self) {
        self.report.lock().unwrap().delete_received = true;
    }

    fn build(
        number: u32,
        id: String,
        path: String,
        offer: &gst_sdp::SDPMessage,
        report: SessionReport,
    ) -> Result<Self, glib::BoolError> {
        let pipeline = gst::Pipeline::with_name(&format!("whip-session-{number}"));
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()?;
        let ice_agent = webrtcbin.property::<glib::Object>("ice-agent");
        ice_agent.set_property("ice-tcp", false);
        ice_agent.emit_by_name::<bool>("add-local-ip-address", &[&LOOPBACK_ADDRESS]);

        let mux = gst::ElementFactory::make("matroskamux").build()?;
        let sink = gst::ElementFactory::make("filesink")
            .property("location", report.recording.to_str().unwrap())
            .build()?;
        pipeline.add_many([&webrtcbin, &mux, &sink])?;
        mux.link(&sink)?;

        let session = Self {
            number,
            id,
            path,
            pipeline,
            mux,
            report: Arc::new(Mutex::new(report)),
            closing: Arc::new(AtomicBool::new(false)),
            finalized: Arc::new((Mutex::new(false), Condvar::new())),
        };
        session.watch_finalize(&sink);
        session.watch_connection(&webrtcbin);
        session.link_incoming_pads(&webrtcbin, offer)?;
        Ok(session)
    }

    fn link_incoming_pads(
        &self,
        webrtcbin: &gst::Element,
        offer: &gst_sdp::SDPMessage,
    ) -> Result<(), glib::BoolError> {
        let mut video_pad = None;
        let mut audio_pad = None;
        for media in offer.medias() {
            match media.media() {
                Some("video") => video_pad = self.mux.request_pad_simple("video_%u"),
                Some("audio") => audio_pad = self.mux.request_pad_simple("audio_%u"),
                _ => {}
            }
        }

        let pipeline = self.pipeline.downgrade();
        let report = self.report.clone();
        let closing = self.closing.clone();
        webrtcbin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            let encoding = encoding_name(pad);
            let (depayloader, parser, mux_pad, kind) = match encoding.as_deref() {
                Some("H264") => ("rtph264depay", "h264parse", video_pad.clone(), MediaKind::Video),
                Some("OPUS") => ("rtpopusdepay", "opusparse", audio_pad.clone(), MediaKind::Audio),
                _ => {
                    tracing::warn!(?encoding, "webrtcbin receiver: discarding an unexpected stream");
                    let _ = link_to_fakesink(&pipeline, pad);
                    return;
                }
            };
            let probe = Counter {
                report: report.clone(),
                closing: closing.clone(),
                kind,
            };
            if let Err(error) = link_chain(&pipeline, pad, depayloader, parser, mux_pad, probe) {
                tracing::error!(%error, "webrtcbin receiver: cannot link an incoming {depayloader} chain");
            }
        });
        Ok(())
    }

    fn watch_connection(&self, webrtcbin: &gst::Element) {
        let report = self.report.clone();
        webrtcbin.connect_notify(Some("connection-state"), move |webrtcbin, _| {
            let state =
                webrtcbin.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            if state == gst_webrtc::WebRTCPeerConnectionState::Connected {
                let mut report = report.lock().unwrap();
                report.connected_unix_s.get_or_insert_with(unix_now);
            }
        });
    }

    /// Notes the EOS event at the filesink, which matroskamux sends after it
    /// has written its index and cues.
    fn watch_finalize(&self, sink: &gst::Element) {
        let finalized = self.finalized.clone();
        let sink_pad = sink.static_pad("sink").unwrap();
        sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if event.type_() == gst::EventType::Eos {
                    *finalized.0.lock().unwrap() = true;
                    finalized.1.notify_all();
                }
            }
            gst::PadProbeReturn::Ok
        });
    }

    fn answer(&self, offer: gst_sdp::SDPMessage) -> Result<String, NegotiationError> {
        let internal = |message: String| NegotiationError::new(500, message);
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|error| internal(format!("the pipeline does not start: {error}")))?;
        let webrtcbin = self.webrtcbin();

        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        call_with_promise(&webrtcbin, "set-remote-description", &offer).map_err(|error| {
            NegotiationError::new(406, format!("offer not acceptable: {error}"))
        })?;
        let reply = call_with_promise(&webrtcbin, "create-answer", &None::<gst::Structure>)
            .map_err(|error| {
                NegotiationError::new(406, format!("no answer to this offer: {error}"))
            })?;
        let answer = reply
            .and_then(|reply| {
                reply
                    .get::<gst_webrtc::WebRTCSessionDescription>("answer")
                    .ok()
            })
            .ok_or_else(|| internal("webrtcbin returned no answer".to_string()))?;
        call_with_promise(&webrtcbin, "set-local-description", &answer)
            .map_err(|error| internal(format!("set-local-description failed: {error}")))?;

        wait_for_gathering(&webrtcbin)?;
        let local = webrtcbin
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| internal("webrtcbin has no local description".to_string()))?;
        local
            .sdp()
            .as_text()
            .map_err(|error| internal(format!("the answer cannot be written as SDP: {error}")))
    }

    fn webrtcbin(&self) -> gst::Element {
        self.pipeline
            .iterate_elements()
            .find(|element| element.factory().is_some_and(|f| f.name() == "webrtcbin"))
            .unwrap()
    }

    /// Ends the recording and stops the pipeline. Sends EOS into the muxer,
    /// waits (bounded) until it reaches the filesink, then sets the pipeline
    /// to NULL. Calling it again does nothing.
    pub fn close(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        for pad in self.mux.sink_pads() {
            if pad.current_caps().is_none() {
                // NOTE: a track that never delivered caps is left out of
                // the file, so an m-line without media does not hold up EOS.
                self.mux.release_request_pad(&pad);
                continue;
            }
            pad.send_event(gst::event::Eos::new());
        }
        let has_media = self
            .mux
            .sink_pads()
            .iter()
            .any(|pad| pad.current_caps().is_some());
        if has_media {
            let (lock, condvar) = &*self.finalized;
            let finalized = lock.lock().unwrap();
            let (finalized, _) = condvar
                .wait_timeout_while(finalized, FINALIZE_TIMEOUT, |done| !*done)
                .unwrap();
            if !*finalized {
                tracing::warn!(
                    session = self.number,
                    "webrtcbin receiver: the recording got no EOS in time"
                );
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        self.report.lock().unwrap().closed = true;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Clone, Copy)]
enum MediaKind {
    Video,
    Audio,
}

/// The buffer probe after the parser: counts buffers, and drops them once
/// the session closes so that nothing follows the muxer's EOS.
#[derive(Clone)]
struct Counter {
    report: Arc<Mutex<SessionReport>>,
    closing: Arc<AtomicBool>,
    kind: MediaKind,
}

impl Counter {
    fn count(&self, pad: &gst::Pad, buffer: &gst::BufferRef) -> gst::PadProbeReturn {
        if self.closing.load(Ordering::SeqCst) {
            return gst::PadProbeReturn::Drop;
        }
        let caps = || pad.current_caps().map(|caps| caps.to_string());
        let mut report = self.report.lock().unwrap();
        match self.kind {
            MediaKind::Video => {
                report.video_buffers += 1;
                if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    report.video_keyframes += 1;
                    report.first_keyframe_unix_s.get_or_insert_with(unix_now);
                }
                if report.video_caps.is_none() {
                    report.video_caps = caps();
                }
            }
            MediaKind::Audio => {
                report.audio_buffers += 1;
                report.first_audio_unix_s.get_or_insert_with(unix_now);
                if report.audio_caps.is_none() {
                    report.audio_caps = caps();
                }
            }
        }
        gst::PadProbeReturn::Ok
    }
}

fn encoding_name(pad: &gst::Pad) -> Option<String> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let structure = caps.structure(0)?;
    structure.get::<String>("encoding-name").ok()
}

fn link_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    depayloader: &str,
    parser: &str,
    mux_pad: Option<gst::Pad>,
    counter: Counter,
) -> Result<(), glib::BoolError> {
    let Some(mux_pad) = mux_pad else {
        return link_to_fakesink(pipeline, pad);
    };
    let depayloader = gst::ElementFactory::make(depayloader).build()?;
    let parser = gst::ElementFactory::make(parser).build()?;
    pipeline.add_many([&depayloader, &parser])?;
    depayloader.link(&parser)?;
    let parser_src = parser.static_pad("src").unwrap();
    parser_src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        match info.buffer() {
            Some(buffer) => counter.count(pad, buffer),
            None => gst::PadProbeReturn::Ok,
        }
    });
    parser_src
        .link(&mux_pad)
        .map_err(|error| glib::bool_error!("parser to muxer: {error:?}"))?;
    depayloader.sync_state_with_parent()?;
    parser.sync_state_with_parent()?;
    pad.link(&depayloader.static_pad("sink").unwrap())
        .map_err(|error| glib::bool_error!("webrtcbin to depayloader: {error:?}"))?;
    Ok(())
}

fn link_to_fakesink(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), glib::BoolError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").unwrap())
        .map_err(|error| glib::bool_error!("webrtcbin to fakesink: {error:?}"))?;
    Ok(())
}

/// Emits an action signal that takes a promise and waits for its reply.
fn call_with_promise(
    webrtcbin: &gst::Element,
    signal: &str,
    argument: &dyn ToValue,
) -> Result<Option<gst::Structure>, String> {
    let promise = gst::Promise::new();
    webrtcbin.emit_by_name::<()>(signal, &[argument, &promise]);
    let result = promise.wait();
    if result != gst::PromiseResult::Replied {
        return Err(format!("{signal} ended with {result:?}"));
    }
    let reply = promise.get_reply().map(|reply| reply.to_owned());
    if let Some(error) = reply
        .as_ref()
        .and_then(|reply| reply.get::<glib::Error>("error").ok())
    {
        return Err(format!("{signal} failed: {error}"));
    }
    Ok(reply)
}

fn wait_for_gathering(webrtcbin: &gst::Element) -> Result<(), NegotiationError> {
    let deadline = Instant::now() + GATHERING_TIMEOUT;
    loop {
        let state =
            webrtcbin.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NegotiationError::new(
                500,
                format!(
                    "ICE gathering did not complete in {GATHERING_TIMEOUT:?} (state {state:?})"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
