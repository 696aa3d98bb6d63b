#!/usr/bin/python3
"""Local stand-in for TRaX's /v1 Developer API, for tests and the demo.

It follows docs/v1-api.md: the documented conventions, and the assumed
POST /v1/sources/{sourceId}/publish-credentials call. It also serves the
on_publish check that nginx-rtmp calls for TRaX's RTMP ingest (NGINX-RTMP
HOOKS below). It listens on 127.0.0.1 only. Run it with /usr/bin/python3
(python3-cryptography).

COMMAND LINE

  /usr/bin/python3 tests/peers/v1_standin.py --api-key-file FILE [options]
  /usr/bin/python3 tests/peers/v1_standin.py --make-tls DIR

  --port N                  TCP port on 127.0.0.1; 0 (default) picks a free one.
  --api-key-file FILE       API keys that may list and publish, one a line. Blank
                            lines and lines starting with '#' are skipped. Keys
                            are never taken from argv.
  --read-only-key-file FILE API keys that may list but not publish: the
                            credential POST returns 403 forbidden. At least one
                            of the two key files is required.
  --tls-cert PEM --tls-key PEM
                            Serve HTTPS (the origin then starts with https://).
  --make-tls DIR            Write a test CA and server certificates (see
                            tls_files.py for the file names), print one
                            {"event":"tls_files",...} line naming them, exit.
  --fixtures FILE           JSON {"studios":[...],"sources":[...]} replacing the
                            built-in data. Each item needs a string "id";
                            other fields are served as given.
  --generate-sources N      Replace the sources with N generated ones,
                            src_gen_001 ... (ids zero-padded to at least 3
                            digits), all in the added studio std_generated,
                            with types cycling srt, rtmp, whip.
  --signing-key PEM         P-256 private key (PKCS#8 or SEC1 PEM) that signs
                            tokens; generated at start when absent.
  --kid KID                 Key id of that key; default its RFC 7638
                            thumbprint.
  --public-key-out PEM      Write the signing public key (for
                            srt_receiver.py --public-key).
  --token-ttl-s S           Token lifetime in seconds (default 600; negative
                            values issue tokens that have already expired).
  --ingest-srt URL, --ingest-rtmp URL, --ingest-whip URL
                            ingestUrl returned for that protocol; omitted from
                            the response when not set.
  --stream-key-sources ID,...
                            These sources get a "streamKey" (stable per source
                            and protocol for the server's lifetime) instead of
                            "token" and "expiresAt".
  --omit-operation "METHOD PATH"
                            Leave this operation out of /v1/openapi.json (it is
                            still served). Repeatable. PATH as in the document,
                            e.g. "POST /v1/sources/{sourceId}/publish-credentials".
  --api-version V           info.version of the OpenAPI document (default 1.3.0).
  --end-cursor null|absent  How the last page ends the list (default null).
  Misbehaviour at start (each is the same as a /_control field, below):
  --rate-limit N            429 for the next N /v1 requests.
  --retry-after-s S         Retry-After of those 429s, in seconds (default 1).
  --retry-after-form seconds|http-date|none
                            Send Retry-After as delta seconds (default), as an
                            HTTP date S seconds ahead, or not at all.
  --fail N                  --fail-status for the next N /v1 requests.
  --fail-status 500|502|503 (default 503).
  --write-disabled          503 write_disabled on the credential POST.
  --delay-s S               Delay every /v1 response by S seconds.
  --control JSON            A /_control body, applied after the flags above.
  --rtmp-placement tcurl|query|both|any
                            Where POST /hooks/on_publish requires RTMP
                            credentials (default any; see NGINX-RTMP HOOKS).
  --oidc-issuer URL         Also accept a user's OAuth access token from this
                            OpenID provider as "Authorization: Bearer JWT"
                            (see oidc_tokens.py for the checks). The discovery
                            document and JWKS are fetched at start, so the
                            provider must be running. Needs --oidc-audience.
  --oidc-audience AUD       The "aud" the access token must contain, e.g.
                            https://api.trax.test (tests/peers/oidc/provider.mjs).
  --oidc-ca-file PEM        CA certificate that signs an HTTPS issuer's
                            certificate (default: the system's CAs).

STDOUT: one JSON object per line, flushed at once. Tokens, stream keys and
API keys are never printed.

  {"event":"listening","origin":"http://127.0.0.1:PORT","kid":"<signing kid>"}
      Once, when the socket accepts connections.
  {"event":"request","method":"GET","path":"/v1/sources","query":{"limit":"2"},
   "operation":"GET /v1/sources","status":200,"request_id":"req_<16 hex>",
   "auth":"bearer","key":"full","injected":null,"issued":null,
   "elapsed_ms":1.2,"arrived_s":0.512,"delivered":true}
      One per request, after the response is written. path has no query
      string. query contains the values of limit, cursor and studioId, and
      "<redacted>" for any other parameter. operation is the OpenAPI key, or
      "GET /.well-known/jwks.json", "GET /_control", "POST /_control",
      "GET /_control/stats", or null for an unknown path. auth is "bearer",
      "x-api-key", "other" (an Authorization scheme that is not Bearer) or
      "none"; key is "full", "read-only", "oidc" (a user's access token, see
      --oidc-issuer), "invalid" or null (not checked).
      injected is null, "rate_limit", "fail", "write_disabled" or "slow"
      (a delayed but otherwise normal response). issued is "token" or
      "streamKey" on a 201. arrived_s counts seconds since the server
      started. delivered is false when writing the response failed (the
      client had gone, e.g. after its timeout).
  {"event":"hook","call":"publish","app":"inputs","name":"rtmp-<uuid>",
   "addr":"127.0.0.1","clientid":"3","request_id":"req_<16 hex>",
   "path":"inputs/rtmp-<uuid>","placement":"any","found":["query"],
   "checks":{"query":"prefix"},"accepted":true,"status":200,"reason":null}
      One per on_publish call, before its "request" line (see NGINX-RTMP
      HOOKS). on_publish_done and on_record_done calls print only call
      ("publish_done", "record_done"), app, name, addr, clientid and
      request_id, and on_record_done adds "recording" (the FLV file's path).
  {"event":"connection_error","peer":"127.0.0.1:PORT","error":"..."}
      A connection failed outside a request, e.g. a TLS handshake the client
      aborted because it does not trust the certificate.
  {"event":"stopped","requests":N}
      After SIGTERM or SIGINT, before exit status 0. N is the stats total
      (since the last reset_stats).

HTTP

  Every response carries X-Request-Id (req_<16 hex>, unique) and errors use
  {"error":{"code":"...","message":"...","requestId":"req_..."}}. Error
  codes: invalid_request (400, also 411 for chunked bodies), unauthorized
  (401), forbidden (403), not_found (404), method_not_allowed (405, with
  Allow), payload_too_large (413), rate_limited (429), internal_error (500),
  not_implemented (501, an HTTP method it does not know), bad_gateway (502),
  service_unavailable (503), write_disabled (503).
  Connections are HTTP/1.1 keep-alive, closed after 30 s idle.

  GET  /v1/health              unauthenticated: {"status":"ok"}
  GET  /v1/openapi.json        unauthenticated: OpenAPI 3.0.3 document
  GET  /v1/studios             {"data":[...],"nextCursor":...}
  GET  /v1/sources[?studioId=] the same for sources
  POST /v1/sources/{sourceId}/publish-credentials  body {"protocol":"srt"}
  GET  /.well-known/jwks.json  unauthenticated: {"keys":[JWK,...]}

  Authentication: "Authorization: Bearer KEY", or "X-API-Key: KEY" when no
  Authorization header is present. 401 unauthorized for a missing or
  unknown key, with WWW-Authenticate: Bearer. With --oidc-issuer, a Bearer
  credential that is not a known key and has the form of a JWT is checked
  as a user's access token: a valid one may list and publish (key "oidc" in
  the request line), and an invalid or expired one is 401 unauthorized, its
  message the reason (e.g. "access token is not valid: token expired 3 s
  ago"), with WWW-Authenticate: Bearer error="invalid_token".

  Lists: ?limit= defaults to 50, values above 200 are served as 200, and a
  value that is not an integer >= 1 is 400 invalid_request. ?cursor= is the
  nextCursor of the previous page; a cursor from another list, another
  studioId filter, or not made here is 400 invalid_request, and so is
  limit, cursor or studioId given twice. The last page has "nextCursor": null, or no
  nextCursor with --end-cursor absent. Items and pages carry extra fields
  (createdAt, labels, object) that clients must ignore.

  Credential POST, checked in this order: key (401), source exists (404
  not_found), key is not read-only (403 forbidden), writes enabled (503
  write_disabled), Content-Type application/json and body
  {"protocol":"srt"|"rtmp"|"whip"} (400 invalid_request). Then 201:
    {"sourceId":"src_cam1","protocol":"srt",
     "path":"inputs/srt-<uuid5 of sourceId and protocol>",
     "token":"<ES256 compact JWS>","expiresAt":"2026-01-01T00:00:00Z",
     "ingestUrl":"<--ingest-srt>","object":"publish_credentials",
     "issuedAt":"..."}
  The token header is {"alg":"ES256","typ":"JWT","kid":KID}; its claims are
  iss "trax-studio-api", aud "trax-mediamtx" (srt, rtmp) or
  "trax-mediamtx-talk" (whip, plus can_publish true), action "publish",
  path, iat, and exp = iat + token TTL. Nothing more, because the SRT
  streamid publish:<path>:trax:<token> must stay within libsrt's 512 bytes:
  with the default 43-character kid it is 465 bytes.

  Misbehaviour applies to requests under /v1/ only, in this order: delay
  (slow), then fail, then rate_limit, then the normal handling. An unknown
  /v1 path counts as operation "METHOD /path".

NGINX-RTMP HOOKS (unauthenticated, like nginx-rtmp's notify requests)

  POST /hooks/on_publish       checks a publisher's credentials
  POST /hooks/on_publish_done  notes the end of a publish; always 200
  POST /hooks/on_record_done   notes a finished recording; always 200

  nginx-rtmp 1.2.2 (Debian's libnginx-mod-rtmp) sends an HTTP/1.0 POST,
  Content-Type application/x-www-form-urlencoded, with app, flashver,
  swfurl, tcurl, pageurl, addr, clientid, call=publish, name (the publish
  name before "?") and type, followed verbatim by the publish name's query.
  Another Content-Type is 400 invalid_request.

  TRaX's RTMP contract: the path inputs/rtmp-<uuid> is app "inputs" and
  stream name "rtmp-<uuid>". Credentials are either the userinfo of the
  connect command's tcUrl, rtmp://trax:<token>@host:port/inputs
  (placement "tcurl", percent-decoded), or the publish name's query,
  rtmp-<uuid>?user=trax&pass=<token> (placement "query"). --rtmp-placement
  and the rtmp_placement control field select which placements are read:
    tcurl  only tcUrl, and credentials must be there;
    query  only the query, and credentials must be there;
    both   both are read, and both must be present and pass;
    any    (default) both are read; at least one must be present, and
           every one present must pass.
  Credentials from one placement pass when either
    user is "trax" and pass is an ES256 token whose kid is in the JWKS,
    whose signature verifies, and whose claims have aud "trax-mediamtx"
    (or a list containing it), action "publish", path equal to
    app + "/" + name, and exp in the future; or
    user and pass are the same stream key that the credential POST issued,
    for a source and protocol whose path is app + "/" + name.

  nginx-rtmp keeps 255 bytes of tcUrl and of the publish name with its
  query, so a full-length token (about 400 characters) arrives cut: the
  query placement keeps about 200 characters of it, the tcUrl about 240,
  and a cut tcUrl loses its "@host:port/app" too. A tcUrl, or publish name
  with its query, of exactly 255 bytes counts as cut. A cut value that
  does not verify whole passes when it has at least 100
  characters and starts a token this stand-in issued for that path which
  still verifies and has not expired. checks names, per placement, how it
  was decided: "full", "prefix" or "stream_key". A cut token proves less
  than a whole one. Tokens issued for one path under one key have the same
  first 280 or more characters (the header and the claims up to iat), so
  an expired token passes while a newer one for the path is valid. And
  the uuid of an rtmp path starts about 220 characters into the token, so
  the query's 198 characters (with a 41-character stream name) are the
  same for every rtmp path: there a token issued for another path passes
  once any token was issued for this one. The tcUrl's 243 characters
  (behind "rtmp://trax:") do reach the path. The last 1000 tokens per path
  are kept for matching, for the server's lifetime.

  Accepted: 200 {"result":"accepted"}, and nginx-rtmp goes on with the
  publish. Refused: 403 forbidden in the error envelope, its message the
  reason (it names the placement and never the token, stream key or
  user). On any status other than 2xx or 3xx, nginx-rtmp 1.2.2 closes the
  RTMP connection without sending an onStatus or _error reply to the
  publish command, records nothing and does not call on_publish_done
  (ngx_rtmp_notify_publish_handle returns NGX_ERROR, and the netcall
  finalizes the session). The publisher sees the TCP connection close
  after its publish command: ffmpeg 5.1 fails to open the output with
  "Input/output error" and exits 1. A 3xx redirect is never sent.

CONTROL ENDPOINT (unauthenticated, not counted in the stats, never delayed)

  GET  /_control        the current state (below).
  POST /_control        apply a JSON object; returns the new state. Every
                        field is optional; unknown fields or invalid values
                        are 400 invalid_request and change nothing.
    {"reset": true,           first clear rate_limit, fail, slow and
                              write_disabled, and restore token_ttl_s,
                              end_cursor, stream_key_sources and
                              rtmp_placement to the command-line values
                              (keys and issued tokens stay)
     "reset_stats": true,     zero the counters and the request log
     "rate_limit": {"count": 2, "retry_after_s": 1,
                    "retry_after_form": "seconds"|"http-date"|"none",
                    "operation": "GET /v1/sources"},
                              429 rate_limited for the next count matching
                              requests. count 0, or null in place of the
                              object, disarms it (fail and slow alike).
                              operation (optional, an OpenAPI key as listed
                              for --omit-operation) limits it to one
                              operation.
     "fail": {"count": 1, "status": 500|502|503,
              "body": "envelope"|"html"|"empty", "operation": ...},
                              that status for the next count matching
                              requests; html imitates a proxy's error page.
     "slow": {"delay_s": 2.5, "count": null, "operation": ...},
                              delay matching responses by delay_s; count null
                              means until changed, delay_s 0 disarms.
     "write_disabled": true,  503 write_disabled on the credential POST
     "token_ttl_s": -60,      lifetime of tokens issued from now on
     "end_cursor": "absent",
     "stream_key_sources": ["src_cam2"],
     "rotate_signing_key": true,
                              sign with a new key (kid = its thumbprint); the
                              JWKS lists the old keys too
     "drop_old_keys": true,   remove all but the signing key from the JWKS
                              (applied after rotate_signing_key)
     "rtmp_placement": "query"}
                              where on_publish requires credentials:
                              tcurl, query, both or any
  State: {"rate_limit": {"remaining":N,"retry_after_s":S,"retry_after_form":F,
          "operation":OP|null} | null,
          "fail": {"remaining":N,"status":S,"body":B,"operation":OP|null} | null,
          "slow": {"delay_s":S,"remaining":N|null,"operation":OP|null} | null,
          "write_disabled":false,"token_ttl_s":600,"end_cursor":"null",
          "stream_key_sources":[],"rtmp_placement":"any",
          "signing_kid":KID,"kids":[KID,...]}

  GET /_control/stats
    {"total": N,
     "paths": {"GET /v1/sources": 3, "POST /v1/sources/src_cam1/publish-credentials": 2},
     "operations": {"GET /v1/sources": 3,
                    "POST /v1/sources/{sourceId}/publish-credentials": 2},
     "statuses": {"200": 3, "429": 2},
     "requests": [<the last 1000 "request" events, without "event">],
     "hooks": {"calls": {"publish": 2, "publish_done": 1, "record_done": 1},
               "accepted": 1, "refused": 1,
               "events": [<the last 1000 "hook" events, without "event">]}}
    paths, operations and total count each request when it arrives (so a
    request still being delayed is counted); statuses and requests when its
    response is written. /_control requests are not counted, while JWKS
    fetches are (under "GET /.well-known/jwks.json"), so a test can count
    srt_receiver.py's fetches. Hook requests count like any other request
    (operation "POST /hooks/on_publish" and so on) and also under "hooks".
"""

