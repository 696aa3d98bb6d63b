//! One WebRTC peer: encoded frames into RTP payloaders into `webrtcbin`.
//!
//! ```text
//! appsrc (H.264) ─► rtph264pay ─► caps ─► webrtcbin ─► ICE/DTLS/SRTP
//! appsrc (Opus)  ─► rtpopuspay ─► caps ─┘
//! ```
//!
//! The video caps carry the `profile-level-id` read from the encoder's own
//! SPS, so the offer states the profile the stream really has. Both
//! transceivers send only, bundled on one transport.

use super::link::IceServer;
use crate::output::rtmp::avc::{self, nal_type};
use crate::output::{Frame, MediaKind};
use crate::telemetry::latency::PendingFrames;
use crate::telemetry::status::OutputStatus;
use crossbeam_channel::{Receiver, Sender};
use gst_webrtc::{
    WebRTCBundlePolicy, WebRTCICEGatheringState, WebRTCPeerConnectionState,
    WebRTCRTPTransceiverDirection, WebRTCSDPType, WebRTCSessionDescription,
};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// RTP payload types of the offer.
pub const VIDEO_PAYLOAD: u32 = 96;
pub const AUDIO_PAYLOAD: u32 = 111;

/// Largest RTP packet: leaves room for SRTP, TURN and tunnel headers
/// within a 1500-byte path.
const RTP_MTU: u32 = 1200;

/// An event the peer reports to the session thread.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    Disconnected,
    Failed,
    /// The remote side sent a PLI or FIR.
    KeyframeRequested,
    /// An RTCP packet (a report or feedback) arrived from the remote side.
    RtcpReceived,
    /// The remote side closed DTLS (close_notify), or DTLS failed.
    DtlsClosed,
    Error(String),
}

/// The state that decides which frames `push` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaGate {
    /// Before the connection: only the first frame.
    Held,
    /// Connected: nothing until the next video keyframe.
    AwaitingKeyframe,
    Open,
}

enum OfferState {
    Requested(Receiver<Result<WebRTCSessionDescription, String>>),
    /// Set as the local description; waiting for ICE gathering.
    Gathering,
    Sent,
}

pub struct Peer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    video: gst_app::AppSrc,
    /// webrtcbin's sink pad of the video branch.
    video_sink: gst::Pad,
    /// Video frames sent since the media gate opened, until their last RTP
    /// packet reaches `video_sink`; keyed by the PTS the peer gave them.
    handover: Arc<Mutex<PendingFrames>>,
    audio: Option<gst_app::AppSrc>,
    events: Receiver<PeerEvent>,
    /// The sending end of `events`, for watchers set up after the answer.
    event_sender: Sender<PeerEvent>,
    offer: OfferState,
    media: MediaGate,
    /// The DTLS certificate's SHA-256 fingerprint, as SDP writes it.
    fingerprint: String,
    /// The first frame's PTS and the peer's running time when it was
    /// pushed: every frame keeps its distance from the first.
    base: Option<(gst::ClockTime, gst::ClockTime)>,
    video_frames: u64,
    audio_frames: u64,
}

