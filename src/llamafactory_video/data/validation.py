"""Stop (or skip and count) before training when processed samples carry a ``problem``."""

from typing import Any

from .._logging import get_logger


logger = get_logger(__name__)

MAX_LISTED = 20


DEFAULT_HINT = "Fix them, or set `action_invalid_samples: skip` to drop and count them."


def handle_problem_samples(dataset: Any, split: str, mode: str, dataset_dir: str, hint: str = DEFAULT_HINT) -> Any:
    r"""Raise a ``ValueError`` listing every bad sample (``mode='error'``), or drop them (``'skip'``)."""
    if dataset is None or "problem" not in dataset.column_names:
        return dataset
    problems = [
        (name, index, problem)
        for name, index, problem in zip(dataset["dataset_name"], dataset["sample_index"], dataset["problem"])
        if problem
    ]
    if not problems:
        return dataset

    by_dataset: dict[str, list[int]] = {}
    for name, index, _ in problems:
        by_dataset.setdefault(name, []).append(index)
    summary = "; ".join(f"`{name}`: indices {indices}" for name, indices in by_dataset.items())
    listed = "\n".join(
        f"  - dataset `{name}` sample {index}: {problem}" for name, index, problem in problems[:MAX_LISTED]
    )
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    if mode == "skip":
        logger.warning_rank0(
            f"Skipping {len(problems)} of {len(dataset)} {split} samples that cannot train ({summary}):\n"
            f"{listed}{more}"
        )
        return dataset.filter(
            lambda problem: not problem, input_columns="problem", desc=f"Dropping bad {split} samples"
        )
    raise ValueError(
        f"{len(problems)} of {len(dataset)} {split} samples cannot train (data in {dataset_dir}; {summary}):\n"
        f"{listed}{more}\n{hint}"
    )


def check_dataset_module(dataset_module: dict, mode: str, dataset_dir: str, hint: str = DEFAULT_HINT) -> dict:
    r"""Apply :func:`handle_problem_samples` to the train and eval splits (one dataset or a dict of them)."""
    for key in ("train_dataset", "eval_dataset"):
        split = dataset_module.get(key)
        if isinstance(split, dict):
            dataset_module[key] = {
                name: handle_problem_samples(ds, f"{key}[{name}]", mode, dataset_dir, hint)
                for name, ds in split.items()
            }
        elif split is not None:
            dataset_module[key] = handle_problem_samples(split, key.split("_")[0], mode, dataset_dir, hint)
    return dataset_module
