#!/usr/bin/env python3
"""Prints what an MPEG-TS recording holds (codecs, size, frame rate,
duration, decode errors, SRT message sizes) and checks it against
expectations. Exits 1 when a check fails."""

import argparse
import json
import subprocess
import sys


def probe(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        sys.exit(f"report: ffprobe failed on {path}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def decode_errors(path):
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    return [line for line in result.stderr.splitlines() if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recording")
    parser.add_argument("--sizes", help="file with one SRT message size per line")
    parser.add_argument("--expect-codecs", default="h264,aac")
    parser.add_argument("--expect-size", help="WIDTHxHEIGHT of the video")
    parser.add_argument("--min-duration", type=float, default=0.0, help="seconds")
    args = parser.parse_args()

    info = probe(args.recording)
    streams = info.get("streams", [])
    duration = float(info.get("format", {}).get("duration", 0.0))
    errors = decode_errors(args.recording)
    failures = []

    print(f"received: {args.recording}")
    for stream in streams:
        if stream.get("codec_type") == "video":
            print(f"  video: {stream.get('codec_name')} {stream.get('profile', '')} "
                  f"{stream.get('width')}x{stream.get('height')} "
                  f"at {stream.get('avg_frame_rate') or stream.get('r_frame_rate')} fps")
        elif stream.get("codec_type") == "audio":
            print(f"  audio: {stream.get('codec_name')} {stream.get('profile', '')} "
                  f"{stream.get('sample_rate')} Hz, {stream.get('channels')} channels")
    print(f"  duration: {duration:.2f} s")
    print(f"  decode errors: {len(errors)}")
    for line in errors[:10]:
        print(f"    {line}")

    codecs = [s.get("codec_name") for s in streams]
    for codec in args.expect_codecs.split(","):
        if codec and codec not in codecs:
            failures.append(f"no {codec} stream (found {codecs})")
    if args.expect_size:
        sizes = [f"{s.get('width')}x{s.get('height')}" for s in streams if s.get("codec_type") == "video"]
        if args.expect_size not in sizes:
            failures.append(f"video size {sizes}, expected {args.expect_size}")
    if duration < args.min_duration:
        failures.append(f"duration {duration:.2f} s, expected at least {args.min_duration} s")
    if errors:
        failures.append(f"{len(errors)} decode errors")

    if args.sizes:
        with open(args.sizes, encoding="ascii") as handle:
            sizes = [int(line) for line in handle if line.strip()]
        whole = sum(1 for size in sizes if size % 188 == 0 and 0 < size <= 1316)
        print(f"  SRT messages: {len(sizes)}, {whole} of them whole 188-byte packets and at most 1316 bytes")
        if whole != len(sizes) or not sizes:
            failures.append("some SRT messages are not whole TS packets")

    if failures:
        print("report: FAILED: " + "; ".join(failures))
        return 1
    print("report: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
