#!/usr/bin/env python
"""Video decoding: LlamaFactory's video path (stock) against our frame sampler and our frame cache, in one run.

For every video, these sides run in one process, their order rotating from one repetition to the next, after one
warm-up pass of each (the warm-up of ``ours_cache`` fills the cache):

* ``host_qwen2vl`` (stock): ``get_mm_plugin("qwen2_vl", ...)._regularize_videos([path], ...)`` with
  ``video_backend=host``: PyAV decodes EVERY frame from the start; the sampled ones
  (``_get_video_sample_indices``: host defaults ``video_fps`` 2.0, ``video_maxlen`` 128) become PIL images,
  resized to ``video_max_pixels`` 256*256;
* ``ours``: the same call with our frame sampler (``video_backend=pyav``, the default): seek to the keyframe
  before each sampled frame, skip non-reference frames on the way, decoder threads on spare cores; the same
  frames bit for bit (``tests/unit/test_frame_sampler.py``);
* ``ours_cache``: the same call with ``video_frame_cache`` set and the entry present (epoch 2 and later);
* ``pyav_decode``: plain PyAV, every frame decoded, nothing converted (the codec's floor for any reader that
  decodes everything; the stock path can only be slower);
* ``pyav_rgb``: plain PyAV, every frame decoded and converted to RGB (real clips and ``--quick`` only);
* ``decord``: ``decord.VideoReader(path).get_batch(<the host's indices>)`` when ``decord`` imports, else
  reported as unavailable.

Per video also: ``ceiling``, the frames a reader that returns the host's exact frames must decode if it decodes
everything from the keyframe before each sampled frame (``frames_from_keyframes``), and the ratio
``frames / frames_from_keyframes`` that such a reader cannot beat; ``ours_stats``, what our sampler really sent to
the decoder and got out of it (non-reference frames are dropped unseen). With ``--rss``, the peak RSS of one call
of each side in a fresh process (minus that of a process that only imports), for the 300 s clips with a keyframe
every 4 s.

Videos: the real samples in ``--video-dir`` (``1.mp4`` h264 640x360 25 fps 9.7 s; ``4.mp4`` h264 224x224 30 fps
5 s) and synthetic h264 clips (25 fps, 16:9, 3 B-frames, keyframe every 1 / 4 / 10 s; moving shapes and a noise
patch on a gradient) generated once into ``--workdir``. No timing assertions anywhere.

    python bench/decode.py [--quick] [--reps 3] [--rss] [--budget-s 60] [--video-dir DIR] [--workdir DIR]
                           [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from caption_reward import summarize  # bench/ is on sys.path (script directory)


HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VIDEO_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "videos")
HOST_KWARGS = {"image_max_pixels": 256 * 256, "image_min_pixels": 16 * 16, "video_fps": 2.0, "video_maxlen": 128}
REAL_VIDEOS = ("1.mp4", "4.mp4")
#: (seconds, height, keyframe interval in seconds) of the generated clips
SYNTHETIC_FULL = tuple(
    [(seconds, height, 4) for seconds in (10, 60) for height in (224, 480, 720)]
    + [(300, height, keyint) for height in (224, 480, 720) for keyint in (1, 4, 10)]
)
SYNTHETIC_QUICK = ((10, 224, 1),)
SYNTHETIC_FPS = 25
SIDES = ("host_qwen2vl", "ours", "ours_cache", "pyav_decode", "pyav_rgb", "decord")
RSS_SIDES = ("host_qwen2vl", "ours", "ours_cache")


# ------------------------------------------------------------------------------------------------ videos
def synthetic_clip(workdir: str, seconds: int, height: int, keyint_s: int, fps: int = SYNTHETIC_FPS) -> str:
    """Path of an h264 clip (16:9, ``keyint_s`` s between keyframes, 3 B-frames), generated on first use."""
    import av

    width = int(round(height * 16 / 9 / 2)) * 2
    path = os.path.join(workdir, "decode_videos", f"clip_{seconds}s_{height}p_key{keyint_s}s.mp4")
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seconds * 7 + height)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1)
    background = background.astype(np.uint8)
    keyint = keyint_s * fps
    tmp = path[:-4] + ".partial.mp4"
    with av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "crf": "23",
            "preset": "veryfast",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3",
        }
        box = max(8, height // 6)
        for t in range(seconds * fps):
            frame = background.copy()
            for k in range(3):
                x = int((t * (3 + 2 * k) + 97 * k) % (width - box))
                y = int((height - box) / 2 * (1 + np.sin(t / (20.0 + 7 * k) + k)))
                frame[y : y + box, x : x + box] = ((80 * k + t) % 256, 200 - 60 * k, (t * 3) % 256)
            patch = min(64, height // 4)
            frame[:patch, :patch] = rng.integers(0, 256, size=(patch, patch, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def probe(path: str) -> dict[str, Any]:
    """Codec, size, frame rate, duration, frame count and keyframe count of the first video stream."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration is not None else None
        keyframes = sum(1 for p in container.demux(stream) if p.size and p.is_keyframe)
        return {
            "codec": stream.codec_context.name,
            "width": stream.width,
            "height": stream.height,
            "fps": float(stream.average_rate),
            "duration_s": duration,
            "frames": int(stream.frames),
            "keyframes": keyframes,
        }