impl Peer {
    /// Builds and starts the peer for a stream that begins with `first`,
    /// an IDR with its SPS, and asks webrtcbin for an offer. ICE gathers on
    /// `local_addresses`, or where libnice chooses when that is empty.
    pub fn new(
        first: &Frame,
        has_audio: bool,
        servers: &[IceServer],
        local_addresses: &[IpAddr],
    ) -> Result<Self, String> {
        route_libnice_messages();
        let profile_level_id = profile_level_id(first)?;
        let pipeline = gst::Pipeline::with_name("whip");
        let webrtc = make("webrtcbin", "webrtc")?;
        webrtc.set_property("bundle-policy", WebRTCBundlePolicy::MaxBundle);
        let certificate = DtlsCertificate::generate()?;
        use_certificate(&webrtc, certificate.pem);
        let fingerprint = certificate.fingerprint;
        configure_ice_servers(&webrtc, servers);
        gather_on(&webrtc, local_addresses);
        pipeline
            .add(&webrtc)
            .map_err(|e| format!("adding webrtcbin: {e}"))?;

        let video_caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", VIDEO_PAYLOAD as i32)
            .field("clock-rate", 90_000i32)
            .field("packetization-mode", "1")
            .field("profile-level-id", profile_level_id.as_str())
            .field("level-asymmetry-allowed", "1")
            .field("rtcp-fb-nack-pli", true)
            .field("rtcp-fb-ccm-fir", true)
            .build();
        let video_input = first
            .sample
            .caps_owned()
            .ok_or("the encoder's first frame has no caps")?;
        let payloader = make("rtph264pay", "video-pay")?;
        // The shared encode's h264parse already puts SPS and PPS in front
        // of every IDR access unit. rtph264pay 1.22 with config-interval -1
        // inserts them before every IDR slice, between the slices of one
        // picture, where they start a new access unit (H.264 7.4.1.2.3).
        payloader.set_property("config-interval", 0i32);
        payloader.set_property_from_str("aggregate-mode", "zero-latency");
        payloader.set_property("pt", VIDEO_PAYLOAD);
        payloader.set_property("mtu", RTP_MTU);
        let (video, video_sink) = add_branch(
            &pipeline,
            &webrtc,
            Branch {
                name: "video",
                input: &video_input,
                payloader,
                rtp_caps: &video_caps,
            },
        )?;

        let audio = if has_audio {
            let audio_caps = gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("payload", AUDIO_PAYLOAD as i32)
                .field("clock-rate", 48_000i32)
                .build();
            let input = gst::Caps::builder("audio/x-opus")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .field("channel-mapping-family", 0i32)
                .build();
            let payloader = make("rtpopuspay", "audio-pay")?;
            payloader.set_property("pt", AUDIO_PAYLOAD);
            payloader.set_property("mtu", RTP_MTU);
            let (source, _) = add_branch(
                &pipeline,
                &webrtc,
                Branch {
                    name: "audio",
                    input: &input,
                    payloader,
                    rtp_caps: &audio_caps,
                },
            )?;
            Some(source)
        } else {
            None
        };

        let (sender, events) = crossbeam_channel::unbounded();
        watch_connection(&webrtc, sender.clone());
        watch_rtcp(&webrtc, sender.clone())?;
        watch_keyframe_requests(&video, sender.clone());

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| first_error(&pipeline, "the WebRTC pipeline failed to start"))?;
        let offer = request_offer(&webrtc);
        Ok(Self {
            pipeline,
            webrtc,
            video,
            video_sink,
            handover: Arc::default(),
            audio,
            events,
            event_sender: sender,
            offer,
            media: MediaGate::Held,
            fingerprint,
            base: None,
            video_frames: 0,
            audio_frames: 0,
        })
    }

    /// Returns the offer's SDP once it is the local description and ICE
    /// gathering is complete (or at once with `force`, once it is set),
    /// so every candidate found is in it. `None`: not ready yet.
    pub fn offer_ready(&mut self, force: bool) -> Option<Result<String, String>> {
        if let OfferState::Requested(receiver) = &self.offer {
            let offer = match receiver.try_recv() {
                Ok(Ok(offer)) => offer,
                Ok(Err(message)) => return Some(Err(message)),
                Err(_) => return None,
            };
            self.webrtc
                .emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
            self.offer = OfferState::Gathering;
        }
        if !matches!(self.offer, OfferState::Gathering) {
            return None;
        }
        let gathered = self
            .webrtc
            .property::<WebRTCICEGatheringState>("ice-gathering-state")
            == WebRTCICEGatheringState::Complete;
        if !gathered && !force {
            return None;
        }
        let description = self
            .webrtc
            .property::<Option<WebRTCSessionDescription>>("local-description")?;
        self.offer = OfferState::Sent;
        Some(
            description
                .sdp()
                .as_text()
                .map(|text| with_fingerprint(&text, &self.fingerprint))
                .map_err(|e| format!("the offer cannot be written as SDP: {e}")),
        )
    }

    /// Applies the server's answer.
    pub fn apply_answer(&self, sdp: &str) -> Result<(), String> {
        let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| "the WHIP server's answer is not valid SDP".to_string())?;
        let answer = WebRTCSessionDescription::new(WebRTCSDPType::Answer, message);
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
        match promise.wait() {
            gst::PromiseResult::Replied => match promise.get_reply() {
                Some(reply) if reply.has_field("error") => Err(format!(
                    "webrtcbin refused the answer: {}",
                    reply
                        .get::<glib::Error>("error")
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )),
                _ => {
                    watch_dtls_close(&self.webrtc, self.event_sender.clone());
                    Ok(())
                }
            },
            other => Err(format!("webrtcbin did not take the answer ({other:?})")),
        }
    }

    /// Starts sending media: from the next video keyframe on (the session
    /// asks the encoder for one), with the audio from the same moment.
    /// Until then only the first frame, which settles the caps, is sent,
    /// because webrtcbin drops what comes before DTLS is up and a burst of
    /// stale frames at connect makes receivers' lip sync jump.
    pub fn start_media(&mut self) {
        self.media = MediaGate::AwaitingKeyframe;
    }

    /// Records into `status` each video frame's hand-over latency: from
    /// the appsink to the frame's last RTP packet (the one with the marker
    /// bit, which rtph264pay sets at the end of an access unit) reaching
    /// webrtcbin's sink pad. Only frames sent after the media gate opened
    /// count, so the held first frame never does.
    pub fn time_handover(&self, status: OutputStatus) {
        let handover = self.handover.clone();
        self.video_sink.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| {
                let now = std::time::Instant::now();
                let mut pending = handover.lock().unwrap_or_else(|p| p.into_inner());
                let mut complete = |buffer: &gst::BufferRef| {
                    if let Some(pts) = buffer.pts().filter(|_| has_rtp_marker(buffer)) {
                        let latency = status.latency();
                        pending.complete_through(pts.nseconds(), |captured| {
                            latency.record_at(captured, now)
                        });
                    }
                };
                match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => complete(buffer),
                    Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(complete),
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    /// Sends one frame, timed from the first frame pushed.
    pub fn push(&mut self, frame: Frame) {
        match self.media {
            MediaGate::Held if self.base.is_some() => return,
            MediaGate::AwaitingKeyframe => {
                if frame.kind != MediaKind::Video || !frame.is_keyframe() {
                    return;
                }
                self.media = MediaGate::Open;
            }
            _ => {}
        }
        let Some(buffer) = frame.sample.buffer() else {
            return;
        };
        let Some(pts) = buffer.pts() else { return };
        let (base_in, base_out) = *self.base.get_or_insert_with(|| {
            let now = self
                .pipeline
                .current_running_time()
                .unwrap_or(gst::ClockTime::ZERO);
            (pts, now)
        });
        let Some(offset) = pts.checked_sub(base_in) else {
            // Audio from just before the first keyframe.
            return;
        };
        let mut buffer = buffer.copy();
        {
            let buffer = buffer.get_mut().expect("a fresh copy is writable");
            buffer.set_pts(base_out + offset);
            buffer.set_dts(base_out + offset);
        }
        if self.media == MediaGate::Open && frame.kind == MediaKind::Video {
            self.handover
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((base_out + offset).nseconds(), frame.captured);
        }
        let source = match frame.kind {
            MediaKind::Video => {
                self.video_frames += 1;
                &self.video
            }
            MediaKind::Audio => match &self.audio {
                Some(audio) => {
                    self.audio_frames += 1;
                    audio
                }
                None => return,
            },
        };
        // A flow error here shows on the bus, which `next_event` reads.
        let _ = source.push_buffer(buffer);
    }

    /// Returns the next event, if one is waiting.
    pub fn next_event(&self) -> Option<PeerEvent> {
        if let Some(message) = self
            .pipeline
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        {
            if let gst::MessageView::Error(error) = message.view() {
                let source = error
                    .src()
                    .map(|s| s.name().to_string())
                    .unwrap_or_default();
                return Some(PeerEvent::Error(format!("{source}: {}", error.error())));
            }
        }
        self.events.try_recv().ok()
    }

    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    pub fn audio_frames(&self) -> u64 {
        self.audio_frames
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends libnice's GLib messages to the bridge's log at debug level. Its
/// warnings on teardown (TURN refreshes still pending) are expected and
/// would otherwise print raw to stderr.
fn route_libnice_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        glib::log_set_handler(
            Some("libnice"),
            glib::LogLevels::all(),
            false,
            false,
            |_, level, message| tracing::debug!(?level, "libnice: {message}"),
        );
    });
}

