"""Carry ``dataset_info.json`` columns that LlamaFactory does not know through its converter.

The host's converters return only ``_prompt``, ``_response``, ``_system``, ``_tools``, ``_images``,
``_videos`` and ``_audios`` and drop every raw column. :class:`ExtraColumnConverter` wraps the host
converter and adds ``_<key>`` for each declared extra column, plus ``_sample_index`` (row number in
its file) and ``_dataset_name`` so later errors can name the sample.
"""

from typing import Any


class ExtraColumnConverter:
    def __init__(self, inner: Any, columns: dict[str, str], dataset_name: str) -> None:
        self.inner = inner
        self.columns = dict(columns)
        self.dataset_name = dataset_name

    def __call__(self, example: dict[str, Any], index: int) -> dict[str, Any]:
        output = self.inner(example)
        for key, column in self.columns.items():
            output[f"_{key}"] = example.get(column)
        output["_sample_index"] = index
        output["_dataset_name"] = self.dataset_name
        return output


def check_declared_columns(
    dataset_name: str, declared: dict[str, str], available: list[str], required: tuple[str, ...], stage: str
) -> None:
    r"""Fail before conversion when a required column is not declared or a declared one is not in the data."""
    for key in required:
        if key not in declared:
            raise ValueError(
                f"Dataset `{dataset_name}` is used with `stage: {stage}`, which needs the `{key}` column, but its "
                f'dataset_info.json entry does not declare it. Add "{key}": "<column name>" under its "columns".'
            )
    for key, column in declared.items():
        if column not in available:
            raise ValueError(
                f'Dataset `{dataset_name}` declares the column `{key}` as "{column}" in dataset_info.json, but its '
                f'data has no column "{column}" (columns: {", ".join(sorted(available))}). '
                "Fix the file or the declaration."
            )