def host_indices(plugin: Any, path: str) -> list[int]:
    import av

    with av.open(path) as container:
        return [int(i) for i in plugin._get_video_sample_indices(container.streams.video[0], **HOST_KWARGS)]


def ceiling(plugin: Any, path: str) -> dict[str, Any]:
    """Frames decoded by an exact reader that decodes from the keyframe before each sampled frame through to it,
    our sampler's own counts, and the ratios against decoding everything."""
    import av

    from llamafactory_video.data.frame_sampler import frame_table, read_frames_from

    indices = host_indices(plugin, path)
    with av.open(path) as container:
        table = frame_table(container, container.streams.video[0])
    keys = [table.pts.index(k) for k in table.keyframe_pts]
    covered: set[int] = set()
    for index in indices:
        start = max(k for k in keys if k <= index)
        covered.update(range(start, index + 1))
    stats: dict[str, Any] = {}
    with av.open(path) as container:
        read_frames_from(container, container.streams.video[0], indices, stats=stats)
    frames = len(table)
    return {
        "sampled": len(indices),
        "frames": frames,
        "frames_from_keyframes": len(covered),
        "ceiling_ratio": frames / max(1, len(covered)),
        "ours_stats": stats,
        "ours_decode_ratio": frames / max(1, stats["frames_out"]),
    }


# ------------------------------------------------------------------------------------------------ sides
def make_sides(plugin: Any, cache_dir: str, full_rgb: bool) -> dict[str, Callable[[str], int] | None]:
    """``{side: fn(path) -> frames returned}``; ``None`` for a side whose library is not importable."""
    import av

    def regularize(backend: str, cache: str | None) -> Callable[[str], int]:
        def run(path: str) -> int:
            os.environ["LLAMAFACTORY_VIDEO_BACKEND"] = backend
            if cache:
                os.environ["LLAMAFACTORY_VIDEO_FRAME_CACHE"] = cache
            else:
                os.environ.pop("LLAMAFACTORY_VIDEO_FRAME_CACHE", None)
            try:
                return len(plugin._regularize_videos([path], **HOST_KWARGS)["videos"][0])
            finally:
                os.environ.pop("LLAMAFACTORY_VIDEO_FRAME_CACHE", None)

        return run

    def pyav_decode(path: str) -> int:
        count = 0
        with av.open(path) as container:
            for _ in container.decode(container.streams.video[0]):
                count += 1
        return count

    def pyav_rgb(path: str) -> int:
        count = 0
        with av.open(path) as container:
            for frame in container.decode(container.streams.video[0]):
                frame.to_ndarray(format="rgb24")
                count += 1
        return count

    sides: dict[str, Callable[[str], int] | None] = {
        "host_qwen2vl": regularize("host", None),
        "ours": regularize("pyav", None),
        "ours_cache": regularize("pyav", cache_dir),
        "pyav_decode": pyav_decode,
        "pyav_rgb": pyav_rgb if full_rgb else None,
        "decord": None,
    }
    try:
        import decord  # noqa: F401  (optional: pip install ".[decord]")
    except ImportError:
        return sides

    def decord_sampled(path: str) -> int:
        import decord

        reader = decord.VideoReader(path)
        return int(reader.get_batch(host_indices(plugin, path)).shape[0])

    sides["decord"] = decord_sampled
    return sides


