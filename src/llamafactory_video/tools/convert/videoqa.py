"""VideoChatGPT / VideoInstruct-100K QA and Condensed Movies (CMD) captions to LlamaFactory sharegpt data.

VideoChatGPT-style input: JSON lists or CSV files whose rows carry a video key and a question / answer pair
under any of the names the releases and their cleaning scripts use:

* video: ``video_id`` (VideoInstruct-100K, ``v_<youtube id>``), ``video_name`` (the evaluation sets, e.g.
  ``generic_qa.json``), ``image_id`` (MiniGPT4-Video style converted files), ``video``;
* question: ``q`` / ``Q`` / ``question`` (consistency QA: ``Q1`` and ``Q2`` -> two samples with ``A``);
* answer: ``a`` / ``A`` / ``answer``.

The video file is looked up under ``video_root`` as given (when it has an extension), then as
``<id>.<ext>`` for each of ``video_exts`` (ActivityNet downloads mix mp4 / mkv / webm), then with the ActivityNet
``v_`` prefix added or removed, case-insensitively. Exact duplicate (video, question, answer) rows are dropped
and counted.

Condensed Movies input: ``descriptions.csv`` (``videoid``, ``description``, ...) joined on ``videoid`` with
``clips.csv`` (``videoid``, ``upload_year``, ...); videos are ``<video_root>/<upload_year>/<videoid>.<ext>``
(the official download layout) or ``<video_root>/<videoid>.<ext>`` (flattened).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from typing import Any

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    entry_error,
    load_json_list,
    merge_dataset_info,
    sample,
    sharegpt_entry,
    write_json,
)

VIDEO_KEYS = ("video_id", "video_name", "image_id", "video")
QUESTION_KEYS = ("q", "Q", "question", "Question")
ANSWER_KEYS = ("a", "A", "answer", "Answer")
VIDEO_EXTS = ("mp4", "mkv", "webm", "avi", "mov")
KNOWN_EXTS = frozenset({"mp4", "mkv", "webm", "avi", "mov", "m4v", "flv", "mpg", "mpeg", "wmv", "gif"})
CMD_PROMPT = "<video>Describe this movie clip."


def _read_csv(path: str) -> tuple[list[dict[str, str]], list[int], list[str]]:
    r"""Rows (header keys stripped), each row's line number, and the header."""
    if not os.path.isfile(path):
        raise ConversionError(path, "file not found")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        if not header:
            raise ConversionError(path, "empty CSV (no header row)", line=1)
        reader.fieldnames = header
        rows, lines = [], []
        for row in reader:  # blank lines are skipped by the reader: a row starts where it ends minus its newlines
            values = [value for key, value in row.items() if key is not None and isinstance(value, str)]
            if any(value.strip() for value in values):
                rows.append(row)
                lines.append(reader.line_num - sum(value.count("\n") for value in values))
    return rows, lines, header


def _read_entries(path: str) -> tuple[list[Any], list[int | None]]:
    if path.lower().endswith((".csv", ".tsv")):
        rows, lines, _ = _read_csv(path)
        return rows, lines
    entries, lines, _ = load_json_list(path)
    return entries, lines


