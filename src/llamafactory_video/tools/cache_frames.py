"""fill the frame cache (video_frame_cache) for a dataset's videos ahead of training

``llamafactory-video cache-frames --dataset NAME --dataset-dir data --template qwen2_vl --cache-dir DIR
--workers N``: every unique video of the dataset goes through the template's own mm_plugin
``_regularize_videos`` (our frame sampler, the host's resize) with the run's ``video_fps`` / ``video_maxlen`` /
``video_max_pixels`` / ``video_min_pixels``, and its frames land in the cache training reads (same key: file, size,
mtime, those four values, the plugin class). Give training the same values and ``video_frame_cache: DIR``.
Videos that fail to decode are listed (exit status 1); the others are cached.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Optional


def _host_defaults() -> dict[str, Any]:
    from llamafactory.hparams import ModelArguments

    defaults = {f: ModelArguments.__dataclass_fields__[f].default for f in (
        "video_fps", "video_maxlen", "video_max_pixels", "video_min_pixels")}
    return defaults


def dataset_videos(dataset: str, dataset_dir: str, media_dir: Optional[str] = None) -> list[str]:
    r"""Unique video paths of a registered dataset, resolved the way the host's converter resolves them."""
    from .check_data import CheckOptions, _convert, _dataset_files, _load_registration, _Sample, read_records

    options = CheckOptions(dataset=dataset, dataset_dir=os.path.abspath(dataset_dir))
    options.media_dir = os.path.abspath(media_dir or options.dataset_dir)
    attr, raw = _load_registration(options)
    samples = []
    for file in _dataset_files(options.dataset_dir, attr.dataset_name):
        for j, record in enumerate(read_records(file)):
            samples.append(_Sample(len(samples), file, j, record))
    _convert(samples, attr, dict(raw.get("columns") or {}), options)
    return sorted({v for s in samples for v in s.videos})


def _cache_one(template: str, path: str, kwargs: dict[str, Any], cache_dir: str, backend: str) -> tuple[str, str]:
    os.environ["LLAMAFACTORY_VIDEO_FRAME_CACHE"] = cache_dir
    os.environ["LLAMAFACTORY_VIDEO_BACKEND"] = backend
    from llamafactory.data.template import TEMPLATES

    plugin = TEMPLATES[template].mm_plugin
    try:
        out = plugin._regularize_videos([path], **kwargs)
    except Exception as err:  # noqa: BLE001 - reported per video
        return path, f"{type(err).__name__}: {err}"
    from ..data import frame_cache

    key = frame_cache.entry_key(type(plugin).__qualname__, path, kwargs)
    if not out["videos"][0] or key is None or not os.path.isfile(frame_cache.entry_path(cache_dir, key)):
        return path, "decoded, but no cache entry was written (see the warning above)"
    return path, ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    r"""The flags of ``llamafactory-video cache-frames``."""
    parser.add_argument("--dataset", required=True, help="dataset name(s) in dataset_info.json, comma-separated")
    parser.add_argument("--dataset-dir", required=True, help="folder of dataset_info.json (LlamaFactory dataset_dir)")
    parser.add_argument("--media-dir", default=None, help="base of relative media paths (default: --dataset-dir)")
    parser.add_argument("--template", required=True, help="LlamaFactory template of the run, e.g. qwen2_vl")
    parser.add_argument("--cache-dir", required=True, help="the run's video_frame_cache directory")
    parser.add_argument("--video-fps", type=float, default=None, help="video_fps of the run (default: the host's)")
    parser.add_argument("--video-maxlen", type=int, default=None, help="video_maxlen (default: the host's)")
    parser.add_argument("--video-max-pixels", type=int, default=None, help="video_max_pixels (default: the host's)")
    parser.add_argument("--video-min-pixels", type=int, default=None, help="video_min_pixels (default: the host's)")
    parser.add_argument(
        "--video-backend", default="pyav", choices=("pyav", "host", "decord"), help="video_backend of the run"
    )
    parser.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    r"""Cache every video; 0 when all were cached, 1 when some failed, 2 on a usage error."""
    from llamafactory.data.template import TEMPLATES
    from tqdm import tqdm

    from .check_data import UsageError

    if args.template not in TEMPLATES:
        print(f"error: unknown template {args.template!r}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    defaults = _host_defaults()
    kwargs = {
        "image_max_pixels": args.video_max_pixels or defaults["video_max_pixels"],
        "image_min_pixels": args.video_min_pixels or defaults["video_min_pixels"],
        "video_fps": args.video_fps or defaults["video_fps"],
        "video_maxlen": args.video_maxlen or defaults["video_maxlen"],
    }
    try:
        videos = sorted({v for name in args.dataset.split(",") for v in
                         dataset_videos(name.strip(), args.dataset_dir, args.media_dir)})
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir))
    missing = [v for v in videos if not os.path.isfile(v)]
    todo = [v for v in videos if os.path.isfile(v)]
    failed: dict[str, str] = {v: "file not found" for v in missing}
    started = time.time()
    bar = tqdm(total=len(todo), desc="cache-frames", unit="video", disable=args.no_progress)
    if args.workers == 1:
        for path in todo:
            _, error = _cache_one(args.template, path, kwargs, cache_dir, args.video_backend)
            if error:
                failed[path] = error
            bar.update(1)
    else:
        # spawned, not forked: the parent may hold threads (tqdm, PyAV decoders, OpenMP, a test runner's I/O) whose
        # locks a forked child would inherit held
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(_cache_one, args.template, path, kwargs, cache_dir, args.video_backend) for path in todo
            ]
            for future in as_completed(futures):
                path, error = future.result()
                if error:
                    failed[path] = error
                bar.update(1)
    bar.close()
    print(
        f"cache-frames: {len(videos) - len(failed)} of {len(videos)} videos cached in {cache_dir} "
        f"({time.time() - started:.1f} s; video_fps {kwargs['video_fps']}, video_maxlen {kwargs['video_maxlen']}, "
        f"video_max_pixels {kwargs['image_max_pixels']}, video_min_pixels {kwargs['image_min_pixels']})"
    )
    for path, error in sorted(failed.items()):
        print(f"  failed: {path}: {error}")
    return 1 if failed else 0


COMMAND = (__doc__.splitlines()[0], add_arguments, run)
