"""Synthetic billiards videos with question answering (seed 002, the HiLight billiards QA), encoded with PyAV.

Each clip shows a green table with a brown rail and six pockets, a white cue ball and 3-5 coloured balls (distinct
colours). The cue ball rolls into one coloured ball, which then rolls, slowing down, into one pocket and disappears;
the other balls stay where they are. Colours, positions, the pocket, the speeds, the clip length, the ball size, the
felt shade and the lighting vary from clip to clip; every frame gets fresh sensor noise.

Questions (one sharegpt sample per video and question, short answers so that accuracy is exact match):

* ``ball``: ``"<video>Which ball was pocketed?"`` -> a colour, e.g. ``"red"``;
* ``pocket``: ``"<video>Which pocket did it go into?"`` -> e.g. ``"top left"``;
* ``count``: ``"<video>How many coloured balls were on the table before the shot?"`` -> e.g. ``"four"``.

Everything is a function of ``seed`` (each clip has its own random stream ``[seed, split, index]``), so datasets are
reproducible and the train / held-out splits never share a stream. The layout is LlamaFactory's sharegpt video
format with paths relative to the output directory (LlamaFactory's ``media_dir`` defaults to ``dataset_dir``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .synthetic_videos import write_video

__all__ = [
    "BALL_COLOURS",
    "POCKETS",
    "QUESTIONS",
    "BilliardsClip",
    "colour_histogram_change",
    "make_billiards_dataset",
    "nearest_centroid_fit",
    "nearest_centroid_predict",
    "normalize_answer",
    "question_type",
    "render_billiards_clip",
    "sample_billiards_clip",
    "score_answers",
]

#: Object-ball colours (name, RGB). No green (the felt), black (the pockets) or white (the cue ball).
BALL_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (215, 25, 30)),
    ("yellow", (240, 215, 30)),
    ("blue", (35, 70, 225)),
    ("orange", (250, 135, 20)),
    ("purple", (140, 45, 190)),
    ("pink", (250, 140, 190)),
    ("brown", (125, 70, 30)),
)
#: Pocket names and centres as fractions of the felt's (width, height), image coordinates (y grows downwards).
POCKETS: tuple[tuple[str, tuple[float, float]], ...] = (
    ("top left", (0.0, 0.0)),
    ("top middle", (0.5, 0.0)),
    ("top right", (1.0, 0.0)),
    ("bottom left", (0.0, 1.0)),
    ("bottom middle", (0.5, 1.0)),
    ("bottom right", (1.0, 1.0)),
)
#: Question type -> user prompt.
QUESTIONS: dict[str, str] = {
    "ball": "<video>Which ball was pocketed?",
    "pocket": "<video>Which pocket did it go into?",
    "count": "<video>How many coloured balls were on the table before the shot?",
}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven")
CUE_RGB = (240, 240, 232)
POCKET_RGB = (12, 12, 12)
RAIL_RGB = (95, 55, 25)
FELT_RGB = (30, 120, 55)
_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


@dataclass(frozen=True)
class BilliardsClip:
    """Everything that decides one clip; positions are pixel centres ``(x, y)`` in a ``size`` x ``size`` frame."""

    size: int
    num_frames: int
    ball_radius: float
    colours: tuple[str, ...]
    """Coloured balls on the table at the start (distinct)."""
    positions: tuple[tuple[float, float], ...]
    """Start centre of each coloured ball, same order as ``colours``."""
    pocketed: int
    """Index into ``colours`` of the ball that goes down."""
    pocket: str
    cue_start: tuple[float, float]
    contact: tuple[float, float]
    """Where the cue ball stops (touching the pocketed ball)."""
    pocket_centre: tuple[float, float]
    frames_before: int
    """Still frames before the cue ball moves."""
    cue_frames: int
    roll_frames: int
    """Frames during which the pocketed ball rolls (it is gone from the next frame on)."""
    felt_rgb: tuple[int, int, int]
    brightness: float

    @property
    def pocketed_colour(self) -> str:
        return self.colours[self.pocketed]

    def answers(self) -> dict[str, str]:
        """Question type -> answer."""
        return {"ball": self.pocketed_colour, "pocket": self.pocket, "count": NUMBER_WORDS[len(self.colours)]}

    def caption(self) -> str:
        return f"The white cue ball hits the {self.pocketed_colour} ball into the {self.pocket} pocket."


def _geometry(size: int) -> tuple[float, float, float, float, float]:
    """``(rail, felt_x0, felt_y0, felt_x1, felt_y1)``: the rail width and the felt's box in pixels."""
    rail = max(2.0, round(0.07 * size))
    return rail, rail, rail, size - 1 - rail, size - 1 - rail


