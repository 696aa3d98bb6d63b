"""Scenario 6: the latency the bridge adds between the encoder and each transport.

The release bridge encodes the live test pattern once and publishes it over
SRT, RTMP and WHIP at the same time to three receivers on loopback. They are
srt-live-transmit (output counted and dropped), FFmpeg as an RTMP server
(`-listen 1`, copied into the null muxer) and the aiortc WHIP receiver of
tests/peers. Once every output is live, the scenario waits for the run's
duration and reads each output's hand-over latency from the bridge's own
/status.json (--status-listen on 127.0.0.1). The bridge measures it per video
frame, from the frame leaving the media pipeline's appsink to its hand-over to
the transport.
"""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import REPO, SrtReceiver, free_udp_port, mint_token, stop_process, wait_for_udp_listener
from svg import bar_chart

WIDTH, HEIGHT, FPS = 1280, 720, 30
STREAM_PATH = "inputs/bench-latency"
WHIP_PYTHON = REPO / ".venv" / "bin" / "python"
WHIP_RECEIVER = REPO / "tests" / "peers" / "whip_receiver.py"
# Seconds every output may take to go live; WHIP's ICE and DTLS take longest.
LIVE_TIMEOUT_S = 30
# Seconds the bridge gets to stop cleanly after SIGTERM (its own bound is 15 s).
STOP_TIMEOUT_S = 20
# Seconds a receiver gets to start listening.
LISTEN_TIMEOUT_S = 10
CHART = "latency.svg"
# The LISTEN state in /proc/net/tcp.
TCP_LISTEN = "0A"

# The end point of each protocol's figure, which starts at the frame leaving the appsink.
HANDOVER_POINTS = {
    "srt": "the `srt_sendmsg2` call of the message that completes the frame's MPEG-TS packets (after `mpegtsmux`)",
    "rtmp": "the socket write of the frame's FLV video tag completing",
    "whip": "the frame's last RTP packet (marker bit) reaching `webrtcbin`'s sink pad",
}
PROTOCOL_NAMES = {"srt": "SRT", "rtmp": "RTMP", "whip": "WHIP"}


def mint_publish_token():
    """Return an unsigned JWT-shaped token for STREAM_PATH that every output accepts."""
    return mint_token(STREAM_PATH)


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_tcp_listening(port):
    """Return whether a socket listens on TCP port (IPv4), read from /proc/net/tcp.

    A test connection would not do: FFmpeg's RTMP server takes one client only.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == TCP_LISTEN:
            return True
    return False


def wait_for_tcp_listener(port, process, name):
    """Wait until something listens on TCP port, or exit if process ends first."""
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: {name} exited with {process.returncode} before listening on port {port}")
        if is_tcp_listening(port):
            return
        time.sleep(0.1)
    sys.exit(f"bench: {name} did not listen on TCP port {port} within {LISTEN_TIMEOUT_S} s")


def start_rtmp_receiver(port, log_path):
    """Start FFmpeg as a one-client RTMP server on loopback that copies the stream into the null muxer."""
    if shutil.which("ffmpeg") is None:
        sys.exit("bench: ffmpeg not found: run `make setup` (scripts/install-deps.sh)")
    argv = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        "-listen", "1", "-i", f"rtmp://127.0.0.1:{port}/{STREAM_PATH}",
        "-c", "copy", "-f", "null", "-",
    ]
    log = open(log_path, "w")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for_tcp_listener(port, process, "the FFmpeg RTMP server")
    return process


def start_whip_receiver(port, record_dir, log_path):
    """Start the aiortc WHIP receiver on loopback; with no token option it accepts every request."""
    if not WHIP_PYTHON.is_file():
        sys.exit(f"bench: {WHIP_PYTHON} not found: run scripts/install-peers.sh")
    argv = [str(WHIP_PYTHON), str(WHIP_RECEIVER), "--port", str(port), "--record-dir", str(record_dir)]
    log = open(log_path, "w")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for_tcp_listener(port, process, "the WHIP receiver")
    return process


def bridge_command(bridge, ports):
    return [
        str(bridge), "--device", "test", "--size", f"{WIDTH}x{HEIGHT}", "--fps", str(FPS),
        "--path", STREAM_PATH,
        "--output", f"srt://127.0.0.1:{ports['srt']}",
        "--output", f"rtmp://127.0.0.1:{ports['rtmp']}/",
        "--output", f"http://127.0.0.1:{ports['whip']}",
        "--ice-address", "127.0.0.1",
        "--status-listen", f"127.0.0.1:{ports['status']}",
        "--status-interval", "0",
    ]


def read_status(port):
    """Return the bridge's /status.json, or None while it does not respond."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def wait_until_live(bridge, port, log_path):
    """Poll /status.json until every output is live; exit with the log's path if not in time."""
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    document = None
    while time.monotonic() < deadline:
        if bridge.poll() is not None:
            sys.exit(f"bench: the bridge exited with {bridge.returncode} before every output was live: see {log_path}")
        document = read_status(port)
        if document and len(document["outputs"]) == 3 and all(
            output["state"] == "live" for output in document["outputs"]
        ):
            return
        time.sleep(0.5)
    states = [(output["protocol"], output["state"]) for output in (document or {}).get("outputs", [])]
    sys.exit(f"bench: not every output was live within {LIVE_TIMEOUT_S} s ({states}): see {log_path}")


