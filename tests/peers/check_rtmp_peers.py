#!/usr/bin/python3
"""Self-check of the RTMP peers: nginx-rtmp and v1_standin.py's on_publish hook.

Part one posts bodies to POST /hooks/on_publish as nginx-rtmp 1.2.2 builds
them, with tcUrl and the publish name cut at 255 bytes as nginx cuts them,
and checks each placement rule and credential case. Part two starts nginx
with the RTMP and stream modules on free 127.0.0.1 ports and publishes with
ffmpeg. Credentials in the query and in tcUrl are accepted and recorded as
FLV that decodes to H.264 and AAC, and a forged token is refused. RTMPS
works with the test CA, while ffmpeg rejects an untrusted CA and a
wrong-host certificate. Prints "ok" or "FAIL" per check, and exits 0 when
every check passed, 1 otherwise.

Needs nginx, libnginx-mod-rtmp, libnginx-mod-stream and ffmpeg
(scripts/install-deps.sh). Run with /usr/bin/python3:
  /usr/bin/python3 tests/peers/check_rtmp_peers.py
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from check_peers import (  # noqa: E402
    PYTHON,
    Results,
    call,
    control,
    start_standin,
    stats,
    write_file,
)

KEY = "key_rtmp_" + os.urandom(8).hex()
NGINX = "/usr/sbin/nginx"
MODULE_DIRECTORIES = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
NGINX_KEPT_BYTES = 255
FORM = "application/x-www-form-urlencoded"
NGINX_START_TIMEOUT_S = 10
HOOK_TIMEOUT_S = 15
PUBLISH_SECONDS = "2"
PLAIN_TCURL = "rtmp://127.0.0.1:1935/inputs"


def cut(text: str) -> str:
    """Return the part of tcUrl or of the publish name that nginx-rtmp keeps."""
    return text.encode("utf-8")[:NGINX_KEPT_BYTES].decode("utf-8", "ignore")


def hook_body(path: str, tcurl=PLAIN_TCURL, query=None, nginx_cut=True) -> bytes:
    """Build the on_publish body that nginx-rtmp sends for a publish of path."""
    app, name = path.rsplit("/", 1)
    args = ""
    if query is not None:
        published = f"{name}?{query}"
        if nginx_cut:
            published = cut(published)
        name, _, args = published.partition("?")
    if nginx_cut:
        tcurl = cut(tcurl)
    quote = lambda text: urllib.parse.quote(text, safe="")  # noqa: E731
    body = (
        f"app={quote(app)}&flashver=FMLE%2F3.0&swfurl=&tcurl={quote(tcurl)}&pageurl="
        f"&addr=127.0.0.1&clientid=7&call=publish&name={quote(name)}&type=live"
    )
    if args:
        body += "&" + args
    return body.encode("ascii")


def post_hook(origin, body: bytes, content_type=FORM):
    return call(origin, "POST", "/hooks/on_publish", body=body, content_type=content_type)


def last_hook(origin) -> dict:
    events = stats(origin)["hooks"]["events"]
    return events[-1] if events else {}


def issue(origin, source_id: str, protocol="rtmp") -> dict:
    reply = call(
        origin,
        "POST",
        f"/v1/sources/{source_id}/publish-credentials",
        key=KEY,
        body={"protocol": protocol},
    )
    if reply.status != 201:
        raise SystemExit(f"credential POST for {source_id} returned {reply.status}")
    return reply.json


def token_tcurl(user: str, password: str, port=1935) -> str:
    return f"rtmp://{user}:{password}@127.0.0.1:{port}/inputs"


def mint_forged(path: str, directory: str) -> str:
    """Mint a well-formed token for path, signed by a key that the stand-in does not know."""
    reply = subprocess.run(
        [PYTHON, os.path.join(HERE, "mint_token.py"), "--kid-thumbprint", "--path", path],
        capture_output=True,
        text=True,
        cwd=directory,
        check=True,
    )
    return reply.stdout.strip()


# --- part one: the hook on its own ----------------------------------------


def expect_verdict(results, origin, name, body, accepted, checks=None, reason=None):
    reply = post_hook(origin, body)
    results.equal(f"{name}: status", reply.status, 200 if accepted else 403)
    event = last_hook(origin)
    results.equal(f"{name}: event accepted", event.get("accepted"), accepted)
    if checks is not None:
        results.equal(f"{name}: checks", event.get("checks"), checks)
    if reason is not None:
        actual = event.get("reason") or ""
        results.check(f"{name}: reason", reason in actual, f"{actual!r} lacks {reason!r}")
        message = (reply.json or {}).get("error", {}).get("message", "")
        results.equal(f"{name}: 403 message is the reason", message, actual)
    return event


def check_placements(results, origin, desk):
    path, token = desk["path"], desk["token"]
    query = f"user=trax&pass={token}"
    tcurl = token_tcurl("trax", token)
    results.check("issued rtmp token is full length", len(token) > 300, len(token))

    expect_verdict(
        results, origin, "query, cut", hook_body(path, query=query), True, {"query": "prefix"}
    )
    expect_verdict(
        results, origin, "tcurl, cut", hook_body(path, tcurl=tcurl), True, {"tcurl": "prefix"}
    )
    expect_verdict(
        results,
        origin,
        "query, whole",
        hook_body(path, query=query, nginx_cut=False),
        True,
        {"query": "full"},
    )
    expect_verdict(
        results,
        origin,
        "tcurl, whole",
        hook_body(path, tcurl=tcurl, nginx_cut=False),
        True,
        {"tcurl": "full"},
    )
    expect_verdict(
        results,
        origin,
        "any, neither",
        hook_body(path),
        False,
        reason="credentials missing from tcurl or query (placement any)",
    )

    control(origin, {"rtmp_placement": "both"})
    expect_verdict(
        results,
        origin,
        "both, both present",
        hook_body(path, tcurl=tcurl, query=query),
        True,
        {"query": "prefix", "tcurl": "prefix"},
    )
    expect_verdict(
        results,
        origin,
        "both, query only",
        hook_body(path, query=query),
        False,
        reason="credentials missing from tcurl (placement both)",
    )
    control(origin, {"rtmp_placement": "tcurl"})
    expect_verdict(
        results,
        origin,
        "tcurl, query only",
        hook_body(path, query=query),
        False,
        reason="credentials missing from tcurl (placement tcurl)",
    )
    expect_verdict(
        results,
        origin,
        "tcurl ignores a bad query",
        hook_body(path, tcurl=tcurl, query="user=trax&pass=bad"),
        True,
        {"tcurl": "prefix"},
    )
    control(origin, {"rtmp_placement": "query"})
    expect_verdict(
        results,
        origin,
        "query, tcurl only",
        hook_body(path, tcurl=tcurl),
        False,
        reason="credentials missing from query (placement query)",
    )
    control(origin, {"rtmp_placement": "any"})
    expect_verdict(
        results,
        origin,
        "any, bad tcurl beside good query",
        hook_body(path, tcurl=token_tcurl("trax", "bad"), query=query),
        False,
        {"query": "prefix", "tcurl": "full"},
        reason="tcurl: token has 1 parts, not 3",
    )


def check_token_cases(results, origin, desk, directory):
    path, token = desk["path"], desk["token"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    expect_verdict(
        results,
        origin,
        "whole token, bad signature",
        hook_body(path, query=f"user=trax&pass={tampered}", nginx_cut=False),
        False,
        reason="query: token signature does not verify",
    )
    padding = "x" * (NGINX_KEPT_BYTES - len(path) - 60)
    expect_verdict(
        results,
        origin,
        "cut to under 100 characters",
        hook_body(path, query=f"user=trax&pad={padding}&pass={token}"),
        False,
        reason="fewer than 100",
    )
    forged = mint_forged(path, directory)
    expect_verdict(
        results,
        origin,
        "cut forged token",
        hook_body(path, query=f"user=trax&pass={forged}"),
        False,
        reason=f"starts no token issued for {path}",
    )
    expect_verdict(
        results,
        origin,
        "whole forged token",
        hook_body(path, query=f"user=trax&pass={forged}", nginx_cut=False),
        False,
        reason="is not in the JWKS",
    )
    expect_verdict(
        results,
        origin,
        "user is not trax",
        hook_body(path, query=f"user=admin&pass={token}"),
        False,
        reason="user is not 'trax'",
    )
    expect_verdict(
        results,
        origin,
        "pass is missing",
        hook_body(path, query="user=trax"),
        False,
        reason="query: pass is missing",
    )

    talk = issue(origin, "src_talk", "whip")
    expect_verdict(
        results,
        origin,
        "whole whip token (aud)",
        hook_body(talk["path"], query=f"user=trax&pass={talk['token']}", nginx_cut=False),
        False,
        reason="does not contain 'trax-mediamtx'",
    )
    camera_token = issue(origin, "src_cam1")["token"]
    expect_verdict(
        results,
        origin,
        "whole token for another path",
        hook_body(path, query=f"user=trax&pass={camera_token}", nginx_cut=False),
        False,
        reason=f"is not {path!r}",
    )

    # src_cam2 gets no other rtmp token, so the cut prefix can only match
    # the expired one.
    control(origin, {"token_ttl_s": -60})
    expired = issue(origin, "src_cam2")
    control(origin, {"reset": True})
    expect_verdict(
        results,
        origin,
        "cut expired token",
        hook_body(expired["path"], query=f"user=trax&pass={expired['token']}"),
        False,
        reason="expired",
    )
    expect_verdict(
        results,
        origin,
        "whole expired token",
        hook_body(expired["path"], query=f"user=trax&pass={expired['token']}", nginx_cut=False),
        False,
        reason="token expired",
    )


def check_cut_limits(results, origin, desk):
    """Show that a cut query token is not bound to its path, while a cut tcUrl token is."""
    camera = issue(origin, "src_cam1")
    expect_verdict(
        results,
        origin,
        "cut query token of another rtmp path passes (documented limit)",
        hook_body(desk["path"], query=f"user=trax&pass={camera['token']}"),
        True,
        {"query": "prefix"},
    )
    expect_verdict(
        results,
        origin,
        "cut tcurl token of another rtmp path",
        hook_body(desk["path"], tcurl=token_tcurl("trax", camera["token"])),
        False,
        reason="tcurl: cut token",
    )


def check_stream_keys(results, origin):
    control(origin, {"stream_key_sources": ["src_talk", "src_cam2"]})
    talk = issue(origin, "src_talk")
    other = issue(origin, "src_cam2")
    control(origin, {"reset": True})
    key, path = talk["streamKey"], talk["path"]
    expect_verdict(
        results,
        origin,
        "stream key in query",
        hook_body(path, query=f"user={key}&pass={key}"),
        True,
        {"query": "stream_key"},
    )
    expect_verdict(
        results,
        origin,
        "stream key in tcurl",
        hook_body(path, tcurl=token_tcurl(key, key)),
        True,
        {"tcurl": "stream_key"},
    )
    expect_verdict(
        results,
        origin,
        "stream key, pass differs",
        hook_body(path, query=f"user={key}&pass={key}x"),
        False,
        reason="not the same issued stream key",
    )
    expect_verdict(
        results,
        origin,
        "stream key of another path",
        hook_body(path, query=f"user={other['streamKey']}&pass={other['streamKey']}"),
        False,
        reason=f"was issued for {other['path']}",
    )
    return [key, other["streamKey"]]


def check_hook_plumbing(results, origin):
    reply = post_hook(origin, hook_body("inputs/rtmp-x"), content_type="application/json")
    results.equal("hook with JSON body: 400", reply.status, 400)
    results.equal("hook with JSON body: code", reply.error_code(), "invalid_request")
    reply = call(origin, "GET", "/hooks/on_publish")
    results.equal("GET on the hook: 405", reply.status, 405)

    done = b"app=inputs&tcurl=&addr=127.0.0.1&clientid=7&call=publish_done&name=rtmp-x&pass=s"
    reply = call(origin, "POST", "/hooks/on_publish_done", body=done, content_type=FORM)
    results.equal("on_publish_done: 200", reply.status, 200)
    record = (
        b"app=inputs&addr=127.0.0.1&clientid=7&call=record_done&recorder="
        b"&name=rtmp-x&path=%2Ftmp%2Frtmp-x-1.flv&pass=s"
    )
    reply = call(origin, "POST", "/hooks/on_record_done", body=record, content_type=FORM)
    results.equal("on_record_done: 200", reply.status, 200)
    event = last_hook(origin)
    results.equal("on_record_done: recording", event.get("recording"), "/tmp/rtmp-x-1.flv")
    results.check("on_record_done: no query values", "pass" not in event, event)

    bad = control(origin, {"rtmp_placement": "nowhere"})
    results.equal("control rejects rtmp_placement nowhere", bad.status, 400)
    state = control(origin, {"rtmp_placement": "both"}).json
    results.equal("control sets rtmp_placement", state.get("rtmp_placement"), "both")
    state = control(origin, {"reset": True}).json
    results.equal("reset restores --rtmp-placement", state.get("rtmp_placement"), "any")


# --- part two: nginx and ffmpeg ---------------------------------------------


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_module(file_name: str) -> str:
    for directory in MODULE_DIRECTORIES:
        path = os.path.join(directory, file_name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"nginx module {file_name} not found; run scripts/install-deps.sh")


def redact(text: str) -> str:
    return re.sub(r"(tc_url|args)='[^'\n]*", r"\1='<redacted>", text)


class Nginx:
    """nginx with the RTMP application inputs and, with a certificate, RTMPS."""

    def __init__(self, directory: str, hook_origin: str, certificate=None):
        if not os.path.exists(NGINX):
            raise SystemExit(f"{NGINX} not found; run scripts/install-deps.sh")
        os.makedirs(directory)
        self.directory = directory
        self.record_dir = os.path.join(directory, "recordings")
        os.makedirs(self.record_dir)
        self.rtmp_port = free_tcp_port()
        self.rtmps_port = free_tcp_port() if certificate else None
        self.error_log = os.path.join(directory, "error.log")
        config = os.path.join(directory, "nginx.conf")
        write_file(directory, "nginx.conf", self.config(hook_origin, certificate))
        self.process = subprocess.Popen(
            [NGINX, "-p", directory, "-c", config, "-e", self.error_log]
            + ["-g", "daemon off; master_process off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_until_listening()

    def config(self, hook_origin, certificate) -> str:
        hooks = f"{hook_origin}/hooks"
        text = (
            f"load_module {find_module('ngx_rtmp_module.so')};\n"
            f"load_module {find_module('ngx_stream_module.so')};\n"
            f"pid {self.directory}/nginx.pid;\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            "rtmp {\n"
            "    access_log off;\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.rtmp_port};\n"
            "        application inputs {\n"
            "            live on;\n"
            "            record all;\n"
            f"            record_path {self.record_dir};\n"
            "            record_unique on;\n"
            f"            on_publish {hooks}/on_publish;\n"
            f"            on_publish_done {hooks}/on_publish_done;\n"
            f"            on_record_done {hooks}/on_record_done;\n"
            "        }\n"
            "    }\n"
            "}\n"
        )
        if certificate:
            cert, key = certificate
            text += (
                "stream {\n"
                "    server {\n"
                f"        listen 127.0.0.1:{self.rtmps_port} ssl;\n"
                f"        ssl_certificate {cert};\n"
                f"        ssl_certificate_key {key};\n"
                f"        proxy_pass 127.0.0.1:{self.rtmp_port};\n"
                "    }\n"
                "}\n"
            )
        return text

    def wait_until_listening(self):
        deadline = time.monotonic() + NGINX_START_TIMEOUT_S
        ports = [port for port in (self.rtmp_port, self.rtmps_port) if port]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"nginx exited: {self.log()}")
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"nginx did not listen on {ports}: {self.log()}")

    def log(self) -> str:
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as handle:
                return redact(handle.read())
        except OSError:
            return ""

    def recordings(self) -> list:
        names = sorted(name for name in os.listdir(self.record_dir) if name.endswith(".flv"))
        return [os.path.join(self.record_dir, name) for name in names]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ffmpeg_publish(url: str, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
        + ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
        + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        + ["-t", PUBLISH_SECONDS, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"]
        + ["-c:a", "aac", "-b:a", "64k", *extra, "-f", "flv", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def codec_names(recording: str) -> list:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"]
        + [recording],
        capture_output=True,
        text=True,
    )
    return sorted(line.strip() for line in probe.stdout.splitlines() if line.strip())


def decode_errors(recording: str) -> str:
    decode = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", recording, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return decode.stderr if decode.returncode == 0 else f"exit {decode.returncode}: {decode.stderr}"


def wait_for_hook(origin, call_name: str, count: int) -> list:
    deadline = time.monotonic() + HOOK_TIMEOUT_S
    while True:
        events = [e for e in stats(origin)["hooks"]["events"] if e["call"] == call_name]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def check_recorded(results, name, origin, nginx, publish, before: dict, token: str):
    """Check an accepted ffmpeg publish and the recording it left."""
    results.equal(f"{name}: ffmpeg exits 0", publish.returncode, 0)
    if publish.returncode != 0:
        # ffmpeg's errors name the output URL, token included.
        print(f"      ffmpeg: {publish.stderr.replace(token, '<token>').strip()}")
        print(f"      nginx: {nginx.log()[-1500:]}")
    publishes = wait_for_hook(origin, "publish", before["publish"] + 1)
    results.equal(f"{name}: hook accepted", publishes[-1:] and publishes[-1]["accepted"], True)
    done = wait_for_hook(origin, "record_done", before["record_done"] + 1)
    results.equal(f"{name}: one record_done", len(done), before["record_done"] + 1)
    recordings = [path for path in nginx.recordings() if path not in before["recordings"]]
    results.equal(f"{name}: one new recording", len(recordings), 1)
    if not recordings:
        return
    results.equal(f"{name}: record_done names it", done[-1].get("recording"), recordings[0])
    results.equal(f"{name}: codecs", codec_names(recordings[0]), ["aac", "h264"])
    results.equal(f"{name}: decodes cleanly", decode_errors(recordings[0]), "")


def snapshot(origin, nginx) -> dict:
    calls = stats(origin)["hooks"]["calls"]
    return {
        "publish": calls.get("publish", 0),
        "record_done": calls.get("record_done", 0),
        "recordings": nginx.recordings(),
    }


def check_ffmpeg_publishes(results, origin, directory, tls):
    nginx = Nginx(os.path.join(directory, "nginx"), origin)
    try:
        desk = issue(origin, "src_desk")
        url = f"rtmp://127.0.0.1:{nginx.rtmp_port}/{desk['path']}"

        before = snapshot(origin, nginx)
        publish = ffmpeg_publish(f"{url}?user=trax&pass={desk['token']}")
        check_recorded(
            results, "ffmpeg query publish", origin, nginx, publish, before, desk["token"]
        )

        before = snapshot(origin, nginx)
        tcurl = token_tcurl("trax", desk["token"], nginx.rtmp_port)
        publish = ffmpeg_publish(url, ["-rtmp_tcurl", tcurl])
        check_recorded(
            results, "ffmpeg tcUrl publish", origin, nginx, publish, before, desk["token"]
        )

        before = snapshot(origin, nginx)
        forged = mint_forged(desk["path"], directory)
        publish = ffmpeg_publish(f"{url}?user=trax&pass={forged}")
        results.check("ffmpeg forged token: exits non-zero", publish.returncode != 0)
        results.check(
            "ffmpeg forged token: Input/output error",
            "Input/output error" in publish.stderr,
            publish.stderr.replace(forged, "<token>").strip(),
        )
        publishes = wait_for_hook(origin, "publish", before["publish"] + 1)
        results.equal("ffmpeg forged token: hook refused", publishes[-1]["status"], 403)
        time.sleep(0.5)
        results.equal("ffmpeg forged token: no recording", nginx.recordings(), before["recordings"])
        results.equal(
            "ffmpeg forged token: no publish_done",
            stats(origin)["hooks"]["calls"].get("publish_done"),
            2,
        )
    finally:
        nginx.stop()

    secure = Nginx(
        os.path.join(directory, "nginx-tls"), origin, (tls["server_cert"], tls["server_key"])
    )
    try:
        url = f"rtmps://127.0.0.1:{secure.rtmps_port}/{desk['path']}?user=trax&pass={desk['token']}"
        before = snapshot(origin, secure)
        publish = ffmpeg_publish(url, ["-tls_verify", "1", "-ca_file", tls["ca"]])
        check_recorded(
            results, "ffmpeg RTMPS publish", origin, secure, publish, before, desk["token"]
        )

        before = snapshot(origin, secure)
        publish = ffmpeg_publish(url, ["-tls_verify", "1", "-ca_file", tls["other_ca"]])
        results.check("ffmpeg RTMPS, untrusted CA: fails", publish.returncode != 0)
        results.check(
            "ffmpeg RTMPS, untrusted CA: verification failed",
            "failed verification" in publish.stderr,
            publish.stderr.replace(desk["token"], "<token>").strip(),
        )
        results.equal(
            "ffmpeg RTMPS, untrusted CA: no hook call",
            stats(origin)["hooks"]["calls"].get("publish", 0),
            before["publish"],
        )
    finally:
        secure.stop()

    wrong = Nginx(
        os.path.join(directory, "nginx-wrong-host"),
        origin,
        (tls["wrong_host_cert"], tls["wrong_host_key"]),
    )
    try:
        url = f"rtmps://127.0.0.1:{wrong.rtmps_port}/{desk['path']}?user=trax&pass={desk['token']}"
        before = snapshot(origin, wrong)
        publish = ffmpeg_publish(url, ["-tls_verify", "1", "-ca_file", tls["ca"]])
        results.check("ffmpeg RTMPS, wrong host: fails", publish.returncode != 0)
        results.check(
            "ffmpeg RTMPS, wrong host: hostname mismatch",
            "does not match hostname 127.0.0.1" in publish.stderr,
            publish.stderr.replace(desk["token"], "<token>").strip(),
        )
        results.equal(
            "ffmpeg RTMPS, wrong host: no hook call",
            stats(origin)["hooks"]["calls"].get("publish", 0),
            before["publish"],
        )
    finally:
        wrong.stop()
    return [desk["token"], forged]


def main() -> int:
    results = Results()
    secrets = [KEY]
    with tempfile.TemporaryDirectory(prefix="check-rtmp-peers-") as directory:
        keys = write_file(directory, "keys", f"{KEY}\n")
        made = subprocess.run(
            [PYTHON, os.path.join(HERE, "v1_standin.py"), "--make-tls", f"{directory}/tls"],
            capture_output=True,
            text=True,
            check=True,
        )
        tls = json.loads(made.stdout)
        standin, origin, _ = start_standin(["--api-key-file", keys], "stand-in")
        try:
            desk = issue(origin, "src_desk")
            secrets.append(desk["token"])
            check_placements(results, origin, desk)
            check_token_cases(results, origin, desk, directory)
            check_cut_limits(results, origin, desk)
            secrets += check_stream_keys(results, origin)
            check_hook_plumbing(results, origin)
            hooks = stats(origin)["hooks"]
            results.equal(
                "stats count every on_publish",
                hooks["accepted"] + hooks["refused"],
                hooks["calls"]["publish"],
            )
            control(origin, {"reset_stats": True})
            secrets += check_ffmpeg_publishes(results, origin, directory, tls)
        finally:
            status = standin.stop()
        results.equal("stand-in exits 0", status, 0)
        output = "".join(standin.raw_lines) + standin.stderr_text()
        leaked = [index for index, secret in enumerate(secrets) if secret[:100] in output]
        results.equal("stand-in output hides tokens, keys and stream keys", leaked, [])

    print(f"{results.passed} passed, {len(results.failures)} failed")
    for name in results.failures:
        print(f"  failed: {name}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