fn make(factory: &str, name: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| {
            let package = match factory {
                "webrtcbin" => "gstreamer1.0-plugins-bad and gstreamer1.0-nice",
                "rtpopuspay" | "rtph264pay" => "gstreamer1.0-plugins-good",
                _ => "the GStreamer plugins",
            };
            format!("the GStreamer element {factory} is missing; install {package}")
        })
}

/// One media branch: its input caps, payloader and RTP caps.
struct Branch<'a> {
    name: &'a str,
    input: &'a gst::Caps,
    payloader: gst::Element,
    rtp_caps: &'a gst::Caps,
}

/// Returns whether an RTP packet has the marker bit, which the H.264
/// payload format (RFC 6184, 5.1) sets on an access unit's last packet.
fn has_rtp_marker(buffer: &gst::BufferRef) -> bool {
    let mut header = [0u8; 2];
    // copy_to_slice panics when the buffer is shorter than the slice.
    buffer.size() >= header.len()
        && buffer.copy_to_slice(0, &mut header).is_ok()
        && header[1] & 0x80 != 0
}

/// Adds `appsrc ! payloader ! capsfilter` and links it to a new send-only
/// transceiver of webrtcbin whose codec preferences are the RTP caps.
/// Returns the appsrc and webrtcbin's sink pad for the branch.
fn add_branch(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    branch: Branch<'_>,
) -> Result<(gst_app::AppSrc, gst::Pad), String> {
    let Branch {
        name,
        input,
        payloader,
        rtp_caps,
    } = branch;
    let source = gst_app::AppSrc::builder()
        .name(format!("{name}-src"))
        .caps(input)
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(false)
        .block(false)
        .max_bytes(16 * 1024 * 1024)
        .build();
    let filter = make("capsfilter", &format!("{name}-caps"))?;
    filter.set_property("caps", rtp_caps);
    let elements = [source.upcast_ref::<gst::Element>(), &payloader, &filter];
    pipeline
        .add_many(elements)
        .map_err(|e| format!("adding the {name} branch: {e}"))?;
    gst::Element::link_many(elements).map_err(|e| format!("linking the {name} branch: {e}"))?;

    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or("webrtcbin gave no sink pad")?;
    let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendonly);
    transceiver.set_property("codec-preferences", rtp_caps);
    filter
        .static_pad("src")
        .expect("capsfilter src pad")
        .link(&sink)
        .map_err(|e| format!("linking the {name} branch to webrtcbin: {e:?}"))?;
    Ok((source, sink))
}

