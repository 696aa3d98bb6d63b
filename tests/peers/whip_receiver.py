"""WHIP (RFC 9725) receiver for tests of the WHIP output, built on aiortc.

It accepts non-trickle offers at http://127.0.0.1:PORT/<path>/whip, replies
with an answer that contains all its ICE candidates, and records each session
(see whip_recording.py). ICE uses 127.0.0.1 only and no STUN or TURN server.

COMMAND LINE

  .venv/bin/python tests/peers/whip_receiver.py --record-dir DIR [options]

  --port N              TCP port on 127.0.0.1; 0 (default) picks a free one.
  --record-dir DIR      Session N is recorded into DIR/session-N/.
  --jwks-url URL        Verify Bearer tokens: ES256 with the JWKS key that
                        the token's kid names, aud containing --audience,
                        action "publish", a path claim equal to <path>, exp
                        not passed, can_publish true when present.
  --audience AUD        Default trax-mediamtx-talk.
  --token-file FILE     Without --jwks-url: the token must equal this file's
                        content. With neither, every request passes.
  --pli-after-s S       Send a PLI S seconds after a session connects;
                        repeatable.
  --close-after-s S     Close each session's peer connection S seconds
                        after it connects (a DTLS close_notify goes to
                        the publisher), as a server that drops its
                        publishers does.
  --dtls-role passive|active
                        The answer's a=setup for an offer with
                        a=setup:actpass (default active, aiortc's own
                        choice: this receiver is the DTLS client). As a
                        DTLS client, aiortc 1.16 offers only ECDHE-ECDSA
                        cipher suites, so a publisher must present an
                        ECDSA certificate; passive lets the publisher be
                        the client instead.
  --debug               Log aiortc's and aioice's debug messages to stderr
                        (SDP, ICE checks, DTLS; tokens are not among them).

HTTP

  POST   /<path>/whip            Content-Type application/sdp, the offer.
                                 201 with the answer, Location
                                 /<path>/whip/<session id> and an ETag.
  DELETE /<path>/whip/<id>       200 and the session's peer connection
                                 closes; 404 for an unknown id.
  OPTIONS /<path>/whip           204 with Accept-Post: application/sdp.

  <path> is one or more '/'-separated segments of letters, digits and
  "._~-", without "." or ".." segments; other targets are 404. Checks in
  order: path (404), method (405), Bearer token (401, with
  WWW-Authenticate: Bearer), Content-Type (415), SDP text (400), media lines:
  at most one video and one audio m-line and no application (data channel)
  m-line (406), codecs aiortc can receive (406). Error bodies are one line
  of text. Each request is logged to stderr as method, target, status and
  the reason of a rejection, never the token.

STDOUT: one JSON object per line, flushed at once.

  {"event":"listening","port":N,"origin":"http://127.0.0.1:N"}   first line
  {"event":"session","session":N,"id":ID,"path":P,"directory":D}  on 201
  {"event":"connected","session":N}        ICE and DTLS are up
  {"event":"deleted","session":N}          a DELETE arrived
  {"event":"closed","session":N,"state":S} the peer connection closed
  {"event":"stopped","sessions":N}         after SIGTERM or SIGINT, before
                                           exit status 0

Run with the project's .venv/bin/python (scripts/install-peers.sh), which
has aiortc 1.16.0 and sees the system's python3-cryptography.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aioice.ice  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    sdp,
)
from aiortc.exceptions import OperationError  # noqa: E402

import whip_http  # noqa: E402
import whip_recording  # noqa: E402
import whip_tokens  # noqa: E402
from whip_http import HttpError, Response  # noqa: E402

HOST = "127.0.0.1"
SEGMENT = r"[A-Za-z0-9._~-]+"
TARGET_PATTERN = re.compile(
    rf"^/(?P<path>{SEGMENT}(?:/{SEGMENT})*)/whip(?:/(?P<id>[0-9a-f]{{32}}))?$"
)
REPORT_INTERVAL_S = 0.5
CLOSE_TIMEOUT_S = 5


def emit(event: str, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def log(message: str):
    sys.stderr.write(f"whip_receiver: {message}\n")
    sys.stderr.flush()


def only_loopback_addresses(use_ipv4: bool, use_ipv6: bool):
    """Gather ICE host candidates on 127.0.0.1, which aioice 0.13 skips."""
    return ["127.0.0.1"] if use_ipv4 else []


def parse_target(target: str):
    """Return (path, session id or None), or raise a 404 HttpError."""
    match = TARGET_PATTERN.match(target.split("?", 1)[0])
    if match is None or any(s in (".", "..") for s in match["path"].split("/")):
        raise HttpError(404, f"no WHIP endpoint here: expected /<path>/whip, got {target!r}")
    return match["path"], match["id"]


def bearer_token(request):
    value = request.header("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def check_media_lines(offer: str):
    kinds = [line[2:].split(" ", 1)[0] for line in offer.splitlines() if line.startswith("m=")]
    if not kinds:
        raise HttpError(400, "offer has no m-line")
    if kinds.count("video") > 1:
        raise HttpError(406, f"offer has {kinds.count('video')} video m-lines; at most 1 is accepted")
    if kinds.count("audio") > 1:
        raise HttpError(406, f"offer has {kinds.count('audio')} audio m-lines; at most 1 is accepted")
    if "application" in kinds:
        raise HttpError(406, "offer has a data channel (application m-line); none is accepted")
    others = sorted(set(kinds) - {"video", "audio"})
    if others:
        raise HttpError(406, f"offer has m-lines of unsupported kinds {others}")


def prefer_dtls_role(offer: str, role: str) -> str:
    """Return the offer edited so that aiortc's answer has a=setup:`role`.

    For an actpass offer, aiortc's answer is active (DTLS client). Told that
    the offerer is the client, aiortc's answer is passive (DTLS server).
    """
    if role == "active":
        return offer
    return offer.replace("a=setup:actpass", "a=setup:active")


def negotiated_codecs(answer: str):
    """Return ({"video": codec fields}, ...) of the answer's first codec per kind."""
    codecs = {"video": None, "audio": None}
    for media in sdp.SessionDescription.parse(answer).media:
        if media.kind in codecs and media.rtp.codecs:
            codec = media.rtp.codecs[0]
            codecs[media.kind] = {
                "codec": codec.mimeType,
                "payload_type": codec.payloadType,
                "clock_rate": codec.clockRate,
                "channels": codec.channels,
                "parameters": {k: str(v) for k, v in codec.parameters.items()},
            }
    return codecs


