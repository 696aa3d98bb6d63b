#!/usr/bin/python3
"""Mock WHIP server (RFC 9725) for the signaling tests: HTTP only, no media.

It responds to OPTIONS, POST and DELETE the way a scenario prescribes and
records every request. Its SDP answers are derived from the offer (same
m-lines, mids and payload types, its own ICE credentials and a random DTLS
fingerprint, no candidates), so webrtcbin can apply them, although no media
will ever flow. Standard library only; run it with /usr/bin/python3. It
listens on 127.0.0.1 only.

COMMAND LINE

  /usr/bin/python3 tests/peers/whip_mock.py --log FILE [options]

  --scenario NAME        Behaviour at start (default ok); see SCENARIOS.
  --token-file FILE      The Bearer token every request must carry (the
                         file's first line). A missing or other token gets
                         401 in every scenario. Without this flag any token
                         passes. Tokens are never taken from argv.
  --log FILE             JSON lines, one per request (see LOG).
  --port N               Port of the main listener; 0 (default) picks one.
  --tls-cert PEM --tls-key PEM
                         Serve HTTPS on both listeners.

STDOUT: its first line is one JSON object, flushed at once:

  {"event":"listening","port":N,"origin":"http://127.0.0.1:N",
   "second_port":M,"second_origin":"http://127.0.0.1:M"}

The second listener, on another port and so another origin, serves the
target of the redirect-cross-origin scenario and otherwise acts like the
main one.

CONTROL (on either listener, no token, not logged)

  POST /_control {"scenario":"NAME"}   switch scenario, reset its counters
  POST /_control {"scenario":"NAME","turn":{"url":URL,"username":U,
                  "credential":C}}
                                       the same, and from then on the Link
                                       headers of ok and options-ice name
                                       only this TURN server (the password
                                       stays out of the process arguments)
  GET  /_control                       {"scenario":"NAME","sessions":[paths]}

SCENARIOS (POST means the POST of an offer to any path that is not a
session resource; OPTIONS gets 204 without Link headers unless stated)

  ok                     POST: 201 with a root-relative Location
                         (<path>/<id>), an ETag and two Link headers
                         (a STUN server and a TURN server with credentials).
  relative-location      POST: 201 with Location "sessions/<id>".
  dotdot-location        POST: 201 with Location "../sessions/<id>".
  absolute-location      POST: 201 with Location
                         "<origin>/resources/<id>".
  no-location            POST: 201 without Location.
  redirect-307           Every request outside /moved gets 307 to
                         /moved<path>; under /moved, as ok (the Location
                         is still root-relative, without /moved).
  redirect-308           The same with 308.
  redirect-301           The same with 301.
  redirect-loop          Every request gets 307 to /loop/<n+1>.
  redirect-cross-origin  Every request on the main listener gets 307 to
                         the same path on the second listener; there, as ok.
  link-forms             POST: as ok, with every Link header form: two
                         headers, comma-joined links, unquoted parameters,
                         quoted credentials with ';' and ',', a rel list,
                         other rels, a malformed entry, turns: with
                         transport=tcp, an IPv6 host, credential-type.
  options-ice            OPTIONS: 204 with the two Link headers of ok.
                         POST: 201 without Link headers.
  no-options             OPTIONS: 405. POST: as ok.
  options-bad-request    OPTIONS: 400 with a text/plain body. POST: as ok.
  unauthorized           Every request: 401, the body naming the token
                         received (so the client must redact it).
  not-acceptable         POST: 406 with a text/plain body.
  bad-request            POST: 400 with a text/plain body.
  stale                  First POST: 409 with a text body; later ones as ok.
  busy                   POST: 503 with Retry-After: 2.
  html-answer            POST: 201 whose body is text/html.
  empty-answer           POST: 201 application/sdp with an empty body.

  DELETE of a session resource: 200, and the resource is gone. DELETE of
  any other path: 404.

LOG: one JSON object per request, written before the response is sent:

  {"listener":"main"|"second","port":N,"scenario":"ok","method":"POST",
   "path":"/inputs/cam/whip","query":"","headers":{"content-type":...},
   "auth":"match"|"mismatch"|"missing"|"unchecked","body_length":812,
   "body_sha256":"<hex>","candidates":0,"relay_candidates":0,
   "status":201,"resource":"/inputs/cam/whip/<id>"|null}

  headers has every request header, names lowercase, except Authorization.
  candidates counts the body's a=candidate lines, relay_candidates those
  with "typ relay".
"""

