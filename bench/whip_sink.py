#!/usr/bin/python3
"""WHIP (RFC 9725) receiver for the benchmark that counts RTP bytes and decodes nothing.

Usage: /usr/bin/python3 bench/whip_sink.py

It listens on a free TCP port on 127.0.0.1 and replies to non-trickle
offers at http://127.0.0.1:PORT/<path>/whip with an SDP answer from
GStreamer's webrtcbin, which gathers ICE candidates on 127.0.0.1 only. Each incoming RTP stream goes straight
into a fakesink, so the receiver costs as little CPU as a WebRTC peer can:
ICE, DTLS, SRTP and nothing after. A request without an
`Authorization: Bearer` header gets 401, but the token itself is not
verified, since the benchmark measures cost, not the token check.

stdout, one JSON object per line:
  {"event": "listening", "port": N}              once the server accepts requests
  {"event": "connected", "session": N}           when the first RTP buffer arrives
  {"event": "stopped", "sessions": N, "bytes": B} after SIGTERM or SIGINT
"""

import http.server
import json
import re
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

LOOPBACK_ADDRESS = "127.0.0.1"
PATH_PATTERN = re.compile(r"^/([A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*)/whip(?:/([0-9]+))?$")
# Seconds to wait for webrtcbin's answer and for ICE gathering to complete.
ANSWER_TIMEOUT_S = 10


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Sessions:
    """The webrtcbin pipelines, one per session, and the RTP bytes they received."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pipelines = {}
        self.received_bytes = 0
        self.count = 0

    def count_buffer(self, session, first_seen, info):
        buffer = info.get_buffer()
        with self.lock:
            self.received_bytes += buffer.get_size()
        if not first_seen.is_set():
            first_seen.set()
            emit("connected", session=session)
        return Gst.PadProbeReturn.OK

    def create(self, offer_text):
        """Build a session for the offer and return (session number, answer SDP text)."""
        with self.lock:
            self.count += 1
            session = self.count
        pipeline = Gst.Pipeline.new(f"session-{session}")
        webrtc = Gst.ElementFactory.make("webrtcbin", None)
        webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        agent = webrtc.get_property("ice-agent")
        agent.set_property("ice-tcp", False)
        agent.emit("add-local-ip-address", LOOPBACK_ADDRESS)
        pipeline.add(webrtc)
        first_seen = threading.Event()

        def on_pad_added(_element, pad):
            if pad.get_direction() != Gst.PadDirection.SRC:
                return
            sink = Gst.ElementFactory.make("fakesink", None)
            sink.set_property("sync", False)
            sink.set_property("async", False)
            pipeline.add(sink)
            sink.sync_state_with_parent()
            pad.add_probe(Gst.PadProbeType.BUFFER, lambda _pad, info: self.count_buffer(session, first_seen, info))
            pad.link(sink.get_static_pad("sink"))

        webrtc.connect("pad-added", on_pad_added)
        gathered = threading.Event()

        def on_gathering_state(element, _spec):
            if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
                gathered.set()

        webrtc.connect("notify::ice-gathering-state", on_gathering_state)
        pipeline.set_state(Gst.State.PLAYING)

        result, message = GstSdp.SDPMessage.new_from_text(offer_text)
        if result != GstSdp.SDPResult.OK:
            pipeline.set_state(Gst.State.NULL)
            raise ValueError("the offer is not valid SDP")
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, message)
        promise = Gst.Promise.new()
        webrtc.emit("set-remote-description", offer, promise)
        promise.wait()
        promise = Gst.Promise.new()
        webrtc.emit("create-answer", None, promise)
        promise.wait()
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply is not None and reply.has_field("answer") else None
        if answer is None:
            pipeline.set_state(Gst.State.NULL)
            raise ValueError("webrtcbin created no answer for the offer")
        promise = Gst.Promise.new()
        webrtc.emit("set-local-description", answer, promise)
        promise.wait()
        if not gathered.wait(ANSWER_TIMEOUT_S):
            pipeline.set_state(Gst.State.NULL)
            raise TimeoutError(f"ICE gathering did not complete within {ANSWER_TIMEOUT_S} s")
        with self.lock:
            self.pipelines[session] = pipeline
        return session, webrtc.get_property("local-description").sdp.as_text()

    def delete(self, session):
        with self.lock:
            pipeline = self.pipelines.pop(session, None)
        if pipeline is None:
            return False
        pipeline.set_state(Gst.State.NULL)
        return True

    def stop(self):
        with self.lock:
            sessions = list(self.pipelines)
        for session in sessions:
            self.delete(session)


SESSIONS = Sessions()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        """Return the match for the request's path, or reply 404 and return None."""
        match = PATH_PATTERN.match(self.path.split("?", 1)[0])
        if match is None:
            self.reply(404, b"not found\n")
        return match

    def authorized(self):
        if self.headers.get("Authorization", "").startswith("Bearer "):
            return True
        self.reply(401, b"missing Bearer token\n", [("WWW-Authenticate", "Bearer")])
        return False

    def do_OPTIONS(self):
        if self.route() is not None:
            self.reply(204, headers=[("Accept-Post", "application/sdp")])

    def do_POST(self):
        match = self.route()
        if match is None or not self.authorized():
            return
        if match.group(2) is not None:
            self.reply(405, b"POST goes to the endpoint, not to a session\n")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/sdp":
            self.reply(415, b"Content-Type must be application/sdp\n")
            return
        offer = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        try:
            session, answer = SESSIONS.create(offer)
        except (ValueError, TimeoutError) as error:
            self.reply(400, f"{error}\n".encode())
            return
        location = f"/{match.group(1)}/whip/{session}"
        self.reply(
            201,
            answer.encode(),
            [("Content-Type", "application/sdp"), ("Location", location), ("ETag", f'"{session}"')],
        )

    def do_DELETE(self):
        match = self.route()
        if match is None or not self.authorized():
            return
        if match.group(2) is not None and SESSIONS.delete(int(match.group(2))):
            self.reply(200)
        else:
            self.reply(404, b"no such session\n")

    def log_message(self, format, *args):
        # Request lines carry no token, but the benchmark keeps stderr quiet.
        pass


def main():
    Gst.init(None)
    server = http.server.ThreadingHTTPServer((LOOPBACK_ADDRESS, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    loop = GLib.MainLoop()

    def stop():
        server.shutdown()
        SESSIONS.stop()
        emit("stopped", sessions=SESSIONS.count, bytes=SESSIONS.received_bytes)
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    emit("listening", port=server.server_address[1])
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