/// The peer's DTLS identity: a fresh self-signed ECDSA P-256 certificate.
/// webrtcbin's default RSA certificate meets no shared cipher suite with
/// peers that offer only ECDSA suites (aiortc among them); browsers use
/// ECDSA too.
struct DtlsCertificate {
    /// Certificate and private key, PEM, as `dtlssrtpdec` takes them.
    pem: String,
    /// `sha-256 AB:CD:…`, the value of the offer's `a=fingerprint`.
    fingerprint: String,
}

impl DtlsCertificate {
    fn generate() -> Result<Self, String> {
        let fail = |e: rcgen::Error| format!("failed to make the DTLS certificate: {e}");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
        let certificate = rcgen::CertificateParams::new(vec!["bridge".to_string()])
            .map_err(fail)?
            .self_signed(&key)
            .map_err(fail)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate.der());
        let hex: Vec<String> = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect();
        Ok(Self {
            pem: format!("{}{}", certificate.pem(), key.serialize_pem()),
            fingerprint: format!("sha-256 {}", hex.join(":")),
        })
    }
}

/// Replaces every `a=fingerprint` line of `sdp` with `fingerprint`.
/// webrtcbin 1.22 hashes the whole PEM it was given, private key included,
/// so the fingerprint it writes for a certificate of our own is wrong.
fn with_fingerprint(sdp: &str, fingerprint: &str) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            if line.starts_with("a=fingerprint:") {
                format!("a=fingerprint:{fingerprint}\r\n")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Sets `pem` on each DTLS decoder webrtcbin creates, before its DTLS
/// connection starts.
fn use_certificate(webrtc: &gst::Element, pem: String) {
    let bin = webrtc
        .downcast_ref::<gst::Bin>()
        .expect("webrtcbin is a bin");
    bin.connect_deep_element_added(move |_, _, element| {
        let is_decoder = element
            .factory()
            .is_some_and(|factory| factory.name() == "dtlssrtpdec");
        if is_decoder {
            element.set_property("pem", &pem);
        }
    });
}

/// Gives webrtcbin the STUN server (it takes one) and every TURN server.
fn configure_ice_servers(webrtc: &gst::Element, servers: &[IceServer]) {
    if let Some(stun) = servers.iter().find(|server| !server.is_turn()) {
        webrtc.set_property("stun-server", stun.webrtcbin_uri().expose());
    }
    let stun_count = servers.iter().filter(|server| !server.is_turn()).count();
    if stun_count > 1 {
        tracing::info!("webrtcbin takes one STUN server; the first is used");
    }
    for server in servers.iter().filter(|server| server.is_turn()) {
        let added =
            webrtc.emit_by_name::<bool>("add-turn-server", &[&server.webrtcbin_uri().expose()]);
        if !added {
            tracing::warn!(server = %server.describe(), "webrtcbin refused a TURN server");
        }
    }
}

/// Limits ICE gathering to `addresses`, when there are any.
fn gather_on(webrtc: &gst::Element, addresses: &[IpAddr]) {
    if addresses.is_empty() {
        return;
    }
    let agent = webrtc.property::<glib::Object>("ice-agent");
    for address in addresses {
        let added = agent.emit_by_name::<bool>("add-local-ip-address", &[&address.to_string()]);
        if !added {
            tracing::warn!(%address, "libnice did not take a local address for ICE");
        }
    }
    tracing::debug!(
        ?addresses,
        "gathering ICE candidates on these local addresses"
    );
}

/// Asks for an offer; the returned state receives it.
fn request_offer(webrtc: &gst::Element) -> OfferState {
    let (sender, receiver) = crossbeam_channel::bounded(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let offer = match reply {
            Ok(Some(reply)) => match reply.get::<WebRTCSessionDescription>("offer") {
                Ok(offer) => Ok(offer),
                Err(_) => Err(match reply.get::<glib::Error>("error") {
                    Ok(error) => format!("webrtcbin made no offer: {error}"),
                    Err(_) => "webrtcbin made no offer".to_string(),
                }),
            },
            Ok(None) => Err("webrtcbin made no offer".to_string()),
            Err(error) => Err(format!("webrtcbin made no offer ({error:?})")),
        };
        let _ = sender.send(offer);
    });
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    OfferState::Requested(receiver)
}