import argparse
import datetime
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import es256  # noqa: E402
import oidc_tokens  # noqa: E402
import v1_hooks  # noqa: E402
import v1_openapi  # noqa: E402
from v1_catalog import (  # noqa: E402
    BUILT_IN_SOURCES,
    BUILT_IN_STUDIOS,
    PROTOCOLS,
    generate_sources,
    load_fixtures,
    page,
    single_parameter,
)
from v1_control import Faults, Stats, parse_control  # noqa: E402
from v1_replies import (  # noqa: E402
    FAIL_CODES,
    ApiError,
    Reply,
    error_payload,
    fail_reply,
    invalid,
    rate_limit_reply,
)

HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 30
TLS_HANDSHAKE_TIMEOUT_S = 10
AUDIENCES = {"srt": "trax-mediamtx", "rtmp": "trax-mediamtx", "whip": "trax-mediamtx-talk"}
ISSUER = "trax-studio-api"
PATH_NAMESPACE = uuid.UUID("8d1f6c3e-4b1a-4f0e-9a57-2f1d3c0b7e21")
LOGGED_QUERY_PARAMETERS = ("limit", "cursor", "studioId")
JWKS = "GET /.well-known/jwks.json"
ON_PUBLISH = "POST /hooks/on_publish"
ON_PUBLISH_DONE = "POST /hooks/on_publish_done"
ON_RECORD_DONE = "POST /hooks/on_record_done"
ISSUED_TOKENS_PER_PATH = 1000

