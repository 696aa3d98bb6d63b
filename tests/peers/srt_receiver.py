#!/usr/bin/python3
"""SRT listener for tests of the SRT output: GStreamer srtsrc in listener
mode, with a caller-connecting handler that accepts only the streamids the
TRaX edge would accept.

Accepted streamids are publish:<path>:trax:<jwt> (claims action=publish,
path=<path>, aud containing the audience, exp in the future) and
publish:<path>:<key>:<key>. Token signatures are checked first, as the edge
does, when a key source is given:
  --public-key PEM  the token must verify (ES256) against this key;
  --jwks-url URL    the token header must name a kid, and the token must
                    verify (ES256) against that key of the JWKS. The JWKS is
                    fetched at start and again whenever a token names a kid
                    it lacks; an unknown kid after that fetch is rejected.
                    Keys other than EC P-256 for ES256 signing are skipped.

With --drop-after-s S it closes each accepted connection S seconds after
it started (the caller gets SRT's shutdown message) and listens again, as
a server that drops its publishers does.

Prints one JSON object per line on stdout: listening, connecting (accepted
or rejected, with the reason but never the token), connected, dropped
(with --drop-after-s), bytes, eos, error, stopped, and with --jwks-url one
{"event":"jwks","ok":true,"trigger":"start"|"unknown kid","kids":[...],
"skipped":N} per fetch ({"ok":false,...,"error":"..."} when it failed; the
keys fetched before stay in use). Exits after SIGTERM or SIGINT once its
files are written.

Run with /usr/bin/python3 (python3-gi, python3-cryptography).
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
# Importing Gio loads the methods of the GInetSocketAddress that srtsrc's
# signals pass.
from gi.repository import Gio, GLib, Gst  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import es256  # noqa: E402

MIN_BLOCKSIZE_BYTES = 1316
MAX_KID_LABEL_CHARS = 64


def emit(event: str, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def describe_address(address) -> str:
    if address is None:
        return None
    return f"{address.get_address().to_string()}:{address.get_port()}"


def token_header(parts):
    """Return (header, None) for an ES256 token, or (None, reason)."""
    try:
        header = json.loads(es256.b64url_decode(parts[0]))
    except ValueError:
        return None, "token header is not base64url JSON"
    if not isinstance(header, dict):
        return None, "token header is not a JSON object"
    if header.get("alg") != "ES256":
        return None, f"token alg {header.get('alg')!r} is not 'ES256'"
    return header, None


class PublicKeyVerifier:
    """Signature check against one PEM public key (--public-key)."""

    def __init__(self, path: str):
        from cryptography.hazmat.primitives import serialization

        with open(path, "rb") as handle:
            self.public_key = serialization.load_pem_public_key(handle.read())

    def __call__(self, parts):
        _, reason = token_header(parts)
        if reason is not None:
            return reason
        if not es256.verify(self.public_key, parts):
            return "token signature does not verify"
        return None


class JwksVerifier:
    """Signature check against the JWKS key that the token's kid names."""

    def __init__(self, url: str, ca_file, timeout_ms: int):
        self.url = url
        self.timeout_s = timeout_ms / 1000
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.keys = {}
        self.fetch("start")

    def fetch(self, trigger: str):
        try:
            with urllib.request.urlopen(
                self.url, timeout=self.timeout_s, context=self.context
            ) as response:
                document = json.loads(response.read())
            keys, skipped = self.parse(document)
        except (OSError, ValueError) as error:
            emit("jwks", ok=False, trigger=trigger, error=f"{type(error).__name__}: {error}")
            return
        self.keys = keys
        emit("jwks", ok=True, trigger=trigger, kids=sorted(keys), skipped=skipped)

    @staticmethod
    def parse(document):
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS has no 'keys' list")
        keys = {}
        skipped = 0
        for jwk in document["keys"]:
            usable = (
                isinstance(jwk, dict)
                and isinstance(jwk.get("kid"), str)
                and jwk.get("alg", "ES256") == "ES256"
                and jwk.get("use", "sig") == "sig"
            )
            try:
                if not usable:
                    raise ValueError("not an ES256 signing key with a kid")
                keys[jwk["kid"]] = es256.public_key_from_jwk(jwk)
            except ValueError:
                skipped += 1
        return keys, skipped

    def __call__(self, parts):
        header, reason = token_header(parts)
        if reason is not None:
            return reason
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            return "token header names no kid"
        if kid not in self.keys:
            self.fetch("unknown kid")
        key = self.keys.get(kid)
        kid_label = kid if len(kid) <= MAX_KID_LABEL_CHARS else kid[:MAX_KID_LABEL_CHARS] + "..."
        if key is None:
            return f"token kid {kid_label!r} is not in the JWKS, also after fetching it again"
        if not es256.verify(key, parts):
            return f"token signature does not verify with JWKS key {kid_label!r}"
        return None


class StreamIdCheck:
    """Decide on one streamid and return (accepted, form, reason)."""

    def __init__(self, args):
        self.expected_path = args.expected_path
        self.audience = args.audience
        self.stream_key = args.stream_key
        self.verifier = None
        if args.public_key:
            self.verifier = PublicKeyVerifier(args.public_key)
        elif args.jwks_url:
            self.verifier = JwksVerifier(args.jwks_url, args.jwks_ca_file, args.jwks_timeout_ms)

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
        if self.verifier is not None:
            reason = self.verifier(parts)
            if reason is not None:
                return False, "token", reason
        try:
            claims = json.loads(es256.b64url_decode(parts[1]))
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
        return True, "token", "token accepted"


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
        if self.args.drop_after_s > 0:
            GLib.timeout_add(int(self.args.drop_after_s * 1000), self.drop_caller)

    def drop_caller(self):
        """Close the listener and its connection, then listen again."""
        if self.stopped:
            return False
        self.pipeline.set_state(Gst.State.NULL)
        emit("dropped")
        self.listening_sent = False
        self.pipeline.set_state(Gst.State.PLAYING)
        return False

    def relisten(self):
        """Listen again after a caller ended its stream (--relisten)."""
        if self.stopped:
            return False
        self.pipeline.set_state(Gst.State.NULL)
        self.listening_sent = False
        self.pipeline.set_state(Gst.State.PLAYING)
        return False

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
            if self.args.relisten:
                GLib.idle_add(self.relisten)
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

    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--public-key", help="PEM public key that must verify tokens")
    keys.add_argument("--jwks-url", help="JWKS whose key named by the token's kid must verify it")
    parser.add_argument("--jwks-ca-file", help="PEM CA file to trust for an https --jwks-url")
    parser.add_argument(
        "--jwks-timeout-ms", type=int, default=2000, help="timeout of one JWKS fetch in ms"
    )

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
        "--drop-after-s",
        type=float,
        default=0,
        help="close each connection this many seconds after it started, then listen again",
    )
    parser.add_argument(
        "--relisten",
        action="store_true",
        help="listen again after a caller ends its stream, for callers that reconnect",
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
