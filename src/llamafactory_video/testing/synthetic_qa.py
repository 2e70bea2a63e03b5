"""Synthetic data for the short-video QA curriculum and long-video QA (seed 003), built offline.

* :func:`make_curriculum_dataset`: stage 1 image-caption pairs (still frames saved as PNG), stage 2 video
  captions, stage 3 video QA with a sidecar ``.srt`` per video, and that QA with the subtitles written into the
  prompts by ``add-subtitles`` (``tiny_video_qa_subs``).
* :func:`make_long_video`: one video made of segments that differ in colour, shape and motion, with the segment
  table and (optionally) an ``.srt`` whose cues describe each segment (controlled text for retrieval tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.subtitles import Cue, to_srt
from .synthetic_videos import action_classes, render_clip, write_video

TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
IMAGE_PROMPT = "<image>Describe this image."
CAPTION_PROMPT = "<video>Describe the video in one sentence."
QA_PROMPT = "<video>Which direction does the object move?"


def _turns(user: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def make_curriculum_dataset(
    output_dir: str | os.PathLike[str], num_classes: int = 4, per_class: int = 2, seed: int = 3
) -> dict[str, Any]:
    r"""Write the three stages' datasets and register them in ``<output_dir>/dataset_info.json``."""
    from PIL import Image

    from ..tools.add_subtitles import add_subtitles

    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, captions, qa = [], [], []
    for j in range(per_class):
        for action in action_classes(num_classes):
            name = f"{action.name}_{j}"
            still = render_clip(action, rng, size=64, num_frames=1)[0]
            Image.fromarray(still).save(out / "images" / f"{name}.png")
            images.append(
                {
                    "messages": _turns(IMAGE_PROMPT, f"A {action.colour} {action.shape}."),
                    "images": [f"images/{name}.png"],
                }
            )
            video = f"videos/{name}.mp4"
            write_video(render_clip(action, rng, size=64, num_frames=8), out / video, fps=4)
            (out / "videos" / f"{name}.srt").write_text(
                to_srt([Cue(0.0, 1.0, f"Look at the {action.shape}."), Cue(1.0, 2.0, f"It goes {action.direction}.")]),
                encoding="utf-8",
            )
            captions.append({"messages": _turns(CAPTION_PROMPT, action.caption), "videos": [video]})
            qa.append({"messages": _turns(QA_PROMPT, f"It moves {action.direction}."), "videos": [video]})
    info = {}
    for name, rows, media in (
        ("tiny_image_caption", images, "images"),
        ("tiny_video_caption", captions, "videos"),
        ("tiny_video_qa", qa, "videos"),
    ):
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        info[name] = {
            "file_name": f"{name}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", media: media},
            "tags": dict(TAGS),
        }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    summary = add_subtitles(str(out), "tiny_video_qa", video_fps=2.0, video_maxlen=4)
    return {
        "output_dir": str(out.resolve()),
        "datasets": [*info, summary["dataset"]],
        "num_images": len(images),
        "num_videos": len(captions),
        "with_subtitles": summary["with_subtitles"],
    }


def make_long_video(
    path: str | os.PathLike[str],
    segments: int = 4,
    seconds_per_segment: float = 4.0,
    fps: int = 4,
    size: int = 64,
    srt: bool = True,
    seed: int = 7,
) -> list[dict[str, Any]]:
    r"""Write a video of ``segments`` parts (class ``i``: its colour, shape and motion) and, with ``srt``, a
    sidecar ``.srt`` with one cue per segment stating what is on screen. Returns the segment table."""
    rng = np.random.default_rng(seed)
    frames, table, cues = [], [], []
    per_segment = round(seconds_per_segment * fps)
    for i, action in enumerate(action_classes(segments)):
        frames.append(render_clip(action, rng, size=size, num_frames=per_segment))
        start, end = i * seconds_per_segment, (i + 1) * seconds_per_segment
        text = f"Now a {action.colour} {action.shape} moves {action.direction}."
        table.append({"start": start, "end": end, "colour": action.colour, "shape": action.shape, "text": text})
        cues.append(Cue(start + 0.25, end - 0.25, text))
    write_video(np.concatenate(frames), path, fps=fps)
    if srt:
        Path(os.path.splitext(os.fspath(path))[0] + ".srt").write_text(to_srt(cues), encoding="utf-8")
    return table


