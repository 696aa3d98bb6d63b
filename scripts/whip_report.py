#!/usr/bin/env python3
"""Prints what the WHIP test receiver got in one session (its report.json
and the H.264 it recorded: profile, size, B-frames, decode errors, Opus
level) and checks it against expectations. Exits 1 when a check fails."""

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(command):
    return subprocess.run(command, capture_output=True, text=True, check=False)


def video_stream(path):
    result = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams",
                  "-of", "json", str(path)])
    streams = json.loads(result.stdout or "{}").get("streams", [])
    return streams[0] if streams else {}


def picture_types(path):
    result = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                  "frame=pict_type", "-of", "csv=p=0", str(path)])
    return [line.strip().strip(",") for line in result.stdout.splitlines() if line.strip()]


def decode_errors(path):
    result = run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"])
    return [line for line in result.stderr.splitlines() if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("session", help="the receiver's session-N folder")
    parser.add_argument("--expect-size", help="WIDTHxHEIGHT of the video")
    parser.add_argument("--min-seconds", type=float, default=0.0,
                        help="minimum seconds of decoded video, at the clip's 25 fps")
    args = parser.parse_args()

    session = Path(args.session)
    report_path = session / "report.json"
    if not report_path.exists():
        print(f"  no session was recorded ({report_path} is missing)")
        return 1
    report = json.loads(report_path.read_text())
    video, audio = report.get("video") or {}, report.get("audio") or {}
    stream = video_stream(session / "video.h264")
    types = picture_types(session / "video.h264")
    errors = decode_errors(session / "video.h264")
    size = f"{video.get('width')}x{video.get('height')}"
    connect_ms = None
    if report.get("connected_s") and report.get("post_s"):
        connect_ms = round((report["connected_s"] - report["post_s"]) * 1000)

    print(f"  video: {video.get('codec')} {stream.get('profile')} {size}, "
          f"{video.get('frames_decoded')} frames decoded, {types.count('I')} I / "
          f"{types.count('P')} P / {types.count('B')} B pictures")
    print(f"  audio: {audio.get('codec')} {audio.get('sample_rate')} Hz, "
          f"{audio.get('frames_decoded')} frames decoded, level {audio.get('rms_dbfs')} dBFS")
    print(f"  WebRTC connected {connect_ms} ms after the offer arrived; "
          f"session deleted by the bridge: {report.get('delete_received')}")
    print(f"  decode errors: {len(errors)}")

    failures = []
    if video.get("codec") != "video/H264":
        failures.append(f"video codec {video.get('codec')}, expected video/H264")
    if args.expect_size and size != args.expect_size:
        failures.append(f"size {size}, expected {args.expect_size}")
    if "B" in types or stream.get("has_b_frames", 0):
        failures.append("B-frames in the stream")
    if (video.get("frames_decoded") or 0) < args.min_seconds * 25:
        failures.append(f"only {video.get('frames_decoded')} frames decoded")
    if audio.get("codec") != "audio/opus":
        failures.append(f"audio codec {audio.get('codec')}, expected audio/opus")
    if (audio.get("rms_dbfs") or -200) < -60:
        failures.append(f"audio level {audio.get('rms_dbfs')} dBFS: no signal")
    if not report.get("delete_received"):
        failures.append("the bridge did not delete the session")
    if errors:
        failures.append(f"decode errors: {errors[:3]}")
    for failure in failures:
        print(f"  FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