def latency_rows(document, log_path):
    """Return one row per protocol from the status document's latency figures."""
    rows = []
    for output in document["outputs"]:
        protocol = output["protocol"]
        latency = output.get("latency") or {}
        if output["state"] != "live" or not latency.get("count"):
            sys.exit(
                f"bench: the {protocol} output measured no frames (state {output['state']}, "
                f"latency {latency}): see {log_path}"
            )
        rows.append(
            {
                "protocol": protocol,
                "live_s": output["live_s"],
                "count": latency["count"],
                "p50": latency["p50_ms"],
                "p99": latency["p99_ms"],
                "max": latency["max_ms"],
                "dropped": output["dropped_frames"],
            }
        )
    return sorted(rows, key=lambda row: list(HANDOVER_POINTS).index(row["protocol"]))


def measure(ctx):
    """Run the bridge with all three outputs and return one latency row per protocol."""
    log_dir = ctx.log_dir
    ports = {"srt": free_udp_port(), "rtmp": free_tcp_port(), "whip": free_tcp_port(), "status": free_tcp_port()}
    argv = bridge_command(ctx.args.bridge, ports)
    env = dict(os.environ)
    env["TRAX_SESSION_TOKEN"] = mint_publish_token()
    bridge_log = log_dir / "latency-bridge.log"
    record_dir = log_dir / "latency-whip"
    record_dir.mkdir(exist_ok=True)

    print(f"bench: bridge to SRT, RTMP and WHIP for latency, {ctx.args.duration} s live", flush=True)
    srt = SrtReceiver(ports["srt"])
    rtmp = whip = bridge = None
    try:
        wait_for_udp_listener(ports["srt"])
        rtmp = start_rtmp_receiver(ports["rtmp"], log_dir / "latency-rtmp.log")
        whip = start_whip_receiver(ports["whip"], record_dir, log_dir / "latency-whip.log")
        with open(bridge_log, "w") as log:
            bridge = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wait_until_live(bridge, ports["status"], bridge_log)
        time.sleep(ctx.args.duration)
        document = read_status(ports["status"])
        if document is None:
            sys.exit(f"bench: /status.json did not answer at the end of the run: see {bridge_log}")
        bridge.send_signal(signal.SIGTERM)
        code = bridge.wait(timeout=STOP_TIMEOUT_S)
        if code != 0:
            sys.exit(f"bench: the bridge exited with {code} after SIGTERM: see {bridge_log}")
    finally:
        for process in (bridge, whip, rtmp):
            if process is not None:
                stop_process(process)
        received = srt.stop()
    if received == 0:
        sys.exit(f"bench: the SRT receiver on port {ports['srt']} got no bytes: see {bridge_log}")
    return latency_rows(document, bridge_log)


