"""The row every plugin processor emits: the host's columns, the stage's own, and where the sample came from."""

from typing import Any


def append_row(
    model_inputs: dict[str, list[Any]],
    examples: dict[str, list[Any]],
    i: int,
    input_ids: list[int],
    labels: list[int],
    problem: str,
    **stage_columns: Any,
) -> None:
    r"""Append sample ``i``: ``input_ids``, ``attention_mask``, ``labels``, its media, ``stage_columns``, and
    ``sample_index`` / ``dataset_name`` / ``problem`` (empty when the sample can train) for the check that runs
    before training."""
    model_inputs["input_ids"].append(input_ids)
    model_inputs["attention_mask"].append([1] * len(input_ids))
    model_inputs["labels"].append(labels)
    for media in ("images", "videos", "audios"):
        model_inputs[media].append(examples[f"_{media}"][i])
    for key, value in stage_columns.items():
        model_inputs[key].append(value)
    model_inputs["sample_index"].append(examples["_sample_index"][i])
    model_inputs["dataset_name"].append(examples["_dataset_name"][i])
    model_inputs["problem"].append(problem)
