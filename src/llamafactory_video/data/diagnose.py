"""Turn ``datasets``' load errors into messages that name the file, the sample and the key.

``datasets`` builds one Arrow schema per JSON file: one string ``action_label`` among integers fails the whole
file with ``DatasetGenerationError: An error occurred while generating the dataset`` (the cause, deep in the
chain, names a column but no sample). :func:`explain_load_error` re-reads the files with the standard library and
points at the samples whose value type differs from the rest of the file.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Optional

MAX_LISTED = 20


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _kind(value: Any) -> Optional[str]:
    if value is None:
        return None  # Arrow fills nulls into any type
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def type_mismatches(records: list[Any]) -> list[tuple[int, str, str, str, Any]]:
    r"""``(sample index, key, its kind, the file's usual kind, value)`` for every top-level value whose JSON type
    differs from the most common type of that key in the file."""
    kinds: dict[str, Counter] = {}
    for record in records:
        if isinstance(record, dict):
            for key, value in record.items():
                kind = _kind(value)
                if kind is not None:
                    kinds.setdefault(key, Counter())[kind] += 1
    found = []
    for key, counter in kinds.items():
        if len(counter) < 2:
            continue
        usual = counter.most_common(1)[0][0]
        for index, record in enumerate(records):
            if isinstance(record, dict):
                kind = _kind(record.get(key))
                if kind is not None and kind != usual:
                    found.append((index, key, kind, usual, record.get(key)))
    return sorted(found)


def _files(dataset_dir: str, file_name: str) -> list[str]:
    path = os.path.join(dataset_dir, file_name)
    if os.path.isdir(path):
        return sorted(os.path.join(path, name) for name in os.listdir(path))
    return [path] if os.path.isfile(path) else []


def explain_load_error(
    err: BaseException, dataset_names: Optional[list[str]], dataset_dir: str
) -> Optional[Exception]:
    r"""A ``ValueError`` naming file, sample and key for a ``datasets`` schema error, else ``None`` (re-raise)."""
    if not dataset_names or not any(type(e).__name__ == "DatasetGenerationError" for e in _chain(err)):
        return None
    from llamafactory.data.parser import get_dataset_list

    from ..tools.check_data import DataReadError, read_records

    lines = []
    for attr in get_dataset_list(dataset_names, dataset_dir):
        if attr.load_from != "file":
            continue
        for file in _files(dataset_dir, attr.dataset_name):
            if os.path.splitext(file)[1] not in (".json", ".jsonl"):
                continue
            try:
                records = read_records(file)
            except (OSError, DataReadError) as read_err:
                lines.append(f"  - {file}: {read_err}")
                continue
            for index, key, kind, usual, value in type_mismatches(records):
                lines.append(
                    f"  - {file} sample {index}: key `{key}` is {kind} ({value!r:.60}) while the other samples of the "
                    f"file hold {usual}"
                )
    if not lines:
        return None
    cause = _chain(err)[-1]
    more = f"\n  ... and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return ValueError(
        f"Cannot load dataset(s) {', '.join(dataset_names)}: a column mixes value types, which `datasets` cannot "
        f"store ({type(cause).__name__}: {cause}):\n" + "\n".join(lines[:MAX_LISTED]) + more + "\n"
        "Give every sample the same type (e.g. `action_label` is an integer class index in every sample)."
    )
