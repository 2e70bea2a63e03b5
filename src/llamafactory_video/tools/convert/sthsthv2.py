"""Something-Something v2 (official ``labels.json`` + ``train.json`` / ``validation.json`` / ``test.json``).

* ``labels.json`` maps each class name (``"Putting something on a surface"``) to its official index as a
  string (``"112"``); the label-names file written here lists the names ordered by that index.
* An annotation entry is ``{"id", "label", "template", "placeholders"}``; ``template`` has brackets
  (``"Putting [something] on a surface"``) that ``labels.json`` does not, so it is matched after removing them
  (the seed's script looked the bracketed template up directly and raised ``KeyError``). ``label`` is the
  template with the objects filled in and becomes the answer; without it the bare template does.
* ``test.json`` has only ``{"id"}``: its samples get no ``action_label`` (and an empty answer) and it is
  registered without that column.
* Videos are ``<video_root>/<id>.webm``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    entry_error,
    load_json,
    load_json_list,
    merge_dataset_info,
    sample,
    sharegpt_entry,
    write_json,
)


USER_PROMPT = "<video>What is happening in this video? <ACTION>"
"""The seed 001 user turn."""


def strip_brackets(template: str) -> str:
    r"""``"Putting [something] on [something]"`` -> ``"Putting something on something"``."""
    return template.replace("[", "").replace("]", "")


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def answer_for(text: str) -> str:
    r"""The seed 001 assistant turn: ``"In this video, <filled template, lowercase>."``."""
    return f"In this video, {' '.join(text.split()).rstrip('.').lower()}."


def read_labels(path: str) -> list[str]:
    r"""Class names ordered by their official index from ``labels.json`` (``{name: "index"}``)."""
    data, _ = load_json(path)
    if not isinstance(data, dict) or not data:
        raise ConversionError(path, 'expected a JSON object mapping class names to their index ("name": "12")')
    by_index: dict[int, str] = {}
    for name, value in data.items():
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise ConversionError(path, f"index {value!r} is not an integer", key=name) from None
        if index in by_index:
            raise ConversionError(path, f"index {index} is also used by {by_index[index]!r}", key=name)
        by_index[index] = name
    if sorted(by_index) != list(range(len(by_index))):
        missing = sorted(set(range(len(by_index))) - set(by_index))
        raise ConversionError(path, f"indices must be 0..{len(by_index) - 1} without gaps; missing {missing}")
    return [by_index[i] for i in range(len(by_index))]


def convert_sthsthv2(
    labels: str,
    annotations: str,
    video_root: str,
    output: str,
    dataset_name: Optional[str] = None,
    label_names_file: str = "sthsthv2_labels.json",
    video_ext: str = "webm",
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert one SSv2 annotation file to ``output`` (a JSON file in the dataset directory).

    Args:
        labels: The official ``labels.json``.
        annotations: ``train.json``, ``validation.json`` or the unlabelled ``test.json``.
        video_root: Folder of ``<id>.<video_ext>`` videos.
        output: Output JSON file; its folder is the dataset directory (``dataset_info.json``, label names).
        dataset_name: Name in ``dataset_info.json`` (default: the output file's stem).
        label_names_file: Label-names file written next to ``output`` (names ordered by official index).
        video_ext: Video extension (the official release is ``webm``).
        skip_missing: Drop samples whose video does not exist (else keep them and count them).
        register: Merge the entry into ``dataset_info.json``.
    """
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output = os.path.abspath(output)
    output_dir = os.path.dirname(output)
    name = dataset_name or os.path.splitext(os.path.basename(output))[0]
    summary = ConversionSummary(
        f"Something-Something v2 ({os.path.basename(annotations)})", output_dir, skip_missing=skip_missing
    )
    names = read_labels(labels)
    index_of = {name_: i for i, name_ in enumerate(names)}
    index_of_norm = {_norm(name_): i for i, name_ in enumerate(names)}
    entries, lines, _ = load_json_list(annotations)
    labelled = any(isinstance(e, dict) and "template" in e for e in entries)
    locator = VideoLocator(video_root, output_dir)
    ext = video_ext.lstrip(".")

    samples: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise entry_error(annotations, lines, i, f"expected an object, got {type(entry).__name__}")
        video_id = entry.get("id")
        if video_id is None or (isinstance(video_id, str) and not video_id.strip()) or isinstance(video_id, bool):
            raise entry_error(annotations, lines, i, "missing video id", key="id")
        video_id = str(video_id).strip()
        if video_id in seen_ids:
            raise entry_error(annotations, lines, i, f"video id {video_id!r} repeats entry {seen_ids[video_id]}", "id")
        seen_ids[video_id] = i
        columns: dict[str, Any] = {}
        if labelled:
            template = entry.get("template")
            if not isinstance(template, str) or not template.strip():
                raise entry_error(annotations, lines, i, "missing template (other entries have one)", "template")
            bare = strip_brackets(template)
            label = index_of.get(bare, index_of_norm.get(_norm(bare)))
            if label is None:
                raise entry_error(
                    annotations,
                    lines,
                    i,
                    f"template {template!r} (as {bare!r}) is not a class in {labels}",
                    "template",
                )
            filled = entry.get("label")
            if filled is not None and not isinstance(filled, str):
                raise entry_error(annotations, lines, i, f"label {filled!r} is not a string", "label")
            answer = answer_for(filled if filled and filled.strip() else bare)
            columns["action_label"] = label
        else:
            answer = ""
        video, exists = locator.find(f"{video_id}.{ext}")
        if not exists:
            summary.add_missing(video)
            if skip_missing:
                summary.dropped_samples += 1
                continue
        samples.append(sample(USER_PROMPT, answer, [locator.output_path(video)], **columns))

    file_name = os.path.basename(output)
    write_json(output, samples)
    summary.outputs[file_name] = len(samples)
    write_json(os.path.join(output_dir, label_names_file), names)
    summary.num_classes = len(names)
    summary.label_names_file = label_names_file
    if labelled:
        entry_info = sharegpt_entry(file_name, {"action_label": "action_label"}, label_names_file)
    else:
        entry_info = sharegpt_entry(file_name)
        summary.notes.append(
            f"{os.path.basename(annotations)} has no labels: samples carry no action_label and an empty answer, "
            "and the dataset is registered without the action_label column"
        )
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, {name: entry_info})
        summary.registered = [name]
    return summary
