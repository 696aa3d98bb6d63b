"""Scenarios: the encode floor, the bridge's cost per output, and FFmpeg doing the same job.

Two sources: the live test pattern at 720p30 and the sample clip
media/bigbuckbunny.mp4 (720p25), looped and scaled to 1080p30. For each
source, five commands run --repeats times, round robin, each for
--duration seconds paced in real time:

  floor     gst-launch-1.0: the same source and x264enc/avenc_aac settings
            into fakesink
  bridge-1  the release bridge with an SRT output
  bridge-2  ... plus an RTMP output
  bridge-3  ... plus a WHIP output
  ffmpeg    FFmpeg with libx264 at matched settings, -f tee to SRT and RTMP

The x264 settings come from the bridge's own `--print-pipeline`, so every
tool encodes with the bridge's preset, tune, bitrate, keyframe interval and
B-frames. Receivers on 127.0.0.1 (bench/common.py) only count bytes, so
they add little load on the shared cores. /usr/bin/time -v measures the
timed command alone: CPU seconds (user + sys) and peak RSS.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import cost_report
from common import REPO, NginxRtmpReceiver, SrtReceiver, WhipReceiver, mint_token, timed_run

OUTPUT_PATH = "inputs/bench"
CLIP = REPO / "media" / "bigbuckbunny.mp4"
X264_KEYS = ("bitrate", "pass", "key-int-max", "bframes", "speed-preset", "tune")
# x264enc's vbv-buf-capacity default (GStreamer 1.22), used when the pipeline leaves it unset.
X264ENC_DEFAULT_VBV_MS = 600
AUDIO_RATE = 48000
# Shortest run in which every output carries media, with room for WHIP's ICE and DTLS.
MIN_DURATION_S = 3
# Stand-in ports for --print-pipeline, which connects to no output.
PLAN_URLS = {
    "SRT": "srt://127.0.0.1:9",
    "RTMP": f"rtmp://127.0.0.1:9/{OUTPUT_PATH}",
    "WHIP": f"http://127.0.0.1:9/{OUTPUT_PATH}/whip",
}


@dataclass(frozen=True)
class Source:
    key: str
    label: str
    bridge_args: tuple
    width: int
    height: int
    fps: int


SOURCES = (
    Source(
        "test",
        "live test source",
        ("--device", "test", "--size", "1280x720", "--fps", "30"),
        1280, 720, 30,
    ),
    Source(
        "clip",
        "sample clip, looped, 1080p30",
        ("--device", f"file:{CLIP.relative_to(REPO)}", "--loop", "--size", "1920x1080", "--fps", "30"),
        1920, 1080, 30,
    ),
)


@dataclass(frozen=True)
class Run:
    key: str
    label: str
    outputs: tuple


RUNS = (
    Run("floor", "floor: gst-launch-1.0", ()),
    Run("bridge-1", "bridge: SRT", ("SRT",)),
    Run("bridge-2", "bridge: SRT + RTMP", ("SRT", "RTMP")),
    Run("bridge-3", "bridge: SRT + RTMP + WHIP", ("SRT", "RTMP", "WHIP")),
    Run("ffmpeg", "ffmpeg: SRT + RTMP (tee)", ("SRT", "RTMP")),
)


def read_plan(ctx, source, outputs, env):
    """Run `bridge --print-pipeline` and return the x264enc settings, the profile and the AAC bitrate."""
    argv = [str(ctx.bridge), *source.bridge_args, "--path", OUTPUT_PATH]
    for output in outputs:
        argv += ["--output", PLAN_URLS[output]]
    argv.append("--print-pipeline")
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench: {shlex.join(argv)} exited with {result.returncode}:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    video = next((line for line in lines if line.startswith("video:")), "")
    audio = next((line for line in lines if line.startswith("audio:")), "")
    encoder = re.search(r"! x264enc ([^!]*)! capsfilter caps=video/x-h264,profile=([a-z-]+)", video)
    aac = re.search(r"avenc_aac bitrate=([0-9]+)", audio)
    if encoder is None or aac is None:
        sys.exit(
            f"bench: `{shlex.join(argv)}` printed no x264enc video line with a profile and no avenc_aac "
            "audio line: bench/cost.py needs x264enc (gstreamer1.0-plugins-ugly) and avenc_aac"
        )
    x264 = dict(item.split("=", 1) for item in encoder.group(1).split())
    missing = [key for key in X264_KEYS if key not in x264]
    if missing:
        sys.exit(f"bench: the bridge's x264enc lacks {', '.join(missing)}: update bench/cost.py")
    if x264["pass"] != "cbr":
        sys.exit(f"bench: the bridge's x264enc uses pass={x264['pass']}, but bench/cost.py maps only pass=cbr to FFmpeg")
    return {"x264": x264, "profile": encoder.group(2), "aac_bitrate": int(aac.group(1)), "command": argv}


def loop_clip(ctx):
    """Write the clip looped to --duration seconds (stream copy, so no encode), for the gst-launch floor."""
    path = ctx.log_dir / "clip-looped.mp4"
    argv = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-stream_loop", "-1", "-i", str(CLIP), "-t", str(ctx.args.duration), "-c", "copy", str(path),
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench: {shlex.join(argv)} exited with {result.returncode}:\n{result.stderr[-2000:]}")
    return path


def floor_command(source, plan, duration_s, looped_clip):
    """Build the gst-launch-1.0 argv that does the bridge's capture and encode work into fakesink."""
    x264 = ["x264enc", *[f"{key}={value}" for key, value in plan["x264"].items()]]
    video_caps = (
        f"video/x-raw,format=I420,width={source.width},height={source.height},"
        f"framerate={source.fps}/1,pixel-aspect-ratio=1/1"
    )
    audio_caps = f"audio/x-raw,rate={AUDIO_RATE},channels=2"
    aac = ["avenc_aac", f"bitrate={plan['aac_bitrate']}"]
    if source.key == "test":
        # Live sources pace the run, and one audio buffer per video frame ends both together.
        frames = duration_s * source.fps
        return [
            "gst-launch-1.0", "-q",
            "videotestsrc", "is-live=true", "pattern=ball", f"num-buffers={frames}",
            "!", video_caps, "!", *x264, "!", "fakesink", "sync=false",
            "audiotestsrc", "is-live=true", "wave=sine", "freq=440",
            f"samplesperbuffer={AUDIO_RATE // source.fps}", f"num-buffers={frames}",
            "!", audio_caps, "!", "audioconvert", "!", *aac, "!", "fakesink", "sync=false",
        ]
    # A file is not live, so fakesink sync=true paces the run in real time.
    # The converters come right after decodebin, so each branch links to the
    # decoded pad of its own media type.
    return [
        "gst-launch-1.0", "-q",
        "filesrc", f"location={looped_clip}", "!", "decodebin", "name=decode",
        "decode.", "!", "videoconvert", "!", "queue", "!", "videoscale", "!", "videorate",
        "!", video_caps, "!", *x264, "!", "fakesink", "sync=true",
        "decode.", "!", "audioconvert", "!", "queue", "!", "audioresample",
        "!", audio_caps, "!", *aac, "!", "fakesink", "sync=true",
    ]


