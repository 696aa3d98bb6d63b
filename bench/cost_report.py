"""Page sections and charts for bench/cost.py, and its short-command measurements.

Ratios and added costs are computed per repeat, between commands of the
same round-robin pass, and the tables give their medians.
"""

import json
import shlex
import shutil
import statistics
import subprocess

from common import REPO
from svg import bar_chart

BRIDGE_DISPLAY = "target/release/bridge"
HYPERFINE_RUNS = 10
PERF_REPEATS = 5
PERF_EVENTS = "task-clock,context-switches,page-faults,cycles,instructions"
# Share of duration x fps frames below which a capture counts as fallen behind real time.
LATE_FRAME_SHARE = 0.95


def measure_tools(ctx, sources, plans, env):
    """Time `bridge --print-pipeline` with hyperfine and perf stat, where they work."""
    tools = {"hyperfine": {}, "perf": None, "notes": []}
    commands = {source.key: plans[source.key]["bridge-1"]["command"] for source in sources}
    if shutil.which("hyperfine") is None:
        tools["notes"].append("hyperfine is not installed (scripts/install-deps.sh installs it).")
    else:
        for key, argv in commands.items():
            run_hyperfine(ctx, key, argv, env, tools)

    if shutil.which("perf") is None:
        tools["notes"].append("perf is not installed (scripts/install-deps.sh installs linux-perf).")
    else:
        run_perf_stat(ctx, commands["test"], env, tools)
    return tools