OUTPUT_LOCK = threading.Lock()


def emit(event: str, **fields):
    """Print one JSON line. Errors of a closed stdout are ignored, so serving goes on."""
    line = json.dumps({"event": event, **fields}) + "\n"
    with OUTPUT_LOCK:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_keys(path: str) -> list:
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [line for line in lines if line and not line.startswith("#")]


# --- signing keys -------------------------------------------------------


class Signer:
    """The signing key and every key the JWKS still lists."""

    def __init__(self, key, kid: str):
        self.lock = threading.Lock()
        self.keys = [(kid, key)]

    def current(self):
        with self.lock:
            return self.keys[-1]

    def kids(self) -> list:
        with self.lock:
            return [kid for kid, _ in self.keys]

    def rotate(self):
        key = es256.generate_key()
        with self.lock:
            self.keys.append((es256.thumbprint(key.public_key()), key))

    def drop_old(self):
        with self.lock:
            self.keys = self.keys[-1:]

    def jwks(self) -> dict:
        with self.lock:
            return {"keys": [es256.public_jwk(key.public_key(), kid) for kid, key in self.keys]}

    def public_keys(self) -> dict:
        """Public keys by kid, for every key the JWKS lists."""
        with self.lock:
            return {kid: key.public_key() for kid, key in self.keys}


