"""Helpers shared by the dataset converters: input reading with ``file:line`` errors, video lookup, outputs.

Standard library only, so ``scripts/prepare_*.py`` start instantly (no torch / transformers import). The
converters report through :class:`ConversionSummary` (printed by the scripts) rather than through logging.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional


MAX_LISTED_MISSING = 10
"""Missing videos listed by name in a summary (all of them are counted)."""

SHAREGPT_TAGS: dict[str, str] = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
}


class ConversionError(ValueError):
    r"""A malformed input entry. The message starts with ``file:line`` (or ``file``) and names the entry and key."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        message: str,
        line: Optional[int] = None,
        entry: Optional[str] = None,
        key: Optional[str] = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.entry = entry
        self.key = key
        location = f"{self.path}:{line}" if line is not None else self.path
        where = ", ".join(part for part in (entry, f"key {key!r}" if key is not None else None) if part)
        super().__init__(f"{location}: {where + ': ' if where else ''}{message}")


# ----------------------------------------------------------------------------------------------------------------
# Reading inputs
# ----------------------------------------------------------------------------------------------------------------


def read_text_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    r"""Yield ``(line_number, stripped_line)`` for the non-blank lines of a text file.

    Accepts CRLF / LF line endings (the official UCF101 lists use CRLF), a UTF-8 BOM and trailing whitespace.
    """
    if not os.path.isfile(path):
        raise ConversionError(path, "file not found")
    with open(path, encoding="utf-8-sig", newline=None) as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if line:
                yield number, line


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _list_offsets(text: str, pos: int) -> list[int]:
    r"""Character offsets of the elements of the JSON array starting at ``text[pos] == '['`` (valid JSON)."""
    offsets: list[int] = []
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "]":
        return offsets
    while True:
        offsets.append(pos)
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ",":
            return offsets
        pos = _skip_ws(text, pos + 1)


def _member_offset(text: str, pos: int, key: str) -> Optional[int]:
    r"""Offset of the value of ``key`` in the JSON object starting at ``text[pos] == '{'`` (valid JSON)."""
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "}":
        return None
    while True:
        name, pos = _DECODER.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ':'
        if name == key:
            return pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ",":
            return None
        pos = _skip_ws(text, pos + 1)


def _offsets_to_lines(text: str, offsets: list[int]) -> list[int]:
    lines, line, last = [], 1, 0
    for offset in offsets:
        line += text.count("\n", last, offset)
        last = offset
        lines.append(line)
    return lines