fn watch_connection(webrtc: &gst::Element, events: Sender<PeerEvent>) {
    // The callback runs on a GStreamer thread: the output's span gives its
    // log events the output and attempt fields.
    let span = tracing::Span::current();
    webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
        let _entered = span.enter();
        let state = webrtc.property::<WebRTCPeerConnectionState>("connection-state");
        tracing::debug!(?state, "WebRTC connection state");
        let event = match state {
            WebRTCPeerConnectionState::Connected => PeerEvent::Connected,
            WebRTCPeerConnectionState::Disconnected => PeerEvent::Disconnected,
            WebRTCPeerConnectionState::Failed | WebRTCPeerConnectionState::Closed => {
                PeerEvent::Failed
            }
            _ => return,
        };
        let _ = events.send(event);
    });
}

/// Reports each RTCP packet the remote side sends: webrtcbin's `rtpbin`
/// emits `on-ssrc-active` for every receiver or sender report it reads.
fn watch_rtcp(webrtc: &gst::Element, events: Sender<PeerEvent>) -> Result<(), String> {
    let rtpbin = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"))
        .ok_or("webrtcbin has no rtpbin inside")?;
    rtpbin.connect("on-ssrc-active", false, move |_| {
        let _ = events.send(PeerEvent::RtcpReceived);
        None
    });
    Ok(())
}

