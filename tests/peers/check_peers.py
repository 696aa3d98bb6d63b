#!/usr/bin/python3
"""Self-check of the test peers: v1_standin.py, and srt_receiver.py's JWKS mode.

Starts the stand-in on loopback twice: plain HTTP with the built-in data,
and HTTPS with fixtures and 250 generated sources. Exercises every endpoint
and every /_control misbehaviour with urllib, and verifies an issued token
against the JWKS. Then runs srt_receiver.py --jwks-url and --public-key
against GStreamer srtsink callers. Prints "ok" or "FAIL" per check, and
exits 0 when every check passed, 1 otherwise.

Run with /usr/bin/python3 (python3-gi, python3-cryptography):
  /usr/bin/python3 tests/peers/check_peers.py
"""

import email.utils
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import es256  # noqa: E402

PYTHON = "/usr/bin/python3"
FULL_KEY = "key_full_" + os.urandom(8).hex()
READ_ONLY_KEY = "key_read_only_" + os.urandom(8).hex()
START_TIMEOUT_S = 15
EVENT_TIMEOUT_S = 10
CREDENTIALS = "/v1/sources/{}/publish-credentials"
PATH_PATTERN = re.compile(
    r"^inputs/(srt|rtmp|whip)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


class Results:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, name: str, condition: bool, detail=""):
        if condition:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failures.append(name)
            print(f"FAIL  {name}: {detail}")
        sys.stdout.flush()
        return condition

    def equal(self, name: str, actual, expected):
        return self.check(name, actual == expected, f"got {actual!r}, expected {expected!r}")


