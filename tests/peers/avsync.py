#!/usr/bin/python3
"""Measures audio against video in a recording of a flash-and-beep clip.

`make` writes the clip: one white video frame 0.6 s into every
second and, at the same instants, a 100 ms 1 kHz beep, sample-exact. The
events sit 0.4 s and more away from the clip's ends, so none straddles the
point where a looped clip starts again. `measure`
finds every flash (a frame whose mean luma jumps above 128) and every beep
onset (the first loud sample after at least 50 ms of silence) in a
recording, pairs each onset with the nearest flash, and prints one JSON
object: {"flashes": [...], "onsets": [...], "offsets_ms": [...]}, times in
seconds of presentation time, offsets positive when audio is late.

  /usr/bin/python3 tests/peers/avsync.py make CLIP.mp4 [SECONDS]
  /usr/bin/python3 tests/peers/avsync.py measure RECORDING

Needs ffmpeg and ffprobe.
"""

import array
import json
import subprocess
import sys

RATE_HZ = 48000
LOUD = 2000
QUIET_SAMPLES = RATE_HZ // 20


def make(path, seconds):
    flash = (
        f"color=c=black:s=320x240:r=25:d={seconds},"
        "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(mod(t\\,1)\\,0.59\\,0.63)'"
    )
    beep = (
        "aevalsrc='if(between(mod(t\\,1)\\,0.6\\,0.7)\\,0.5*sin(2*PI*1000*t)\\,0)'"
        f":s={RATE_HZ}:d={seconds}:c=stereo"
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", flash, "-f", "lavfi", "-i", beep,
         "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path],
        check=True,
    )


def flash_times(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "lavfi", "-i", f"movie={path},signalstats",
         "-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG", "-of", "json"],
        capture_output=True, text=True, check=True,
    )
    times, lit = [], False
    for frame in json.loads(result.stdout).get("frames", []):
        bright = float(frame["tags"]["lavfi.signalstats.YAVG"]) > 128
        if bright and not lit:
            times.append(float(frame["pts_time"]))
        lit = bright
    return times


def onset_times(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=start_time",
         "-of", "json", path],
        capture_output=True, text=True, check=True,
    )
    start = float(json.loads(result.stdout)["streams"][0]["start_time"])
    pcm = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", str(RATE_HZ),
         "-f", "s16le", "-"],
        capture_output=True, check=True,
    ).stdout
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    times, quiet = [], 0
    for index, value in enumerate(samples):
        if abs(value) > LOUD:
            if quiet >= QUIET_SAMPLES:
                times.append(start + index / RATE_HZ)
            quiet = 0
        else:
            quiet += 1
    return times


def measure(path):
    flashes, onsets = flash_times(path), onset_times(path)
    offsets = []
    for onset in onsets:
        nearest = min(flashes, key=lambda flash: abs(flash - onset), default=None)
        if nearest is not None and abs(nearest - onset) < 0.5:
            offsets.append(round((onset - nearest) * 1000, 2))
    print(json.dumps({"flashes": flashes, "onsets": onsets, "offsets_ms": offsets}))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
    elif len(sys.argv) == 3 and sys.argv[1] == "measure":
        measure(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