def run_hyperfine(ctx, key, argv, env, tools):
    print(f"bench: hyperfine, {key} source, bridge --print-pipeline", flush=True)
    export = ctx.log_dir / f"hyperfine-{key}.json"
    hyperfine = [
        "hyperfine", "--style", "none", "--warmup", "1", "--runs", str(HYPERFINE_RUNS),
        "--export-json", str(export), shlex.join(argv),
    ]
    result = subprocess.run(hyperfine, env=env, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        tools["notes"].append(f"hyperfine failed on the {key} source: {result.stderr.strip()[:300]}")
        return
    tools["hyperfine"][key] = json.loads(export.read_text())["results"][0]


def run_perf_stat(ctx, argv, env, tools):
    """Count software and hardware events, or add a note for the page when the kernel forbids perf."""
    print("bench: perf stat, test source, bridge --print-pipeline", flush=True)
    report = ctx.log_dir / "perf-stat.csv"
    perf = ["perf", "stat", "-x", ",", "-o", str(report), "-r", str(PERF_REPEATS), "-e", PERF_EVENTS, "--", *argv]
    result = subprocess.run(perf, env=env, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        first_line = (result.stderr.strip().splitlines() or ["no message"])[0]
        tools["notes"].append(f"`perf stat` failed here (exit {result.returncode}): {first_line}")
        return
    counters = []
    for line in report.read_text().splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and not line.startswith("#") and fields[2]:
            counters.append({"event": fields[2], "value": fields[0], "unit": fields[1]})
    tools["perf"] = counters


def median_of(samples, field):
    return statistics.median(sample[field] for sample in samples)


def median_ratio(numerators, denominators, field):
    return statistics.median(top[field] / bottom[field] for top, bottom in zip(numerators, denominators))


def median_difference(minuends, subtrahends, field):
    return statistics.median(top[field] - bottom[field] for top, bottom in zip(minuends, subtrahends))


def bitrates(ctx, samples):
    """Return the median received kbit/s of each output, as "SRT 2600, RTMP 2590"."""
    outputs = samples[0]["received"].keys()
    parts = []
    for output in outputs:
        received = statistics.median(sample["received"][output] for sample in samples)
        parts.append(f"{output} {received * 8 / 1000 / ctx.args.duration:.0f}")
    return ", ".join(parts) or "-"


def display_command(ctx, argv, looped_clip):
    words = [BRIDGE_DISPLAY if word == str(ctx.bridge) else word for word in argv]
    words = [word.replace(str(looped_clip), "clip-looped.mp4") for word in words]
    return shlex.join(words)


def settings_text(plan):
    x264 = " ".join(f"{key}={value}" for key, value in plan["x264"].items())
    return f"`x264enc {x264}`, profile {plan['profile']}, AAC at {plan['aac_bitrate'] // 1000} kbit/s"


def every_run(rows):
    lines = ["", "Every run (CPU s / peak RSS MiB / wall s):", ""]
    for label, samples in rows:
        runs = ", ".join(f"{s['cpu']:.2f} / {s['rss']:.1f} / {s['wall']:.2f}" for s in samples)
        lines.append(f"- {label}: {runs}")
    return lines


def floor_section(ctx, sources, plans, samples, looped_clip):
    args = ctx.args
    lines = [
        f"Every command runs for {args.duration} s paced in real time, so each tool",
        "encodes the same frames per second. CPU seconds and peak RSS are",
        f"medians over {args.repeats} {'run' if args.repeats == 1 else 'runs'} under `/usr/bin/time -v` "
        "(CPU is user + sys).",
        "The commands run round robin: floor, bridge with 1, 2 and 3 outputs,",
        "FFmpeg, for each source, then again. The encoder settings are the",
        "bridge's own, read from `bridge --print-pipeline` for each source:",
        "",
    ]
    for source in sources:
        lines.append(f"- {source.label} ({source.width}x{source.height} at {source.fps} fps): "
                     f"{settings_text(plans[source.key]['bridge-2'])}")
    lines += [
        "",
        "The floor is gst-launch-1.0 doing the bridge's capture and encode work",
        "with no outputs: source, (for the clip) decode, convert, scale and",
        "videorate, x264enc and avenc_aac into fakesink. The test source is",
        "live and paces itself, and for the clip fakesink sync=true paces it. The",
        "bridge loops the clip itself, but gst-launch-1.0 cannot, so its floor",
        f"reads the clip looped to {args.duration} s by a stream copy (no re-encode) made",
        "before the timed runs:",
        "",
        "```",
        f"ffmpeg -stream_loop -1 -i media/bigbuckbunny.mp4 -t {args.duration} -c copy clip-looped.mp4",
    ]
    for source in sources:
        lines.append(display_command(ctx, samples[source.key]["floor"][0]["argv"], looped_clip))
    lines += [
        "```",
        "",
        "| source | CPU s | peak RSS MiB | wall s |",
        "|---|---|---|---|",
    ]
    for source in sources:
        floor = samples[source.key]["floor"]
        lines.append(f"| {source.label} | {median_of(floor, 'cpu'):.2f} | {median_of(floor, 'rss'):.1f} | "
                     f"{median_of(floor, 'wall'):.2f} |")
    lines += every_run([(source.label, samples[source.key]["floor"]) for source in sources])
    chart = bar_chart(
        "Encode floor: CPU seconds per run (median)",
        [(source.label, median_of(samples[source.key]["floor"], "cpu")) for source in sources],
        "CPU s",
    )
    return {"title": "Encode floor", "markdown": "\n".join(lines), "charts": {"cost-floor.svg": chart}}


def tools_lines(tools):
    lines = ["", "### Planning: `bridge --print-pipeline`", ""]
    lines += [
        "This short command plans the capture and runs the encoder test encode,",
        "which the bridge also does before every stream starts.",
        "",
    ]
    if tools["hyperfine"]:
        lines += ["| source | hyperfine mean s | stddev s | min s | max s |", "|---|---|---|---|---|"]
        for key, result in tools["hyperfine"].items():
            lines.append(f"| {key} | {result['mean']:.3f} | {result['stddev']:.3f} | {result['min']:.3f} | "
                         f"{result['max']:.3f} |")
        lines += ["", f"hyperfine: 1 warm-up run, then {HYPERFINE_RUNS} runs."]
    if tools["perf"] is not None:
        lines += ["", f"`perf stat -r {PERF_REPEATS} -e {PERF_EVENTS}` on the test source's command:", ""]
        lines += ["| event | value | unit |", "|---|---|---|"]
        for counter in tools["perf"]:
            lines.append(f"| {counter['event']} | {counter['value']} | {counter['unit'] or '-'} |")
        if any(counter["value"] == "<not supported>" for counter in tools["perf"]):
            lines += ["", "The kernel here offers software counters only, so hardware counters",
                      "(cycles, instructions) show as not supported."]
    lines += [f"- {note}" for note in tools["notes"]]
    return lines


def outputs_table(ctx, sources, bridge_runs, samples):
    """Return the table rows of the per-output section and the bars of its two charts."""
    lines = []
    cpu_bars, rss_bars = [], []
    for source in sources:
        per_run = samples[source.key]
        floor = per_run["floor"]
        lines.append(f"| {source.label} | floor | {median_of(floor, 'cpu'):.2f} | {median_of(floor, 'rss'):.1f} "
                     "| 1.00 | 1.00 | - | - | - |")
        cpu_bars.append((f"{source.key}: floor", median_of(floor, "cpu")))
        rss_bars.append((f"{source.key}: floor", median_of(floor, "rss")))
        previous = floor
        for run in bridge_runs:
            current = per_run[run.key]
            added_cpu = median_difference(current, previous, "cpu")
            added_rss = median_difference(current, previous, "rss")
            added = ("-", "-") if previous is floor else (f"{added_cpu:+.2f}", f"{added_rss:+.1f}")
            lines.append(
                f"| {source.label} | {run.label} | {median_of(current, 'cpu'):.2f} | {median_of(current, 'rss'):.1f} "
                f"| {median_ratio(current, floor, 'cpu'):.2f} | {median_ratio(current, floor, 'rss'):.2f} "
                f"| {added[0]} | {added[1]} | {bitrates(ctx, current)} |"
            )
            bar_label = f"{source.key}: {len(run.outputs)} output" + ("s" if len(run.outputs) > 1 else "")
            cpu_bars.append((bar_label, median_of(current, "cpu")))
            rss_bars.append((bar_label, median_of(current, "rss")))
            previous = current
    return lines, cpu_bars, rss_bars


def outputs_section(ctx, sources, runs, plans, samples, tools, looped_clip):
    bridge_runs = [run for run in runs if run.key.startswith("bridge")]
    lines = [
        "The bridge with one, two and three outputs, each to its own receiver on",
        "127.0.0.1 that only counts bytes: srt-live-transmit for SRT, nginx with",
        "the RTMP module (live, no recording, bytes from its access log) for RTMP, and bench/whip_sink.py",
        "for WHIP (webrtcbin that takes ICE, DTLS and SRTP and drops the RTP",
        "without decoding). Only the bridge process is timed. Ratios are the",
        "bridge over the floor of the same pass. Added cost is the difference",
        "from the run with one output fewer in the same pass. Both are medians.",
        "",
    ]
    for source in sources:
        whip_plan = plans[source.key]["bridge-3"]
        if whip_plan["profile"] != plans[source.key]["bridge-2"]["profile"]:
            lines.append(f"With the WHIP output, the {source.label} encode uses profile "
                         f"{whip_plan['profile']} (the bridge's default with WHIP), and the audio is "
                         "encoded to Opus as well.")
    bridge_argv = samples[sources[0].key]["bridge-3"][0]["argv"]
    stream_path = bridge_argv[bridge_argv.index("--path") + 1]
    lines += [
        "",
        "Commands (ports differ per run, and a receiver listens on each). The",
        "bridge reads its token from TRAX_SESSION_TOKEN, and the receivers check",
        f"no signature, so an unsigned JWT for {stream_path} serves. To run a command",
        "by hand, set one first:",
        "",
        "```",
        "export TRAX_SESSION_TOKEN=$(/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"bench\");"
        f" import common; print(common.mint_token(\"{stream_path}\"))')",
    ]
    for source in sources:
        lines.append(display_command(ctx, samples[source.key]["bridge-3"][0]["argv"], looped_clip))
    lines += [
        "```",
        "",
        "| source | run | CPU s | peak RSS MiB | CPU / floor | RSS / floor | added CPU s | added RSS MiB | received kbit/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    table, cpu_bars, rss_bars = outputs_table(ctx, sources, bridge_runs, samples)
    lines += table

    lines += [
        "",
        "The added cost of the first output is not shown, because the step from",
        "the floor to the bridge also adds the bridge's own work: the slate",
        "branches of the test source, the encoder test encode at start-up, and",
        "the fan-out. The bridge's figures include its start-up, whose CPU time",
        "the planning table below measures, and it weighs more in short runs.",
    ]
    lines += every_run(
        [(f"{source.label}, {run.label}", samples[source.key][run.key]) for source in sources for run in bridge_runs]
    )
    lines += tools_lines(tools)

    charts = {
        "cost-outputs-cpu.svg": bar_chart("Bridge by number of outputs: CPU seconds (median)", cpu_bars, "CPU s"),
        "cost-outputs-rss.svg": bar_chart("Bridge by number of outputs: peak RSS (median)", rss_bars, "MiB"),
    }
    return {"title": "Bridge cost per output", "markdown": "\n".join(lines), "charts": charts}


def ffmpeg_section(ctx, sources, plans, samples, looped_clip):
    lines = [
        "FFmpeg doing the bridge's job with two outputs: decode (for the clip),",
        "scale, libx264 with the bridge's settings, AAC, and `-f tee` to the same",
        "SRT and RTMP receivers, paced by `-re` (and `-stream_loop -1` for the",
        "clip). x264enc's `pass=cbr` maps to `-b:v`, `-maxrate` and `-bufsize`",
        "(the bitrate over x264enc's VBV buffer of 600 ms), `key-int-max` to",
        "`-g` and `bframes` to `-bf`. FFmpeg sends no credentials, since the",
        "receivers check none. For the test source FFmpeg uses lavfi",
        "`testsrc2` and `sine`, a different pattern from videotestsrc's ball",
        "on black, so the test source compares the same settings on different",
        "pictures. Neither encoder pads its output up to the bitrate, so the",
        "received kbit/s column shows how far apart those pictures are: the",
        "ball on black needs a fraction of the bitrate, while testsrc2 uses all",
        "of it, and FFmpeg's CPU time there includes encoding that detail. The",
        "clip is the same input for both.",
        "",
        "```",
    ]
    for source in sources:
        lines.append(display_command(ctx, samples[source.key]["ffmpeg"][0]["argv"], looped_clip))
    lines += [
        "```",
        "",
        "| source | tool | CPU s | peak RSS MiB | CPU / bridge | RSS / bridge | received kbit/s |",
        "|---|---|---|---|---|---|---|",
    ]
    cpu_bars = []
    for source in sources:
        bridge = samples[source.key]["bridge-2"]
        ffmpeg = samples[source.key]["ffmpeg"]
        lines.append(f"| {source.label} | bridge: SRT + RTMP | {median_of(bridge, 'cpu'):.2f} | "
                     f"{median_of(bridge, 'rss'):.1f} | 1.00 | 1.00 | {bitrates(ctx, bridge)} |")
        lines.append(
            f"| {source.label} | ffmpeg: SRT + RTMP | {median_of(ffmpeg, 'cpu'):.2f} | {median_of(ffmpeg, 'rss'):.1f} "
            f"| {median_ratio(ffmpeg, bridge, 'cpu'):.2f} | {median_ratio(ffmpeg, bridge, 'rss'):.2f} "
            f"| {bitrates(ctx, ffmpeg)} |"
        )
        cpu_bars.append((f"{source.key}: bridge", median_of(bridge, "cpu")))
        cpu_bars.append((f"{source.key}: ffmpeg", median_of(ffmpeg, "cpu")))
    lines += every_run([(f"{source.label}, ffmpeg", samples[source.key]["ffmpeg"]) for source in sources])
    chart = bar_chart("Bridge and FFmpeg, SRT + RTMP: CPU seconds (median)", cpu_bars, "CPU s")
    return {"title": "Bridge against FFmpeg", "markdown": "\n".join(lines), "charts": {"cost-ffmpeg.svg": chart}}


def probe_lines(ctx, sources, runs, probes):
    lines = [
        "",
        "### What the SRT receiver got",
        "",
        "ffprobe on the SRT capture of the first pass, after every timed run.",
        f"A run that kept up with real time delivers about {ctx.args.duration} s times the frame rate.",
        "",
        "| source | run | codec | profile | size | frame rate | frames decoded |",
        "|---|---|---|---|---|---|---|",
    ]
    for source in sources:
        for run in runs:
            probe = probes.get((source.key, run.key))
            if probe is None:
                continue
            lines.append(
                f"| {source.label} | {run.label} | {probe.get('codec_name', '?')} | {probe.get('profile', '?')} "
                f"| {probe.get('width', '?')}x{probe.get('height', '?')} | {probe.get('r_frame_rate', '?')} "
                f"| {probe.get('nb_read_frames', '?')} |"
            )
    late_runs = [
        f"{source.label}, {run.label}"
        for source in sources
        for run in runs
        if (source.key, run.key) in probes
        and int(probes[(source.key, run.key)].get("nb_read_frames", 0)) < LATE_FRAME_SHARE * ctx.args.duration * source.fps
    ]
    if late_runs:
        lines += [
            "",
            f"Fewer than {LATE_FRAME_SHARE:.0%} of the frames arrived in: {'; '.join(late_runs)}. The cores",
            "could not keep up in real time there, so those figures measure the load, not the tool.",
        ]
    return lines


def sections(ctx, sources, runs, plans, samples, tools, looped_clip, probes):
    """Return the three sections of the cost scenarios."""
    outputs = outputs_section(ctx, sources, runs, plans, samples, tools, looped_clip)
    outputs["markdown"] += "\n" + "\n".join(probe_lines(ctx, sources, runs, probes))
    return [
        floor_section(ctx, sources, plans, samples, looped_clip),
        outputs,
        ffmpeg_section(ctx, sources, plans, samples, looped_clip),
    ]
