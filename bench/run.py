#!/usr/bin/python3
"""Measure the bridge against a bare GStreamer encode of the same source.

Scenario "encode floor vs bridge overhead": gst-launch-1.0 encodes the live
test pattern with the x264enc settings of pipelines/test-x264.pipeline into
fakesink (the floor), and the release bridge encodes the same source and
sends it over SRT to a loopback srt-live-transmit whose output is only
counted. Each run is timed with /usr/bin/time -v for CPU seconds (user +
sys) and peak RSS. The medians go into BENCHMARKS.md.

Standard library only. Run it from the repository root, or through
`make bench`, which builds target/release/bridge first.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
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
PIPELINE_FILE = REPO / "pipelines" / "test-x264.pipeline"
TIME = "/usr/bin/time"
WIDTH, HEIGHT, FPS = 1280, 720, 30
STREAM_PATH = "inputs/srt-bench"
# The audio of pipelines/test-x264.pipeline: 48 kHz stereo AAC at 128 kbit/s.
AUDIO_RATE = 48000
AUDIO_BITRATE = 128000
# Seconds the receiver keeps reading after the bridge exits, for data in flight.
RECEIVER_DRAIN_S = 1.0
X264_KEYS = ("bitrate", "pass", "key-int-max", "bframes", "speed-preset", "tune")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool (default 3)")
    parser.add_argument(
        "--bridge",
        type=Path,
        default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "bridge",
        help="bridge binary (default $CARGO_TARGET_DIR/release/bridge, else target/release/bridge)",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "BENCHMARKS.md", help="report file (default BENCHMARKS.md)"
    )
    args = parser.parse_args()
    if args.duration < 1 or args.repeats < 1:
        parser.error(f"--duration ({args.duration}) and --repeats ({args.repeats}) must be at least 1")
    return args


def read_x264_settings():
    """Return the x264enc properties of the video line of the pipeline file, in file order."""
    for line in PIPELINE_FILE.read_text().splitlines():
        if not line.startswith("video:"):
            continue
        element = re.search(r"! x264enc ([^!]*)!", line)
        if element is None:
            break
        settings = dict(item.split("=", 1) for item in element.group(1).split())
        missing = [key for key in X264_KEYS if key not in settings]
        if missing:
            sys.exit(f"bench: {PIPELINE_FILE} x264enc lacks {', '.join(missing)}: update bench/run.py")
        return settings
    sys.exit(f"bench: no 'video:' line with x264enc found in {PIPELINE_FILE}")


def floor_command(duration_s, x264_settings, with_audio):
    """Build the gst-launch-1.0 argv. The live sources send EOS after duration_s of buffers."""
    frames = duration_s * FPS
    argv = [
        "gst-launch-1.0", "-q",
        "videotestsrc", "is-live=true", "pattern=ball", f"num-buffers={frames}",
        "!", f"video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={FPS}/1",
        "!", "x264enc", *[f"{key}={value}" for key, value in x264_settings.items()],
        "!", "fakesink", "sync=false",
    ]
    if with_audio:
        # One buffer per video frame, so both sources end at the same time.
        samples = AUDIO_RATE // FPS
        argv += [
            "audiotestsrc", "is-live=true", "wave=sine", "freq=440",
            f"samplesperbuffer={samples}", f"num-buffers={frames}",
            "!", f"audio/x-raw,rate={AUDIO_RATE},channels=2",
            "!", "audioconvert", "!", "avenc_aac", f"bitrate={AUDIO_BITRATE}",
            "!", "fakesink", "sync=false",
        ]
    return argv


def bridge_command(bridge, duration_s, port):
    return [
        str(bridge), "--device", "test", "--size", f"{WIDTH}x{HEIGHT}", "--fps", str(FPS),
        "--output", f"srt://127.0.0.1:{port}", "--path", STREAM_PATH, "--duration", str(duration_s),
    ]


def mint_token():
    """Return an unsigned JWT-shaped token that passes the bridge's claim checks.

    The loopback receiver checks no signature, so the signature part is filler.
    """
    def encode(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "action": "publish",
        "path": STREAM_PATH,
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


def run_scenario(args, x264_settings, log_dir):
    rows = []
    env = dict(os.environ)
    env.pop("TRAX_SESSION_TOKEN", None)
    for name, with_audio in (("floor: gst-launch x264enc", False), ("floor: gst-launch x264enc + avenc_aac", True)):
        argv = floor_command(args.duration, x264_settings, with_audio)
        samples = []
        for repeat in range(args.repeats):
            print(f"bench: {name}, run {repeat + 1}/{args.repeats}", flush=True)
            samples.append(timed_run(argv, env, log_dir / f"floor-audio{int(with_audio)}-{repeat}.log"))
        rows.append(median_row(name, samples))

    bridge_env = dict(env)
    bridge_env["TRAX_SESSION_TOKEN"] = mint_token()
    samples = []
    received = []
    for repeat in range(args.repeats):
        print(f"bench: bridge to SRT, run {repeat + 1}/{args.repeats}", flush=True)
        port = free_udp_port()
        receiver = SrtReceiver(port)
        try:
            wait_for_udp_listener(port)
            samples.append(
                timed_run(bridge_command(args.bridge, args.duration, port), bridge_env, log_dir / f"bridge-{repeat}.log")
            )
        finally:
            received.append(receiver.stop())
        if received[-1] == 0:
            sys.exit(f"bench: the SRT receiver on port {port} got no bytes from the bridge: see {log_dir}")
    bridge_row = median_row("bridge: release, SRT to loopback", samples)
    bridge_row["received"] = statistics.median(received)
    rows.append(bridge_row)
    return rows


def format_report(args, machine, x264_settings, rows, started):
    bridge = rows[-1]
    x264_text = " ".join(f"{key}={value}" for key, value in x264_settings.items())
    floor_example = shlex.join(floor_command(args.duration, x264_settings, True))
    bridge_example = shlex.join(bridge_command("target/release/bridge", args.duration, "PORT"))
    bitrate_kbit = bridge["received"] * 8 / 1000 / args.duration
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/run.py); rerun it to refresh this page.",
        "Figures come from one machine and one run, so compare rows within a",
        "table, not across machines.",
        "",
        "## Machine",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores visible",
        f"- Kernel: {machine['kernel']}",
        f"- {machine['gstreamer']}",
        f"- Load average before the run: {machine['load']}. Other processes may share the",
        "  cores, so CPU seconds are more reliable than wall time.",
        "",
        "## Encode floor vs bridge overhead",
        "",
        f"Source: `videotestsrc is-live=true pattern=ball`, I420 {WIDTH}x{HEIGHT} at {FPS} fps.",
        "Every source is live, so each run is paced in real time and lasts about",
        f"{args.duration} s. The x264 settings come from pipelines/test-x264.pipeline:",
        f"`x264enc {x264_text}`. Each tool ran {args.repeats} times under",
        "`/usr/bin/time -v`. The table gives medians: CPU is user + sys seconds,",
        "RSS is the peak resident set size, and the ratio is the bridge's median",
        "over the floor's.",
        "",
        "Commands (PORT is a free UDP port on 127.0.0.1 for each run):",
        "",
        "```",
        floor_example,
        "# the video-only floor is the same line without the audiotestsrc branch",
        "srt-live-transmit 'srt://127.0.0.1:PORT?mode=listener' file://con  # stdout counted, then dropped",
        f"TRAX_SESSION_TOKEN=<unsigned JWT for {STREAM_PATH}> {bridge_example}",
        "```",
        "",
        "The bridge does more than either floor: it also runs the slate branches,",
        "muxes MPEG-TS, sends SRT and test-encodes once at start-up to choose",
        f"its encoder. The receiver got a median of {bridge['received'] / 1e6:.2f} MB",
        f"(about {bitrate_kbit:.0f} kbit/s over {args.duration} s). The moving ball on black",
        "compresses far below the configured bitrate, and x264enc adds no filler,",
        "so a camera image costs the encoder more than this pattern does.",
        "",
        "| run | CPU s (median) | peak RSS MiB (median) | wall s (median) | CPU ratio bridge/this | RSS ratio bridge/this |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row is bridge:
            cpu_ratio = rss_ratio = "-"
        else:
            cpu_ratio = f"{bridge['cpu'] / row['cpu']:.2f}"
            rss_ratio = f"{bridge['rss'] / row['rss']:.2f}"
        lines.append(
            f"| {row['name']} | {row['cpu']:.2f} | {row['rss']:.1f} | {row['wall']:.2f} | {cpu_ratio} | {rss_ratio} |"
        )
    lines += ["", "Every run (CPU s / RSS MiB / wall s):", ""]
    for row in rows:
        runs = ", ".join(f"{cpu:.2f} / {rss:.1f} / {wall:.2f}" for cpu, rss, wall in row["samples"])
        lines.append(f"- {row['name']}: {runs}")
    lines += [
        "",
        "## Still to come",
        "",
        "Scenarios not measured yet: more outputs at once (SRT, RTMP and WHIP),",
        "FFmpeg as the alternative tool, the sample clip media/bigbuckbunny.mp4",
        "as a looped source, time to first frame, reconnect time, end-to-end",
        "latency and memory over time.",
        "",
    ]
    return "\n".join(lines)


def main():
    args = parse_args()
    for tool in (TIME, "gst-launch-1.0", "srt-live-transmit"):
        if subprocess.run(["sh", "-c", f"command -v {shlex.quote(tool)}"], capture_output=True).returncode != 0:
            sys.exit(f"bench: {tool} not found: run `make setup` (scripts/install-deps.sh)")
    if not args.bridge.is_file():
        sys.exit(f"bench: bridge binary {args.bridge} not found: run `cargo build --release --locked`")
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = machine_description()
    x264_settings = read_x264_settings()
    log_dir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    print(f"bench: logs in {log_dir}", flush=True)
    rows = run_scenario(args, x264_settings, log_dir)
    args.output.write_text(format_report(args, machine, x264_settings, rows, started))
    print(f"bench: wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