def bridge_command(bridge, source, duration_s, urls):
    argv = [str(bridge), *source.bridge_args, "--path", OUTPUT_PATH, "--duration", str(duration_s)]
    for url in urls:
        argv += ["--output", url]
    return argv


def ffmpeg_command(source, plan, duration_s, srt_url, rtmp_url):
    """Build the FFmpeg argv: the bridge's job, decode, scale, libx264 and AAC, sent to SRT and RTMP."""
    x264 = plan["x264"]
    bitrate = int(x264["bitrate"])
    vbv_ms = int(x264.get("vbv-buf-capacity", X264ENC_DEFAULT_VBV_MS))
    if source.key == "test":
        inputs = [
            "-re", "-f", "lavfi", "-i", f"testsrc2=size={source.width}x{source.height}:rate={source.fps}",
            "-re", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}",
        ]
        maps = ["-map", "0:v", "-map", "1:a"]
        video_filter = []
    else:
        inputs = ["-re", "-stream_loop", "-1", "-i", str(CLIP.relative_to(REPO))]
        maps = ["-map", "0:v:0", "-map", "0:a:0"]
        # GStreamer's videoscale defaults to bilinear, FFmpeg's scale to bicubic.
        video_filter = ["-vf", f"scale={source.width}:{source.height}:flags=bilinear,fps={source.fps}"]
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        *inputs, *maps, "-t", str(duration_s), *video_filter,
        "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-preset", x264["speed-preset"], "-tune", x264["tune"], "-profile:v", plan["profile"],
        "-b:v", f"{bitrate}k", "-maxrate", f"{bitrate}k", "-bufsize", f"{bitrate * vbv_ms // 1000}k",
        "-g", x264["key-int-max"], "-bf", x264["bframes"],
        "-c:a", "aac", "-b:a", str(plan["aac_bitrate"]), "-ar", str(AUDIO_RATE), "-ac", "2",
        "-f", "tee", f"[f=mpegts:onfail=abort]{srt_url}?pkt_size=1316|[f=flv:onfail=abort]{rtmp_url}",
    ]