import argparse
import hashlib
import json
import secrets
import signal
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCENARIOS = (
    "ok",
    "relative-location",
    "dotdot-location",
    "absolute-location",
    "no-location",
    "redirect-307",
    "redirect-308",
    "redirect-301",
    "redirect-loop",
    "redirect-cross-origin",
    "link-forms",
    "options-ice",
    "no-options",
    "options-bad-request",
    "unauthorized",
    "not-acceptable",
    "bad-request",
    "stale",
    "busy",
    "html-answer",
    "empty-answer",
)

LOCATION_FORMS = {
    "relative-location": "relative",
    "dotdot-location": "dotdot",
    "absolute-location": "absolute",
    "no-location": None,
}

REDIRECT_STATUSES = {"redirect-307": 307, "redirect-308": 308, "redirect-301": 301}

OK_LINKS = [
    '<stun:127.0.0.1:3478>; rel="ice-server"',
    '<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="mock-user"; '
    'credential="mock-pass"; credential-type="password"',
]

# Every form of Link header in one response; the tests list what each one
# must produce.
LINK_FORMS = [
    '<stun:stun1.example.net:3478>; rel="ice-server"',
    '<stun:stun2.example.net>; rel="ice-server", '
    '<turn:turn.example.net:3478?transport=udp>; rel=ice-server; username=plain; '
    "credential=unquoted/value+1=",
    '<turn:turn.example.net?transport=tcp>; rel="ice-server"; username="user;one,two"; '
    'credential="pass,with;separators \\"quoted\\""; credential-type="password"',
    '<turns:turn.example.net:443?transport=tcp>; rel="ice-server other"; username="u"; '
    'credential="c"',
    '<https://edge.example/other>; rel="alternate", <stun:not-ice.example>; rel="other"',
    'stun:malformed.example; rel="ice-server"',
    '<stun:[2001:db8::1]:3478>; rel="ice-server"',
    '<turn:oauth.example>; rel="ice-server"; username="u"; credential="c"; '
    'credential-type="oauth"',
]

DIRECTIONS = {
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "sendrecv": "recvonly",
    "inactive": "inactive",
}

SDP_COPIED_PREFIXES = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")


def answer_sdp(offer: str) -> str:
    """Return an SDP answer to `offer`: the same m-lines, mids and payload
    types, a=setup:active, its own ice-ufrag and ice-pwd, a random sha-256
    fingerprint, a=rtcp-mux and no candidates. Raise ValueError when the
    offer has no m-line."""
    session, sections = [], []
    for line in offer.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    if not sections:
        raise ValueError("the offer has no m= line")

    ufrag = secrets.token_hex(4)
    password = secrets.token_hex(12)
    fingerprint = ":".join(f"{byte:02X}" for byte in secrets.token_bytes(32))
    lines = [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
    ]
    lines += [line for line in session if line.startswith("a=group:BUNDLE")]
    for section in sections:
        lines += answer_section(section, ufrag, password, fingerprint)
    return "\r\n".join(lines) + "\r\n"


def answer_section(section, ufrag, password, fingerprint):
    fields = section[0][2:].split()
    if len(fields) < 4:
        raise ValueError(f"invalid m-line {section[0]!r}")
    kind, port, proto, formats = fields[0], fields[1], fields[2], fields[3:]
    attributes = section[1:]
    mid = next((line[6:] for line in attributes if line.startswith("a=mid:")), None)
    direction = next(
        (DIRECTIONS[line[2:]] for line in attributes if line[2:] in DIRECTIONS), "recvonly"
    )

    lines = [
        f"m={kind} {'0' if port == '0' else '9'} {proto} {' '.join(formats)}",
        "c=IN IP4 0.0.0.0",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{password}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:active",
    ]
    if mid is not None:
        lines.append(f"a=mid:{mid}")
    lines += [f"a={direction}", "a=rtcp-mux"]
    for line in attributes:
        if line.startswith(SDP_COPIED_PREFIXES):
            payload_type = line.split(":", 1)[1].split(" ", 1)[0]
            if payload_type in formats or payload_type == "*":
                lines.append(line)
    return lines


def turn_links(turn):
    """Return the Link header values naming the TURN server of a control request,
    or None when it names none. Raise KeyError or TypeError when turn is
    not an object with url, username and credential."""
    if turn is None:
        return None
    url, username, credential = (str(turn[name]) for name in ("url", "username", "credential"))
    return [
        f'<{url}>; rel="ice-server"; username="{quoted(username)}"; '
        f'credential="{quoted(credential)}"; credential-type="password"'
    ]