class Peer:
    """A peer subprocess whose stdout JSON lines are collected."""

    def __init__(self, argv, name: str):
        self.name = name
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [PYTHON, *argv], stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.events = []
        self.raw_lines = []
        self.condition = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            with self.condition:
                self.raw_lines.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"event": "unparsable", "line": line})
                self.condition.notify_all()

    def wait_for(self, predicate, timeout_s=EVENT_TIMEOUT_S, after=0):
        """Return the first event from index `after` on that matches predicate."""
        deadline = time.monotonic() + timeout_s
        with self.condition:
            while True:
                for event in self.events[after:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None and not self.reader.is_alive():
                    return None
                self.condition.wait(remaining)

    def count(self) -> int:
        with self.condition:
            return len(self.events)

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.reader.join(timeout=5)
        return status


class Response:
    def __init__(self, status, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def request_id(self):
        return self.headers.get("X-Request-Id")

    def error_code(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None


def call(
    origin,
    method,
    path,
    key=None,
    scheme="bearer",
    body=None,
    content_type=None,
    context=None,
    timeout_s=5,
    headers=None,
):
    request_headers = dict(headers or {})
    if key is not None and scheme == "bearer":
        request_headers["Authorization"] = f"Bearer {key}"
    elif key is not None and scheme == "x-api-key":
        request_headers["X-API-Key"] = key
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        request_headers["Content-Type"] = content_type or "application/json"
    request = urllib.request.Request(
        origin + path, data=data, method=method, headers=request_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as reply:
            return Response(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.headers, error.read())


def control(origin, body):
    return call(origin, "POST", "/_control", body=body)


def stats(origin):
    return call(origin, "GET", "/_control/stats").json


def stats_after_responses(origin, responses, timeout_s=2.0):
    """Return the stats once `responses` responses are recorded.

    The stand-in records a response's status after writing it, so a client
    can read the response before its thread records it."""
    deadline = time.monotonic() + timeout_s
    while True:
        counted = stats(origin)
        if sum(counted["statuses"].values()) >= responses or time.monotonic() > deadline:
            return counted
        time.sleep(0.02)


def write_file(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def start_standin(args, name):
    peer = Peer([os.path.join(HERE, "v1_standin.py"), *args], name)
    listening = peer.wait_for(lambda e: e.get("event") == "listening", START_TIMEOUT_S)
    if listening is None:
        raise SystemExit(f"{name} did not start: {peer.stderr_text()}")
    return peer, listening["origin"], listening["kid"]


def jwks_keys(origin, context=None):
    document = call(origin, "GET", "/.well-known/jwks.json", context=context).json
    return {jwk["kid"]: jwk for jwk in document["keys"]}


# --- checks: plain stand-in --------------------------------------------


def check_unauthenticated(results, origin):
    health = call(origin, "GET", "/v1/health")
    results.equal("health status", health.status, 200)
    results.equal("health body", health.json, {"status": "ok"})
    results.check(
        "health request id",
        bool(re.match(r"^req_[0-9a-f]{16}$", health.request_id or "")),
        health.request_id,
    )

    spec = call(origin, "GET", "/v1/openapi.json")
    results.equal("openapi status", spec.status, 200)
    results.equal("openapi version", spec.json["info"]["version"], "1.3.0")
    results.check("openapi is 3.0", spec.json["openapi"].startswith("3.0"), spec.json["openapi"])
    expected = {
        ("/v1/health", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/studios", "get"),
        ("/v1/sources", "get"),
        ("/v1/sources/{sourceId}/publish-credentials", "post"),
    }
    listed = {(path, method) for path, item in spec.json["paths"].items() for method in item}
    results.equal("openapi operations", listed, expected)

    unknown = call(origin, "GET", "/v1/nothing")
    results.equal("unknown path status", unknown.status, 404)
    results.equal("unknown path code", unknown.error_code(), "not_found")
    wrong_method = call(origin, "GET", CREDENTIALS.format("src_cam1"), key=FULL_KEY)
    results.equal("wrong method status", wrong_method.status, 405)
    results.equal("wrong method Allow", wrong_method.headers.get("Allow"), "POST")


def check_auth(results, origin):
    missing = call(origin, "GET", "/v1/studios")
    results.equal("missing key status", missing.status, 401)
    results.equal("missing key code", missing.error_code(), "unauthorized")
    results.equal(
        "envelope requestId matches header",
        missing.json["error"].get("requestId"),
        missing.request_id,
    )
    results.check(
        "401 has WWW-Authenticate", "WWW-Authenticate" in missing.headers, missing.headers
    )
    invalid = call(origin, "GET", "/v1/studios", key="not-a-key")
    results.equal("invalid key status", invalid.status, 401)
    basic = call(origin, "GET", "/v1/studios", headers={"Authorization": f"Basic {FULL_KEY}"})
    results.equal("basic scheme status", basic.status, 401)
    results.check("401 message hides key", FULL_KEY not in basic.body.decode(), basic.body)
    alias = call(origin, "GET", "/v1/studios", key=FULL_KEY, scheme="x-api-key")
    results.equal("X-API-Key alias status", alias.status, 200)
    read_only = call(origin, "GET", "/v1/sources", key=READ_ONLY_KEY)
    results.equal("read-only key lists", read_only.status, 200)
    forbidden = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=READ_ONLY_KEY, body={"protocol": "srt"}
    )
    results.equal("read-only key POST status", forbidden.status, 403)
    results.equal("read-only key POST code", forbidden.error_code(), "forbidden")


def check_lists(results, origin):
    studios = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    results.equal("studios status", studios.status, 200)
    results.equal(
        "studios ids", [s["id"] for s in studios.json["data"]], ["std_morning", "std_news"]
    )
    results.check(
        "studios end with null nextCursor",
        "nextCursor" in studios.json and studios.json["nextCursor"] is None,
        studios.json,
    )
    results.check(
        "items carry unknown fields", "createdAt" in studios.json["data"][0], studios.json
    )

    filtered = call(origin, "GET", "/v1/sources?studioId=std_news", key=FULL_KEY)
    results.equal(
        "studioId filter", [s["id"] for s in filtered.json["data"]], ["src_desk", "src_talk"]
    )

    first = call(origin, "GET", "/v1/sources?limit=3", key=FULL_KEY)
    results.equal("sources page 1 length", len(first.json["data"]), 3)
    cursor = first.json.get("nextCursor")
    results.check("sources page 1 has cursor", isinstance(cursor, str) and cursor, first.json)
    second = call(origin, "GET", f"/v1/sources?limit=3&cursor={cursor}", key=FULL_KEY)
    results.equal("sources page 2 ids", [s["id"] for s in second.json["data"]], ["src_talk"])
    results.equal("sources page 2 ends", second.json.get("nextCursor"), None)

    cases = [
        ("limit zero", "/v1/sources?limit=0"),
        ("limit negative", "/v1/sources?limit=-1"),
        ("limit text", "/v1/sources?limit=abc"),
        ("limit fraction", "/v1/sources?limit=1.5"),
        ("limit twice", "/v1/sources?limit=1&limit=2"),
        ("cursor garbage", "/v1/sources?cursor=%21%21"),
        ("cursor empty", "/v1/sources?cursor="),
        ("cursor from sources on studios", f"/v1/studios?cursor={cursor}"),
        ("cursor with other filter", f"/v1/sources?studioId=std_news&cursor={cursor}"),
    ]
    for name, path in cases:
        reply = call(origin, "GET", path, key=FULL_KEY)
        results.equal(f"{name} status", reply.status, 400)
        results.equal(f"{name} code", reply.error_code(), "invalid_request")


def check_credentials(results, origin, kid):
    reply = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    results.equal("srt credentials status", reply.status, 201)
    body = reply.json
    results.equal("srt sourceId", body.get("sourceId"), "src_cam1")
    results.equal("srt protocol", body.get("protocol"), "srt")
    results.check("srt path form", PATH_PATTERN.match(body.get("path", "")), body.get("path"))
    results.equal("srt ingestUrl", body.get("ingestUrl"), "srt://127.0.0.1:8890")
    results.check(
        "srt has token, no streamKey", "token" in body and "streamKey" not in body, body.keys()
    )

    header, claims, parts = es256.split_token(body["token"])
    results.equal("token header", header, {"alg": "ES256", "typ": "JWT", "kid": kid})
    results.equal("token iss", claims.get("iss"), "trax-studio-api")
    results.equal("token aud", claims.get("aud"), "trax-mediamtx")
    results.equal("token action", claims.get("action"), "publish")
    results.equal("token path", claims.get("path"), body["path"])
    results.equal("token lifetime", claims["exp"] - claims["iat"], 600)
    streamid_bytes = len(f"publish:{body['path']}:trax:{body['token']}".encode())
    results.check("streamid within 512 bytes", streamid_bytes <= 512, streamid_bytes)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))
    results.equal("expiresAt matches exp", body.get("expiresAt"), expires)
    keys = jwks_keys(origin)
    jwk = keys.get(kid)
    results.check("JWKS lists the kid", jwk is not None, list(keys))
    results.equal("JWK members", sorted(jwk), ["alg", "crv", "kid", "kty", "use", "x", "y"])
    results.equal(
        "JWK alg and use",
        (jwk["alg"], jwk["use"], jwk["kty"], jwk["crv"]),
        ("ES256", "sig", "EC", "P-256"),
    )
    public_key = es256.public_key_from_jwk(jwk)
    results.check("token verifies against JWKS", es256.verify(public_key, parts))
    tampered = [parts[0], es256.b64url_encode(es256.compact_json(dict(claims, path="x"))), parts[2]]
    results.check("tampered token fails", not es256.verify(public_key, tampered))

    again = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    results.equal("path stable per source and protocol", again.json.get("path"), body["path"])
    results.check("each token unique", again.json.get("token") != body["token"])
    rtmp = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "rtmp"}
    )
    results.check("path differs per protocol", rtmp.json.get("path") != body["path"], rtmp.json)
    results.check("rtmp without ingest option", "ingestUrl" not in rtmp.json, rtmp.json)

    whip = call(
        origin, "POST", CREDENTIALS.format("src_talk"), key=FULL_KEY, body={"protocol": "whip"}
    )
    _, whip_claims, _ = es256.split_token(whip.json["token"])
    results.equal("whip aud", whip_claims.get("aud"), "trax-mediamtx-talk")
    results.equal("whip can_publish", whip_claims.get("can_publish"), True)

    key_source = call(
        origin, "POST", CREDENTIALS.format("src_desk"), key=FULL_KEY, body={"protocol": "rtmp"}
    )
    results.equal("stream key source status", key_source.status, 201)
    results.check(
        "stream key source has streamKey only",
        "streamKey" in key_source.json and "token" not in key_source.json,
        key_source.json,
    )
    key_again = call(
        origin, "POST", CREDENTIALS.format("src_desk"), key=FULL_KEY, body={"protocol": "rtmp"}
    )
    results.equal(
        "stream key stable", key_again.json.get("streamKey"), key_source.json.get("streamKey")
    )

    bad = [
        ("unknown source", "src_nope", {"protocol": "srt"}, None, 404, "not_found"),
        ("bad protocol", "src_cam1", {"protocol": "udp"}, None, 400, "invalid_request"),
        ("missing protocol", "src_cam1", {}, None, 400, "invalid_request"),
        ("body not JSON", "src_cam1", b"protocol=srt", None, 400, "invalid_request"),
        ("body not object", "src_cam1", ["srt"], None, 400, "invalid_request"),
        (
            "wrong content type",
            "src_cam1",
            {"protocol": "srt"},
            "text/plain",
            400,
            "invalid_request",
        ),
    ]
    for name, source, payload, content_type, status, code in bad:
        reply = call(
            origin,
            "POST",
            CREDENTIALS.format(source),
            key=FULL_KEY,
            body=payload,
            content_type=content_type,
        )
        results.equal(f"{name} status", reply.status, status)
        results.equal(f"{name} code", reply.error_code(), code)
    no_key = call(origin, "POST", CREDENTIALS.format("src_cam1"), body={"protocol": "srt"})
    results.equal("POST without key", no_key.status, 401)
    return body["token"]


def check_keep_alive(results, origin):
    host, port = origin.rsplit("//", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    ids = set()
    # A 401 leaves the POST body unread by the handler; the next request on
    # the same connection must still parse.
    connection.request(
        "POST",
        CREDENTIALS.format("src_cam1"),
        body=b'{"protocol":"srt"}',
        headers={"Content-Type": "application/json"},
    )
    first = connection.getresponse()
    first.read()
    ids.add(first.getheader("X-Request-Id"))
    connection.request("GET", "/v1/health")
    second = connection.getresponse()
    second_body = second.read()
    ids.add(second.getheader("X-Request-Id"))
    connection.close()
    results.equal("keep-alive first status", first.status, 401)
    results.equal("keep-alive second status", second.status, 200)
    results.equal("keep-alive second body", json.loads(second_body), {"status": "ok"})
    results.equal("request ids unique", len(ids), 2)


def check_rate_limit(results, origin):
    control(origin, {"reset": True, "reset_stats": True})
    control(origin, {"rate_limit": {"count": 2, "retry_after_s": 3}})
    first = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    second = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    third = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    results.equal("rate limit first status", first.status, 429)
    results.equal("rate limit code", first.error_code(), "rate_limited")
    results.equal("Retry-After seconds", first.headers.get("Retry-After"), "3")
    results.equal("rate limit second status", second.status, 429)
    results.equal("rate limit over", third.status, 200)
    counted = stats_after_responses(origin, 3)
    results.equal("stats count retries", counted["paths"].get("GET /v1/studios"), 3)
    results.equal("stats statuses", counted["statuses"], {"429": 2, "200": 1})
    results.equal(
        "stats log injected",
        [r["injected"] for r in counted["requests"]],
        ["rate_limit", "rate_limit", None],
    )

    control(
        origin, {"rate_limit": {"count": 1, "retry_after_s": 5, "retry_after_form": "http-date"}}
    )
    dated = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    moment = email.utils.parsedate_to_datetime(dated.headers.get("Retry-After", ""))
    ahead_s = moment.timestamp() - time.time()
    results.check("Retry-After HTTP date ahead", 4 <= ahead_s <= 6.5, f"{ahead_s:.1f} s")

    control(origin, {"rate_limit": {"count": 1, "retry_after_form": "none"}})
    bare = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    results.equal("Retry-After omitted status", bare.status, 429)
    results.check("Retry-After omitted", "Retry-After" not in bare.headers, bare.headers)

    control(
        origin,
        {
            "rate_limit": {
                "count": 1,
                "operation": "post /v1/sources/{sourceId}/publish-credentials",
            }
        },
    )
    unaffected = call(origin, "GET", "/v1/studios", key=FULL_KEY)
    limited = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    results.equal("operation filter spares others", unaffected.status, 200)
    results.equal("operation filter hits target", limited.status, 429)


def check_fail(results, origin):
    for status, code in (
        (500, "internal_error"),
        (502, "bad_gateway"),
        (503, "service_unavailable"),
    ):
        control(origin, {"fail": {"count": 1, "status": status}})
        reply = call(origin, "GET", "/v1/health")
        results.equal(f"fail {status} status", reply.status, status)
        results.equal(f"fail {status} code", reply.error_code(), code)
        results.check(f"fail {status} request id", bool(reply.request_id), reply.headers)
    after = call(origin, "GET", "/v1/health")
    results.equal("fail count used up", after.status, 200)
    control(origin, {"fail": {"count": 1, "status": 502, "body": "html"}})
    html = call(origin, "GET", "/v1/health")
    results.equal("fail html status", html.status, 502)
    results.check("fail html body", html.headers.get("Content-Type") == "text/html", html.headers)

    control(origin, {"write_disabled": True})
    disabled = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    listing = call(origin, "GET", "/v1/sources", key=FULL_KEY)
    results.equal("write_disabled status", disabled.status, 503)
    results.equal("write_disabled code", disabled.error_code(), "write_disabled")
    results.equal("write_disabled spares reads", listing.status, 200)
    control(origin, {"write_disabled": False})
    enabled = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    results.equal("writes enabled again", enabled.status, 201)


def check_slow(results, origin):
    control(origin, {"reset_stats": True, "slow": {"delay_s": 1.5, "count": 1}})
    started = time.monotonic()
    try:
        call(origin, "GET", "/v1/health", timeout_s=0.4)
        timed_out = False
    except (socket.timeout, TimeoutError, urllib.error.URLError):
        timed_out = True
    results.check("slow reply times client out", timed_out, f"{time.monotonic() - started:.2f} s")
    counted = stats(origin)
    results.equal("slow request counted on arrival", counted["paths"].get("GET /v1/health"), 1)
    state = call(origin, "GET", "/_control").json
    results.equal("slow count used up", state["slow"], None)
    started = time.monotonic()
    fast = call(origin, "GET", "/v1/health")
    results.check(
        "next reply not delayed",
        fast.status == 200 and time.monotonic() - started < 1,
        f"{time.monotonic() - started:.2f} s",
    )
    time.sleep(1.3)
    logged = [r for r in stats(origin)["requests"] if r["injected"] == "slow"]
    results.check(
        "slow request logged undelivered or delivered late",
        len(logged) == 1 and logged[0]["elapsed_ms"] >= 1400,
        logged,
    )


def check_token_ttl_and_rotation(results, origin, kid):
    control(origin, {"token_ttl_s": -60})
    expired = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    _, claims, _ = es256.split_token(expired.json["token"])
    results.equal("negative TTL exp", claims["exp"] - claims["iat"], -60)
    results.check(
        "expired token expiresAt in the past",
        expired.json["expiresAt"] < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        expired.json["expiresAt"],
    )

    state = control(origin, {"rotate_signing_key": True}).json
    results.equal("rotation keeps old kid", state["kids"][0], kid)
    results.check(
        "rotation adds a kid", len(state["kids"]) == 2 and state["signing_kid"] != kid, state
    )
    rotated = call(
        origin, "POST", CREDENTIALS.format("src_cam1"), key=FULL_KEY, body={"protocol": "srt"}
    )
    header, _, parts = es256.split_token(rotated.json["token"])
    results.equal("token names new kid", header["kid"], state["signing_kid"])
    keys = jwks_keys(origin)
    results.equal("JWKS has both kids", sorted(keys), sorted(state["kids"]))
    new_key = es256.public_key_from_jwk(keys[state["signing_kid"]])
    results.check("new token verifies with new key", es256.verify(new_key, parts))
    results.equal("new kid is thumbprint", es256.thumbprint(new_key), state["signing_kid"])

    dropped = control(origin, {"drop_old_keys": True}).json
    results.equal("drop_old_keys leaves one", dropped["kids"], [state["signing_kid"]])
    reset = control(origin, {"reset": True}).json
    results.equal("reset restores TTL", reset["token_ttl_s"], 600)
    results.equal("reset keeps keys", reset["kids"], [state["signing_kid"]])


def check_control_validation(results, origin):
    cases = [
        ("unknown control field", {"explode": True}),
        ("fail status not allowed", {"fail": {"count": 1, "status": 404}}),
        ("rate limit count missing", {"rate_limit": {"retry_after_s": 1}}),
        ("unknown operation", {"rate_limit": {"count": 1, "operation": "GET /v2/x"}}),
        ("ttl not integer", {"token_ttl_s": "10"}),
        ("unknown section field", {"slow": {"delay_s": 1, "speed": 2}}),
    ]
    for name, body in cases:
        reply = control(origin, body)
        results.equal(f"{name} rejected", reply.status, 400)
    state = call(origin, "GET", "/_control").json
    results.equal(
        "rejected control changes nothing", (state["fail"], state["rate_limit"]), (None, None)
    )
    cleared = control(origin, {"reset_stats": True}).json
    results.check("control state returned", "write_disabled" in cleared, cleared)
    results.equal("reset_stats zeroes total", stats(origin)["total"], 0)


# --- checks: HTTPS stand-in with fixtures and generated sources ---------


def check_tls_and_paging(results, origin, tls, standin):
    trusted = ssl.create_default_context(cafile=tls["ca"])
    # --rate-limit 1 --retry-after-form http-date at start hit the first /v1 request.
    limited = call(origin, "GET", "/v1/studios", key=FULL_KEY, context=trusted)
    results.equal("start flag rate limit", limited.status, 429)
    results.check(
        "start flag http date", "GMT" in limited.headers.get("Retry-After", ""), limited.headers
    )
    health = call(origin, "GET", "/v1/health", context=trusted)
    results.equal("https with trusted CA", health.status, 200)

    for name, context in (
        ("https with system CAs fails", ssl.create_default_context()),
        ("https with other CA fails", ssl.create_default_context(cafile=tls["other_ca"])),
    ):
        before = standin.count()
        try:
            call(origin, "GET", "/v1/health", context=context)
            failed = False
        except urllib.error.URLError as error:
            failed = isinstance(error.reason, ssl.SSLCertVerificationError)
        results.check(name, failed)
        logged = standin.wait_for(lambda e: e.get("event") == "connection_error", after=before)
        results.check(f"{name}: stand-in logs connection_error", logged is not None)

    spec = call(origin, "GET", "/v1/openapi.json", context=trusted).json
    results.check(
        "omitted operation absent",
        "/v1/sources/{sourceId}/publish-credentials" not in spec["paths"],
        list(spec["paths"]),
    )
    results.equal("api version option", spec["info"]["version"], "1.2.9")

    studios = call(origin, "GET", "/v1/studios", key=FULL_KEY, context=trusted).json
    results.equal(
        "fixture studios", [s["id"] for s in studios["data"]], ["std_fixture", "std_generated"]
    )
    results.check("end cursor absent", "nextCursor" not in studios, studios)

    pages = []
    cursor = None
    for _ in range(5):
        path = "/v1/sources?limit=100" + (f"&cursor={cursor}" if cursor else "")
        reply = call(origin, "GET", path, key=FULL_KEY, context=trusted)
        pages.append(reply.json["data"])
        cursor = reply.json.get("nextCursor")
        if cursor is None:
            break
    results.equal("three pages", [len(p) for p in pages], [100, 100, 50])
    ids = [s["id"] for p in pages for s in p]
    results.equal("pages cover every source once", len(set(ids)), 250)
    results.equal("generated ids", (ids[0], ids[-1]), ("src_gen_001", "src_gen_250"))
    clamped = call(origin, "GET", "/v1/sources?limit=500", key=FULL_KEY, context=trusted).json
    results.equal("limit clamped to 200", len(clamped["data"]), 200)
    default = call(origin, "GET", "/v1/sources", key=FULL_KEY, context=trusted).json
    results.equal("default limit 50", len(default["data"]), 50)
    delayed_state = call(origin, "GET", "/_control", context=trusted).json
    results.equal("--control at start", delayed_state["end_cursor"], "absent")

    jwks_url = origin + "/.well-known/jwks.json"
    for name, extra, expected in (
        ("receiver JWKS over https with CA", ["--jwks-ca-file", tls["ca"]], True),
        ("receiver JWKS over https without CA", [], False),
    ):
        receiver = start_receiver(free_udp_port(), ["--jwks-url", jwks_url, *extra], name)
        fetched = receiver.wait_for(lambda e: e.get("event") == "jwks") or {}
        receiver.stop()
        results.equal(name, fetched.get("ok"), expected)


# --- checks: srt_receiver.py with JWKS ------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Caller:
    """GStreamer srtsink caller; the streamid goes through a property, not argv."""

    def __init__(self):
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst

        Gst.init(None)
        self.Gst = Gst

    def dial(self, port: int, streamid: str, timeout_s=5):
        Gst = self.Gst
        pipeline = Gst.Pipeline.new("caller")
        source = Gst.ElementFactory.make("fakesrc")
        source.set_property("num-buffers", 20)
        Gst.util_set_object_arg(source, "sizetype", "fixed")
        source.set_property("sizemax", 1316)
        Gst.util_set_object_arg(source, "filltype", "zero")
        sink = Gst.ElementFactory.make("srtsink")
        sink.set_property("uri", f"srt://127.0.0.1:{port}")
        sink.set_property("streamid", streamid)
        # One attempt per dial, so that the receiver emits one connecting event.
        sink.set_property("auto-reconnect", False)
        pipeline.add(source)
        pipeline.add(sink)
        source.link(sink)
        pipeline.set_state(Gst.State.PLAYING)
        bus = pipeline.get_bus()
        bus.timed_pop_filtered(
            int(timeout_s * Gst.SECOND), Gst.MessageType.ERROR | Gst.MessageType.EOS
        )
        pipeline.set_state(Gst.State.NULL)


def start_receiver(port, extra, name):
    peer = Peer(
        [
            os.path.join(HERE, "srt_receiver.py"),
            "--port",
            str(port),
            "--stats-interval-ms",
            "0",
            *extra,
        ],
        name,
    )
    if peer.wait_for(lambda e: e.get("event") == "listening", START_TIMEOUT_S) is None:
        raise SystemExit(f"{name} did not start: {peer.stderr_text()}")
    return peer


def dial_and_wait(receiver, caller, port, streamid):
    before = receiver.count()
    caller.dial(port, streamid)
    event = receiver.wait_for(lambda e: e.get("event") == "connecting", after=before)
    return event or {"missing": "no connecting event", "events": receiver.events[before:]}


def mint(directory, *args):
    out = os.path.join(directory, "minted")
    subprocess.run([PYTHON, os.path.join(HERE, "mint_token.py"), *args, "--out", out], check=True)
    with open(out, encoding="ascii") as handle:
        return handle.read()


def issued(origin, source, protocol="srt"):
    body = call(
        origin, "POST", CREDENTIALS.format(source), key=FULL_KEY, body={"protocol": protocol}
    ).json
    return body["path"], body["token"]


def check_receiver(results, origin, directory, signing_key, tokens):
    caller = Caller()
    jwks_url = origin + "/.well-known/jwks.json"
    path, token = issued(origin, "src_cam2")
    tokens.append(token)
    control(origin, {"reset_stats": True})

    port = free_udp_port()
    receiver = start_receiver(
        port, ["--jwks-url", jwks_url, "--expected-path", path], "receiver-jwks"
    )
    fetched = receiver.wait_for(lambda e: e.get("event") == "jwks")
    results.check(
        "receiver fetches JWKS at start",
        fetched and fetched.get("ok") and fetched.get("trigger") == "start",
        fetched,
    )

    stranger = mint(
        directory,
        "--key",
        os.path.join(directory, "stranger.pem"),
        "--path",
        path,
        "--kid",
        "kid-nobody-knows",
    )
    tokens.append(stranger)
    event = dial_and_wait(receiver, caller, port, f"publish:{path}:trax:{stranger}")
    results.equal("unknown kid rejected", event.get("accepted"), False)
    results.check("unknown kid reason", "not in the JWKS" in event.get("reason", ""), event)
    refetch = receiver.wait_for(
        lambda e: e.get("event") == "jwks" and e.get("trigger") == "unknown kid"
    )
    results.check("unknown kid triggers JWKS fetch", refetch is not None, receiver.events)

    forged = mint(
        directory,
        "--key",
        os.path.join(directory, "stranger.pem"),
        "--path",
        path,
        "--kid",
        fetched["kids"][0],
    )
    tokens.append(forged)
    event = dial_and_wait(receiver, caller, port, f"publish:{path}:trax:{forged}")
    results.equal("bad signature rejected", event.get("accepted"), False)
    results.check("bad signature reason", "does not verify" in event.get("reason", ""), event)

    no_kid = mint(directory, "--key", signing_key, "--path", path)
    tokens.append(no_kid)
    event = dial_and_wait(receiver, caller, port, f"publish:{path}:trax:{no_kid}")
    results.equal("token without kid rejected", event.get("accepted"), False)
    results.check("token without kid reason", "no kid" in event.get("reason", ""), event)

    control(origin, {"rotate_signing_key": True})
    path, rotated = issued(origin, "src_cam2")
    tokens.append(rotated)
    event = dial_and_wait(receiver, caller, port, f"publish:{path}:trax:{rotated}")
    results.equal("rotated kid accepted after refetch", event.get("accepted"), True)
    results.check("rotated kid reason", event.get("reason") == "token accepted", event)
    results.equal(
        "JWKS fetched three times", stats(origin)["paths"].get("GET /.well-known/jwks.json"), 3
    )
    receiver.stop()
    results.check(
        "receiver output hides tokens",
        not any(t in line for t in tokens for line in receiver.raw_lines),
    )

    # --public-key keeps working.
    public_pem = os.path.join(directory, "standin-public.pem")
    port = free_udp_port()
    receiver = start_receiver(
        port, ["--public-key", public_pem, "--expected-path", path], "receiver-pem"
    )
    event = dial_and_wait(receiver, caller, port, f"publish:{path}:trax:{stranger}")
    results.equal("public key rejects other key", event.get("accepted"), False)
    path_first, first_key_token = path, mint(directory, "--key", signing_key, "--path", path)
    tokens.append(first_key_token)
    event = dial_and_wait(receiver, caller, port, f"publish:{path_first}:trax:{first_key_token}")
    results.equal("public key accepts its token", event.get("accepted"), True)
    receiver.stop()


def main() -> int:
    results = Results()
    tokens = []
    with tempfile.TemporaryDirectory(prefix="check-peers-") as directory:
        keys = write_file(directory, "keys", f"# full keys\n{FULL_KEY}\n\n")
        read_only = write_file(directory, "read-only-keys", f"{READ_ONLY_KEY}\n")
        signing_key = os.path.join(directory, "signing.pem")
        with open(signing_key, "wb") as handle:
            handle.write(es256.private_key_pem(es256.generate_key()))
        fixtures = write_file(
            directory,
            "fixtures.json",
            json.dumps({"studios": [{"id": "std_fixture", "name": "Fixture"}], "sources": []}),
        )

        tls_run = subprocess.run(
            [
                PYTHON,
                os.path.join(HERE, "v1_standin.py"),
                "--make-tls",
                os.path.join(directory, "tls"),
            ],
            capture_output=True,
            text=True,
        )
        tls = json.loads(tls_run.stdout)
        results.check(
            "--make-tls writes files",
            all(os.path.exists(tls[r]) for r in ("ca", "server_cert", "server_key", "other_ca")),
            tls,
        )

        plain, origin, kid = start_standin(
            [
                "--api-key-file",
                keys,
                "--read-only-key-file",
                read_only,
                "--signing-key",
                signing_key,
                "--public-key-out",
                os.path.join(directory, "standin-public.pem"),
                "--ingest-srt",
                "srt://127.0.0.1:8890",
                "--stream-key-sources",
                "src_desk",
            ],
            "stand-in",
        )
        results.check(
            "origin is loopback http", re.match(r"^http://127\.0\.0\.1:\d+$", origin), origin
        )
        try:
            check_unauthenticated(results, origin)
            check_auth(results, origin)
            check_lists(results, origin)
            tokens.append(check_credentials(results, origin, kid))
            check_keep_alive(results, origin)
            check_rate_limit(results, origin)
            check_fail(results, origin)
            check_slow(results, origin)
            check_token_ttl_and_rotation(results, origin, kid)
            check_control_validation(results, origin)
            control(origin, {"reset": True})
            check_receiver(results, origin, directory, signing_key, tokens)
        finally:
            status = plain.stop()
        results.equal("stand-in exits 0 on SIGTERM", status, 0)
        results.check(
            "stand-in prints stopped", plain.events[-1].get("event") == "stopped", plain.events[-1:]
        )
        request_lines = [e for e in plain.events if e.get("event") == "request"]
        results.check("stand-in logs requests", len(request_lines) > 50, len(request_lines))
        output = "".join(plain.raw_lines) + plain.stderr_text()
        results.check(
            "stand-in output hides API keys", FULL_KEY not in output and READ_ONLY_KEY not in output
        )
        results.check("stand-in output hides tokens", not any(t in output for t in tokens))

        secure, secure_origin, _ = start_standin(
            [
                "--api-key-file",
                keys,
                "--tls-cert",
                tls["server_cert"],
                "--tls-key",
                tls["server_key"],
                "--fixtures",
                fixtures,
                "--generate-sources",
                "250",
                "--end-cursor",
                "null",
                "--omit-operation",
                "POST /v1/sources/{sourceId}/publish-credentials",
                "--api-version",
                "1.2.9",
                "--rate-limit",
                "1",
                "--retry-after-form",
                "http-date",
                "--control",
                '{"end_cursor": "absent"}',
            ],
            "stand-in-tls",
        )
        results.check(
            "origin is loopback https",
            secure_origin.startswith("https://127.0.0.1:"),
            secure_origin,
        )
        try:
            check_tls_and_paging(results, secure_origin, tls, secure)
        finally:
            secure.stop()

    print(f"{results.passed} passed, {len(results.failures)} failed")
    for name in results.failures:
        print(f"  failed: {name}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
