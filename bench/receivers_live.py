"""Loopback receivers that report when the first decodable frame arrives.

Each receiver runs as its own process, so a benchmark can kill and restart
it like a crashed server. Times are Unix seconds (time.time()), the clock of
the bridge's log lines and of the WHIP receiver's report.json.

- FfmpegReceiver: ffmpeg as an SRT listener or an RTMP server (-listen 1)
  that decodes one video frame through showinfo and exits. The first
  showinfo frame line (n: 0) is timestamped as this process reads it from
  ffmpeg's standard error, which ffmpeg writes unbuffered.
- WhipReceiver: tests/peers/whip_receiver.py (aiortc), whose report.json
  contains video.first_frame_s, stamped when aiortc returns the first decoded
  frame. aiortc decodes every frame and the receiver records the session,
  so this receiver does more work than the others.

Standard library only.
"""

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPO, stop_process

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
WHIP_RECEIVER = REPO / "tests" / "peers" / "whip_receiver.py"
POLL_S = 0.005
# showinfo logs "n:   0" for the first frame that leaves the decoder.
FIRST_FRAME_LINE = re.compile(r"Parsed_showinfo.* n: +0 ")


def port_is_open(protocol, port):
    """Return whether a socket listens on or was accepted at (TCP), or is bound to (UDP), the loopback port.

    Reads /proc/net, so the check neither connects to a listener that
    accepts only one connection nor takes the port. ffmpeg -listen 1 closes
    its listening socket once it accepts, so an accepted connection
    (ESTABLISHED on the local port) counts as listening too.
    """
    if protocol == "udp":
        tables, states = ("/proc/net/udp", "/proc/net/udp6"), None
    else:
        tables, states = ("/proc/net/tcp", "/proc/net/tcp6"), ("0A", "01")  # TCP_LISTEN, TCP_ESTABLISHED
    port_suffix = f":{port:04X}"
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(port_suffix) and (states is None or fields[3] in states):
                return True
    return False


def wait_event(event, timeout_s, bridge):
    """Wait for event, exiting through bridge.check_running() if the bridge ends first."""
    deadline = time.monotonic() + timeout_s
    while not event.wait(0.1):
        bridge.check_running()
        if time.monotonic() > deadline:
            return False
    return True