# --- routing ------------------------------------------------------------


ROUTES = [
    (v1_openapi.HEALTH, ("v1", "health")),
    (v1_openapi.OPENAPI, ("v1", "openapi.json")),
    (v1_openapi.STUDIOS, ("v1", "studios")),
    (v1_openapi.SOURCES, ("v1", "sources")),
    (v1_openapi.PUBLISH_CREDENTIALS, ("v1", "sources", "{sourceId}", "publish-credentials")),
    (JWKS, (".well-known", "jwks.json")),
    (ON_PUBLISH, ("hooks", "on_publish")),
    (ON_PUBLISH_DONE, ("hooks", "on_publish_done")),
    (ON_RECORD_DONE, ("hooks", "on_record_done")),
    ("GET /_control", ("_control",)),
    ("POST /_control", ("_control",)),
    ("GET /_control/stats", ("_control", "stats")),
]


def match_template(template, segments):
    if len(template) != len(segments):
        return None
    params = {}
    for pattern, segment in zip(template, segments):
        if pattern.startswith("{"):
            if not segment:
                return None
            params[pattern[1:-1]] = urllib.parse.unquote(segment)
        elif pattern != segment:
            return None
    return params


def publish_path(source_id: str, protocol: str) -> str:
    return f"inputs/{protocol}-{uuid.uuid5(PATH_NAMESPACE, f'{source_id}/{protocol}')}"


def is_control_path(path: str) -> bool:
    return path == "/_control" or path.startswith("/_control/")


def resolve(method: str, path: str):
    """Return (operation, params) for a request, or raise ApiError 404 or 405."""
    segments = path.split("/")[1:] if path.startswith("/") else [None]
    allowed = []
    for operation, template in ROUTES:
        params = match_template(template, segments)
        if params is None:
            continue
        route_method = operation.split(" ", 1)[0]
        if route_method == method:
            return operation, params
        allowed.append(route_method)
    if allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiError(404, "not_found", f"no route for {method} {path}")


# --- server -------------------------------------------------------------