def format_section(ctx, rows):
    """Return the scenario's Markdown, without its heading."""
    example = shlex.join(
        bridge_command("target/release/bridge", {"srt": "PORT1", "rtmp": "PORT2", "whip": "PORT3", "status": "PORT4"})
    )
    lines = [
        f"Source: `--device test`, {WIDTH}x{HEIGHT} at {FPS} fps, encoded once by the",
        "bridge and sent over SRT, RTMP and WHIP at the same time, to",
        "`srt-live-transmit` (output counted and dropped), `ffmpeg -listen 1 … -c copy",
        "-f null -` as the RTMP server and tests/peers/whip_receiver.py (aiortc), all on",
        f"127.0.0.1. Once all three outputs were live, the run went on for {ctx.args.duration} s;",
        "then the scenario read `/status.json` once and stopped the bridge with SIGTERM.",
        "",
        "The figures come from the bridge's own instrumentation (the `latency` object",
        "of each output in `/status.json`), not from the receivers. Each covers every",
        "video frame of the output's connection, from connect to the read, and times",
        "the frame from the moment the media pipeline's appsink hands it to the",
        "fan-out (after the encoder and `h264parse`) to:",
        "",
    ]
    for protocol, point in HANDOVER_POINTS.items():
        lines.append(f"- {PROTOCOL_NAMES[protocol]}: {point};")
    lines[-1] = lines[-1].rstrip(";") + "."
    lines += [
        "",
        "So the figures include the output's frame queue, its thread's wake-up, muxing",
        "or payloading and the send call, but not the encoder, the network or the",
        "receiver. Each is a histogram bucket's upper bound (buckets grow by 19%),",
        "capped at the maximum, so it overstates by at most 19%.",
        "",
        "Two effects shape the figures. The SRT output sends a frame's packets as soon",
        "as `mpegtsmux` has written them, but with audio the muxer writes a video frame",
        "only once the next audio frame has arrived too, so SRT's figure includes that",
        "wait. A packet reaches",
        "`webrtcbin`'s sink pad only once `webrtcbin` has taken the packet before it, so",
        "time spent inside `webrtcbin` shows in WHIP's figure, which can vary widely",
        "between runs.",
        "",
        "Command (PORT1 to PORT4 are free ports on 127.0.0.1), after an unsigned",
        f"token for {STREAM_PATH} with both audiences, since the receivers check no signature:",
        "",
        "```",
        "export TRAX_SESSION_TOKEN=$(/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"bench\");"
        " import latency; print(latency.mint_publish_token())')",
        example,
        "```",
        "",
        "| protocol | frames measured | live s | p50 ms | p99 ms | max ms | dropped frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {PROTOCOL_NAMES[row['protocol']]} | {row['count']} | {row['live_s']:.1f} | {row['p50']:.3f} "
            f"| {row['p99']:.3f} | {row['max']:.3f} | {row['dropped']} |"
        )
    return "\n".join(lines)


def chart(rows):
    bars = []
    for row in rows:
        name = PROTOCOL_NAMES[row["protocol"]]
        bars += [(f"{name} p50", row["p50"]), (f"{name} p99", row["p99"]), (f"{name} max", row["max"])]
    return bar_chart("Hand-over latency added by the bridge (lower is better)", bars, "ms")


def run(ctx):
    """Measure the scenario and return its sections for the page."""
    rows = measure(ctx)
    return [
        {
            "title": "Latency added by the bridge",
            "markdown": format_section(ctx, rows),
            "charts": {CHART: chart(rows)},
        }
    ]