class Session:
    def __init__(self, number: int, path: str, token, directory: str, post_s: float):
        self.number = number
        self.id = secrets.token_hex(16)
        self.path = path
        self.token = token
        self.etag = f'"{secrets.token_hex(8)}"'
        self.recording = whip_recording.Recording(directory, number, self.id, path, post_s)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tasks = []
        self.closed = False

    @property
    def location(self) -> str:
        return f"/{self.path}/whip/{self.id}"


class Receiver:
    def __init__(self, args):
        self.args = args
        self.sessions = {}
        self.session_count = 0
        self.stopping = asyncio.Event()
        if args.jwks_url:
            self.check_token = whip_tokens.JwksTokenCheck(
                args.jwks_url, args.audience, args.jwks_timeout_s, log
            )
        elif args.token_file:
            self.check_token = whip_tokens.FileTokenCheck(args.token_file)
        else:
            self.check_token = whip_tokens.AnyTokenCheck()

    async def handle_connection(self, reader, writer):
        try:
            while True:
                try:
                    request = await whip_http.read_request(reader)
                except HttpError as error:
                    await whip_http.write_response(writer, error.response, keep_alive=False)
                    log(f"- - {error.response.status} ({error})")
                    return
                if request is None:
                    return
                response, reason = await self.route(request)
                keep_alive = whip_http.keeps_alive(request)
                await whip_http.write_response(writer, response, keep_alive)
                suffix = f" ({reason})" if reason else ""
                log(f"{request.method} {request.target} {response.status}{suffix}")
                if not keep_alive:
                    return
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            writer.close()

    async def route(self, request):
        """Return (response, reason for a rejection or None)."""
        try:
            path, session_id = parse_target(request.target)
            if session_id is None:
                return await self.route_endpoint(request, path), None
            return await self.route_resource(request, path, session_id), None
        except HttpError as error:
            return error.response, str(error)

    async def route_endpoint(self, request, path: str):
        if request.method == "OPTIONS":
            return Response(204, headers={"Allow": "OPTIONS, POST", "Accept-Post": "application/sdp"})
        if request.method != "POST":
            raise_method_not_allowed(request.method, "OPTIONS, POST")
        token = self.authorize(request, path)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            raise HttpError(415, f"Content-Type {content_type or 'none'!r} is not application/sdp")
        try:
            offer = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "offer is not UTF-8 text") from None
        if not offer.startswith("v=0"):
            raise HttpError(400, "offer is not SDP: it does not start with v=0")
        check_media_lines(offer)
        return await self.create_session(path, token, offer)

    async def route_resource(self, request, path: str, session_id: str):
        if request.method != "DELETE":
            raise_method_not_allowed(request.method, "DELETE")
        session = self.sessions.get(session_id)
        if session is None or session.path != path:
            raise HttpError(404, "no such WHIP session")
        self.authorize(request, path)
        del self.sessions[session_id]
        session.recording.note(delete_received=True, delete_s=time.time())
        emit("deleted", session=session.number)
        await self.close_session(session)
        return Response.text(200, "session closed")

    def authorize(self, request, path: str):
        token = bearer_token(request)
        reason = self.check_token(token, path)
        if reason is not None:
            error = HttpError(401, reason)
            error.response.headers["WWW-Authenticate"] = "Bearer"
            raise error
        return token

    async def create_session(self, path: str, token, offer: str):
        post_s = time.time()
        self.session_count += 1
        number = self.session_count
        directory = os.path.join(self.args.record_dir, f"session-{number}")
        session = Session(number, path, token, directory, post_s)
        try:
            answer = await self.negotiate(session, offer)
        except OperationError as error:
            await self.close_session(session)
            raise HttpError(406, f"offer not acceptable: {error}") from None
        except ValueError as error:
            await self.close_session(session)
            raise HttpError(400, f"offer rejected: {error}") from None
        self.sessions[session.id] = session
        session.tasks.append(asyncio.create_task(self.refresh_report(session)))
        for delay_s in self.args.pli_after_s:
            session.tasks.append(asyncio.create_task(self.send_pli_later(session, delay_s)))
        if self.args.close_after_s > 0:
            session.tasks.append(asyncio.create_task(self.close_later(session)))
        emit("session", session=number, id=session.id, path=path, directory=directory)
        headers = {
            "Content-Type": "application/sdp",
            "Location": session.location,
            "ETag": session.etag,
        }
        return Response(201, answer.encode("utf-8"), headers)

    async def negotiate(self, session: Session, offer: str) -> str:
        pc = session.pc
        recording = session.recording
        pc.on("track", lambda track: self.on_track(session, track))
        pc.on("connectionstatechange", lambda: self.on_connection_state(session))
        pc.on("iceconnectionstatechange", lambda: self.on_ice_state(session))
        offer = prefer_dtls_role(offer, self.args.dtls_role)
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                self.count_plis(session, transceiver.receiver)
        # aiortc gathers every candidate inside setLocalDescription, so the
        # local description is complete (non-trickle) when it returns.
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        codecs = negotiated_codecs(answer)
        recording.set_codecs(codecs["video"], codecs["audio"])
        setup = re.search(r"^a=setup:(\w+)", answer, re.MULTILINE)
        recording.note(answer_s=time.time(), answer_setup=setup[1] if setup else None)
        return answer

    def on_track(self, session: Session, track):
        session.recording.watch_track(track)
        if track.kind == "video":
            consume = session.recording.consume_video(track)
        else:
            consume = session.recording.consume_audio(track)
        session.tasks.append(asyncio.create_task(consume))

    def count_plis(self, session: Session, receiver):
        send_pli = receiver._send_rtcp_pli

        async def counting_send_pli(media_ssrc):
            session.recording.note_pli()
            await send_pli(media_ssrc)

        receiver._send_rtcp_pli = counting_send_pli

    def on_ice_state(self, session: Session):
        if session.pc.iceConnectionState in ("connected", "completed"):
            session.recording.note_once("ice_connected_s", time.time())

    def on_connection_state(self, session: Session):
        state = session.pc.connectionState
        session.recording.note(connection_state=state)
        if state == "connected":
            session.recording.note_once("connected_s", time.time())
            emit("connected", session=session.number)
        elif state in ("failed", "closed") and not session.closed:
            asyncio.ensure_future(self.close_session(session))

    async def send_pli_later(self, session: Session, delay_s: float):
        while session.recording.report()["connected_s"] is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(delay_s)
        for transceiver in session.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            for source in transceiver.receiver.getSynchronizationSources():
                await transceiver.receiver._send_rtcp_pli(source.source)

    async def close_later(self, session: Session):
        while session.recording.report()["connected_s"] is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(self.args.close_after_s)
        self.sessions.pop(session.id, None)
        await self.close_session(session)

    async def refresh_report(self, session: Session):
        while True:
            session.recording.write_report()
            await asyncio.sleep(REPORT_INTERVAL_S)

    async def close_session(self, session: Session):
        if session.closed:
            return
        session.closed = True
        current = asyncio.current_task()
        for task in session.tasks:
            if task is not current:
                task.cancel()
        try:
            await asyncio.wait_for(session.pc.close(), CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            log(f"session {session.number}: peer connection did not close in {CLOSE_TIMEOUT_S} s")
        for transceiver in session.pc.getTransceivers():
            if transceiver.receiver.track is not None:
                session.recording.forget_track(transceiver.receiver.track)
        session.recording.note(closed_s=time.time(), connection_state=session.pc.connectionState)
        session.recording.close_files()
        session.recording.write_report()
        emit("closed", session=session.number, state=session.pc.connectionState)

    async def run(self) -> int:
        server = await asyncio.start_server(self.handle_connection, HOST, self.args.port)
        port = server.sockets[0].getsockname()[1]
        emit("listening", port=port, origin=f"http://{HOST}:{port}")
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, self.stopping.set)
        await self.stopping.wait()
        server.close()
        for session in list(self.sessions.values()):
            await self.close_session(session)
        emit("stopped", sessions=self.session_count)
        return 0


