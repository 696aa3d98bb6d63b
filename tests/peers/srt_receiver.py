#!/usr/bin/python3
"""SRT listener for tests of the SRT output: GStreamer srtsrc in listener
mode, with a caller-connecting handler that accepts only the streamids the
TRaX edge would accept.

Accepted streamids are publish:<path>:trax:<jwt> (claims action=publish,
path=<path>, aud containing the audience, exp in the future, and an ES256
signature when --public-key is given) and publish:<path>:<key>:<key>.

Prints one JSON object per line on stdout: listening, connecting (accepted
or rejected, with the reason but never the token), connected, bytes,
eos, error, stopped. Exits after SIGTERM or SIGINT once its files are
written.

Run with /usr/bin/python3 (python3-gi, python3-cryptography).
"""

import argparse
import base64
import json
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
# Importing Gio loads the methods of the GInetSocketAddress that srtsrc's
# signals pass.
from gi.repository import Gio, GLib, Gst  # noqa: E402,F401

MIN_BLOCKSIZE_BYTES = 1316


def emit(event: str, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def describe_address(address) -> str:
    if address is None:
        return None
    return f"{address.get_address().to_string()}:{address.get_port()}"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamIdCheck:
    """Decide on one streamid and return (accepted, form, reason)."""

    def __init__(self, args):
        self.expected_path = args.expected_path
        self.audience = args.audience
        self.stream_key = args.stream_key
        self.public_key = None
        if args.public_key:
            from cryptography.hazmat.primitives import serialization

            with open(args.public_key, "rb") as handle:
                self.public_key = serialization.load_pem_public_key(handle.read())

    def __call__(self, streamid: str):
        fields = streamid.split(":")
        if len(fields) != 4:
            return False, "unknown", f"streamid has {len(fields)} ':'-separated fields, not 4"
        action, path, user, password = fields
        form = "token" if user == "trax" else "key"
        if action != "publish":
            return False, form, f"streamid action is '{action}', not 'publish'"
        if self.expected_path is not None and path != self.expected_path:
            return False, form, f"streamid path '{path}' is not '{self.expected_path}'"
        if form == "key":
            if not user or user != password:
                return False, form, "stream key form needs the same key as user and password"
            if self.stream_key is not None and user != self.stream_key:
                return False, form, "stream key does not match"
            return True, form, "stream key accepted"
        return self.check_token(path, password)

    def check_token(self, path: str, token: str):
        parts = token.split(".")
        if len(parts) != 3:
            return False, "token", f"token has {len(parts)} parts, not 3"
        try:
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError:
            return False, "token", "token payload is not base64url JSON"
        if not isinstance(claims, dict):
            return False, "token", "token payload is not a JSON object"
        if claims.get("action") != "publish":
            return False, "token", f"claim action is {claims.get('action')!r}"
        if claims.get("path") != path:
            return False, "token", f"claim path {claims.get('path')!r} is not '{path}'"
        audience = claims.get("aud")
        audience = [audience] if isinstance(audience, str) else (audience or [])
        if self.audience not in audience:
            return False, "token", f"claim aud {audience!r} lacks '{self.audience}'"
        expiry = claims.get("exp")
        if isinstance(expiry, (int, float)) and time.time() >= expiry:
            return False, "token", f"token expired {time.time() - expiry:.0f} s ago"
        if self.public_key is not None and not self.verify(parts):
            return False, "token", "token signature does not verify"
        return True, "token", "token accepted"

    def verify(self, parts) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        raw = b64url_decode(parts[2])
        if len(raw) != 64:
            return False
        signature = encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        try:
            self.public_key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode("ascii"),
                ec.ECDSA(hashes.SHA256()),
            )
            return True
        except InvalidSignature:
            return False