def measure_video(path: str, sides: dict[str, Callable[[str], int] | None], reps: int, budget_s: float) -> dict:
    """Warm-up, then up to ``reps`` rotating rounds (at least 2 unless ``reps`` < 2) within ``budget_s``."""
    available = [name for name, fn in sides.items() if fn is not None]
    returned: dict[str, int] = {}
    for name in available:  # warm-up (file cache, codec init, imports; fills the frame cache)
        returned[name] = sides[name](path)
    times: dict[str, list[float]] = {name: [] for name in available}
    started = time.perf_counter()
    for rep in range(reps):
        elapsed = time.perf_counter() - started
        if rep >= min(2, reps) and elapsed + elapsed / rep > budget_s:
            break
        order = available[rep % len(available) :] + available[: rep % len(available)]
        for name in order:
            start = time.perf_counter()
            sides[name](path)
            times[name].append(time.perf_counter() - start)

    frames = probe(path)["frames"]
    result: dict[str, Any] = {"sides": {}}
    for name in SIDES:
        if sides.get(name) is None:
            reason = "measured on the real clips and in --quick only" if name == "pyav_rgb" else "not importable"
            result["sides"][name] = {"status": "unavailable", "reason": reason}
            continue
        summary = summarize(times[name])
        result["sides"][name] = {
            "status": "ok",
            "seconds": summary,
            "frames_returned": returned[name],
            "source_fps": frames / summary["median"] if summary["median"] else None,
            "returned_fps": returned[name] / summary["median"] if summary["median"] else None,
        }
    host = result["sides"]["host_qwen2vl"]["seconds"]["median"]
    for name in ("ours", "ours_cache", "pyav_decode", "pyav_rgb"):
        block = result["sides"][name]
        result[f"ratio_host_over_{name}"] = host / block["seconds"]["median"] if block["status"] == "ok" else None
    return result


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def rss_child(side: str, path: str, cache_dir: str) -> None:
    """One call of ``side`` in this fresh process; prints its peak RSS above the RSS just before the call, in MiB
    (Linux: the peak is reset through ``/proc/self/clear_refs`` after the imports, whose own peak is larger)."""
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    sides = make_sides(plugin, cache_dir, full_rgb=False)
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    before = _status_mib("VmRSS")
    if side != "import_only":
        sides[side](path)
    print(json.dumps({"peak_rss_mib": _status_mib("VmHWM") - before, "rss_before_mib": before}))


