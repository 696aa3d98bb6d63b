"""Helpers shared by the benchmark scenarios: timing, tokens, receivers, machine facts.

Standard library only.
"""

import base64
import ctypes
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time"
STREAM_PATH = "inputs/srt-bench"
# Seconds the receiver keeps reading after the bridge exits, for data in flight.
RECEIVER_DRAIN_S = 1.0


def mint_token(path=STREAM_PATH, audiences=("trax-mediamtx", "trax-mediamtx-talk")):
    """Return an unsigned JWT-shaped token for path that passes the bridge's claim checks.

    By default its audience covers SRT and RTMP (trax-mediamtx) and WHIP
    (trax-mediamtx-talk), so one token serves every output. The loopback
    receivers check no signature, so the signature part is filler.
    """
    def encode(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "action": "publish",
        "path": path,
        "aud": list(audiences),
        "exp": int(time.time()) + 10 * 365 * 86400,
    }
    return ".".join(
        [encode(json.dumps(header).encode()), encode(json.dumps(payload).encode()), encode(b"unsigned")]
    )


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_time_report(path):
    """Return CPU seconds (user + sys), peak RSS in MiB and wall seconds from a time -v report."""
    fields = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    try:
        cpu_s = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
        rss_mib = int(fields["Maximum resident set size (kbytes)"]) / 1024
        wall_parts = [float(part) for part in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
    except (KeyError, ValueError) as error:
        sys.exit(f"bench: field {error} missing or invalid in the /usr/bin/time -v report {path}")
    wall_s = 0.0
    for part in wall_parts:
        wall_s = wall_s * 60 + part
    return cpu_s, rss_mib, wall_s


def timed_run(argv, env, log_path):
    """Run argv under /usr/bin/time -v and return (cpu_s, rss_mib, wall_s), or exit if it fails."""
    with tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt", delete=False) as report:
        report_path = report.name
    try:
        with open(log_path, "w") as log:
            result = subprocess.run(
                [TIME, "-v", "-o", report_path, *argv], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            sys.exit(
                f"bench: {shlex.join(argv)} exited with {result.returncode}: see {log_path}"
            )
        return parse_time_report(report_path)
    finally:
        os.unlink(report_path)


class CountingReceiver:
    """A receiver process on loopback whose stdout is counted, and written to capture_path if given."""

    name = "receiver"

    def __init__(self, argv, log_path, capture_path=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.capture = open(capture_path, "wb") if capture_path is not None else None
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log)
        self.received_bytes = 0
        self.reader = threading.Thread(target=self._count, daemon=True)
        self.reader.start()

    def _count(self):
        while chunk := self.process.stdout.read1(65536):
            self.received_bytes += len(chunk)
            if self.capture is not None:
                self.capture.write(chunk)

    def stop(self):
        """Stop the receiver after RECEIVER_DRAIN_S and return the bytes it received."""
        time.sleep(RECEIVER_DRAIN_S)
        stop_process(self.process)
        self.reader.join(timeout=5)
        self.log.close()
        if self.capture is not None:
            self.capture.close()
        return self.received_bytes


class SrtReceiver(CountingReceiver):
    """An srt-live-transmit listener that writes the MPEG-TS it receives to stdout."""

    name = "SRT"

    def __init__(self, port=None, log_path=os.devnull, capture_path=None):
        """Listen on port (default: a free one). Callers wait with wait_for_udp_listener."""
        self.port = port if port is not None else free_udp_port()
        super().__init__(
            ["srt-live-transmit", "-q", f"srt://127.0.0.1:{self.port}?mode=listener", "file://con"],
            log_path,
            capture_path,
        )

    def wait_ready(self):
        wait_for_listener("udp", self.port, self.log_path)

    def url(self):
        return f"srt://127.0.0.1:{self.port}"


NGINX_RTMP_CONFIG = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 64; }}
rtmp {{
    log_format bytes '$command $bytes_received';
    server {{
        listen 127.0.0.1:{port};
        access_log {directory}/access.log bytes;
        application {application} {{ live on; record off; }}
    }}
}}
"""
# Module folders of Debian's libnginx-mod-rtmp, which differ between package versions.
NGINX_MODULE_DIRECTORIES = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")


def find_nginx_rtmp_module():
    for directory in NGINX_MODULE_DIRECTORIES:
        module = Path(directory) / "ngx_rtmp_module.so"
        if module.is_file():
            return module
    sys.exit(
        f"bench: ngx_rtmp_module.so not found in {' or '.join(NGINX_MODULE_DIRECTORIES)}: "
        "run `make setup` (scripts/install-deps.sh installs libnginx-mod-rtmp)"
    )


class NginxRtmpReceiver:
    """nginx with the RTMP module (libnginx-mod-rtmp), a foreground process in its own folder.

    It relays nothing and records nothing, and it counts the bytes each
    session received in its access log, which it writes when a session ends.
    It costs less than FFmpeg's `-listen 1` RTMP server copying to a pipe.
    For a 10 s publish of 6 Mbit/s, /usr/bin/time measured 0.03 CPU s for
    nginx and 0.16 CPU s for FFmpeg (one run each, two shared AMD EPYC cores).
    """

    name = "RTMP"

    def __init__(self, path, log_path):
        self.path = path
        self.log_path = log_path
        self.directory = Path(tempfile.mkdtemp(prefix="nginx-", dir=Path(log_path).parent))
        self.port = free_tcp_port()
        application, _, _ = path.rpartition("/")
        config = self.directory / "nginx.conf"
        config.write_text(
            NGINX_RTMP_CONFIG.format(
                module=find_nginx_rtmp_module(), directory=self.directory, port=self.port, application=application
            )
        )
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", str(self.directory), "-c", str(config), "-e", str(self.directory / "error.log")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self):
        wait_for_listener("tcp", self.port, self.directory / "error.log")

    def url(self):
        return f"rtmp://127.0.0.1:{self.port}/{self.path}"

    def stop(self):
        """Stop nginx after RECEIVER_DRAIN_S and return the bytes its sessions received."""
        time.sleep(RECEIVER_DRAIN_S)
        stop_process(self.process)
        self.log.close()
        access_log = self.directory / "access.log"
        if not access_log.is_file():
            return 0
        received = 0
        for line in access_log.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[1].isdigit():
                received += int(fields[1])
        return received


class WhipReceiver:
    """bench/whip_sink.py: a webrtcbin WHIP endpoint that counts RTP bytes without decoding."""

    name = "WHIP"

    def __init__(self, path, log_path):
        self.path = path
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            ["/usr/bin/python3", str(REPO / "bench" / "whip_sink.py")],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.port = None

    def wait_ready(self):
        """Read the port from the receiver's first line, or exit. The caller stops the receiver either way."""
        line = self.process.stdout.readline()
        try:
            self.port = json.loads(line)["port"]
        except (ValueError, KeyError):
            sys.exit(f"bench: bench/whip_sink.py did not start (first line {line!r}): see {self.log_path}")

    def url(self):
        return f"http://127.0.0.1:{self.port}/{self.path}/whip"

    def stop(self):
        """Stop the receiver after RECEIVER_DRAIN_S and return the RTP bytes from its "stopped" line."""
        time.sleep(RECEIVER_DRAIN_S)
        self.process.terminate()
        try:
            remaining, _ = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            remaining, _ = self.process.communicate()
        self.log.close()
        received = 0
        for line in remaining.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "stopped":
                received = event["bytes"]
        return received