def quoted(text):
    """Escape backslashes and double quotes for an HTTP quoted-string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class State:
    """Scenario, sessions and log, shared by both listeners' threads."""

    def __init__(self, scenario, token, log_path):
        self.lock = threading.Lock()
        self.scenario = scenario
        self.token = token
        self.log = open(log_path, "a", encoding="utf-8")
        self.posts = 0
        self.sessions = set()
        self.ice_links = OK_LINKS

    def set_scenario(self, scenario, ice_links=None):
        with self.lock:
            self.scenario = scenario
            self.posts = 0
            if ice_links is not None:
                self.ice_links = ice_links

    def count_post(self) -> int:
        with self.lock:
            self.posts += 1
            return self.posts

    def record(self, entry: dict):
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()


class Reply:
    """A response to send: status, headers (a list, names may repeat), body."""

    def __init__(self, status, body=b"", content_type=None, headers=None, resource=None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = list(headers or [])
        if content_type:
            self.headers.append(("Content-Type", content_type))
        self.resource = resource


def text_reply(status, text):
    return Reply(status, text + "\n", "text/plain; charset=utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "whip-mock"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def do_OPTIONS(self):
        self.handle_whip()

    def do_POST(self):
        if self.path_only() == "/_control":
            self.handle_control()
        else:
            self.handle_whip()

    def do_DELETE(self):
        self.handle_whip()

    def do_PATCH(self):
        self.handle_whip()

    def do_GET(self):
        if self.path_only() == "/_control":
            self.handle_control()
        else:
            self.send(text_reply(405, "GET is not a WHIP method"))

    @property
    def state(self) -> State:
        return self.server.state

    @property
    def origin(self) -> str:
        return self.server.origin

    def path_only(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_control(self):
        body = self.read_body()
        if self.command == "POST":
            try:
                request = json.loads(body or b"{}")
                scenario = request.get("scenario")
                ice_links = turn_links(request.get("turn"))
            except (ValueError, AttributeError, KeyError, TypeError) as error:
                self.send(text_reply(400, f"invalid control request: {error}"))
                return
            if scenario not in SCENARIOS:
                self.send(text_reply(400, f"scenario {scenario!r} is not one of {SCENARIOS}"))
                return
            self.state.set_scenario(scenario, ice_links)
        with self.state.lock:
            payload = {"scenario": self.state.scenario, "sessions": sorted(self.state.sessions)}
        self.send(Reply(200, json.dumps(payload), "application/json"))

    def auth_result(self) -> str:
        if self.state.token is None:
            return "unchecked"
        value = self.headers.get("Authorization")
        if value is None:
            return "missing"
        scheme, _, token = value.partition(" ")
        matches = scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), self.state.token.encode()
        )
        return "match" if matches else "mismatch"

    def handle_whip(self):
        body = self.read_body()
        auth = self.auth_result()
        with self.state.lock:
            scenario = self.state.scenario
        if scenario == "unauthorized" or auth in ("missing", "mismatch"):
            received = (self.headers.get("Authorization") or "").partition(" ")[2]
            reply = text_reply(401, f"invalid token '{received}' for this path")
            reply.headers.append(("WWW-Authenticate", 'Bearer realm="whip-mock"'))
        else:
            reply = self.scenario_reply(scenario, body)

        text = body.decode("utf-8", "replace")
        candidates = [line for line in text.splitlines() if line.startswith("a=candidate")]
        self.state.record(
            {
                "listener": self.server.name,
                "port": self.server.server_address[1],
                "scenario": scenario,
                "method": self.command,
                "path": self.path_only(),
                "query": urllib.parse.urlsplit(self.path).query,
                "headers": {
                    name.lower(): value
                    for name, value in self.headers.items()
                    if name.lower() != "authorization"
                },
                "auth": auth,
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "candidates": len(candidates),
                "relay_candidates": sum(" typ relay" in line for line in candidates),
                "status": reply.status,
                "resource": reply.resource,
            }
        )
        self.send(reply)

    def scenario_reply(self, scenario, body) -> Reply:
        path = self.path_only()
        redirect = self.redirect_reply(scenario, path)
        if redirect is not None:
            return redirect
        if path.startswith("/moved/"):
            path = path[len("/moved") :]

        if self.command == "DELETE":
            return self.delete_reply(path)
        if self.command == "OPTIONS":
            return self.options_reply(scenario)
        if self.command != "POST":
            return text_reply(405, f"{self.command} is not supported here")
        return self.post_reply(scenario, path, body)

    def redirect_reply(self, scenario, path):
        query = urllib.parse.urlsplit(self.path).query
        suffix = f"?{query}" if query else ""
        if scenario in REDIRECT_STATUSES and not path.startswith("/moved/"):
            status = REDIRECT_STATUSES[scenario]
            return Reply(status, headers=[("Location", f"/moved{path}{suffix}")])
        if scenario == "redirect-loop":
            step = int(path.rsplit("/", 1)[1]) + 1 if path.startswith("/loop/") else 1
            return Reply(307, headers=[("Location", f"/loop/{step}")])
        if scenario == "redirect-cross-origin" and self.server.name == "main":
            target = f"{self.server.other_origin}{path}{suffix}"
            return Reply(307, headers=[("Location", target)])
        return None

    def delete_reply(self, path) -> Reply:
        with self.state.lock:
            known = path in self.state.sessions
            self.state.sessions.discard(path)
        if not known:
            return text_reply(404, f"no session at {path}")
        return Reply(200)

    def options_reply(self, scenario) -> Reply:
        if scenario == "no-options":
            return text_reply(405, "OPTIONS is not supported")
        if scenario == "options-bad-request":
            return text_reply(400, "OPTIONS is not understood")
        with self.state.lock:
            links = self.state.ice_links if scenario == "options-ice" else []
        headers = [("Link", link) for link in links]
        headers.append(("Access-Control-Allow-Methods", "OPTIONS, POST, DELETE"))
        return Reply(204, headers=headers)

    def post_reply(self, scenario, path, body) -> Reply:
        attempt = self.state.count_post()
        if scenario == "not-acceptable":
            return text_reply(406, "codecs not supported by path 'inputs/cam': H264 profile rejected")
        if scenario == "bad-request":
            return text_reply(400, "path 'inputs/cam' is not configured")
        if scenario == "stale" and attempt == 1:
            return text_reply(409, "a session is already publishing to 'inputs/cam'")
        if scenario == "busy":
            reply = text_reply(503, "server busy")
            reply.headers.append(("Retry-After", "2"))
            return reply
        if scenario == "html-answer":
            return Reply(201, "<html><body>created</body></html>", "text/html")
        if scenario == "empty-answer":
            return Reply(201, b"", "application/sdp")

        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            return text_reply(415, f"Content-Type {content_type!r} is not application/sdp")
        try:
            answer = answer_sdp(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            return text_reply(400, f"invalid SDP offer: {error}")
        return self.created_reply(scenario, path, answer)

    def created_reply(self, scenario, path, answer) -> Reply:
        session_id = secrets.token_hex(8)
        form = LOCATION_FORMS.get(scenario, "root")
        location = {
            "root": f"{path}/{session_id}",
            "relative": f"sessions/{session_id}",
            "dotdot": f"../sessions/{session_id}",
            "absolute": f"{self.origin}/resources/{session_id}",
            None: None,
        }[form]

        headers = [("ETag", f'"{secrets.token_hex(6)}"')]
        resource = None
        if location is not None:
            headers.append(("Location", location))
            request_url = f"{self.origin}{self.path_only()}"
            resource = urllib.parse.urlsplit(urllib.parse.urljoin(request_url, location)).path
        else:
            # Kept so that a DELETE can still be tried; the client has no URL for it.
            resource = f"{path}/{session_id}"
        with self.state.lock:
            self.state.sessions.add(resource)

        if scenario == "link-forms":
            links = LINK_FORMS
        elif scenario == "options-ice":
            links = []
        else:
            with self.state.lock:
                links = self.state.ice_links
        headers += [("Link", link) for link in links]
        return Reply(201, answer, "application/sdp", headers, resource)

    def send(self, reply: Reply):
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)
        self.wfile.flush()


class Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name, port, state, context):
        super().__init__(("127.0.0.1", port), Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.name = name
        self.state = state
        scheme = "https" if context is not None else "http"
        self.origin = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self.other_origin = None


def parse_args():
    parser = argparse.ArgumentParser(description="Mock WHIP server for the signaling tests")
    parser.add_argument("--scenario", default="ok", choices=SCENARIOS)
    parser.add_argument("--token-file", help="file whose first line is the expected token")
    parser.add_argument("--log", required=True, help="JSON-lines request log")
    parser.add_argument("--port", type=int, default=0, help="main listener's port (0: any)")
    parser.add_argument("--tls-cert", help="PEM certificate chain; serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def main() -> int:
    args = parse_args()
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:
            token = handle.readline().strip()
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    state = State(args.scenario, token, args.log)
    main_listener = Listener("main", args.port, state, context)
    second_listener = Listener("second", 0, state, context)
    main_listener.other_origin = second_listener.origin
    second_listener.other_origin = main_listener.origin

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=second_listener.serve_forever, daemon=True).start()
    print(
        json.dumps(
            {
                "event": "listening",
                "port": main_listener.server_address[1],
                "origin": main_listener.origin,
                "second_port": second_listener.server_address[1],
                "second_origin": second_listener.origin,
            }
        ),
        flush=True,
    )
    try:
        main_listener.serve_forever(poll_interval=0.1)
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