def raise_method_not_allowed(method: str, allowed: str):
    error = HttpError(405, f"method {method} is not allowed here; allowed: {allowed}")
    error.response.headers["Allow"] = allowed
    raise error


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks one")
    parser.add_argument("--record-dir", required=True, help="record session N into DIR/session-N")
    parser.add_argument("--jwks-url", help="JWKS whose key named by the token's kid must verify it")
    parser.add_argument("--audience", default="trax-mediamtx-talk", help="required 'aud' entry")
    parser.add_argument(
        "--jwks-timeout-s", type=float, default=2.0, help="timeout of one JWKS fetch in seconds"
    )
    parser.add_argument("--token-file", help="without --jwks-url: the only token accepted")
    parser.add_argument(
        "--pli-after-s",
        type=float,
        action="append",
        default=[],
        help="send a PLI this many seconds after a session connects; repeatable",
    )
    parser.add_argument(
        "--close-after-s",
        type=float,
        default=0,
        help="close each session's peer connection this many seconds after it connects",
    )
    parser.add_argument(
        "--dtls-role",
        choices=["passive", "active"],
        default="active",
        help="a=setup of the answer to an actpass offer (active: DTLS client)",
    )
    parser.add_argument("--debug", action="store_true", help="log aiortc debug messages")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    aioice.ice.get_host_addresses = only_loopback_addresses
    whip_recording.install_decoder_hook()
    return asyncio.run(Receiver(args).run())


if __name__ == "__main__":
    sys.exit(main())
