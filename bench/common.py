"""Helpers shared by the benchmark scenarios: timing, tokens, receivers, machine facts.

Standard library only.
"""

import base64
import json
import os
import platform
import shlex
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


def mint_token(path=STREAM_PATH):
    """Return an unsigned JWT-shaped token for path that passes the bridge's claim checks.

    The loopback receiver checks no signature, so the signature part is filler.
    """
    def encode(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "action": "publish",
        "path": path,
        "aud": ["trax-mediamtx"],
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


class SrtReceiver:
    """An srt-live-transmit listener on loopback whose output is counted and dropped."""

    def __init__(self, port):
        self.argv = ["srt-live-transmit", f"srt://127.0.0.1:{port}?mode=listener", "file://con"]
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.received_bytes = 0
        self.reader = threading.Thread(target=self._count, daemon=True)
        self.reader.start()

    def _count(self):
        while chunk := self.process.stdout.read1(65536):
            self.received_bytes += len(chunk)

    def stop(self):
        time.sleep(RECEIVER_DRAIN_S)
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=5)
        return self.received_bytes


def wait_for_udp_listener(port, timeout_s=5.0):
    """Wait until something is bound to the UDP port (the SRT listener is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    sys.exit(f"bench: srt-live-transmit did not listen on UDP port {port} within {timeout_s} s")


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