class App:
    """Everything the request handlers share."""

    def __init__(self, args, keys, studios, sources, signer, faults, oidc=None):
        self.args = args
        self.keys = keys
        self.oidc = oidc
        self.studios = studios
        self.sources = sources
        self.sources_by_id = {source["id"]: source for source in sources}
        self.signer = signer
        self.faults = faults
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.stream_keys = {}
        self.stream_keys_lock = threading.Lock()
        self.issued_tokens = {}
        self.issued_tokens_lock = threading.Lock()
        self.ingest_urls = {
            "srt": args.ingest_srt,
            "rtmp": args.ingest_rtmp,
            "whip": args.ingest_whip,
        }
        omitted = set(args.omit_operation)
        self.openapi = v1_openapi.build_document(args.api_version, omitted)

    def stream_key(self, source_id: str, protocol: str) -> str:
        with self.stream_keys_lock:
            return self.stream_keys.setdefault((source_id, protocol), "sk_" + secrets.token_hex(16))

    def remember_token(self, path: str, token: str):
        """Keep an issued token, so that on_publish can match a cut one."""
        with self.issued_tokens_lock:
            tokens = self.issued_tokens.setdefault(path, deque(maxlen=ISSUED_TOKENS_PER_PATH))
            tokens.append(token)

    def hook_context(self) -> v1_hooks.HookContext:
        with self.issued_tokens_lock:
            tokens_by_path = {path: list(tokens) for path, tokens in self.issued_tokens.items()}
        with self.stream_keys_lock:
            stream_key_paths = {
                key: publish_path(source_id, protocol)
                for (source_id, protocol), key in self.stream_keys.items()
            }
        return v1_hooks.HookContext(self.signer.public_keys(), tokens_by_path, stream_key_paths)

    def apply_control(self, changes: dict):
        self.faults.apply(changes)
        if changes.get("reset_stats"):
            self.stats.clear()
        if changes.get("rotate_signing_key"):
            self.signer.rotate()
        if changes.get("drop_old_keys"):
            self.signer.drop_old()

    def control_state(self) -> dict:
        state = self.faults.snapshot()
        state["signing_kid"] = self.signer.current()[0]
        state["kids"] = self.signer.kids()
        return state


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        emit(
            "connection_error",
            peer=f"{client_address[0]}:{client_address[1]}",
            error=f"{type(error).__name__}: {error}",
        )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "v1-standin"
    timeout = IDLE_TIMEOUT_S

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format, *args):
        """Silence the default stderr access log; stdout carries JSON lines."""

    def do_GET(self):
        self.serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- one exchange --

    def serve(self):
        app = self.server.app
        # One handler object serves every request of a keep-alive connection.
        self.body = None
        self.request_id = new_request_id()
        self.started = time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        self.url_path = split.path
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.fields = {"auth": "none", "key": None, "injected": None, "issued": None}
        self.operation = None
        arrived_s = self.started - app.started

        try:
            reply = self.route(app)
        except ApiError as error:
            if error.close:
                self.close_connection = True
            payload = error_payload(error.code, error.message, self.request_id)
            reply = Reply(error.status, payload, error.headers)
        delivered = self.send_reply(reply)

        entry = {
            "method": self.command,
            "path": self.url_path,
            "query": self.loggable_query(),
            "operation": self.operation,
            "status": reply.status,
            "request_id": self.request_id,
            **self.fields,
            "elapsed_ms": round((time.monotonic() - self.started) * 1000, 1),
            "arrived_s": round(arrived_s, 3),
            "delivered": delivered,
        }
        if not is_control_path(self.url_path):
            app.stats.record(entry)
        emit("request", **entry)

    def loggable_query(self) -> dict:
        return {
            name: (values[-1] if name in LOGGED_QUERY_PARAMETERS else "<redacted>")
            for name, values in self.query.items()
        }

    def route(self, app) -> Reply:
        is_control = is_control_path(self.url_path)
        try:
            self.operation, params = resolve(self.command, self.url_path)
            route_error = None
        except ApiError as error:
            route_error = error
        if is_control:
            if route_error is not None:
                raise route_error
            return self.serve_control(app)

        app.stats.count_arrival(self.command, self.url_path, self.operation)
        if self.url_path.startswith("/v1/"):
            injected = self.misbehave(app)
            if injected is not None:
                return injected
        if route_error is not None:
            raise route_error
        return HANDLERS[self.operation](self, app, params)

    def misbehave(self, app):
        key = self.operation or f"{self.command} {self.url_path}"
        delay_s, injected = app.faults.take(key)
        if delay_s > 0:
            self.fields["injected"] = "slow"
            app.stop_event.wait(delay_s)
        if injected is None:
            return None
        self.read_body()
        name, entry = injected
        self.fields["injected"] = name
        if name == "fail":
            return fail_reply(entry, self.request_id)
        return rate_limit_reply(entry, self.request_id)

    def read_body(self) -> bytes:
        """Read the request body once, so keep-alive stays in step."""
        if self.body is not None:
            return self.body
        self.body = b""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ApiError(
                411,
                "invalid_request",
                "chunked request bodies are not supported; send Content-Length",
                close=True,
            )
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return self.body
        if not length_text.strip().isdigit():
            raise ApiError(
                400,
                "invalid_request",
                f"Content-Length {length_text!r} is not a number",
                close=True,
            )
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise ApiError(
                413,
                "payload_too_large",
                f"request body of {length} bytes exceeds {MAX_BODY_BYTES} bytes",
                close=True,
            )
        self.body = self.rfile.read(length)
        return self.body

    def send_reply(self, reply: Reply) -> bool:
        try:
            # A rejected request's body may still be unread. Read it, or close
            # the connection, so that the next request on it parses cleanly.
            if self.body is None:
                try:
                    self.read_body()
                except ApiError:
                    self.close_connection = True
            self.send_response(reply.status)
            self.send_header("X-Request-Id", self.request_id)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if "Cache-Control" not in reply.headers:
                self.send_header("Cache-Control", "no-store")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
                self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def send_error(self, code, message=None, explain=None):
        """Reply in the envelope to requests that http.server rejects itself.

        Those are a bad request line, oversized headers or an unknown method.
        """
        self.request_id = new_request_id()
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        code_name = "invalid_request" if code < 500 else "not_implemented"
        payload = error_payload(code_name, text, self.request_id)
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(code, message)
            self.send_header("X-Request-Id", self.request_id)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        emit("request", method=self.command, path=None, status=code, request_id=self.request_id)

    # -- authentication --

    def authenticate(self, app) -> str:
        """Return "full" or "read-only" for the request's key, or raise ApiError 401."""
        challenge = {"WWW-Authenticate": 'Bearer realm="trax"'}
        header = self.headers.get("Authorization")
        if header is not None:
            scheme, _, credential = header.strip().partition(" ")
            if scheme.lower() != "bearer":
                self.fields["auth"] = "other"
                raise ApiError(
                    401,
                    "unauthorized",
                    "Authorization header is not 'Bearer <API key>'",
                    challenge,
                )
            self.fields["auth"] = "bearer"
            key = credential.strip()
        else:
            key = (self.headers.get("X-API-Key") or "").strip()
            self.fields["auth"] = "x-api-key" if key else "none"
        if not key:
            raise ApiError(
                401,
                "unauthorized",
                "API key is missing; send Authorization: Bearer <API key>",
                challenge,
            )
        access = app.keys.get(key)
        if access is None and app.oidc is not None and header is not None and key.count(".") == 2:
            return self.authenticate_user_token(app, key)
        self.fields["key"] = access or "invalid"
        if access is None:
            raise ApiError(401, "unauthorized", "API key is not valid", challenge)
        return access

    def authenticate_user_token(self, app, token: str) -> str:
        """Accept a valid access token from the --oidc-issuer provider as a full key."""
        try:
            app.oidc.verify(token)
        except oidc_tokens.TokenRejected as error:
            self.fields["key"] = "invalid"
            raise ApiError(
                401,
                "unauthorized",
                f"access token is not valid: {error}",
                {"WWW-Authenticate": 'Bearer realm="trax", error="invalid_token"'},
            ) from None
        self.fields["key"] = "oidc"
        return "full"

    # -- operations --

    def get_health(self, app, params) -> Reply:
        return Reply(200, {"status": "ok"})

    def get_openapi(self, app, params) -> Reply:
        return Reply(200, app.openapi)

    def get_jwks(self, app, params) -> Reply:
        return Reply(200, app.signer.jwks(), {"Cache-Control": "max-age=60"})

    def list_studios(self, app, params) -> Reply:
        self.authenticate(app)
        end_cursor = app.faults.setting("end_cursor")
        return Reply(200, page(app.studios, "studios", "", self.query, end_cursor))

    def list_sources(self, app, params) -> Reply:
        self.authenticate(app)
        studio_id = single_parameter(self.query, "studioId")
        sources = app.sources
        if studio_id is not None:
            sources = [source for source in sources if source.get("studioId") == studio_id]
        end_cursor = app.faults.setting("end_cursor")
        return Reply(200, page(sources, "sources", studio_id or "", self.query, end_cursor))

    def create_publish_credentials(self, app, params) -> Reply:
        access = self.authenticate(app)
        source_id = params["sourceId"]
        if source_id not in app.sources_by_id:
            raise ApiError(404, "not_found", f"source {source_id!r} not found")
        if access != "full":
            raise ApiError(403, "forbidden", f"this API key may not publish source {source_id!r}")
        if app.faults.setting("write_disabled"):
            self.fields["injected"] = "write_disabled"
            raise ApiError(503, "write_disabled", "writes are disabled on this deployment")
        protocol = self.parse_protocol()
        credentials = self.issue(app, source_id, protocol)
        self.fields["issued"] = "streamKey" if "streamKey" in credentials else "token"
        return Reply(201, credentials)

    def parse_protocol(self) -> str:
        body = self.read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise invalid(f"Content-Type {content_type or '(none)'!r} is not application/json")
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise invalid('request body is not JSON; send {"protocol":"srt"}') from None
        if not isinstance(request, dict):
            raise invalid('request body is not a JSON object; send {"protocol":"srt"}')
        protocol = request.get("protocol")
        if protocol not in PROTOCOLS:
            raise invalid(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        return protocol

    def issue(self, app, source_id: str, protocol: str) -> dict:
        path = publish_path(source_id, protocol)
        now = int(time.time())
        credentials = {
            "object": "publish_credentials",
            "sourceId": source_id,
            "protocol": protocol,
            "path": path,
            "issuedAt": rfc3339(now),
        }
        if source_id in app.faults.setting("stream_key_sources"):
            credentials["streamKey"] = app.stream_key(source_id, protocol)
        else:
            expiry = now + app.faults.setting("token_ttl_s")
            claims = {
                "iss": ISSUER,
                "aud": AUDIENCES[protocol],
                "action": "publish",
                "path": path,
                "iat": now,
                "exp": expiry,
            }
            if protocol == "whip":
                claims["can_publish"] = True
            kid, key = app.signer.current()
            credentials["token"] = es256.sign(key, claims, kid)
            credentials["expiresAt"] = rfc3339(expiry)
            app.remember_token(path, credentials["token"])
        if app.ingest_urls[protocol]:
            credentials["ingestUrl"] = app.ingest_urls[protocol]
        return credentials

    # -- nginx-rtmp hooks --

    def read_form(self) -> str:
        body = self.read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise invalid(
                f"Content-Type {content_type or '(none)'!r} is not "
                "application/x-www-form-urlencoded"
            )
        try:
            return body.decode("ascii")
        except UnicodeDecodeError:
            raise invalid("hook body is not URL-encoded ASCII") from None

    def hook_event(self, app, form, **fields) -> dict:
        """Emit and count one hook event; it names no token, key or query value."""
        event = {
            "call": form.fields.get("call"),
            "app": form.fields.get("app"),
            "name": form.fields.get("name"),
            "addr": form.fields.get("addr"),
            "clientid": form.fields.get("clientid"),
            "request_id": self.request_id,
            **fields,
        }
        app.stats.record_hook(event)
        emit("hook", **event)
        return event

    def on_publish(self, app, params) -> Reply:
        form = v1_hooks.parse_form(self.read_form())
        placement = app.faults.setting("rtmp_placement")
        verdict = v1_hooks.check_publish(form, placement, app.hook_context())
        status = 200 if verdict.accepted else 403
        self.hook_event(
            app,
            form,
            path=f"{form.fields.get('app', '')}/{form.fields.get('name', '')}",
            placement=placement,
            found=verdict.found,
            checks=verdict.checks,
            accepted=verdict.accepted,
            status=status,
            reason=verdict.reason,
        )
        if verdict.accepted:
            return Reply(200, {"result": "accepted"})
        raise ApiError(403, "forbidden", verdict.reason)

    def on_publish_done(self, app, params) -> Reply:
        self.hook_event(app, v1_hooks.parse_form(self.read_form()))
        return Reply(200, {"result": "noted"})

    def on_record_done(self, app, params) -> Reply:
        form = v1_hooks.parse_form(self.read_form())
        self.hook_event(app, form, recording=form.fields.get("path"))
        return Reply(200, {"result": "noted"})

    # -- control --

    def serve_control(self, app) -> Reply:
        if self.operation == "GET /_control/stats":
            return Reply(200, app.stats.snapshot())
        if self.operation == "POST /_control":
            body = self.read_body()
            try:
                request = json.loads(body.decode("utf-8") or "{}")
            except (UnicodeDecodeError, ValueError):
                raise invalid("control body is not JSON") from None
            app.apply_control(parse_control(request))
        return Reply(200, app.control_state())


HANDLERS = {
    v1_openapi.HEALTH: Handler.get_health,
    v1_openapi.OPENAPI: Handler.get_openapi,
    v1_openapi.STUDIOS: Handler.list_studios,
    v1_openapi.SOURCES: Handler.list_sources,
    v1_openapi.PUBLISH_CREDENTIALS: Handler.create_publish_credentials,
    JWKS: Handler.get_jwks,
    ON_PUBLISH: Handler.on_publish,
    ON_PUBLISH_DONE: Handler.on_publish_done,
    ON_RECORD_DONE: Handler.on_record_done,
}


# --- start-up -----------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="The module docstring documents the output lines and /_control.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks one")
    parser.add_argument("--api-key-file", help="keys that may list and publish, one a line")
    parser.add_argument("--read-only-key-file", help="keys that may list only, one a line")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS with")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--make-tls", metavar="DIR", help="write test TLS files into DIR and exit")
    parser.add_argument("--fixtures", help='JSON file {"studios":[...],"sources":[...]}')
    parser.add_argument(
        "--generate-sources", type=int, metavar="N", help="serve N generated sources instead"
    )
    parser.add_argument("--signing-key", help="P-256 private key PEM that signs tokens")
    parser.add_argument("--kid", help="key id of the signing key (default: its thumbprint)")
    parser.add_argument("--public-key-out", help="write the signing public key (PEM) here")
    parser.add_argument("--token-ttl-s", type=int, default=600, help="token lifetime in seconds")
    parser.add_argument("--ingest-srt", help="ingestUrl for srt credentials")
    parser.add_argument("--ingest-rtmp", help="ingestUrl for rtmp credentials")
    parser.add_argument("--ingest-whip", help="ingestUrl for whip credentials")
    parser.add_argument(
        "--stream-key-sources", default="", help="comma-separated source ids that get streamKey"
    )
    parser.add_argument(
        "--omit-operation",
        action="append",
        default=[],
        metavar="'METHOD PATH'",
        help="leave this operation out of openapi.json; repeatable",
    )
    parser.add_argument("--api-version", default="1.3.0", help="info.version of openapi.json")
    parser.add_argument("--end-cursor", choices=("null", "absent"), default="null")
    parser.add_argument("--rate-limit", type=int, default=0, metavar="N", help="429 the next N")
    parser.add_argument("--retry-after-s", type=int, default=1, help="Retry-After in seconds")
    parser.add_argument(
        "--retry-after-form", choices=("seconds", "http-date", "none"), default="seconds"
    )
    parser.add_argument("--fail", type=int, default=0, metavar="N", help="fail the next N")
    parser.add_argument("--fail-status", type=int, choices=sorted(FAIL_CODES), default=503)
    parser.add_argument("--write-disabled", action="store_true", help="503 write_disabled")
    parser.add_argument("--delay-s", type=float, default=0.0, help="delay /v1 responses")
    parser.add_argument("--control", help="a /_control JSON body applied at start")
    parser.add_argument(
        "--rtmp-placement",
        choices=v1_hooks.PLACEMENTS,
        default="any",
        help="where on_publish requires RTMP credentials (default any)",
    )
    parser.add_argument("--oidc-issuer", help="also accept access tokens from this issuer")
    parser.add_argument("--oidc-audience", help="aud that those access tokens must contain")
    parser.add_argument("--oidc-ca-file", help="CA PEM for an HTTPS --oidc-issuer")
    args = parser.parse_args()

    if args.make_tls:
        return parser, args
    if not args.api_key_file and not args.read_only_key_file:
        parser.error("give --api-key-file (and/or --read-only-key-file) with one key a line")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if bool(args.oidc_issuer) != bool(args.oidc_audience):
        parser.error("--oidc-issuer and --oidc-audience go together; pass both or neither")
    if args.oidc_ca_file and not args.oidc_issuer:
        parser.error("--oidc-ca-file needs --oidc-issuer")
    if args.generate_sources is not None and args.generate_sources < 0:
        parser.error(f"--generate-sources {args.generate_sources} is negative")
    try:
        args.omit_operation = [v1_openapi.normalize_operation_key(op) for op in args.omit_operation]
    except ValueError as error:
        parser.error(f"--omit-operation {error}")
    return parser, args