def _pocket_radius(size: int) -> float:
    return max(2.5, 0.075 * size)


def _pocket_centre(size: int, name: str) -> tuple[float, float]:
    _, x0, y0, x1, y1 = _geometry(size)
    fx, fy = dict(POCKETS)[name]
    return x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)


def _check_layout(size: int, min_balls: int, max_balls: int) -> None:
    if size % 2 or size < 32:
        raise ValueError(f"size must be even and >= 32, got {size}")
    if not 1 <= min_balls <= max_balls <= len(BALL_COLOURS):
        raise ValueError(f"need 1 <= min_balls <= max_balls <= {len(BALL_COLOURS)}, got {min_balls}, {max_balls}")


def sample_billiards_clip(
    rng: np.random.Generator,
    size: int = 64,
    min_balls: int = 3,
    max_balls: int = 5,
    max_tries: int = 200,
) -> BilliardsClip:
    """Draw one clip's layout: colours, start positions, the pocketed ball and pocket, speeds and length.

    The pocketed ball starts 30-70 % of the felt's width from its pocket; the cue ball starts 12-25 % behind it on
    the same line; no other ball lies near that line or near a pocket, and no two balls overlap.
    """
    _check_layout(size, min_balls, max_balls)
    _, x0, y0, x1, y1 = _geometry(size)
    radius = float(rng.uniform(0.042, 0.06)) * size
    pocket_r = _pocket_radius(size)
    n = int(rng.integers(min_balls, max_balls + 1))
    order = rng.permutation(len(BALL_COLOURS))[:n]
    colours = tuple(BALL_COLOURS[int(k)][0] for k in order)
    pocketed = int(rng.integers(n))
    pocket = POCKETS[int(rng.integers(len(POCKETS)))][0]
    centre = _pocket_centre(size, pocket)
    margin = radius + 1.0

    def inside(p: np.ndarray) -> bool:
        return x0 + margin <= p[0] <= x1 - margin and y0 + margin <= p[1] <= y1 - margin

    def far_from_pockets(p: np.ndarray) -> bool:
        return all(
            np.hypot(*(p - np.asarray(_pocket_centre(size, name)))) > pocket_r + 2.5 * radius for name, _ in POCKETS
        )

    for _ in range(max_tries):
        angle = float(rng.uniform(0, 2 * np.pi))
        direction = np.array([np.cos(angle), np.sin(angle)])
        distance = float(rng.uniform(0.3, 0.7)) * (x1 - x0)
        start = np.asarray(centre) - direction * distance
        cue_start = start - direction * float(rng.uniform(0.12, 0.25)) * (x1 - x0)
        if not (inside(start) and inside(cue_start) and far_from_pockets(start) and far_from_pockets(cue_start)):
            continue
        contact = start - direction * 2.0 * radius
        path = (cue_start, np.asarray(centre))
        positions: list[Optional[np.ndarray]] = [None] * n
        positions[pocketed] = start
        ok = True
        for i in range(n):
            if i == pocketed:
                continue
            for _ in range(max_tries):
                p = np.array([rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin)])
                if not far_from_pockets(p) or _segment_distance(p, *path) < 3.0 * radius:
                    continue
                others = [q for q in positions if q is not None] + [cue_start]
                if all(np.hypot(*(p - q)) > 2.6 * radius for q in others):
                    positions[i] = p
                    break
            else:
                ok = False
                break
        if not ok:
            continue
        speed = float(rng.uniform(0.06, 0.14)) * size  # pixels per frame, on average
        roll_frames = int(np.clip(np.ceil(distance / speed), 3, 8))
        cue_frames = int(rng.integers(2, 5))
        frames_before = int(rng.integers(1, 3))
        frames_after = int(rng.integers(2, 5))
        felt = np.clip(np.asarray(FELT_RGB) + rng.integers(-12, 13, size=3), 0, 255)
        return BilliardsClip(
            size=size,
            num_frames=frames_before + cue_frames + roll_frames + frames_after,
            ball_radius=radius,
            colours=colours,
            positions=tuple((float(p[0]), float(p[1])) for p in positions),  # type: ignore[index]
            pocketed=pocketed,
            pocket=pocket,
            cue_start=(float(cue_start[0]), float(cue_start[1])),
            contact=(float(contact[0]), float(contact[1])),
            pocket_centre=(float(centre[0]), float(centre[1])),
            frames_before=frames_before,
            cue_frames=cue_frames,
            roll_frames=roll_frames,
            felt_rgb=(int(felt[0]), int(felt[1]), int(felt[2])),
            brightness=float(rng.uniform(0.88, 1.1)),
        )
    raise RuntimeError(f"could not place {n} balls on a {size}px table in {max_tries} tries")


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-9), 0.0, 1.0))
    return float(np.hypot(*(p - (a + t * ab))))