class FfmpegReceiver:
    """ffmpeg listening for one SRT or RTMP publisher.

    By default it exits after one decoded frame, which closes the
    connection. With keep_open it copies the video to the null muxer without
    decoding and stays connected until stopped.
    """

    def __init__(self, protocol, port, stream_path, log_path, keep_open=False):
        self.protocol = protocol
        self.port = port
        self.log_path = log_path
        if protocol == "srt":
            url, listen = f"srt://127.0.0.1:{port}?mode=listener", []
        else:
            url, listen = f"rtmp://127.0.0.1:{port}/{stream_path}", ["-listen", "1"]
        self.argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
        if keep_open:
            # The copy needs the picture size, so ffmpeg probes as usual.
            self.argv += [*listen, "-i", url, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
        else:
            # A 32-byte probe keeps ffmpeg from analysing up to 5 s of
            # stream (its default) before it decodes. Without -fflags nobuffer, the probed
            # packets are decoded too, so the first keyframe is not skipped.
            self.argv += [
                "-probesize", "32", "-analyzeduration", "0", *listen, "-i", url,
                "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-",
            ]

        self.first_frame_s = None
        self.first_frame_seen = threading.Event()
        self.input_seen = threading.Event()
        self.log = open(log_path, "a")
        self.log.write(f"$ {' '.join(self.argv)}\n")
        self.log.flush()
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    def _read_stderr(self):
        for line in self.process.stderr:
            now = time.time()
            if line.startswith("Input #0"):
                self.input_seen.set()
            if self.first_frame_s is None and FIRST_FRAME_LINE.search(line):
                self.first_frame_s = now
                self.first_frame_seen.set()
            self.log.write(line)
        self.log.flush()

    def wait_listening(self, timeout_s=10.0):
        """Return the time the port was first seen open, or exit naming the log.

        Returns None when ffmpeg had already decoded its frame and exited
        before a poll saw the port.
        """
        transport = "udp" if self.protocol == "srt" else "tcp"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_is_open(transport, self.port):
                return time.time()
            if self.process.poll() is not None:
                self.reader.join(timeout=5)
                if self.first_frame_seen.is_set():
                    return None
                break
            time.sleep(POLL_S)
        sys.exit(f"bench: ffmpeg did not listen on {transport} port {self.port} within {timeout_s} s: see {self.log_path}")

    def wait_first_frame(self, timeout_s, bridge):
        """Return the time of the first decoded frame, or exit naming both logs."""
        if wait_event(self.first_frame_seen, timeout_s, bridge):
            return self.first_frame_s
        sys.exit(
            f"bench: timed out after {timeout_s} s waiting for a decoded frame at the "
            f"{self.protocol.upper()} receiver: see {self.log_path} and {bridge.log_path}"
        )

    def wait_input(self, timeout_s, bridge):
        """Wait until ffmpeg has read the stream's header (a publisher is connected)."""
        if not wait_event(self.input_seen, timeout_s, bridge):
            sys.exit(
                f"bench: timed out after {timeout_s} s waiting for a stream at the "
                f"{self.protocol.upper()} receiver: see {self.log_path} and {bridge.log_path}"
            )

    def stop(self, kill=False):
        stop_process(self.process, kill)
        self.reader.join(timeout=5)
        self.log.close()


class WhipReceiver:
    """tests/peers/whip_receiver.py on a loopback port, recording into its own directory."""

    def __init__(self, port, record_dir, log_path):
        self.port = port
        self.record_dir = Path(record_dir)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        if not VENV_PYTHON.is_file():
            sys.exit(f"bench: {VENV_PYTHON} not found: run `make setup` (scripts/install-peers.sh)")
        self.argv = [str(VENV_PYTHON), str(WHIP_RECEIVER), "--port", str(port), "--record-dir", str(self.record_dir)]
        self.log = open(log_path, "a")
        self.log.write(f"$ {' '.join(self.argv)}\n")
        self.log.flush()
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        self.listening_s = None
        self.listening = threading.Event()
        self.reader = threading.Thread(target=self._read_stdout, daemon=True)
        self.reader.start()

    def _read_stdout(self):
        for line in self.process.stdout:
            now = time.time()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "listening" and self.listening_s is None:
                self.listening_s = now
                self.listening.set()

    def wait_listening(self, timeout_s=20.0):
        """Return the time the "listening" line was read, or exit naming the log."""
        if self.listening.wait(timeout_s):
            return self.listening_s
        sys.exit(f"bench: the WHIP receiver did not listen within {timeout_s} s: see {self.log_path}")

    def first_frame(self):
        """Return video.first_frame_s of the earliest session with one, or None."""
        times = []
        for report in self.record_dir.glob("session-*/report.json"):
            try:
                video = json.loads(report.read_text()).get("video") or {}
            except (OSError, ValueError):
                continue
            if video.get("first_frame_s") is not None:
                times.append(video["first_frame_s"])
        return min(times, default=None)

    def wait_first_frame(self, timeout_s, bridge):
        """Return the time of the first decoded frame, or exit naming the logs.

        report.json is rewritten every 0.5 s, so the poll may see the time
        late, but the time itself is the one aiortc's frame arrived at.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            first = self.first_frame()
            if first is not None:
                return first
            bridge.check_running()
            time.sleep(0.05)
        sys.exit(
            f"bench: timed out after {timeout_s} s waiting for a decoded frame at the WHIP receiver: "
            f"see {self.log_path}, {self.record_dir} and {bridge.log_path}"
        )

    def stop(self, kill=False):
        stop_process(self.process, kill)
        self.reader.join(timeout=5)
        self.log.close()
