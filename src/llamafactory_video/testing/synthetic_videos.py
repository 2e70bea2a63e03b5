"""Synthetic action-recognition videos, encoded for real with PyAV.

Each class is a coloured shape moving in one direction over a noisy background: class ``c``
has its own colour, its own shape and its own motion direction, so any single cue is enough
to recognise it, while random start positions, object-size / colour jitter and per-frame
background noise make every clip (and the test split) different from the training clips.

The dataset is written in LlamaFactory's sharegpt layout (``<prefix>_train.json`` /
``<prefix>_test.json``, registered in ``dataset_info.json``) with video paths relative to the
output directory, so LlamaFactory's ``media_dir`` (which defaults to ``dataset_dir``)
resolves them.

The rendering (:func:`render_clip`) is independent of the dataset layout so that other
variants (e.g. captioning) can reuse :class:`ActionClass` / :func:`render_clip`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ACTION_PROMPT",
    "MAX_CLASSES",
    "ActionClass",
    "action_classes",
    "encoder_for",
    "make_action_dataset",
    "make_alignment_dataset",
    "render_clip",
    "write_video",
]

#: User prompt of the action-recognition samples (``<video>`` / ``<ACTION>`` placeholders).
ACTION_PROMPT: str = "<video>What action is being performed in this video?<ACTION>"

_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (230, 30, 30)),
    ("green", (30, 210, 40)),
    ("blue", (40, 70, 245)),
    ("yellow", (240, 230, 30)),
    ("purple", (160, 40, 220)),
    ("orange", (250, 140, 20)),
    ("cyan", (30, 225, 230)),
    ("white", (245, 245, 245)),
)
_SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "diamond", "cross", "ring", "ellipse", "bar")
# (name, (dx, dy)) with image coordinates: x grows to the right, y grows downwards.
_DIRECTIONS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("right", (1, 0)),
    ("left", (-1, 0)),
    ("up", (0, -1)),
    ("down", (0, 1)),
    ("up and right", (1, -1)),
    ("down and left", (-1, 1)),
    ("up and left", (-1, -1)),
    ("down and right", (1, 1)),
)

#: Maximum number of distinct classes.
MAX_CLASSES: int = len(_COLOURS)

# Container format -> (PyAV muxer name, encoder candidates as (codec, pixel format), best first).
_FORMATS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "mp4": ("mp4", (("libx264", "yuv420p"), ("libopenh264", "yuv420p"), ("mpeg4", "yuv420p"))),
    "mov": ("mov", (("libx264", "yuv420p"), ("mpeg4", "yuv420p"), ("mjpeg", "yuvj420p"))),
    "mkv": ("matroska", (("libx264", "yuv420p"), ("libvpx-vp9", "yuv420p"), ("mpeg4", "yuv420p"))),
    "avi": ("avi", (("mpeg4", "yuv420p"), ("mjpeg", "yuvj420p"))),
    "webm": ("webm", (("libvpx-vp9", "yuv420p"), ("libvpx", "yuv420p"))),
}
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "16", "preset": "veryfast"},
    "libvpx-vp9": {"crf": "20", "deadline": "realtime", "cpu-used": "8"},
    "libvpx": {"crf": "10", "deadline": "realtime", "cpu-used": "8"},
}
_encoder_cache: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class ActionClass:
    """One synthetic action class: a ``colour`` ``shape`` moving in ``direction``."""

    label: int
    colour: str
    rgb: tuple[int, int, int]
    shape: str
    direction: str
    velocity: tuple[int, int]

    @property
    def name(self) -> str:
        """Class name, e.g. ``"red_square_moves_right"``."""
        return f"{self.colour}_{self.shape}_moves_{self.direction.replace(' ', '_')}"

    @property
    def caption(self) -> str:
        """Answer sentence, e.g. ``"The red square moves right."``."""
        return f"The {self.colour} {self.shape} moves {self.direction}."


def action_classes(num_classes: int = 4) -> list[ActionClass]:
    """Return the first ``num_classes`` classes (class ``c`` = colour ``c``, shape ``c``, direction ``c``)."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    return [
        ActionClass(
            label=c,
            colour=_COLOURS[c][0],
            rgb=_COLOURS[c][1],
            shape=_SHAPES[c],
            direction=_DIRECTIONS[c][0],
            velocity=_DIRECTIONS[c][1],
        )
        for c in range(num_classes)
    ]


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` of radius ``r`` given pixel offsets from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "square":
        return (ax <= 0.85 * r) & (ay <= 0.85 * r)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "triangle":  # apex at the top
        return (dy >= -r) & (dy <= r) & (ax <= (dy + r) / 2.0)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        arm = r / 3.0
        return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "ellipse":  # wide, horizontal
        return (dx / r) ** 2 + (dy / (0.5 * r)) ** 2 <= 1.0
    if shape == "bar":  # tall, vertical
        return (ax <= 0.3 * r) & (ay <= r)
    raise ValueError(f"unknown shape {shape!r}")


def render_clip(
    action: ActionClass,
    rng: np.random.Generator,
    size: int = 64,
    num_frames: int = 8,
    radius: tuple[float, float] = (0.13, 0.18),
    travel: float = 0.4,
) -> np.ndarray:
    """Render one clip of ``action`` as a ``(num_frames, size, size, 3)`` uint8 RGB array.

    The object (radius ``radius`` of ``size``, colour jittered by up to +-20 per channel) starts
    at a random position from which its whole trajectory (``travel`` of ``size`` per moving axis)
    stays inside the frame; the background is a random dark grey level plus fresh Gaussian
    noise on every frame.

    Args:
        action: The class to render.
        rng: Source of randomness (one clip consumes a variable amount of it).
        size: Frame width and height in pixels.
        num_frames: Number of frames.
        radius: Range of the object's radius, as fractions of ``size`` (default 13-18 %).
        travel: Distance moved along each moving axis, as a fraction of ``size`` (default 40 %).
    """
    if not 0 < radius[0] <= radius[1] or 2 * radius[1] + travel >= 1:
        raise ValueError(f"radius {radius} and travel {travel} must satisfy 0 < r_min <= r_max, 2 r_max + travel < 1")
    radius = float(rng.uniform(*radius)) * size
    travel = travel * size
    colour = np.clip(np.asarray(action.rgb, dtype=np.float32) + rng.uniform(-20, 20, size=3), 0, 255)
    start = []
    for v in action.velocity:
        low, high = radius, size - 1 - radius
        if v > 0:
            high -= travel
        elif v < 0:
            low += travel
        start.append(float(rng.uniform(low, high)))
    background = float(rng.uniform(20, 60))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    steps = max(1, num_frames - 1)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        cx = start[0] + action.velocity[0] * travel * t / steps
        cy = start[1] + action.velocity[1] * travel * t / steps
        frame = background + rng.normal(0.0, 8.0, size=(size, size, 3))
        mask = _shape_mask(action.shape, xs - cx, ys - cy, radius)
        frame[mask] = colour
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def _encode(frames: np.ndarray, target: str | io.BytesIO, muxer: str, codec: str, pix_fmt: str, fps: Fraction) -> None:
    """Encode RGB ``frames`` into ``target`` with the given muxer / encoder."""
    import av

    height, width = frames.shape[1:3]
    with av.open(target, mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.bit_rate = 2_000_000
        stream.codec_context.thread_count = 1  # deterministic output
        if codec in _ENCODER_OPTIONS:
            stream.options = dict(_ENCODER_OPTIONS[codec])
        if codec in ("mpeg4", "mjpeg"):
            stream.codec_context.qscale = 2
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encoder_for(fmt: str) -> tuple[str, str]:
    """Return the ``(codec, pix_fmt)`` used for container ``fmt`` in this PyAV build.

    Candidates are tried best-first by encoding a tiny probe clip in memory; the result is
    cached. Supported formats: ``mp4``, ``mov``, ``mkv``, ``avi``, ``webm``.

    Raises:
        ValueError: If ``fmt`` is unknown or no candidate encoder works.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt in _encoder_cache:
        return _encoder_cache[fmt]
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported video format {fmt!r}; choose from {sorted(_FORMATS)}")
    muxer, candidates = _FORMATS[fmt]
    probe = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    errors = []
    for codec, pix_fmt in candidates:
        try:
            _encode(probe, io.BytesIO(), muxer, codec, pix_fmt, Fraction(4))
        except Exception as exc:  # noqa: BLE001 - any failure means "try the next encoder"
            errors.append(f"{codec}: {exc}")
            continue
        _encoder_cache[fmt] = (codec, pix_fmt)
        return codec, pix_fmt
    raise ValueError(f"no working encoder for {fmt!r}: {'; '.join(errors)}")


def write_video(frames: np.ndarray, path: str | os.PathLike[str], fps: float = 4) -> str:
    """Encode ``(T, H, W, 3)`` uint8 RGB ``frames`` to ``path`` (format from its extension).

    ``H`` and ``W`` must be even (4:2:0 chroma subsampling).

    Returns:
        The name of the encoder that was used.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frame height and width must be even, got {frames.shape[1:3]}")
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    codec, pix_fmt = encoder_for(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    _encode(frames, str(path), _FORMATS[fmt][0], codec, pix_fmt, Fraction(fps).limit_denominator(1001))
    return codec


def _dataset_entry(prefix: str, split: str) -> dict[str, Any]:
    return {
        "file_name": f"{prefix}_{split}.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos", "action_label": "action_label"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
        "label_names": f"{prefix}_labels.json",
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_action_dataset(
    output_dir: str | os.PathLike[str],
    num_classes: int = 4,
    train_per_class: int = 12,
    test_per_class: int = 4,
    formats: Sequence[str] = ("mp4", "avi", "webm"),
    size: int = 64,
    num_frames: int = 8,
    fps: float = 4,
    seed: int = 0,
    prefix: str = "synth_action",
) -> dict[str, Any]:
    """Write a synthetic video action-recognition dataset in LlamaFactory sharegpt format.

    Files written under ``output_dir``:

    * ``videos/<prefix>_<split>_<index>.<fmt>``: encoded clips; the container format cycles
      over ``formats`` sample by sample (samples are interleaved by class, so every class
      gets every format when ``len(formats)`` does not divide ``num_classes``);
    * ``<prefix>_train.json`` / ``<prefix>_test.json``: lists of
      ``{"messages": [user, assistant], "videos": ["videos/..."], "action_label": int}``;
    * ``<prefix>_labels.json``: list of class names, index = label;
    * ``dataset_info.json``: entries ``<prefix>_train`` / ``<prefix>_test`` (merged into an
      existing file).

    Args:
        output_dir: Dataset directory (use it as LlamaFactory's ``dataset_dir``).
        num_classes: Number of classes, 1..8.
        train_per_class: Training clips per class.
        test_per_class: Test clips per class.
        formats: Container formats to cycle through (``mp4``, ``avi``, ``webm``, ``mkv``, ``mov``).
        size: Frame width and height (even, >= 16).
        num_frames: Frames per clip.
        fps: Frame rate of the encoded clips.
        seed: Seed; train and test use independent random streams derived from it.
        prefix: Prefix of the dataset names and files.

    Returns:
        A dict with ``output_dir``, ``train_file``, ``test_file``, ``labels_file``,
        ``dataset_info_file`` (absolute paths), ``train_dataset`` / ``test_dataset`` (names in
        ``dataset_info.json``), ``num_train``, ``num_test``, ``num_classes``, ``class_names``,
        ``captions`` (answer sentence per class), ``encoders`` (format -> codec used),
        ``num_frames``, ``size`` and ``fps``.
    """
    if not formats:
        raise ValueError("formats must not be empty")
    if size < 16 or size % 2:
        raise ValueError(f"size must be even and >= 16, got {size}")
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"num_frames must be >= 1 and fps > 0, got {num_frames}, {fps}")
    if train_per_class < 0 or test_per_class < 0:
        raise ValueError("train_per_class and test_per_class must be >= 0")
    formats = [f.lower().lstrip(".") for f in formats]
    encoders = {fmt: encoder_for(fmt)[0] for fmt in formats}
    classes = action_classes(num_classes)
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)

    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for split_id, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        rng = np.random.default_rng([seed, split_id])
        records = []
        for j in range(per_class):
            for action in classes:
                index = j * num_classes + action.label
                fmt = formats[index % len(formats)]
                rel_path = f"videos/{prefix}_{split}_{index:04d}.{fmt}"
                write_video(render_clip(action, rng, size=size, num_frames=num_frames), out / rel_path, fps=fps)
                records.append(
                    {
                        "messages": [
                            {"role": "user", "content": ACTION_PROMPT},
                            {"role": "assistant", "content": action.caption},
                        ],
                        "videos": [rel_path],
                        "action_label": action.label,
                    }
                )
        files[split] = out / f"{prefix}_{split}.json"
        _write_json(files[split], records)
        counts[split] = len(records)

    labels_file = out / f"{prefix}_labels.json"
    _write_json(labels_file, [c.name for c in classes])

    info_file = out / "dataset_info.json"
    info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    for split in ("train", "test"):
        info[f"{prefix}_{split}"] = _dataset_entry(prefix, split)
    _write_json(info_file, info)

    return {
        "output_dir": str(out.resolve()),
        "train_file": str(files["train"].resolve()),
        "test_file": str(files["test"].resolve()),
        "labels_file": str(labels_file.resolve()),
        "dataset_info_file": str(info_file.resolve()),
        "train_dataset": f"{prefix}_train",
        "test_dataset": f"{prefix}_test",
        "num_train": counts["train"],
        "num_test": counts["test"],
        "num_classes": num_classes,
        "class_names": [c.name for c in classes],
        "captions": [c.caption for c in classes],
        "encoders": encoders,
        "num_frames": num_frames,
        "size": size,
        "fps": fps,
    }


CAPTION_PROMPT = "<video>Describe this video in one sentence."
_CAPTION_TEMPLATES = (
    "The {colour} {shape} moves {direction}.",
    "A {colour} {shape} is moving {direction}.",
    "A {colour} {shape} slides {direction}.",
    "The {colour} {shape} goes {direction}.",
    "A {colour} {shape} travels {direction} across the screen.",
)
_CAPTION_CATEGORIES = ("animation", "sports")


def caption_references(action: ActionClass) -> list[str]:
    """Paraphrased reference captions of one class (all of them are correct)."""
    return [t.format(colour=action.colour, shape=action.shape, direction=action.direction) for t in _CAPTION_TEMPLATES]


def make_caption_dataset(
    output_dir: str | os.PathLike[str],
    num_classes: int = 4,
    train_per_class: int = 8,
    test_per_class: int = 4,
    formats: Sequence[str] = ("mp4", "avi", "webm"),
    size: int = 64,
    num_frames: int = 8,
    fps: float = 4,
    seed: int = 1,
    prefix: str = "synth_caption",
) -> dict[str, Any]:
    """Write a synthetic video captioning dataset: each clip has ALL its class's paraphrases as references.

    Files under ``output_dir``: ``videos/...``; ``<prefix>_<split>.json`` (one row per video: messages with the
    first reference as the answer, ``references`` = every paraphrase, ``category``); ``<prefix>_<split>_sft.json``
    (one row per reference caption, for cross-entropy training with the stock ``sft`` stage); and
    ``dataset_info.json`` entries ``<prefix>_<split>`` (columns ``references`` and ``category`` declared) and
    ``<prefix>_<split>_sft``.

    Returns:
        A dict with ``output_dir``, dataset names (``train_dataset``, ``test_dataset``, ``train_sft_dataset``,
        ``test_sft_dataset``), ``num_train``, ``num_test``, ``references`` (per class) and ``categories``.
    """
    classes = action_classes(num_classes)
    formats = [f.lower().lstrip(".") for f in formats]
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    info_file = out / "dataset_info.json"
    info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    counts: dict[str, int] = {}
    for split_id, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        rng = np.random.default_rng([seed, 100 + split_id])
        rows, sft_rows = [], []
        for j in range(per_class):
            for action in classes:
                index = j * num_classes + action.label
                rel_path = f"videos/{prefix}_{split}_{index:04d}.{formats[index % len(formats)]}"
                write_video(render_clip(action, rng, size=size, num_frames=num_frames), out / rel_path, fps=fps)
                refs = caption_references(action)
                user = {"role": "user", "content": CAPTION_PROMPT}
                rows.append(
                    {
                        "messages": [user, {"role": "assistant", "content": refs[0]}],
                        "videos": [rel_path],
                        "references": refs,
                        "category": _CAPTION_CATEGORIES[action.label % 2],
                    }
                )
                sft_rows += [
                    {"messages": [user, {"role": "assistant", "content": ref}], "videos": [rel_path]} for ref in refs
                ]
        _write_json(out / f"{prefix}_{split}.json", rows)
        _write_json(out / f"{prefix}_{split}_sft.json", sft_rows)
        counts[split] = len(rows)
        info[f"{prefix}_{split}"] = {
            "file_name": f"{prefix}_{split}.json",
            "formatting": "sharegpt",
            "tags": tags,
            "columns": {
                "messages": "messages",
                "videos": "videos",
                "references": "references",
                "category": "category",
            },
        }
        info[f"{prefix}_{split}_sft"] = {
            "file_name": f"{prefix}_{split}_sft.json",
            "formatting": "sharegpt",
            "tags": tags,
            "columns": {"messages": "messages", "videos": "videos"},
        }
    _write_json(info_file, info)
    return {
        "output_dir": str(out.resolve()),
        "train_dataset": f"{prefix}_train",
        "test_dataset": f"{prefix}_test",
        "train_sft_dataset": f"{prefix}_train_sft",
        "test_sft_dataset": f"{prefix}_test_sft",
        "num_train": counts["train"],
        "num_test": counts["test"],
        "references": [caption_references(a) for a in classes],
        "categories": list(_CAPTION_CATEGORIES),
    }


# ----------------------------------------------------------------------------------------------------------------
# Video-text alignment (stage sparc_align): a coloured shape at a named position; captions name colour, shape and
# position, so a caption's content words each point at a part of the frame.
ALIGNMENT_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = _COLOURS[:4]
ALIGNMENT_SHAPES: tuple[str, ...] = ("square", "circle")
#: (phrase, (x, y) centre as a fraction of the frame size)
ALIGNMENT_POSITIONS: tuple[tuple[str, tuple[float, float]], ...] = (
    ("on the left", (0.25, 0.5)),
    ("on the right", (0.75, 0.5)),
    ("at the top", (0.5, 0.25)),
    ("at the bottom", (0.5, 0.75)),
)
_ALIGNMENT_TEMPLATES = ("a {colour} {shape} {position}", "the {shape} {position} is {colour}")


def alignment_captions(colour: str, shape: str, position: str) -> list[str]:
    """The captions of one alignment clip, e.g. ``["a red square on the left", "the square on the left is red"]``."""
    return [t.format(colour=colour, shape=shape, position=position) for t in _ALIGNMENT_TEMPLATES]


def render_alignment_clip(
    rgb: tuple[int, int, int],
    shape: str,
    centre: tuple[float, float],
    rng: np.random.Generator,
    size: int = 32,
    num_frames: int = 8,
) -> np.ndarray:
    """``(num_frames, size, size, 3)`` uint8: ``shape`` in colour ``rgb`` near ``centre`` (fractions of the frame),
    drifting by a few pixels, radius and colour jittered, over a noisy dark background."""
    radius = float(rng.uniform(0.14, 0.18)) * size
    colour = np.clip(np.asarray(rgb, dtype=np.float32) + rng.uniform(-20, 20, size=3), 0, 255)
    cx0 = centre[0] * size + rng.uniform(-0.04, 0.04) * size
    cy0 = centre[1] * size + rng.uniform(-0.04, 0.04) * size
    drift = rng.uniform(-0.05, 0.05, size=2) * size
    background = float(rng.uniform(20, 60))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    steps = max(1, num_frames - 1)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        cx, cy = cx0 + drift[0] * t / steps, cy0 + drift[1] * t / steps
        frame = background + rng.normal(0.0, 8.0, size=(size, size, 3))
        frame[_shape_mask(shape, xs - cx, ys - cy, radius)] = colour
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def make_alignment_dataset(
    output_dir: str | os.PathLike[str],
    train_per_combo: int = 3,
    num_test: int = 16,
    fmt: str = "mp4",
    size: int = 32,
    num_frames: int = 8,
    fps: float = 4,
    seed: int = 0,
    prefix: str = "synth_align",
) -> dict[str, Any]:
    """Write a synthetic video-text alignment dataset (stage ``sparc_align``) in both supported layouts.

    Every (colour, shape, position) combination (4 x 2 x 4 = 32) is rendered ``train_per_combo`` times for
    training; the test split renders ``num_test`` (<= 32) *distinct* combinations, so each test caption has exactly
    one right video (text-to-video chance R@1 = 1 / num_test). Files under ``output_dir``:

    * ``<prefix>_train.json``: one row per video with a list of captions (alpaca layout,
      ``{"instruction": "<video>", "videos": [...], "captions": [...]}``);
    * ``<prefix>_test.json``: one caption per row with a ``video_id`` (``{"instruction": "<video>", "output":
      caption, "videos": [...], "video_id": ...}``);
    * ``videos/``: the clips; ``dataset_info.json``: entries ``<prefix>_train`` / ``<prefix>_test`` (merged).

    Returns:
        a dict with ``output_dir``, ``train_dataset``, ``test_dataset``, ``num_train_videos``, ``num_train_captions``,
        ``num_test_videos``, ``num_test_captions`` and ``test_items`` (``[{"video": abs path, "captions": [...]}]``).
    """
    combos = [(c, s, p) for c in ALIGNMENT_COLOURS for s in ALIGNMENT_SHAPES for p in ALIGNMENT_POSITIONS]
    if not 1 <= num_test <= len(combos):
        raise ValueError(f"num_test must be in [1, {len(combos)}], got {num_test}")
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)

    def clip(split: str, index: int, combo, rng) -> tuple[str, list[str]]:
        (colour, rgb), shape, (position, centre) = combo
        rel = f"videos/{prefix}_{split}_{index:04d}.{fmt}"
        write_video(render_alignment_clip(rgb, shape, centre, rng, size=size, num_frames=num_frames), out / rel, fps)
        return rel, alignment_captions(colour, shape, position)

    rng = np.random.default_rng([seed, 0])
    train_rows = []
    for index, combo in enumerate(combos * train_per_combo):
        rel, captions = clip("train", index, combo, rng)
        train_rows.append({"instruction": "<video>", "videos": [rel], "captions": captions})
    rng = np.random.default_rng([seed, 1])
    test_rows, test_items = [], []
    for index, k in enumerate(rng.permutation(len(combos))[:num_test]):
        rel, captions = clip("test", index, combos[int(k)], rng)
        test_items.append({"video": str((out / rel).resolve()), "captions": captions})
        for caption in captions:
            test_rows.append(
                {"instruction": "<video>", "output": caption, "videos": [rel], "video_id": f"test{index}"}
            )
    _write_json(out / f"{prefix}_train.json", train_rows)
    _write_json(out / f"{prefix}_test.json", test_rows)

    info_file = out / "dataset_info.json"
    info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    info[f"{prefix}_train"] = {
        "file_name": f"{prefix}_train.json",
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "videos": "videos", "captions": "captions"},
    }
    info[f"{prefix}_test"] = {
        "file_name": f"{prefix}_test.json",
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "response": "output", "videos": "videos", "video_id": "video_id"},
    }
    _write_json(info_file, info)
    return {
        "output_dir": str(out.resolve()),
        "train_dataset": f"{prefix}_train",
        "test_dataset": f"{prefix}_test",
        "num_train_videos": len(train_rows),
        "num_train_captions": sum(len(r["captions"]) for r in train_rows),
        "num_test_videos": num_test,
        "num_test_captions": len(test_rows),
        "test_items": test_items,
    }


# ----------------------------------------------------------------------------------------------------------------
# A hidden preference for the scst stage's user rewards: +1 when a chosen word appears in the caption
# ----------------------------------------------------------------------------------------------------------------

PREFERENCE_REWARD = '''"""A user reward for the scst stage, given by import path: +1 when the word {word!r} appears."""

WORD = {word!r}


def likes_word(completions, references, **columns):
    return [1.0 if WORD in completion.lower().replace(".", " ").split() else 0.0 for completion in completions]
'''


def write_preference_reward(directory: str | os.PathLike[str], word: str, module: str = "hidden_preference") -> str:
    r"""Write ``<directory>/<module>.py`` with ``likes_word`` (+1 when ``word`` is a word of the completion) and
    return its import path ``<module>:likes_word``; put ``directory`` on ``PYTHONPATH`` to use it."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / f"{module}.py").write_text(PREFERENCE_REWARD.format(word=word), encoding="utf-8")
    return f"{module}:likes_word"


def word_frequency(captions: Sequence[str], word: str) -> float:
    r"""Share of ``captions`` in which ``word`` is a word (the preference reward's test)."""
    if not captions:
        return 0.0
    return sum(word in c.lower().replace(".", " ").split() for c in captions) / len(captions)