def _ease_out(t: float) -> float:
    """Rolling with friction: distance covered after fraction ``t`` of the time (speed falls linearly to 0)."""
    return 1.0 - (1.0 - t) ** 2


def render_billiards_clip(clip: BilliardsClip, rng: np.random.Generator) -> np.ndarray:
    """``(num_frames, size, size, 3)`` uint8 RGB frames of ``clip``; ``rng`` supplies colour jitter and noise."""
    size = clip.size
    rail, x0, y0, x1, y1 = _geometry(size)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    table = np.empty((size, size, 3), dtype=np.float32)
    table[:] = RAIL_RGB
    felt = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    table[felt] = clip.felt_rgb
    pocket_r = _pocket_radius(size)
    for name, _ in POCKETS:
        cx, cy = _pocket_centre(size, name)
        table[(xs - cx) ** 2 + (ys - cy) ** 2 <= pocket_r**2] = POCKET_RGB
    jitter = {c: np.clip(np.asarray(rgb, np.float32) + rng.uniform(-15, 15, 3), 0, 255) for c, rgb in BALL_COLOURS}
    cue_rgb = np.clip(np.asarray(CUE_RGB, np.float32) + rng.uniform(-10, 10, 3), 0, 255)

    def disc(frame: np.ndarray, centre: Sequence[float], rgb: np.ndarray) -> None:
        d2 = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2
        frame[d2 <= clip.ball_radius**2] = rgb
        highlight = (xs - centre[0] + 0.35 * clip.ball_radius) ** 2 + (ys - centre[1] + 0.35 * clip.ball_radius) ** 2
        frame[highlight <= (0.3 * clip.ball_radius) ** 2] = np.minimum(rgb + 60, 255)

    start = np.asarray(clip.positions[clip.pocketed])
    cue_start, contact, pocket = np.asarray(clip.cue_start), np.asarray(clip.contact), np.asarray(clip.pocket_centre)
    roll_start = clip.frames_before + clip.cue_frames
    frames = np.empty((clip.num_frames, size, size, 3), dtype=np.uint8)
    for t in range(clip.num_frames):
        frame = table.copy()
        for i, (colour, position) in enumerate(zip(clip.colours, clip.positions)):
            if i != clip.pocketed:
                disc(frame, position, jitter[colour])
        # the cue ball rolls to the contact point, then stops
        u = np.clip((t - clip.frames_before) / clip.cue_frames, 0.0, 1.0)
        disc(frame, cue_start + (contact - cue_start) * u, cue_rgb)
        # the struck ball rolls into the pocket, slowing down, and is gone once it reaches it
        if t < roll_start + clip.roll_frames:
            u = _ease_out(float(np.clip((t - roll_start) / clip.roll_frames, 0.0, 1.0)))
            disc(frame, start + (pocket - start) * u, jitter[clip.pocketed_colour])
        frame = frame * clip.brightness + rng.normal(0.0, 4.0, size=frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


# ----------------------------------------------------------------------------------------------------------------
# Dataset files
# ----------------------------------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_billiards_dataset(
    output_dir: str | os.PathLike[str],
    num_train: int = 64,
    num_test: int = 16,
    seed: int = 0,
    size: int = 64,
    fps: float = 4,
    questions: Sequence[str] = ("ball", "pocket", "count"),
    min_balls: int = 3,
    max_balls: int = 5,
    prefix: str = "billiards_qa",
    system: Optional[str] = None,
    progress: Optional[Callable[[Iterable[Any], int, str], Iterable[Any]]] = None,
) -> dict[str, Any]:
    r"""Write a billiards QA dataset in LlamaFactory sharegpt video format and register it.

    Files under ``output_dir``:

    * ``videos/<prefix>_<split>_<index>.mp4``;
    * ``<prefix>_<split>.json``: one row per (video, question): ``{"messages": [user, assistant], "videos": [...]}``
      (plus ``"system"`` when ``system`` is given);
    * ``<prefix>_<split>_clips.json``: the ground truth of each video (:class:`BilliardsClip` fields, the answers
      and a caption), same order as the videos;
    * ``dataset_info.json``: entries ``<prefix>_train`` / ``<prefix>_test`` (merged into an existing file).

    Args:
        output_dir: Dataset directory (LlamaFactory's ``dataset_dir``).
        num_train / num_test: Videos per split (each gives ``len(questions)`` samples).
        seed: Clip ``i`` of split ``s`` (0 train, 1 test) is drawn from ``np.random.default_rng([seed, s, i])``.
        size: Frame width and height in pixels (even, >= 32).
        fps: Frame rate of the encoded clips (a clip has 8-18 frames).
        questions: Question types, keys of :data:`QUESTIONS`.
        min_balls / max_balls: Coloured balls per table.
        prefix: Prefix of dataset names and files.
        system: Optional system prompt stored in each row (column ``system``).
        progress: ``progress(iterable, total, description)`` wrapper, e.g. a tqdm bar.

    Returns:
        A dict with ``output_dir``, ``train_dataset``, ``test_dataset``, ``num_train`` / ``num_test`` (videos),
        ``num_train_samples`` / ``num_test_samples``, ``questions`` and ``chance`` (accuracy of uniform guessing per
        question type).
    """
    unknown = [q for q in questions if q not in QUESTIONS]
    if unknown or not questions:
        raise ValueError(f"questions must be a non-empty subset of {sorted(QUESTIONS)}, got {list(questions)}")
    if num_train < 0 or num_test < 0:
        raise ValueError("num_train and num_test must be >= 0")
    _check_layout(size, min_balls, max_balls)
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split_id, (split, count) in enumerate((("train", num_train), ("test", num_test))):
        rows, clips = [], []
        indices: Iterable[int] = range(count)
        if progress is not None:
            indices = progress(indices, count, f"{prefix}_{split}")
        for index in indices:
            rng = np.random.default_rng([seed, split_id, index])
            clip = sample_billiards_clip(rng, size=size, min_balls=min_balls, max_balls=max_balls)
            rel = f"videos/{prefix}_{split}_{index:05d}.mp4"
            write_video(render_billiards_clip(clip, rng), out / rel, fps=fps)
            answers = clip.answers()
            for q in questions:
                row: dict[str, Any] = {
                    "messages": [
                        {"role": "user", "content": QUESTIONS[q]},
                        {"role": "assistant", "content": answers[q]},
                    ],
                    "videos": [rel],
                }
                if system is not None:
                    row["system"] = system
                rows.append(row)
            clips.append({"video": rel, **asdict(clip), "answers": answers, "caption": clip.caption()})
        _write_json(out / f"{prefix}_{split}.json", rows)
        _write_json(out / f"{prefix}_{split}_clips.json", clips)
        counts[split] = len(rows)

    info_file = out / "dataset_info.json"
    info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    columns = {"messages": "messages", "videos": "videos", **({"system": "system"} if system is not None else {})}
    for split in ("train", "test"):
        info[f"{prefix}_{split}"] = {
            "file_name": f"{prefix}_{split}.json",
            "formatting": "sharegpt",
            "columns": dict(columns),
            "tags": dict(_TAGS),
        }
    _write_json(info_file, info)
    chance = {
        "ball": float(np.mean([1.0 / n for n in range(min_balls, max_balls + 1)])),
        "pocket": 1.0 / len(POCKETS),
        "count": 1.0 / (max_balls - min_balls + 1),
    }
    return {
        "output_dir": str(out.resolve()),
        "train_dataset": f"{prefix}_train",
        "test_dataset": f"{prefix}_test",
        "num_train": num_train,
        "num_test": num_test,
        "num_train_samples": counts["train"],
        "num_test_samples": counts["test"],
        "questions": list(questions),
        "chance": {q: chance[q] for q in questions},
    }


