"""NExT-QA multiple-choice video QA (Xiao et al., CVPR 2021) to sharegpt data for ``stage: scst`` with the
``option_accuracy`` reward (and for XE with stock ``sft``).

Input: the official ``train.csv`` / ``val.csv`` / ``test.csv`` with columns ``video`` (numeric id),
``question``, ``answer`` (index 0-4 of the right option), ``qid``, ``type`` (CW, CH, TN, TC, TP, DC, DL, DO),
``a0`` ... ``a4``; ``map_vid_vidorID.json`` maps a video id to ``<folder>/<vidor id>``, the video being
``<video_root>/<folder>/<vidor id>.mp4`` (``NExTVideo/``). Without the map, ``<video_root>/<video>.mp4``.

Output per csv ``<split>.csv``: ``<prefix>_<split>.json``, one row per question::

    {"messages": [{"role": "user", "content": "<video>Why did the boy ...?\\nA. ...\\nB. ...\\n...\\nAnswer with the
                   option's letter."}, {"role": "assistant", "content": "C"}],
     "videos": ["NExTVideo/1150/6233408665.mp4"], "references": ["C"], "answer": "C", "category": "CW"}

registered in ``dataset_info.json`` with ``references``, ``answer`` and ``category`` declared (the scst stage
reports its held-out metrics per question type through ``category``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any, Optional

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    load_json,
    merge_dataset_info,
    sample,
    sharegpt_entry,
    write_json,
)


LETTERS = "ABCDE"
INSTRUCTION = "Answer with the option's letter."


def choice_prompt(question: str, options: Sequence[str]) -> str:
    r"""``<video>`` + the question + one ``X. option`` line per option + the instruction."""
    lines = [f"{LETTERS[i]}. {option.strip()}" for i, option in enumerate(options)]
    return "<video>" + question.strip().rstrip("?") + "?\n" + "\n".join(lines) + "\n" + INSTRUCTION


def convert_nextqa(
    annotations: Sequence[str],
    video_root: str,
    output_dir: str,
    prefix: str = "nextqa",
    video_map: Optional[str] = None,
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert NExT-QA csv files (see the module docstring); a malformed row raises :class:`ConversionError`
    naming the file, the line and the column."""
    summary = ConversionSummary(dataset=prefix, output_dir=os.path.abspath(output_dir), skip_missing=skip_missing)
    locator = VideoLocator(video_root, output_dir)
    mapping: dict[str, str] = {}
    if video_map:
        data, _ = load_json(video_map)
        if not isinstance(data, dict):
            raise ConversionError(video_map, "map_vid_vidorID.json must be a JSON object {video id: folder/id}")
        mapping = {str(k): str(v) for k, v in data.items()}
    entries: dict[str, dict[str, Any]] = {}
    for path in annotations:
        split = os.path.splitext(os.path.basename(path))[0]
        rows = []
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for line, row in enumerate(reader, start=2):
                for key in ("video", "question", "answer", "a0", "a1"):
                    if not (row.get(key) or "").strip():
                        raise ConversionError(path, "missing or empty column", line=line, key=key)
                options = [row[f"a{i}"] for i in range(len(LETTERS)) if (row.get(f"a{i}") or "").strip()]
                try:
                    right = int(float(row["answer"]))
                except ValueError:
                    raise ConversionError(path, f"answer {row['answer']!r} is not an option index", line=line,
                                          key="answer") from None
                if not 0 <= right < len(options):
                    raise ConversionError(path, f"answer {right} but {len(options)} options", line=line, key="answer")
                video_id = row["video"].strip()
                relative = mapping.get(video_id, video_id)
                video, found = locator.find(relative if relative.lower().endswith(".mp4") else relative + ".mp4")
                if not found:
                    summary.add_missing(video)
                    if skip_missing:
                        summary.dropped_samples += 1
                        continue
                letter = LETTERS[right]
                row_out = sample(
                    choice_prompt(row["question"], options),
                    letter,
                    [locator.output_path(video)],
                    references=[letter],
                    category=(row.get("type") or "").strip(),
                )
                row_out["answer"] = letter  # `sample`'s own argument is the assistant turn
                rows.append(row_out)
        name = f"{prefix}_{split}"
        write_json(os.path.join(output_dir, f"{name}.json"), rows)
        summary.outputs[f"{name}.json"] = len(rows)
        entries[name] = sharegpt_entry(
            f"{name}.json", {"references": "references", "answer": "answer", "category": "category"}
        )
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, entries)
        summary.registered = list(entries)
    summary.notes.append("train with `stage: scst` and `scst_rewards: option_accuracy` (docs/stages/scst.md)")
    return summary
