"""Class names for classification datasets (``id2label``)."""

import json
import os
from typing import Optional


def read_label_names(path: str) -> list[str]:
    r"""A JSON list of names, a JSON ``{index: name}`` object, or a text file with one name per line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Label-names file `{path}` does not exist.")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, dict):
            data = [data[key] for key in sorted(data, key=lambda k: int(k))]
        if not isinstance(data, list) or not all(isinstance(name, str) for name in data):
            raise ValueError(
                f"Label-names file `{path}` must hold a JSON list of strings or an {{index: name}} object."
            )
        return data
    return [line.strip() for line in text.splitlines() if line.strip()]


def resolve_label_names(
    explicit: Optional[str], dataset_dir: str, declared: list[Optional[str]]
) -> Optional[list[str]]:
    r"""``explicit`` (a path) wins; else the first ``label_names`` a dataset declares (relative to ``dataset_dir``)."""
    if explicit:
        return read_label_names(explicit)
    for path in declared:
        if path:
            return read_label_names(path if os.path.isabs(path) else os.path.join(dataset_dir, path))
    return None
