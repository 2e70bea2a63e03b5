"""LLaVA-Video-178K (and LLaVA-NeXT-style video instruction JSON) to LlamaFactory sharegpt video data.

Input: one or more annotation files (``*_cap_processed.json``, ``*_oe_qa_processed.json``, ``*_mc_qa_processed.json``,
JSON arrays or JSONL), each entry ``{"id", "video": "<path under video_root>", "conversations": [{"from": "human",
"value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...], "data_source"}``. LLaVA marks the visual input with
``<image>`` even for videos; LlamaFactory needs ``<video>`` (an ``<image>`` with no image fails in the host's
mm_plugin), so the first ``<image>`` becomes ``<video>`` (or ``<video>`` is prepended to the first human turn).

Output: ``<prefix>.json`` (multi-turn sharegpt: ``messages`` with user / assistant turns, ``videos``) and its
``dataset_info.json`` entry. Usable by the stock ``sft`` stage and by ``fastslow_ar``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    entry_error,
    load_json_list,
    merge_dataset_info,
    sharegpt_entry,
    write_json,
)


ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _load_entries(path: str) -> tuple[list[Any], list[int | None]]:
    if path.endswith(".jsonl"):
        if not os.path.isfile(path):
            raise ConversionError(path, "file not found")
        entries, lines = [], []
        with open(path, encoding="utf-8-sig") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    entries.append(json.loads(raw))
                except json.JSONDecodeError as err:
                    raise ConversionError(path, f"invalid JSON: {err.msg}", line=number) from err
                lines.append(number)
        return entries, lines
    entries, lines, _ = load_json_list(path)
    return entries, lines


def _messages(path: str, lines: list[int | None], index: int, turns: Any) -> list[dict[str, str]]:
    if not isinstance(turns, list) or len(turns) < 2:
        raise entry_error(path, lines, index, "needs at least one human and one gpt turn", key="conversations")
    messages: list[dict[str, str]] = []
    for t, turn in enumerate(turns):
        role = ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        value = turn.get("value") if isinstance(turn, dict) else None
        if role is None or not isinstance(value, str):
            raise entry_error(
                path, lines, index, f"turn {t} must be {{'from': 'human'|'gpt', 'value': str}}", key="conversations"
            )
        expected = "user" if t % 2 == 0 else "assistant"
        if role != expected:
            raise entry_error(
                path,
                lines,
                index,
                f"turn {t} is from {turn.get('from')!r}; turns must alternate human/gpt",
                key="conversations",
            )
        messages.append({"role": role, "content": value.strip()})
    if messages[-1]["role"] != "assistant":
        raise entry_error(path, lines, index, "the last turn must be the gpt answer", key="conversations")
    text = "".join(m["content"] for m in messages)
    if text.count("<image>") > 1 or "<video>" in text and "<image>" in text:
        raise entry_error(path, lines, index, "more than one visual placeholder for one video", key="conversations")
    first = messages[0]
    if "<video>" not in text:
        if "<image>" in first["content"]:
            first["content"] = first["content"].replace("<image>\n", "<video>", 1).replace("<image>", "<video>", 1)
        elif "<image>" in text:
            raise entry_error(path, lines, index, "the <image> placeholder must be in the first human turn")
        else:
            first["content"] = "<video>" + first["content"]
    return messages


def convert_llava_video(
    annotations: list[str],
    video_root: str,
    output_dir: str,
    prefix: str = "llava_video",
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert LLaVA-Video-178K style annotation files into one sharegpt dataset; returns the summary.

    Args:
        annotations: Annotation files (JSON arrays or JSONL).
        video_root: Folder the entries' ``video`` paths are relative to.
        output_dir: LlamaFactory ``dataset_dir`` to write into.
        prefix: Dataset name / file prefix.
        skip_missing: Drop samples whose video does not exist (else keep them and count them).
        register: Merge the entry into ``<output_dir>/dataset_info.json``.
    """
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    summary = ConversionSummary("LLaVA-Video", output_dir, skip_missing=skip_missing)
    locator = VideoLocator(video_root, output_dir)
    rows: list[dict[str, Any]] = []
    sources: dict[str, int] = {}
    for path in annotations:
        entries, lines = _load_entries(path)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise entry_error(path, lines, i, f"expected an object, got {type(entry).__name__}")
            video = entry.get("video")
            if not isinstance(video, str) or not video.strip():
                raise entry_error(path, lines, i, "missing video path", key="video")
            messages = _messages(path, lines, i, entry.get("conversations"))
            found, exists = locator.find(video.strip())
            if not exists:
                summary.add_missing(found)
                if skip_missing:
                    summary.dropped_samples += 1
                    continue
            rows.append({"messages": messages, "videos": [locator.output_path(found)]})
            source = str(entry.get("data_source") or os.path.basename(path))
            sources[source] = sources.get(source, 0) + 1
    file_name = f"{prefix}.json"
    write_json(os.path.join(output_dir, file_name), rows)
    summary.outputs[file_name] = len(rows)
    turns = sum(len(r["messages"]) // 2 for r in rows)
    summary.notes.append(f"{turns} question/answer turns in {len(rows)} samples from {len(annotations)} file(s)")
    summary.notes += [f"source {name}: {count}" for name, count in sorted(sources.items())]
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, {prefix: sharegpt_entry(file_name)})
        summary.registered = [prefix]
    return summary
