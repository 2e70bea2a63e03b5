"""Valley (Valley-webvid2M-Pretrain-703K, Valley-Instruct-73k) annotations to LlamaFactory sharegpt video data.

Input: one or more annotation files (a JSON array, e.g. the pretraining set's ``chat.json``, or JSONL), each entry
``{"id": ..., "video": "<path>", "conversations": [{"from": "human", "value": "...<video>..."}, {"from": "gpt",
"value": "..."}, ...], "source": "<folder>"?}``. Valley's own loader appends ``.mp4`` to a ``video`` without it and
reads the file from ``<video_folder>/<source>/`` (``webvid`` when there is no ``source``); the converter looks the
video up as ``<video_root>/<video>``, then under ``<video_root>/<source>/`` and ``<video_root>/webvid/``, each with
``.mp4`` added when the name has no extension.

The visual placeholder: Valley writes ``<video>`` (derived files, e.g. Video-LLaVA's filtered copy, write
``<image>``); it becomes one ``<video>`` at the front of its human turn when it stands at the turn's start or end
(``"Describe the video.\\n<video>"`` -> ``"<video>Describe the video."``), is left in place mid-text, and is prepended
to the first human turn when missing. Output: ``<prefix>.json`` (multi-turn sharegpt rows ``messages`` + ``videos``)
and its ``dataset_info.json`` entry; the stock ``sft`` stage trains on it (HiLight's TokenMining pretraining).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Optional

from .common import ConversionError, ConversionSummary, VideoLocator, merge_dataset_info, sharegpt_entry, write_json
from .llava_video import _load_entries
from .videoqa import KNOWN_EXTS


ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
PLACEHOLDERS = ("<video>", "<image>")


def _error(path: str, lines: list[Optional[int]], index: int, ident: Any, message: str, key: str) -> ConversionError:
    entry = f"entry {index}" + (f" (id {ident!r})" if ident is not None else "")
    return ConversionError(path, message, line=lines[index] if index < len(lines) else None, entry=entry, key=key)


def valley_video_candidates(video: str, source: Optional[str] = None) -> list[str]:
    r"""Relative paths tried for an entry's ``video``: as given, then under ``<source>/`` and ``webvid/``, each with
    ``.mp4`` added when the name has no video extension (Valley's loader does the same)."""
    name = video.strip().replace("\\", "/").lstrip("/")
    names = [name] if os.path.splitext(name)[1].lstrip(".").lower() in KNOWN_EXTS else [f"{name}.mp4", name]
    folders = [""] + [f"{s.strip('/')}/" for s in (source, "webvid") if s and s.strip("/")]
    return list(dict.fromkeys(folder + n for folder in folders for n in names))


def _messages(path: str, lines: list[Optional[int]], i: int, ident: Any, turns: Any) -> list[dict[str, str]]:
    if not isinstance(turns, list) or len(turns) < 2:
        raise _error(path, lines, i, ident, "needs at least one human and one gpt turn", "conversations")
    messages: list[dict[str, str]] = []
    for t, turn in enumerate(turns):
        role = ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        value = turn.get("value") if isinstance(turn, dict) else None
        if role is None or not isinstance(value, str):
            raise _error(
                path, lines, i, ident, f"turn {t} must be {{'from': 'human'|'gpt', 'value': str}}", "conversations"
            )
        if role != ("user" if t % 2 == 0 else "assistant"):
            raise _error(
                path,
                lines,
                i,
                ident,
                f"turn {t} is from {turn.get('from')!r}; turns must alternate human/gpt",
                "conversations",
            )
        messages.append({"role": role, "content": value.strip()})
    if messages[-1]["role"] != "assistant":
        raise _error(path, lines, i, ident, "the last turn must be the gpt answer", "conversations")
    found = [(t, p) for t, m in enumerate(messages) for p in PLACEHOLDERS for _ in range(m["content"].count(p))]
    if len(found) > 1:
        raise _error(path, lines, i, ident, f"{len(found)} visual placeholders for one video", "conversations")
    if not found:
        messages[0]["content"] = "<video>" + messages[0]["content"]
        return messages
    t, placeholder = found[0]
    if messages[t]["role"] != "user":
        raise _error(path, lines, i, ident, f"the {placeholder} placeholder is in gpt turn {t}", "conversations")
    text = messages[t]["content"]
    if text.startswith(placeholder) or text.endswith(placeholder):
        rest = text.replace(placeholder, "", 1).strip()
        messages[t]["content"] = "<video>" + rest
    else:
        messages[t]["content"] = text.replace(placeholder, "<video>", 1)
    return messages


def convert_valley(
    annotations: Sequence[str] | str,
    video_root: str,
    output_dir: str,
    prefix: str = "valley",
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert Valley annotation files into one sharegpt dataset ``<prefix>.json``; returns the summary.

    Args:
        annotations: Annotation files (JSON arrays or JSONL).
        video_root: Folder the entries' ``video`` paths are relative to (Valley's ``video_folder``).
        output_dir: LlamaFactory ``dataset_dir`` to write into.
        prefix: Dataset name / file prefix.
        skip_missing: Drop samples whose video does not exist (else keep them and count them).
        register: Merge the entry into ``<output_dir>/dataset_info.json``.
    """
    files = [annotations] if isinstance(annotations, str) else list(annotations)
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    summary = ConversionSummary("Valley", output_dir, skip_missing=skip_missing)
    locator = VideoLocator(video_root, output_dir)
    rows: list[dict[str, Any]] = []
    sources: dict[str, int] = {}
    seen_ids: set[str] = set()
    duplicate_ids = 0
    for path in files:
        entries, lines = _load_entries(path)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise _error(path, lines, i, None, f"expected an object, got {type(entry).__name__}", "id")
            ident = entry.get("id")
            video = entry.get("video")
            if not isinstance(video, str) or not video.strip():
                raise _error(path, lines, i, ident, "missing video path", "video")
            source = entry.get("source")
            if source is not None and not isinstance(source, str):
                raise _error(path, lines, i, ident, f"expected a folder name, got {type(source).__name__}", "source")
            messages = _messages(path, lines, i, ident, entry.get("conversations"))
            first = None
            for candidate in valley_video_candidates(video, source):
                found, exists = locator.find(candidate)
                first = first or found
                if exists:
                    break
            if not exists:
                summary.add_missing(first)
                if skip_missing:
                    summary.dropped_samples += 1
                    continue
                found = first
            if ident is not None:
                duplicate_ids += str(ident) in seen_ids
                seen_ids.add(str(ident))
            rows.append({"messages": messages, "videos": [locator.output_path(found)]})
            name = source or "webvid (no source)"
            sources[name] = sources.get(name, 0) + 1
    file_name = f"{prefix}.json"
    write_json(os.path.join(output_dir, file_name), rows)
    summary.outputs[file_name] = len(rows)
    turns = sum(len(r["messages"]) // 2 for r in rows)
    summary.notes.append(f"{turns} question/answer turns in {len(rows)} samples from {len(files)} file(s)")
    summary.notes += [f"source {name}: {count}" for name, count in sorted(sources.items())]
    if duplicate_ids:
        summary.notes.append(f"{duplicate_ids} samples repeat an id seen before (kept)")
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, {prefix: sharegpt_entry(file_name)})
        summary.registered = [prefix]
    return summary
