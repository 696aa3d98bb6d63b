"""Scenario: the encode floor against the bridge's overhead.

gst-launch-1.0 encodes the live test pattern with the x264enc settings of
pipelines/test-x264.pipeline into fakesink (the floor), and the release
bridge encodes the same source and sends it over SRT to a loopback
srt-live-transmit whose output is only counted. Each run is timed with
/usr/bin/time -v for CPU seconds (user + sys) and peak RSS.
"""

import os
import re
import shlex
import statistics
import sys

from common import (
    REPO,
    STREAM_PATH,
    SrtReceiver,
    free_udp_port,
    median_row,
    mint_token,
    timed_run,
    wait_for_udp_listener,
)

PIPELINE_FILE = REPO / "pipelines" / "test-x264.pipeline"
WIDTH, HEIGHT, FPS = 1280, 720, 30
# The audio of pipelines/test-x264.pipeline: 48 kHz stereo AAC at 128 kbit/s.
AUDIO_RATE = 48000
AUDIO_BITRATE = 128000
X264_KEYS = ("bitrate", "pass", "key-int-max", "bframes", "speed-preset", "tune")


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


def measure(ctx, x264_settings):
    args, log_dir = ctx.args, ctx.log_dir
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


def format_section(ctx, x264_settings, rows):
    """Return the scenario's Markdown, without its heading."""
    args = ctx.args
    bridge = rows[-1]
    x264_text = " ".join(f"{key}={value}" for key, value in x264_settings.items())
    floor_example = shlex.join(floor_command(args.duration, x264_settings, True))
    bridge_example = shlex.join(bridge_command("target/release/bridge", args.duration, "PORT"))
    bitrate_kbit = bridge["received"] * 8 / 1000 / args.duration
    lines = [
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
    return "\n".join(lines)


def run(ctx):
    """Measure the scenario and return its sections for the page."""
    x264_settings = read_x264_settings()
    rows = measure(ctx, x264_settings)
    return [{"title": "Encode floor vs bridge overhead", "markdown": format_section(ctx, x264_settings, rows), "charts": {}}]
