"""UCF101 (official ``ucfTrainTestlist`` split files + ``UCF-101/<Class>/<video>.avi``) to ``action_cls`` data.

Inputs, as distributed (CRLF line endings):

* ``classInd.txt`` — ``<1-based index> <ClassName>`` per line;
* ``trainlistNN.txt`` — ``<Class>/<video>.avi <1-based index>`` per line;
* ``testlistNN.txt`` — ``<Class>/<video>.avi`` per line (no label: the class is the folder name).

Outputs in ``output_dir``: ``<prefix>_train.json`` / ``<prefix>_test.json`` (seed 001 prompt, 0-based
``action_label``), ``<prefix>_labels.json`` (class names by label, the stage's ``id2label``) and the two
entries in ``dataset_info.json``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    merge_dataset_info,
    read_text_lines,
    sample,
    sharegpt_entry,
    write_json,
)


USER_PROMPT = "<video>Describe the action being performed in this video. <ACTION>"
"""The seed 001 user turn."""

SPLITS = (1, 2, 3)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def class_phrase(name: str) -> str:
    r"""``ApplyEyeMakeup`` -> ``apply eye makeup``: split on CamelCase and underscores, lowercase."""
    spaced = _CAMEL.sub(" ", name.replace("_", " "))
    return " ".join(spaced.split()).lower()


def answer_for(name: str) -> str:
    r"""The seed 001 assistant turn for class ``name``."""
    return f"The action in this video is {class_phrase(name)}."


def read_class_index(path: str) -> list[str]:
    r"""Class names by 0-based label from ``classInd.txt`` (1-based, contiguous indices)."""
    by_index: dict[int, tuple[str, int]] = {}
    for number, line in read_text_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise ConversionError(path, f"expected '<index> <ClassName>', got {line!r}", line=number)
        index_text, name = parts
        try:
            index = int(index_text)
        except ValueError:
            raise ConversionError(path, f"class index {index_text!r} is not an integer", line=number) from None
        if index in by_index:
            raise ConversionError(path, f"class index {index} repeats line {by_index[index][1]}", line=number)
        by_index[index] = (name, number)
    if not by_index:
        raise ConversionError(path, "no classes")
    expected = list(range(1, len(by_index) + 1))
    if sorted(by_index) != expected:
        gaps = sorted(set(expected) - set(by_index))
        raise ConversionError(path, f"class indices must be 1..{len(by_index)} (1-based, no gaps); missing {gaps}")
    names = [by_index[i][0] for i in expected]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name.lower() in seen:
            raise ConversionError(path, f"class {name!r} is listed twice", line=by_index[i + 1][1])
        seen[name.lower()] = i
    return names


def _convert_list(
    path: str,
    names: list[str],
    locator: VideoLocator,
    summary: ConversionSummary,
    skip_missing: bool,
    labelled: bool,
) -> list[dict[str, Any]]:
    r"""Samples of one split list; ``labelled`` lists carry the 1-based index, which must match the folder."""
    label_of = {name: i for i, name in enumerate(names)}
    label_of_lower = {name.lower(): i for i, name in enumerate(names)}
    samples: list[dict[str, Any]] = []
    for number, line in read_text_lines(path):
        parts = line.split()
        if len(parts) > 2 or (labelled and len(parts) != 2):
            form = "'<Class>/<video> <index>'" if labelled else "'<Class>/<video>' (optionally followed by its index)"
            raise ConversionError(path, f"expected {form}, got {line!r}", line=number)
        relative = parts[0].replace("\\", "/")
        folder = relative.split("/")[0] if "/" in relative else None
        if not folder:
            raise ConversionError(path, f"video {relative!r} has no class folder ('<Class>/<video>')", line=number)
        label = label_of.get(folder, label_of_lower.get(folder.lower()))
        if label is None:
            raise ConversionError(path, f"class folder {folder!r} is not in classInd.txt", line=number)
        if len(parts) == 2:
            try:
                listed = int(parts[1])
            except ValueError:
                raise ConversionError(path, f"class index {parts[1]!r} is not an integer", line=number) from None
            if listed != label + 1:
                raise ConversionError(
                    path,
                    f"class index {listed} does not match the folder {folder!r} (index {label + 1} in classInd.txt)",
                    line=number,
                )
        video, exists = locator.find(relative)
        if not exists:
            summary.add_missing(video)
            if skip_missing:
                summary.dropped_samples += 1
                continue
        name = names[label]
        samples.append(sample(USER_PROMPT, answer_for(name), [locator.output_path(video)], action_label=label))
    return samples


def convert_ucf101(
    split_dir: str,
    video_root: str,
    output_dir: str,
    split: int = 1,
    prefix: str = "ucf101",
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert one official UCF101 split; returns the summary (the files are written as a side effect).

    Args:
        split_dir: Folder with ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt``.
        video_root: The ``UCF-101`` folder (one sub-folder per class).
        output_dir: LlamaFactory ``dataset_dir`` to write into.
        split: Official split 1, 2 or 3.
        prefix: Dataset name / file prefix (``<prefix>_train``, ``<prefix>_test``, ``<prefix>_labels.json``).
        skip_missing: Drop samples whose video does not exist (else keep them and count them).
        register: Merge the two entries into ``<output_dir>/dataset_info.json``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split}")
    if not os.path.isdir(split_dir):
        raise ConversionError(split_dir, "split folder not found")
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    summary = ConversionSummary(f"UCF101 split {split}", output_dir, skip_missing=skip_missing)
    names = read_class_index(os.path.join(split_dir, "classInd.txt"))
    locator = VideoLocator(video_root, output_dir)

    entries: dict[str, dict[str, Any]] = {}
    labels_file = f"{prefix}_labels.json"
    splits: list[tuple[str, str, bool]] = [
        ("train", f"trainlist0{split}.txt", True),
        ("test", f"testlist0{split}.txt", False),
    ]
    written: list[tuple[str, list[dict[str, Any]]]] = []
    for part, list_name, labelled in splits:
        samples = _convert_list(os.path.join(split_dir, list_name), names, locator, summary, skip_missing, labelled)
        written.append((part, samples))
    for part, samples in written:  # write only once both lists parsed
        file_name = f"{prefix}_{part}.json"
        write_json(os.path.join(output_dir, file_name), samples)
        summary.outputs[file_name] = len(samples)
        entries[f"{prefix}_{part}"] = sharegpt_entry(file_name, {"action_label": "action_label"}, labels_file)
    write_json(os.path.join(output_dir, labels_file), names)
    summary.num_classes = len(names)
    summary.label_names_file = labels_file
    _note_empty_classes(summary, names, written)
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, entries)
        summary.registered = list(entries)
    return summary


def _note_empty_classes(summary: ConversionSummary, names: list[str], written: list[tuple[str, list[dict]]]) -> None:
    for part, samples in written:
        present = {s["action_label"] for s in samples}
        empty: Optional[list[str]] = [names[i] for i in range(len(names)) if i not in present]
        if empty and samples:
            shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            summary.notes.append(f"{part}: {len(empty)} classes have no sample ({shown})")