def measure_rss(path: str, cache_dir: str) -> dict[str, Any]:
    """Peak RSS of one call per side above the RSS just before it, each in a fresh process (``import_only``, a
    process that calls nothing, shows the method's floor: about 0)."""
    out: dict[str, Any] = {}
    for side in ("import_only",) + RSS_SIDES:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--rss-child", side, path, "--cache-dir", cache_dir],
            capture_output=True,
            text=True,
            timeout=900,
        )
        line = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        out[side] = json.loads(line[-1])["peak_rss_mib"] if proc.returncode == 0 and line else None
    return {"peak_above_before_call_mib": out}


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` = the real videos and one 10 s synthetic clip, 1 repetition."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 10 s synthetic clip + the real videos, 1 rep")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per video (default 3; quick 1)")
    parser.add_argument("--rss", action="store_true", help="peak RSS per side in fresh processes (300 s, key 4 s)")
    parser.add_argument("--budget-s", type=float, default=60.0, help="soft time budget per video after 2 reps")
    parser.add_argument("--video-dir", default=DEFAULT_VIDEO_DIR, help="directory of the real sample videos")
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"), help="where synthetic clips are cached")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/decode_cpu.json)")
    parser.add_argument("--table", metavar="JSON", help="print the markdown table of a results file and exit")
    parser.add_argument("--rss-child", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child[0], args.rss_child[1], args.cache_dir)
        return 0
    if args.table:
        with open(args.table, encoding="utf-8") as f:
            print(markdown_table(json.load(f)))
        return 0
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    cache_dir = tempfile.mkdtemp(prefix="decode_bench_cache_")
    videos: list[tuple[str, Callable[[], str]]] = []
    missing = []
    for name in REAL_VIDEOS:
        path = os.path.join(args.video_dir, name)
        if os.path.isfile(path):
            videos.append((f"real:{name}", lambda path=path: path))
        else:
            missing.append(path)
    for seconds, height, keyint in SYNTHETIC_QUICK if args.quick else SYNTHETIC_FULL:
        label = f"synthetic:{seconds}s_{height}p_key{keyint}s"

        def make(seconds=seconds, height=height, keyint=keyint) -> str:
            print(f"synthetic clip {seconds} s {height}p, keyframe every {keyint} s ({args.workdir})", flush=True)
            return synthetic_clip(args.workdir, seconds, height, keyint)

        videos.append((label, make))

    started = time.time()
    results: dict[str, Any] = {}
    path = args.output or os.path.join(HERE, "results", "decode_cpu.json")
    for label, make_video in videos:
        video = make_video()
        print(f"decoding {label} ...", flush=True)
        real_or_quick = label.startswith("real:") or args.quick
        sides = make_sides(plugin, cache_dir, full_rgb=real_or_quick)
        row = {"video": probe(video)}
        row.update(measure_video(video, sides, args.reps, args.budget_s))
        row["ceiling"] = ceiling(plugin, video)
        if args.rss and label.startswith("synthetic:300s") and label.endswith("key4s"):
            row["rss"] = measure_rss(video, cache_dir)
        results[label] = row
        write_output(path, args, argv, missing, results, started, complete=False)
    write_output(path, args, argv, missing, results, started, complete=True)
    print_table(results)
    if missing:
        print(f"real videos not found (skipped): {missing}")
    print(f"wrote {path}")
    return 0


def write_output(path, args, argv, missing, results, started, complete: bool) -> None:
    """The JSON so far (rewritten after every video, so a long run that is stopped still leaves its figures)."""
    import av

    output = {
        "benchmark": "decode",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/decode.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python_version": platform.python_version(),
            "device": "cpu",
            "av_version": av.__version__,
            "loadavg_at_write": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": {
            "quick": args.quick,
            "reps": args.reps,
            "budget_s": args.budget_s,
            "host_kwargs": HOST_KWARGS,
            "missing_real_videos": missing,
            "one_hour_clips": "not measured (budget of a shared 2-core machine)",
        },
        "frame_sampler_ours": "built",
        "complete": complete,
        "videos": results,
        "wall_s": time.time() - started,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(output, f, indent=2)
        f.write("\n")
    os.replace(path + ".partial", path)


def markdown_table(data: dict[str, Any]) -> str:
    """The docs table: per clip, median seconds per video of each side and the ratios stock / ours."""

    def sec(block: dict[str, Any]) -> str:
        if block.get("status") != "ok":
            return "—"
        s = block["seconds"]
        return f"{s['median']:.3f}" if s["n"] < 3 else f"{s['median']:.3f} [{s['p10']:.3f}–{s['p90']:.3f}]"

    lines = [
        "| clip | frames | stock s/video | ours s/video | cache s/video | PyAV decode-all s | stock / ours | "
        "frames decoded: stock / ours | ceiling | stock / cache | peak RSS of the call, MiB: stock / ours / cache |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in data["videos"].items():
        s, c, v = row["sides"], row["ceiling"], row["video"]
        rss = row.get("rss", {}).get("peak_above_before_call_mib")
        rss_cell = "—"
        if rss:
            rss_cell = " / ".join(f"{rss[k]:.0f}" if rss.get(k) is not None else "—" for k in RSS_SIDES)
        lines.append(
            f"| {label} ({v['width']}x{v['height']}, {v['fps']:.0f} fps, {v['keyframes']} keyframes) | "
            f"{v['frames']} | "
            f"{sec(s['host_qwen2vl'])} | {sec(s['ours'])} | {sec(s['ours_cache'])} | {sec(s['pyav_decode'])} | "
            f"x{row['ratio_host_over_ours']:.2f} | {v['frames']} / {c['ours_stats']['frames_out']} "
            f"(x{c['ours_decode_ratio']:.1f}) | x{c['ceiling_ratio']:.2f} | "
            f"x{row['ratio_host_over_ours_cache']:.0f} | {rss_cell} |"
        )
    return "\n".join(lines)


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{'video':30s} {'frames':>6s} {'host s':>8s} {'ours s':>8s} {'cache s':>8s} {'host/ours':>9s} "
        f"{'host/cache':>10s} {'ceiling':>7s} {'decoded':>8s}"
    )
    for label, row in results.items():
        s = row["sides"]
        c = row["ceiling"]
        print(
            f"{label:30s} {row['video']['frames']:6d} {s['host_qwen2vl']['seconds']['median']:8.3f} "
            f"{s['ours']['seconds']['median']:8.3f} {s['ours_cache']['seconds']['median']:8.3f} "
            f"{row['ratio_host_over_ours']:9.2f} {row['ratio_host_over_ours_cache']:10.1f} "
            f"{c['ceiling_ratio']:7.2f} {c['ours_stats']['frames_out']:8d}"
        )


if __name__ == "__main__":
    sys.exit(main())