def start_receivers(outputs, log_stem):
    """Start a receiver per output. The SRT receiver also writes what it receives to LOG_STEM-srt.ts."""
    receivers = {}
    try:
        for output in outputs:
            log_path = log_stem.with_name(f"{log_stem.name}-{output.lower()}-receiver.log")
            if output == "SRT":
                receiver = SrtReceiver(log_path=log_path, capture_path=srt_capture_path(log_stem))
            elif output == "RTMP":
                receiver = NginxRtmpReceiver(OUTPUT_PATH, log_path)
            else:
                receiver = WhipReceiver(OUTPUT_PATH, log_path)
            # Registered before the wait, so a receiver that fails to start is stopped too.
            receivers[output] = receiver
            receiver.wait_ready()
    except BaseException:
        for receiver in receivers.values():
            receiver.stop()
        raise
    return receivers


def srt_capture_path(log_stem):
    return log_stem.with_name(f"{log_stem.name}-srt.ts")


def probe_captures(ctx):
    """Read codec, profile, size, frame rate and frame count of the first pass's SRT captures with ffprobe.

    This runs after every timed run, so the decode competes with none of them.
    """
    probes = {}
    for source in SOURCES:
        for run in RUNS:
            if "SRT" not in run.outputs:
                continue
            capture = srt_capture_path(ctx.log_dir / f"cost-{source.key}-{run.key}-0")
            argv = [
                "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
                "-show_entries", "stream=codec_name,profile,width,height,r_frame_rate,nb_read_frames",
                "-of", "json", str(capture),
            ]
            result = subprocess.run(argv, capture_output=True, text=True)
            streams = json.loads(result.stdout or "{}").get("streams", []) if result.returncode == 0 else []
            if not streams:
                sys.exit(f"bench: ffprobe found no video stream in {capture}: {result.stderr.strip()[:300]}")
            probes[(source.key, run.key)] = streams[0]
    return probes


def command_for(ctx, source, run, plans, receivers, looped_clip):
    duration = ctx.args.duration
    if run.key == "floor":
        return floor_command(source, plans[source.key]["bridge-2"], duration, looped_clip)
    if run.key == "ffmpeg":
        return ffmpeg_command(
            source, plans[source.key]["bridge-2"], duration, receivers["SRT"].url(), receivers["RTMP"].url()
        )
    return bridge_command(ctx.bridge, source, duration, [receivers[output].url() for output in run.outputs])


def measure(ctx, plans, looped_clip, env, bridge_env):
    """Run every command --repeats times, round robin, and return samples[source][run].

    Only the bridge gets bridge_env, which carries the session token.
    """
    args = ctx.args
    samples = {source.key: {run.key: [] for run in RUNS} for source in SOURCES}
    total = args.repeats * len(SOURCES) * len(RUNS)
    done = 0
    for repeat in range(args.repeats):
        for source in SOURCES:
            for run in RUNS:
                done += 1
                print(f"bench: [{done}/{total}] {source.key}, {run.label}, run {repeat + 1}/{args.repeats}", flush=True)
                log_stem = ctx.log_dir / f"cost-{source.key}-{run.key}-{repeat}"
                log_path = log_stem.with_suffix(".log")
                receivers = start_receivers(run.outputs, log_stem)
                received = {}
                try:
                    argv = command_for(ctx, source, run, plans, receivers, looped_clip)
                    run_env = bridge_env if run.key.startswith("bridge") else env
                    cpu_s, rss_mib, wall_s = timed_run(argv, run_env, log_path)
                finally:
                    for output, receiver in receivers.items():
                        received[output] = receiver.stop()
                for output, count in received.items():
                    if count == 0:
                        sys.exit(
                            f"bench: the {output} receiver got no bytes from `{run.label}`: "
                            f"see {log_path} and {receivers[output].log_path}"
                        )
                samples[source.key][run.key].append(
                    {"cpu": cpu_s, "rss": rss_mib, "wall": wall_s, "received": received, "argv": argv}
                )
    return samples


def run(ctx):
    """Measure the three scenarios and return their sections for the page."""
    if ctx.args.duration < MIN_DURATION_S:
        sys.exit(
            f"bench: --duration {ctx.args.duration} is too short for the cost scenarios: use at least "
            f"{MIN_DURATION_S}, because a WHIP session takes about 1 s to connect"
        )
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRAX_")}
    bridge_env = dict(env, TRAX_SESSION_TOKEN=mint_token(OUTPUT_PATH))
    plans = {
        source.key: {run.key: read_plan(ctx, source, run.outputs, bridge_env) for run in RUNS if run.outputs}
        for source in SOURCES
    }
    looped_clip = loop_clip(ctx)
    tools = cost_report.measure_tools(ctx, SOURCES, plans, bridge_env)
    samples = measure(ctx, plans, looped_clip, env, bridge_env)
    print("bench: ffprobe on the SRT captures of the first pass", flush=True)
    probes = probe_captures(ctx)
    return cost_report.sections(ctx, SOURCES, RUNS, plans, samples, tools, looped_clip, probes)