# ----------------------------------------------------------------------------------------------------------------
# Scoring answers, and a trivial pixel classifier (the task is solvable from the frames alone)
# ----------------------------------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """Lower case, words only: ``"The Red ball."`` -> ``"the red ball"``."""
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def _candidates(question: str) -> tuple[str, ...]:
    if question == "ball":
        return tuple(name for name, _ in BALL_COLOURS)
    if question == "pocket":
        return tuple(name for name, _ in POCKETS)
    return NUMBER_WORDS


def question_type(prompt: str) -> Optional[str]:
    """The question type whose prompt text (without ``<video>``) occurs in ``prompt``, else ``None``."""
    for q, text in QUESTIONS.items():
        if text.replace("<video>", "") in prompt:
            return q
    return None


def score_answers(predictions: Sequence[str], labels: Sequence[str], questions: Sequence[str]) -> dict[str, float]:
    r"""Accuracy overall and per question type.

    A prediction is right when, after :func:`normalize_answer`, the label phrase occurs in it as whole words and no
    other answer of the same type does (``"the red ball"`` is right for ``red``; ``"red or blue"`` is not).

    Args:
        predictions, labels, questions: Aligned sequences of length N (question types from :data:`QUESTIONS`).

    Returns:
        ``{"accuracy": float, "accuracy/<type>": float, ...}`` (types that occur only).
    """
    if not len(predictions) == len(labels) == len(questions):
        raise ValueError(f"lengths differ: {len(predictions)}, {len(labels)}, {len(questions)}")
    right: dict[str, list[bool]] = {}
    for pred, label, q in zip(predictions, labels, questions):
        words = f" {normalize_answer(pred)} "
        label_n = normalize_answer(label)
        hits = {c for c in _candidates(q) if f" {c} " in words}
        # "top left" contains no other pocket name; but "left" alone must not match "top left"
        ok = f" {label_n} " in words and hits <= {label_n}
        right.setdefault(q, []).append(ok)
    result = {"accuracy": float(np.mean([v for vs in right.values() for v in vs])) if right else 0.0}
    result.update({f"accuracy/{q}": float(np.mean(vs)) for q, vs in right.items()})
    return result


