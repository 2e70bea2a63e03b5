#!/usr/bin/env python
"""Video decoding: frames per second of the host's video path against plain PyAV (and decord when installed).

For every video, these sides run in one process, their order rotating from one repetition to the next, after one
warm-up pass of each:

* ``host_qwen2vl``: LlamaFactory's own path, ``get_mm_plugin("qwen2_vl", ...)._regularize_videos([path], ...)``
  with the host's defaults (``video_fps`` 2.0, ``video_maxlen`` 128, ``video_max_pixels`` 256*256,
  ``video_min_pixels`` 16*16): PyAV decodes EVERY frame, the sampled ones (``_get_video_sample_indices``) become
  PIL images, resized to the pixel limits;
* ``pyav_decode``: plain PyAV, every frame decoded, nothing converted (the codec's floor);
* ``pyav_rgb``: plain PyAV, every frame decoded and converted to an RGB ``ndarray`` (the baseline);
* ``decord``: ``decord.VideoReader(path).get_batch(<the host's sample indices>)`` when ``decord`` imports, else
  reported as unavailable;
* ``ours``: we have no frame sampler of our own yet: reported as "not built yet".

Videos: the real samples in ``--video-dir`` (``1.mp4`` h264 640x360 25 fps 9.7 s; ``4.mp4`` h264 224x224 30 fps
5 s) and long synthetic clips generated once into ``--workdir`` with
``llamafactory_video.testing.synthetic_videos.write_video`` (h264 mp4, 25 fps; moving shapes on a noisy
background). Reported per side: seconds per video (median and spread), source frames per second
(``frames in the file / seconds``), frames returned, and the ratio host / PyAV (higher = the host is slower).
No timing assertions anywhere.

    python bench/decode.py [--quick] [--reps 5] [--budget-s 60] [--video-dir DIR] [--workdir DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

from caption_reward import summarize  # bench/ is on sys.path (script directory)


HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VIDEO_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "videos")
HOST_KWARGS = {"image_max_pixels": 256 * 256, "image_min_pixels": 16 * 16, "video_fps": 2.0, "video_maxlen": 128}
REAL_VIDEOS = ("1.mp4", "4.mp4")
#: (seconds, side in pixels) of the generated clips
SYNTHETIC_FULL = ((60, 64), (60, 224), (300, 64), (300, 224))
SYNTHETIC_QUICK = ((10, 64),)
SYNTHETIC_FPS = 25
SIDES = ("host_qwen2vl", "pyav_decode", "pyav_rgb", "decord")


# ------------------------------------------------------------------------------------------------ videos
def synthetic_video(workdir: str, seconds: int, size: int, fps: int = SYNTHETIC_FPS) -> str:
    """Path of a ``seconds``-long ``size`` x ``size`` h264 clip, generated on first use (cached in ``workdir``)."""
    from llamafactory_video.testing.synthetic_videos import action_classes, render_clip, write_video

    path = os.path.join(workdir, "decode_videos", f"synth_{seconds}s_{size}px_{fps}fps.mp4")
    if os.path.isfile(path):
        return path
    total = seconds * fps
    frames = np.empty((total, size, size, 3), dtype=np.uint8)
    rng = np.random.default_rng(seconds * 1000 + size)
    classes = action_classes(8)
    chunk = 2 * fps  # a new moving shape every 2 s
    for index, start in enumerate(range(0, total, chunk)):
        count = min(chunk, total - start)
        frames[start : start + count] = render_clip(classes[index % 8], rng, size=size, num_frames=count)
    tmp = path[:-4] + ".partial.mp4"
    write_video(frames, tmp, fps=fps)
    os.replace(tmp, path)
    return path


def probe(path: str) -> dict[str, Any]:
    """Codec, size, frame rate, duration and frame count of the first video stream."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration is not None else None
        return {
            "codec": stream.codec_context.name,
            "width": stream.width,
            "height": stream.height,
            "fps": float(stream.average_rate),
            "duration_s": duration,
            "frames": int(stream.frames),
        }


# ------------------------------------------------------------------------------------------------ sides
def make_sides(plugin: Any) -> dict[str, Callable[[str], int] | None]:
    """``{side: fn(path) -> frames returned}``; ``None`` for a side whose library is not importable."""
    import av

    def host(path: str) -> int:
        return len(plugin._regularize_videos([path], **HOST_KWARGS)["videos"][0])

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
        "host_qwen2vl": host,
        "pyav_decode": pyav_decode,
        "pyav_rgb": pyav_rgb,
        "decord": None,
    }
    try:
        import decord  # noqa: F401  (optional: pip install ".[decord]")
    except ImportError:
        return sides

    def decord_sampled(path: str) -> int:
        import decord

        with av.open(path) as container:
            indices = plugin._get_video_sample_indices(container.streams.video[0], **HOST_KWARGS)
        reader = decord.VideoReader(path)
        return int(reader.get_batch(list(map(int, indices))).shape[0])

    sides["decord"] = decord_sampled
    return sides