def stop_process(process, kill=False):
    """End process with SIGKILL (kill) or SIGTERM, then SIGKILL after 5 s, and reap it."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The prctl option (linux/prctl.h) that makes orphaned descendants children of this process.
PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans():
    """Make this process the parent of its orphaned descendants, so stop_descendants finds them.

    An interrupted subprocess.run kills /usr/bin/time, and without this the
    command it timed would be reparented and go on running, out of reach.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = os.strerror(ctypes.get_errno())
        print(
            f"bench: prctl(PR_SET_CHILD_SUBREAPER) failed: {error}, so an interrupted run may leave processes",
            file=sys.stderr,
        )


def live_descendants(pid):
    """Return the ids of pid's descendants that have not exited, read from /proc."""
    children = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_path.read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so the fields start after its last ")".
        state, parent = text[text.rindex(")") + 2:].split()[:2]
        children.setdefault(int(parent), []).append((int(stat_path.parent.name), state))
    found = []
    pending = [pid]
    while pending:
        for child, state in children.get(pending.pop(), []):
            pending.append(child)
            if state != "Z":
                found.append(child)
    return found


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def reap_children():
    """Collect the exit status of every child that has exited, so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_descendants(timeout_s=5.0):
    """Send SIGTERM to every descendant of this process, then SIGKILL to those left after timeout_s.

    Returns the command lines that had to be stopped, so the caller can name them.
    """
    remaining = live_descendants(os.getpid())
    stopped = []
    for pid in remaining:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        stopped.append(command.replace(b"\0", b" ").decode(errors="replace").strip())
    signal_all(remaining, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        reap_children()
        remaining = live_descendants(os.getpid())
    signal_all(remaining, signal.SIGKILL)
    time.sleep(0.1)
    reap_children()
    return stopped


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_listening(protocol, port):
    """Return whether a socket is bound to 127.0.0.1:port, from /proc/net/tcp or /proc/net/udp.

    Reading /proc leaves FFmpeg's one-client RTMP server untouched, which a
    test connection would use up.
    """
    # 127.0.0.1 or 0.0.0.0, in /proc's little-endian hex.
    listen_addresses = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    # 0A is TCP_LISTEN. A bound UDP socket is in state 07 (TCP_CLOSE).
    listen_state = "0A" if protocol == "tcp" else "07"
    for line in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] in listen_addresses and fields[3] == listen_state:
            return True
    return False


def wait_for_udp_listener(port, timeout_s=5.0):
    """Wait until something is bound to the UDP port (the SRT listener is up)."""
    wait_for_listener("udp", port, "the receiver's log", timeout_s)


def wait_for_listener(protocol, port, log_path, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_listening(protocol, port):
            return
        time.sleep(0.05)
    sys.exit(f"bench: no receiver listened on {protocol} port {port} within {timeout_s} s: see {log_path}")


def machine_description():
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    gst_version = subprocess.run(
        ["gst-launch-1.0", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1]
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "gstreamer": gst_version,
        "load": " ".join(load),
    }


def median_row(name, samples):
    cpu = statistics.median(sample[0] for sample in samples)
    rss = statistics.median(sample[1] for sample in samples)
    wall = statistics.median(sample[2] for sample in samples)
    return {"name": name, "cpu": cpu, "rss": rss, "wall": wall, "samples": samples}