def _first(entry: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    for key in keys:
        value = entry.get(key)
        if value is not None and str(value).strip():
            return key, value
    return None, None


def video_candidates(video: str, exts: Sequence[str] = VIDEO_EXTS) -> list[str]:
    r"""File names to try for a video key: as given (when it has a video extension), ``<id>.<ext>``, then the
    ActivityNet ``v_`` prefix added / removed."""
    name = video.strip().replace("\\", "/")
    stem, ext = os.path.splitext(name)
    candidates = [name] if ext.lstrip(".").lower() in KNOWN_EXTS else []
    base = stem if candidates else name
    folder, leaf = os.path.split(base)
    alt = leaf[2:] if leaf.startswith("v_") else f"v_{leaf}"
    for root in (base, os.path.join(folder, alt).replace("\\", "/")):
        candidates += [f"{root}.{e.lstrip('.')}" for e in exts]
    return list(dict.fromkeys(candidates))


def _locate(locator: VideoLocator, names: Sequence[str]) -> tuple[str, bool]:
    first = None
    for name in names:
        path, exists = locator.find(name)
        if exists:
            return path, True
        first = first or path
    return first or "", False


def _qa_pairs(path: str, lines: list[int | None], i: int, entry: dict[str, Any]) -> Iterator[tuple[str, str]]:
    _, answer = _first(entry, ANSWER_KEYS)
    if answer is None:
        raise entry_error(path, lines, i, f"no answer (expected one of {', '.join(ANSWER_KEYS)})", key="a")
    answer = " ".join(str(answer).split())
    if entry.get("Q1") is not None and entry.get("Q2") is not None:  # VideoChatGPT consistency QA
        for key in ("Q1", "Q2"):
            yield " ".join(str(entry[key]).split()), answer
        return
    _, question = _first(entry, QUESTION_KEYS)
    if question is None:
        raise entry_error(path, lines, i, f"no question (expected one of {', '.join(QUESTION_KEYS)})", key="q")
    yield " ".join(str(question).split()), answer


def convert_videochatgpt(
    annotations: Sequence[str] | str,
    video_root: str,
    output_dir: str,
    prefix: str = "videochatgpt",
    video_exts: Sequence[str] = VIDEO_EXTS,
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert VideoChatGPT / VideoInstruct-100K QA files (JSON or CSV) into ``<prefix>_sft.json``.

    Args:
        annotations: One or more JSON / CSV files (rows as described in the module docstring).
        video_root: Folder of the videos.
        output_dir: LlamaFactory ``dataset_dir`` to write into.
        prefix: Dataset name / file prefix.
        video_exts: Extensions tried, in order, for a video key without one.
        skip_missing: Drop the samples whose video does not exist (else keep and count them).
        register: Merge the entry into ``<output_dir>/dataset_info.json``.
    """
    files = [annotations] if isinstance(annotations, str) else list(annotations)
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    names = ", ".join(os.path.basename(f) for f in files)
    summary = ConversionSummary(f"VideoChatGPT ({names})", output_dir, skip_missing=skip_missing)
    locator = VideoLocator(video_root, output_dir)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    duplicates, key_counts = 0, dict.fromkeys(VIDEO_KEYS, 0)
    for path in files:
        entries, lines = _read_entries(path)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise entry_error(path, lines, i, f"expected an object, got {type(entry).__name__}")
            key, video = _first(entry, VIDEO_KEYS)
            if video is None:
                raise entry_error(
                    path, lines, i, f"no video key (expected one of {', '.join(VIDEO_KEYS)})", key="video_id"
                )
            key_counts[key] += 1
            video = str(video).strip()
            video_path, exists = _locate(locator, video_candidates(video, video_exts))
            pairs = list(_qa_pairs(path, lines, i, entry))
            if not exists:
                summary.add_missing(video_path)
                if skip_missing:
                    summary.dropped_samples += len(pairs)
                    continue
            for question, answer in pairs:
                if (video, question, answer) in seen:
                    duplicates += 1
                    continue
                seen.add((video, question, answer))
                rows.append(sample(f"<video>{question}", answer, [locator.output_path(video_path)]))
    file_name = f"{prefix}_sft.json"
    write_json(os.path.join(output_dir, file_name), rows)
    summary.outputs[file_name] = len(rows)
    used = ", ".join(f"{k}: {n}" for k, n in key_counts.items() if n)
    summary.notes.append(f"video keys used: {used or 'none'}")
    if duplicates:
        summary.notes.append(f"{duplicates} duplicate (video, question, answer) rows dropped")
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, {f"{prefix}_sft": sharegpt_entry(file_name)})
        summary.registered = [f"{prefix}_sft"]
    return summary


def _require(path: str, header: list[str], columns: Sequence[str]) -> None:
    for column in columns:
        if column not in header:
            raise ConversionError(path, f"no {column!r} column (columns: {', '.join(header)})", line=1, key=column)


def convert_condensed_movies(
    clips_csv: str,
    descriptions_csv: str,
    video_root: str,
    output_dir: str,
    prefix: str = "cmd",
    video_exts: Sequence[str] = ("mkv", "mp4", "webm"),
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert Condensed Movies ``clips.csv`` + ``descriptions.csv`` to ``<prefix>_caption_sft.json``.

    One sample per described clip: ``<video>Describe this movie clip.`` -> the description. A description whose
    ``videoid`` is not in ``clips.csv`` is still converted (its video looked up at the root) and counted.
    """
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    summary = ConversionSummary("Condensed Movies", output_dir, skip_missing=skip_missing)
    clip_rows, clip_lines, clip_header = _read_csv(clips_csv)
    _require(clips_csv, clip_header, ("videoid",))
    desc_rows, desc_lines, desc_header = _read_csv(descriptions_csv)
    _require(descriptions_csv, desc_header, ("videoid", "description"))

    years: dict[str, str] = {}
    for i, row in enumerate(clip_rows):
        video_id = (row.get("videoid") or "").strip()
        if not video_id:
            raise entry_error(clips_csv, clip_lines, i, "empty videoid", key="videoid", name="row")
        year = (row.get("upload_year") or "").strip()
        years[video_id] = year.removesuffix(".0")  # pandas-written floats: 2011.0

    locator = VideoLocator(video_root, output_dir)
    rows, described, not_in_clips = [], set(), 0
    for i, row in enumerate(desc_rows):
        video_id = (row.get("videoid") or "").strip()
        if not video_id:
            raise entry_error(descriptions_csv, desc_lines, i, "empty videoid", key="videoid", name="row")
        description = " ".join((row.get("description") or "").split())
        if not description:
            raise entry_error(descriptions_csv, desc_lines, i, "empty description", key="description", name="row")
        if video_id not in years:
            not_in_clips += 1
        year = years.get(video_id, "")
        names = [f"{year}/{video_id}.{e}" for e in video_exts if year] + [f"{video_id}.{e}" for e in video_exts]
        path, exists = _locate(locator, names)
        described.add(video_id)
        if not exists:
            summary.add_missing(path)
            if skip_missing:
                summary.dropped_samples += 1
                continue
        rows.append(sample(CMD_PROMPT, description, [locator.output_path(path)]))

    file_name = f"{prefix}_caption_sft.json"
    write_json(os.path.join(output_dir, file_name), rows)
    summary.outputs[file_name] = len(rows)
    undescribed = len(set(years) - described)
    if undescribed:
        summary.notes.append(f"{undescribed} clips in {os.path.basename(clips_csv)} have no description")
    if not_in_clips:
        summary.notes.append(f"{not_in_clips} descriptions have no row in {os.path.basename(clips_csv)}")
    if register:
        name = f"{prefix}_caption_sft"
        summary.dataset_info = merge_dataset_info(output_dir, {name: sharegpt_entry(file_name)})
        summary.registered = [name]
    return summary