def load_json(path: str | os.PathLike[str]) -> tuple[Any, str]:
    r"""``(data, text)`` of a JSON file; a syntax error becomes a :class:`ConversionError` at its line."""
    if not os.path.isfile(path):
        raise ConversionError(path, "file not found")
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    try:
        return json.loads(text), text
    except json.JSONDecodeError as err:
        raise ConversionError(path, f"invalid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None


def load_json_list(path: str | os.PathLike[str], key: Optional[str] = None) -> tuple[list[Any], list[int], Any]:
    r"""Read a JSON array (the whole file, or the member ``key`` of a top-level object) with each entry's line.

    Returns ``(entries, line_numbers, whole_document)``.
    """
    data, text = load_json(path)
    where = f"top-level key {key!r}" if key is not None else "the file"
    if key is not None:
        if not isinstance(data, dict):
            raise ConversionError(path, f"expected a JSON object with a {key!r} list, got {type(data).__name__}")
        if key not in data:
            raise ConversionError(path, f"no {key!r} list in the file (keys: {', '.join(sorted(data)) or 'none'})")
        entries = data[key]
    else:
        entries = data
    if not isinstance(entries, list):
        raise ConversionError(path, f"expected a JSON list in {where}, got {type(entries).__name__}")
    start = _skip_ws(text, 0)
    if key is not None:
        start = _member_offset(text, start, key)
    lines = _offsets_to_lines(text, _list_offsets(text, start)) if start is not None else []
    if len(lines) != len(entries):  # duplicate keys or an unusual layout: fall back to entry indices only
        lines = [None] * len(entries)  # type: ignore[list-item]
    return entries, lines, data


def entry_error(
    path: str | os.PathLike[str],
    lines: list[Optional[int]],
    index: int,
    message: str,
    key: Optional[str] = None,
    name: str = "entry",
) -> ConversionError:
    r"""A :class:`ConversionError` for entry ``index`` of a list read by :func:`load_json_list`."""
    return ConversionError(
        path,
        message,
        line=lines[index] if index < len(lines) else None,
        entry=f"{name} {index}" if name == "entry" else f"{name}[{index}]",
        key=key,
    )


# ----------------------------------------------------------------------------------------------------------------
# Videos and paths
# ----------------------------------------------------------------------------------------------------------------


class VideoLocator:
    r"""Find videos under ``video_root`` and express their paths for a dataset directory.

    A listed file that is not found is looked up case-insensitively in its folder (some UCF101 mirrors
    differ in case, e.g. ``v_HandStandPushups`` vs ``v_HandstandPushups``). :meth:`output_path` gives a path
    relative to ``output_dir`` when the video lies under it (LlamaFactory joins relative paths with
    ``media_dir``, which defaults to ``dataset_dir``), else an absolute path.
    """

    def __init__(self, video_root: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> None:
        self.video_root = os.path.abspath(video_root)
        self.output_dir = os.path.abspath(output_dir)
        self._listings: dict[str, dict[str, str]] = {}

    def find(self, relative: str) -> tuple[str, bool]:
        r"""``(absolute_path, exists)`` of ``relative`` (``/``-separated) under the video root."""
        path = os.path.join(self.video_root, *relative.replace("\\", "/").split("/"))
        if os.path.isfile(path):
            return path, True
        folder, name = os.path.split(path)
        listing = self._listings.get(folder)
        if listing is None:
            try:
                listing = {entry.lower(): entry for entry in os.listdir(folder)}
            except OSError:
                listing = {}
            self._listings[folder] = listing
        actual = listing.get(name.lower())
        if actual is not None and os.path.isfile(os.path.join(folder, actual)):
            return os.path.join(folder, actual), True
        return path, False

    def output_path(self, path: str) -> str:
        r"""``path`` relative to the output directory when it lies under it, else absolute (``/`` separators)."""
        path = os.path.abspath(path)
        try:
            inside = os.path.commonpath([path, self.output_dir]) == self.output_dir
        except ValueError:  # different drives
            inside = False
        if inside:
            return os.path.relpath(path, self.output_dir).replace(os.sep, "/")
        return path


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------


def write_json(path: str | os.PathLike[str], data: Any) -> str:
    r"""Write ``data`` as indented UTF-8 JSON atomically (temp file + rename); returns the absolute path."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def sharegpt_entry(
    file_name: str, extra_columns: Optional[dict[str, str]] = None, label_names: Optional[str] = None
) -> dict[str, Any]:
    r"""A ``dataset_info.json`` entry for a sharegpt file with ``messages`` / ``videos`` (+ extra columns)."""
    entry: dict[str, Any] = {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos", **(extra_columns or {})},
        "tags": dict(SHAREGPT_TAGS),
    }
    if label_names:
        entry["label_names"] = label_names
    return entry


def merge_dataset_info(dataset_dir: str | os.PathLike[str], entries: dict[str, dict[str, Any]]) -> str:
    r"""Add or replace ``entries`` in ``<dataset_dir>/dataset_info.json``, keeping every other entry and the order."""
    path = os.path.join(os.path.abspath(dataset_dir), "dataset_info.json")
    info: dict[str, Any] = {}
    if os.path.isfile(path):
        info, _ = load_json(path)
        if not isinstance(info, dict):
            raise ConversionError(path, "dataset_info.json must hold a JSON object of dataset entries")
    info.update(entries)
    return write_json(path, info)


def sample(user: str, answer: str, videos: list[str], **columns: Any) -> dict[str, Any]:
    r"""One sharegpt sample: a user turn, an assistant turn, the video list and extra columns."""
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "videos": videos,
        **columns,
    }


@dataclass
class ConversionSummary:
    r"""What a converter wrote: samples per output file, classes, missing videos, registered datasets."""

    dataset: str
    output_dir: str
    skip_missing: bool = False
    outputs: dict[str, int] = field(default_factory=dict)
    """Output file name -> number of samples written."""
    num_classes: Optional[int] = None
    label_names_file: Optional[str] = None
    missing_videos: list[str] = field(default_factory=list)
    """Every referenced video that was not found (absolute paths, each once)."""
    dropped_samples: int = 0
    """Samples left out because their video is missing (``--skip-missing``)."""
    registered: list[str] = field(default_factory=list)
    dataset_info: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    def add_missing(self, path: str) -> None:
        if path not in self._missing_set:
            self._missing_set.add(path)
            self.missing_videos.append(path)

    def __post_init__(self) -> None:
        self._missing_set: set[str] = set(self.missing_videos)

    @property
    def num_samples(self) -> int:
        return sum(self.outputs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "output_dir": self.output_dir,
            "outputs": dict(self.outputs),
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "label_names_file": self.label_names_file,
            "missing_videos": list(self.missing_videos),
            "dropped_samples": self.dropped_samples,
            "registered": list(self.registered),
            "dataset_info": self.dataset_info,
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        r"""The multi-line summary the ``prepare_*.py`` scripts print."""
        width = max([len(name) for name in self.outputs] + [8])
        lines = [f"{self.dataset} -> {self.output_dir}"]
        lines += [f"  {name:<{width}}  {count:>8} samples" for name, count in self.outputs.items()]
        lines.append(f"  {'total':<{width}}  {self.num_samples:>8} samples")
        if self.num_classes is not None:
            names = f" (names in {self.label_names_file})" if self.label_names_file else ""
            lines.append(f"  classes: {self.num_classes}{names}")
        if self.missing_videos:
            if self.skip_missing:
                action = f"dropped {self.dropped_samples} samples that use them (--skip-missing)"
            else:
                action = "kept; pass --skip-missing to drop their samples, or run `llamafactory-video check-data`"
            lines.append(f"  missing videos: {len(self.missing_videos)} ({action})")
            lines += [f"    {path}" for path in self.missing_videos[:MAX_LISTED_MISSING]]
            if len(self.missing_videos) > MAX_LISTED_MISSING:
                lines.append(f"    ... and {len(self.missing_videos) - MAX_LISTED_MISSING} more")
        else:
            lines.append("  missing videos: 0")
        lines += [f"  note: {note}" for note in self.notes]
        if self.registered:
            lines.append(f"  registered in {self.dataset_info}: {', '.join(self.registered)}")
        return "\n".join(lines)


def run_conversion(convert: Callable[..., "ConversionSummary"], *args: Any, **kwargs: Any) -> int:
    """What every ``scripts/prepare_*.py`` does with its parsed arguments: convert, print the summary, return 0;
    on a malformed input print the error (it names file:line) to stderr and return 1."""
    try:
        summary = convert(*args, **kwargs)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.to_text())
    return 0