def start_control(args) -> dict:
    """Translate the misbehaviour flags into one /_control body."""
    control = {}
    if args.rate_limit:
        control["rate_limit"] = {
            "count": args.rate_limit,
            "retry_after_s": args.retry_after_s,
            "retry_after_form": args.retry_after_form,
        }
    if args.fail:
        control["fail"] = {"count": args.fail, "status": args.fail_status}
    if args.write_disabled:
        control["write_disabled"] = True
    if args.delay_s:
        control["slow"] = {"delay_s": args.delay_s}
    return control


def load_keys(parser, args) -> dict:
    keys = {}
    try:
        if args.api_key_file:
            keys.update((key, "full") for key in read_keys(args.api_key_file))
        if args.read_only_key_file:
            keys.update((key, "read-only") for key in read_keys(args.read_only_key_file))
    except OSError as error:
        parser.error(f"cannot read a key file: {error}")
    if not keys:
        parser.error("the key files contain no keys; write one key a line")
    return keys


def load_data(parser, args):
    studios, sources = BUILT_IN_STUDIOS, BUILT_IN_SOURCES
    if args.fixtures:
        try:
            studios, sources = load_fixtures(args.fixtures)
        except (OSError, ValueError) as error:
            parser.error(f"--fixtures: {error}")
    if args.generate_sources is not None:
        studio, sources = generate_sources(args.generate_sources)
        studios = list(studios) + [studio]
    return list(studios), list(sources)