/// Reports the end of DTLS on the bundled transport. webrtcbin 1.22 keeps
/// its connection state "connected" after the remote side sent a DTLS
/// close_notify, so the transport's own state is watched.
fn watch_dtls_close(webrtc: &gst::Element, events: Sender<PeerEvent>) {
    let transport = webrtc
        .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&0i32])
        .and_then(|transceiver| {
            transceiver.property::<Option<gst_webrtc::WebRTCRTPSender>>("sender")
        })
        .and_then(|sender| sender.property::<Option<gst_webrtc::WebRTCDTLSTransport>>("transport"));
    let Some(transport) = transport else {
        tracing::warn!("webrtcbin has no DTLS transport: a DTLS close goes unnoticed");
        return;
    };
    let span = tracing::Span::current();
    transport.connect_notify(Some("state"), move |transport, _| {
        let _entered = span.enter();
        let state = transport.property::<gst_webrtc::WebRTCDTLSTransportState>("state");
        tracing::debug!(?state, "DTLS transport state");
        if matches!(
            state,
            gst_webrtc::WebRTCDTLSTransportState::Closed
                | gst_webrtc::WebRTCDTLSTransportState::Failed
        ) {
            let _ = events.send(PeerEvent::DtlsClosed);
        }
    });
}

/// Turns the force-key-unit events that webrtcbin sends upstream for a PLI
/// or FIR into events for the session thread, which asks the encoder.
fn watch_keyframe_requests(video: &gst_app::AppSrc, events: Sender<PeerEvent>) {
    let pad = video.static_pad("src").expect("appsrc src pad");
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let is_request = info
            .event()
            .is_some_and(|event| gstreamer_video::ForceKeyUnitEvent::is(event));
        if is_request {
            let _ = events.send(PeerEvent::KeyframeRequested);
            // Handled, not Drop: gstreamer-rs 0.24 takes the event out of
            // the probe's data and releases it itself. On Drop, GStreamer
            // 1.22 unrefs that emptied data and logs a CRITICAL per PLI.
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });
}