def measure_video(path: str, sides: dict[str, Callable[[str], int] | None], reps: int, budget_s: float) -> dict:
    """Warm-up, then up to ``reps`` rotating rounds (at least 3 unless ``reps`` < 3) within ``budget_s``."""
    info = probe(path)
    available = [name for name, fn in sides.items() if fn is not None]
    returned: dict[str, int] = {}
    for name in available:  # warm-up (file cache, codec init, imports)
        returned[name] = sides[name](path)
    times: dict[str, list[float]] = {name: [] for name in available}
    started = time.perf_counter()
    for rep in range(reps):
        elapsed = time.perf_counter() - started
        if rep >= min(3, reps) and elapsed + elapsed / rep > budget_s:
            break
        order = available[rep % len(available) :] + available[: rep % len(available)]
        for name in order:
            start = time.perf_counter()
            sides[name](path)
            times[name].append(time.perf_counter() - start)

    result: dict[str, Any] = {"video": info, "sides": {}}
    for name in SIDES:
        if sides.get(name) is None:
            result["sides"][name] = {"status": "unavailable", "reason": f"{name} is not importable here"}
            continue
        summary = summarize(times[name])
        result["sides"][name] = {
            "status": "ok",
            "seconds": summary,
            "frames_returned": returned[name],
            "source_fps": info["frames"] / summary["median"] if summary["median"] else None,
            "returned_fps": returned[name] / summary["median"] if summary["median"] else None,
        }
    result["sides"]["ours"] = {
        "status": "not built yet",
        "reason": "llamafactory-video has no frame sampler of its own yet; the host's is used",
    }
    host = result["sides"]["host_qwen2vl"]["seconds"]["median"]
    result["ratio_host_over_pyav_rgb"] = host / result["sides"]["pyav_rgb"]["seconds"]["median"]
    result["ratio_host_over_pyav_decode"] = host / result["sides"]["pyav_decode"]["seconds"]["median"]
    return result


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` = the real videos and one short synthetic clip, one repetition."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 10 s synthetic clip + the real videos, 1 rep")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per video (default 5; quick 1)")
    parser.add_argument("--budget-s", type=float, default=60.0, help="soft time budget per video after 3 reps")
    parser.add_argument("--video-dir", default=DEFAULT_VIDEO_DIR, help="directory of the real sample videos")
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"), help="where synthetic clips are cached")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/decode_cpu.json)")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import av

    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    sides = make_sides(plugin)
    videos: list[tuple[str, str]] = []
    missing = []
    for name in REAL_VIDEOS:
        path = os.path.join(args.video_dir, name)
        if os.path.isfile(path):
            videos.append((f"real:{name}", path))
        else:
            missing.append(path)
    for seconds, size in SYNTHETIC_QUICK if args.quick else SYNTHETIC_FULL:
        print(
            f"synthetic clip {seconds} s at {size}x{size} (generated once, cached in {args.workdir}) ...", flush=True
        )
        videos.append((f"synthetic:{seconds}s_{size}px", synthetic_video(args.workdir, seconds, size)))

    started = time.time()
    results: dict[str, Any] = {}
    for label, path in videos:
        print(f"decoding {label} ...", flush=True)
        results[label] = measure_video(path, sides, args.reps, args.budget_s)

    output = {
        "benchmark": "decode",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python_version": platform.python_version(),
            "device": "cpu",
            "av_version": av.__version__,
            "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": {
            "quick": args.quick,
            "reps": args.reps,
            "budget_s": args.budget_s,
            "host_kwargs": HOST_KWARGS,
            "missing_real_videos": missing,
        },
        "frame_sampler_ours": "not built yet",
        "videos": results,
        "wall_s": time.time() - started,
    }
    path = args.output or os.path.join(HERE, "results", "decode_cpu.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=2)
        f.write("\n")

    print(
        f"{'video':26s} {'frames':>6s} {'side':13s} {'s/video':>9s} {'(p10-p90)':>17s} {'src fps':>9s} "
        f"{'returned':>8s}"
    )
    for label, row in results.items():
        for side, block in row["sides"].items():
            if block["status"] != "ok":
                print(f"{label:26s} {row['video']['frames']:6d} {side:13s} {block['status']}")
                continue
            s = block["seconds"]
            print(
                f"{label:26s} {row['video']['frames']:6d} {side:13s} {s['median']:9.3f} "
                f"{s['p10']:8.3f}-{s['p90']:<8.3f} {block['source_fps']:9.0f} {block['frames_returned']:8d}"
            )
        print(
            f"{'':26s} host / pyav_rgb x{row['ratio_host_over_pyav_rgb']:.2f}, "
            f"host / pyav_decode x{row['ratio_host_over_pyav_decode']:.2f}"
        )
    if missing:
        print(f"real videos not found (skipped): {missing}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
