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