/// Reads `profile-level-id` (profile_idc, constraint flags, level_idc as
/// six hex digits) from the SPS in an IDR access unit.
fn profile_level_id(frame: &Frame) -> Result<String, String> {
    let buffer = frame
        .sample
        .buffer()
        .ok_or("the encoder's first frame is empty")?;
    let map = buffer
        .map_readable()
        .map_err(|_| "the encoder's first frame cannot be read")?;
    let sps = avc::split_annex_b(map.as_slice())
        .into_iter()
        .find(|unit| avc::nal_unit_type(unit) == nal_type::SPS)
        .ok_or("the encoder's first keyframe carries no SPS")?;
    match sps.get(1..4) {
        Some(bytes) => Ok(format!("{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2])),
        None => Err("the encoder sent an SPS too short to hold its profile".into()),
    }
}

fn first_error(pipeline: &gst::Pipeline, fallback: &str) -> String {
    pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|message| match message.view() {
            gst::MessageView::Error(error) => Some(error.error().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| fallback.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyframe(data: &[u8]) -> Frame {
        gst::init().unwrap();
        let buffer = gst::Buffer::from_slice(data.to_vec());
        Frame::new(
            MediaKind::Video,
            gst::Sample::builder().buffer(&buffer).build(),
        )
    }

    #[test]
    fn rtp_marker_read_from_second_byte() {
        gst::init().unwrap();
        let marked = gst::Buffer::from_slice([0x80u8, 0x80 | 96, 0, 1]);
        let unmarked = gst::Buffer::from_slice([0x80u8, 96, 0, 2]);
        let short = gst::Buffer::from_slice([0x80u8]);
        assert!(has_rtp_marker(&marked));
        assert!(!has_rtp_marker(&unmarked));
        assert!(!has_rtp_marker(&short));
    }

    #[test]
    fn profile_level_id_read_from_the_sps() {
        let access_unit = [
            0, 0, 0, 1, 0x09, 0xf0, // access unit delimiter
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, // SPS: 42c01f
            0, 0, 1, 0x68, 0xce, // PPS
            0, 0, 1, 0x65, 0x88, // IDR slice
        ];
        assert_eq!(profile_level_id(&keyframe(&access_unit)).unwrap(), "42c01f");
        let error = profile_level_id(&keyframe(&[0, 0, 1, 0x65, 0x88])).unwrap_err();
        assert!(error.contains("no SPS"), "{error}");
        let error = profile_level_id(&keyframe(&[0, 0, 1, 0x67, 0x42])).unwrap_err();
        assert!(error.contains("too short"), "{error}");
    }

    #[test]
    fn keyframe_request_taken_without_critical() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        gst::init().unwrap();
        let criticals = Arc::new(AtomicUsize::new(0));
        let counter = criticals.clone();
        let handler = glib::log_set_handler(
            Some("GStreamer"),
            glib::LogLevels::LEVEL_CRITICAL,
            false,
            false,
            move |_, _, _| {
                counter.fetch_add(1, Ordering::SeqCst);
            },
        );
        let video = gst_app::AppSrc::builder().build();
        let (sender, events) = crossbeam_channel::unbounded();
        watch_keyframe_requests(&video, sender);
        let downstream = gst::Pad::builder(gst::PadDirection::Sink).build();
        video.static_pad("src").unwrap().link(&downstream).unwrap();
        video.set_state(gst::State::Paused).unwrap();
        downstream.set_active(true).unwrap();

        let request = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        downstream.push_event(request);

        video.set_state(gst::State::Null).unwrap();
        glib::log_remove_handler(Some("GStreamer"), handler);
        assert!(matches!(
            events.try_recv(),
            Ok(PeerEvent::KeyframeRequested)
        ));
        assert_eq!(criticals.load(Ordering::SeqCst), 0, "GStreamer criticals");
    }

    #[test]
    fn fingerprint_is_the_certificates_own() {
        let certificate = DtlsCertificate::generate().unwrap();
        let der = certificate
            .pem
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect::<String>();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, der).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        let expected = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(certificate.fingerprint, format!("sha-256 {expected}"));
        assert!(certificate.pem.contains("BEGIN PRIVATE KEY"));
        assert_ne!(
            DtlsCertificate::generate().unwrap().fingerprint,
            certificate.fingerprint,
            "each peer has its own certificate"
        );
    }

    #[test]
    fn every_fingerprint_line_replaced() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 AA:BB\r\n\
                   m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 AA:BB\r\na=mid:audio1\r\n";
        let fixed = with_fingerprint(sdp, "sha-256 01:02");
        assert_eq!(fixed.matches("a=fingerprint:sha-256 01:02\r\n").count(), 2);
        assert!(!fixed.contains("AA:BB"));
        assert!(fixed.ends_with("a=mid:audio1\r\n"));
    }
}