CHOICE_QUESTION = "<video>What colour is the moving object?\n{options}\nAnswer with the option's letter."
REASONED_INSTRUCTION = "Name the object, then give the option's letter after 'Answer:'."


def make_choice_qa_dataset(
    output_dir: str | os.PathLike[str],
    num_classes: int = 4,
    train_per_class: int = 8,
    test_per_class: int = 4,
    seed: int = 5,
    prefix: str = "synth_choice_qa",
    answer_style: str = "letter",
    object_radius: tuple[float, float] = (0.13, 0.18),
    travel: float = 0.4,
) -> dict[str, Any]:
    r"""A multiple-choice video QA set for the ``scst`` stage's QA rewards: "What colour is the moving object?"
    with the class colours as options A, B, C, ... and the right letter as ``answer`` (and as the one reference).

    Files under ``output_dir``: ``videos/...``; ``<prefix>_<split>.json`` (``messages`` with the letter as the
    answer, ``videos``, ``references: [letter]``, ``answer: letter``), ``<prefix>_<split>_sft.json`` (the same
    rows for cross-entropy with stock ``sft``) and their ``dataset_info.json`` entries (``answer`` declared).

    ``answer_style``: ``letter`` (the assistant turn is the letter) or ``reasoned`` (it first names what is seen,
    then the letter: ``A green circle. Answer: B``; the question then asks for that). ``references`` and ``answer``
    are the letter either way; the option reward reads the letter after ``Answer:``.

    The options are always listed in class order, so the right letter is a function of the video alone.
    ``object_radius`` / ``travel`` (fractions of the 64-pixel frame, :func:`render_clip`): the default small
    object (13-18 %) is one the tiny random test model does not learn to see from letter answers (XE stays at
    chance, one letter for every video); ``object_radius=(0.3, 0.35), travel=0.2`` is the set of
    ``bench/scst_choice_qa.py`` and ``tests/e2e/test_scst_choice_qa_cli.py``.

    Returns:
        ``output_dir``, dataset names (``train_dataset``, ``test_dataset``, ``train_sft_dataset``), ``num_train``,
        ``num_test`` and ``letters`` (the right letter of each class).
    """
    classes = action_classes(num_classes)
    letters = [chr(ord("A") + i) for i in range(num_classes)]
    options = "\n".join(f"{letter}. {action.colour}" for letter, action in zip(letters, classes))
    if answer_style not in ("letter", "reasoned"):
        raise ValueError(f"answer_style must be `letter` or `reasoned`, got {answer_style!r}")
    question = CHOICE_QUESTION.format(options=options)
    if answer_style == "reasoned":
        question = question.replace("Answer with the option's letter.", REASONED_INSTRUCTION)
    out = Path(output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    info_file = out / "dataset_info.json"
    info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    counts = {}
    for split_id, (split, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        rng = np.random.default_rng([seed, split_id])
        rows = []
        for j in range(per_class):
            for action, letter in zip(classes, letters):
                video = f"videos/{prefix}_{split}_{j * num_classes + action.label:04d}.mp4"
                frames = render_clip(action, rng, size=64, num_frames=8, radius=object_radius, travel=travel)
                write_video(frames, out / video, fps=4)
                reply = letter if answer_style == "letter" else f"A {action.colour} {action.shape}. Answer: {letter}"
                rows.append({"messages": _turns(question, reply), "videos": [video], "references": [letter],
                             "answer": letter})
        (out / f"{prefix}_{split}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        counts[split] = len(rows)
        info[f"{prefix}_{split}"] = {
            "file_name": f"{prefix}_{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos", "references": "references", "answer": "answer"},
            "tags": dict(TAGS),
        }
        info[f"{prefix}_{split}_sft"] = {
            "file_name": f"{prefix}_{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"},
            "tags": dict(TAGS),
        }
    info_file.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return {
        "output_dir": str(out.resolve()),
        "train_dataset": f"{prefix}_train",
        "test_dataset": f"{prefix}_test",
        "train_sft_dataset": f"{prefix}_train_sft",
        "num_train": counts["train"],
        "num_test": counts["test"],
        "letters": letters,
    }
