"""Collators of the plugin stages: the host's multimodal collator plus each stage's extra tensors."""

from dataclasses import dataclass
from typing import Any

import torch
from llamafactory.data.collator import MultiModalDataCollatorForSeq2Seq


META_COLUMNS = ("sample_index", "dataset_name", "problem")


@dataclass
class ActionClsDataCollator(MultiModalDataCollatorForSeq2Seq):
    r"""Adds ``action_labels`` ``(B,)`` to the host's batch (video pixels, grids, M-RoPE positions)."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        action_labels = []
        for feature in features:
            action_labels.append(int(feature.pop("action_label")))
            for key in META_COLUMNS:
                feature.pop(key, None)
        batch = super().__call__(features)
        batch["action_labels"] = torch.tensor(action_labels, dtype=torch.long)
        return batch


@dataclass
class ScstDataCollator(MultiModalDataCollatorForSeq2Seq):
    r"""The host's batch (left-padded for generation) plus ``references`` (list of lists of str), ``categories``
    and ``sample_keys`` (``"<dataset>#<index>"``, the reward scorer's cache keys). Strings stay Python lists: the
    Trainer moves only tensors to the device."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        references, categories, keys = [], [], []
        for feature in features:
            references.append(list(feature.pop("references")))
            categories.append(feature.pop("category", ""))
            keys.append(sample_key(feature.pop("dataset_name"), feature.pop("sample_index")))
            feature.pop("problem", None)
        batch = super().__call__(features)
        batch["references"] = references
        batch["categories"] = categories
        batch["sample_keys"] = keys
        return batch


def sample_key(dataset_name: str, sample_index: int) -> str:
    return f"{dataset_name}#{int(sample_index)}"