def load_signer(parser, args) -> Signer:
    if args.signing_key:
        try:
            key = es256.load_private_key(args.signing_key)
        except (OSError, ValueError) as error:
            parser.error(f"--signing-key: {error}")
    else:
        key = es256.generate_key()
    kid = args.kid or es256.thumbprint(key.public_key())
    if args.public_key_out:
        with open(args.public_key_out, "wb") as handle:
            handle.write(es256.public_key_pem(key.public_key()))
    return Signer(key, kid)


def load_oidc(parser, args):
    if not args.oidc_issuer:
        return None
    try:
        return oidc_tokens.OidcVerifier(args.oidc_issuer, args.oidc_audience, args.oidc_ca_file)
    except (OSError, ValueError) as error:
        parser.error(f"--oidc-issuer {args.oidc_issuer}: {error}; start the provider first")


def make_tls(directory: str) -> int:
    import tls_files

    paths = tls_files.write_test_pki(directory)
    emit("tls_files", **paths)
    return 0


def main() -> int:
    parser, args = parse_args()
    if args.make_tls:
        return make_tls(args.make_tls)

    keys = load_keys(parser, args)
    studios, sources = load_data(parser, args)
    signer = load_signer(parser, args)
    stream_key_sources = [item for item in args.stream_key_sources.split(",") if item]
    faults = Faults(args.token_ttl_s, args.end_cursor, stream_key_sources, args.rtmp_placement)
    oidc = load_oidc(parser, args)
    app = App(args, keys, studios, sources, signer, faults, oidc)
    try:
        app.apply_control(parse_control(start_control(args)))
        if args.control:
            app.apply_control(parse_control(json.loads(args.control)))
    except ValueError as error:
        parser.error(f"--control is not JSON: {error}")
    except ApiError as error:
        parser.error(f"misbehaviour flags: {error.message}")

    server = Server((HOST, args.port), Handler)
    server.app = app
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        scheme = "https"

    def request_stop(*_args):
        app.stop_event.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    serving.start()
    port = server.server_address[1]
    emit("listening", origin=f"{scheme}://{HOST}:{port}", kid=signer.current()[0])

    while not app.stop_event.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    serving.join()
    emit("stopped", requests=app.stats.snapshot()["total"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