class Receiver:
    def __init__(self, args):
        self.args = args
        self.check = StreamIdCheck(args)
        self.lock = threading.Lock()
        self.total_bytes = 0
        self.messages = 0
        self.output = open(args.output, "wb") if args.output else None
        self.sizes = open(args.sizes_file, "w", encoding="ascii") if args.sizes_file else None
        self.loop = GLib.MainLoop()
        self.stopped = False

        self.pipeline = Gst.Pipeline.new("srt-receiver")
        source = Gst.ElementFactory.make("srtsrc", "source")
        sink = Gst.ElementFactory.make("appsink", "sink")
        if source is None or sink is None:
            raise SystemExit("srt_receiver: srtsrc or appsink is missing")
        source.set_property("mode", "listener")
        source.set_property("localaddress", args.host)
        source.set_property("localport", args.port)
        source.set_property("authentication", True)
        source.set_property("latency", args.latency_ms)
        source.set_property("blocksize", args.blocksize)
        if args.passphrase_file is not None:
            with open(args.passphrase_file, encoding="utf-8") as handle:
                source.set_property("passphrase", handle.read().strip("\n"))
            source.set_property("pbkeylen", args.pbkeylen)
        self.source = source
        source.connect("caller-connecting", self.on_caller_connecting)
        source.connect("caller-added", self.on_caller_added)
        sink.set_property("emit-signals", True)
        sink.set_property("sync", False)
        sink.connect("new-sample", self.on_new_sample)
        self.pipeline.add(source)
        self.pipeline.add(sink)
        source.link(sink)

        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        self.listening_sent = False

    def on_caller_connecting(self, _source, address, streamid):
        raw = (streamid or "").encode("utf-8")
        if self.args.streamid_file:
            with open(self.args.streamid_file, "wb") as handle:
                handle.write(raw)
        self.callers_seen = getattr(self, "callers_seen", 0) + 1
        if self.args.reject_all:
            accepted, form, reason = False, "unknown", "every caller is rejected (--reject-all)"
        elif self.callers_seen <= self.args.reject_first:
            accepted, form, reason = False, "unknown", "caller rejected (--reject-first)"
        else:
            accepted, form, reason = self.check(streamid or "")
        emit(
            "connecting",
            accepted=accepted,
            form=form,
            reason=reason,
            streamid_bytes=len(raw),
            peer=describe_address(address),
        )
        return accepted

    def on_caller_added(self, _source, _socket, address):
        emit("connected", peer=describe_address(address))

    def on_new_sample(self, sink):
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        try:
            data = bytes(info.data)
        finally:
            buffer.unmap(info)
        with self.lock:
            if self.output is not None:
                self.output.write(data)
            if self.sizes is not None:
                self.sizes.write(f"{len(data)}\n")
            self.total_bytes += len(data)
            self.messages += 1
        return Gst.FlowReturn.OK

    def report_bytes(self):
        with self.lock:
            emit("bytes", total=self.total_bytes, messages=self.messages)
        return True

    def on_message(self, _bus, message):
        if message.type == Gst.MessageType.STATE_CHANGED:
            # srtsrc binds and listens when it starts (READY to PAUSED). The
            # pipeline itself waits in PAUSED for the first buffer.
            if message.src == self.source and not self.listening_sent:
                _, new, _ = message.parse_state_changed()
                if new == Gst.State.PAUSED:
                    self.listening_sent = True
                    emit("listening", host=self.args.host, port=self.args.port)
        elif message.type == Gst.MessageType.EOS:
            with self.lock:
                if self.output is not None:
                    self.output.flush()
                emit("eos", total=self.total_bytes, messages=self.messages)
        elif message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            emit("error", message=error.message)

    def stop(self, *_args):
        if self.stopped:
            return False
        self.stopped = True
        self.pipeline.set_state(Gst.State.NULL)
        with self.lock:
            for handle in (self.output, self.sizes):
                if handle is not None:
                    handle.close()
            emit("stopped", total=self.total_bytes, messages=self.messages)
        self.loop.quit()
        return False

    def run(self):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.stop)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, self.stop)
        if self.args.stats_interval_ms > 0:
            GLib.timeout_add(self.args.stats_interval_ms, self.report_bytes)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            emit("error", message="the listener did not start (port in use?)")
            return 1
        self.loop.run()
        return 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="UDP port to listen on")
    parser.add_argument("--expected-path", help="the only path accepted")
    parser.add_argument("--audience", default="trax-mediamtx", help="required 'aud' entry")
    parser.add_argument("--stream-key", help="the only stream key accepted")
    parser.add_argument("--public-key", help="PEM public key that must verify tokens")
    parser.add_argument("--output", help="write the received MPEG-TS here")
    parser.add_argument("--streamid-file", help="write each received streamid's bytes here")
    parser.add_argument("--sizes-file", help="write each received message size, one a line")
    parser.add_argument("--latency-ms", type=int, default=120, help="SRT latency in ms")
    parser.add_argument(
        "--blocksize", type=int, default=1456, help="srtsrc read size in bytes (>= 1316)"
    )
    parser.add_argument(
        "--passphrase-file", help="require the passphrase in this file (kept out of argv)"
    )
    parser.add_argument("--pbkeylen", type=int, default=0, choices=[0, 16, 24, 32])
    parser.add_argument("--reject-all", action="store_true", help="reject every caller")
    parser.add_argument(
        "--reject-first", type=int, default=0, help="reject the first N callers, then check as usual"
    )
    parser.add_argument(
        "--stats-interval-ms", type=int, default=1000, help="bytes event interval; 0 disables"
    )
    args = parser.parse_args()
    if args.blocksize < MIN_BLOCKSIZE_BYTES:
        parser.error(
            f"--blocksize {args.blocksize} is below {MIN_BLOCKSIZE_BYTES}: each srtsrc buffer "
            "must hold one whole SRT message"
        )
    return args


def main():
    Gst.init(None)
    return Receiver(parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