def colour_histogram_change(frames: np.ndarray, bins: int = 4, threshold: int = 48) -> np.ndarray:
    r"""Frame-difference feature: ``(T, H, W, 3)`` uint8 -> ``(bins**3,)`` float.

    Over the pixels whose colour changed between the first and the last frame (max channel difference above
    ``threshold``), the first frame's RGB histogram minus the last frame's, divided by the number of changed
    pixels. The pocketed ball leaves the table, so its colour's bin is positive; the cue ball only moves, so white
    cancels; the felt uncovered where balls were is a common negative part.
    """
    frames = np.asarray(frames)
    first, last = frames[0].astype(np.int64), frames[-1].astype(np.int64)
    changed = np.abs(first - last).max(axis=-1) > threshold

    def hist(frame: np.ndarray) -> np.ndarray:
        q = (frame[changed] * bins // 256).reshape(-1, 3)
        codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
        return np.bincount(codes, minlength=bins**3).astype(np.float64)

    return (hist(first) - hist(last)) / max(int(changed.sum()), 1)


def nearest_centroid_fit(features: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Class -> mean feature vector. ``features``: ``(N, D)``."""
    features = np.asarray(features, dtype=np.float64)
    return {c: features[[lab == c for lab in labels]].mean(axis=0) for c in sorted(set(labels))}


def nearest_centroid_predict(centroids: dict[str, np.ndarray], features: np.ndarray) -> list[str]:
    """Nearest class by cosine similarity for each row of ``features`` ``(N, D)``."""
    names = list(centroids)
    c = np.stack([centroids[n] / (np.linalg.norm(centroids[n]) + 1e-12) for n in names])
    f = np.asarray(features, dtype=np.float64)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    return [names[int(k)] for k in (f @ c.T).argmax(axis=1)]
