"""The ``scst`` trainer's objective pieces: advantages per baseline, the rollout kept for PPO-style updates, the
sampler that draws each batch ``scst_updates_per_batch`` times in a row, and the KL reference model.

The maths is in :mod:`llamafactory_video.losses.scst` and :mod:`llamafactory_video.losses.scst_objectives`
(pure functions, unit-tested); this module only wires them to the trainer.
"""

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch.utils.data import Sampler

from ...losses.scst import mean_of_others_baseline
from ...losses.scst_objectives import group_normalized_advantages


def advantages_for(baseline: str, rewards: torch.Tensor, baseline_rewards: Optional[torch.Tensor]) -> torch.Tensor:
    r"""``(B*K,)`` advantages of ``rewards`` ``(B, K)``: ``r - b`` with ``b`` the greedy / beam reward
    (``baseline_rewards`` ``(B,)``) or the mean of the other samples (``mean``), or GRPO's group-normalised
    ``(r - mean) / (std + eps)`` (``grpo``)."""
    batch, k = rewards.shape
    if baseline == "mean":
        return (rewards - mean_of_others_baseline(rewards)).flatten()
    if baseline == "grpo":
        groups = torch.arange(batch).repeat_interleave(k)
        return group_normalized_advantages(rewards.flatten(), groups)
    if baseline_rewards is None:
        raise ValueError(f"the `{baseline}` baseline needs the baseline captions' rewards")
    return (rewards - baseline_rewards.view(batch, 1)).flatten()


@dataclass
class Rollout:
    r"""What one sampling pass leaves for the updates on the same batch."""

    sampled: torch.Tensor
    """``(B*K, G)`` sampled tokens."""
    mask: torch.Tensor
    """``(B*K, G)`` caption-token mask."""
    advantages: torch.Tensor
    """``(B*K,)``."""
    old_logprobs: Optional[torch.Tensor] = None
    """``(B*K, G)`` log-probs of the sampled tokens under the sampling parameters (set by the first update)."""
    uses: int = 0


@dataclass
class RolloutCache:
    r"""Rollouts by batch (its sample keys), each dropped after ``updates`` uses."""

    updates: int
    store: dict[tuple, Rollout] = field(default_factory=dict)

    def take(self, keys: Sequence[Any]) -> Optional[Rollout]:
        rollout = self.store.get(tuple(keys))
        if rollout is not None:
            rollout.uses += 1
            if rollout.uses >= self.updates:
                del self.store[tuple(keys)]
        return rollout

    def put(self, keys: Sequence[Any], rollout: Rollout) -> None:
        rollout.uses = 1
        if self.updates > 1:
            self.store[tuple(keys)] = rollout


class RepeatedChunkSampler(Sampler[int]):
    r"""A random order of the dataset cut into chunks of ``chunk`` indices (one optimizer step over all ranks:
    per-device batch x ranks x gradient accumulation), each chunk yielded ``repeats`` times in a row, so every
    rank sees its micro-batches of one step again at the next ``repeats - 1`` steps. The order changes at each
    pass (seed + pass number), identically on every rank."""

    def __init__(self, size: int, chunk: int, repeats: int, seed: int) -> None:
        self.size, self.chunk, self.repeats, self.seed = size, max(1, chunk), repeats, seed
        self.passes = 0

    def __len__(self) -> int:
        return self.size * self.repeats

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.passes)
        self.passes += 1
        order = torch.randperm(self.size, generator=generator).tolist()
        for start in range(0, self.size, self.chunk):
            part = order[start : start + self.chunk]
            for _ in range(self.repeats):
                yield from part


def resolve_kl_reference(kind: str, model: Any) -> str:
    r"""``base`` or ``frozen_copy`` for ``scst_kl_reference`` (``auto``: base under LoRA / a PEFT adapter)."""
    is_peft = hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
    if kind == "auto":
        return "base" if is_peft else "frozen_copy"
    if kind == "base" and not is_peft:
        raise ValueError(
            "`scst_kl_reference: base` disables the LoRA adapter to get the base model, but this model has no "
            "adapter (finetuning_type is not lora): use `frozen_copy` (or `auto`)."
        )
    return kind


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    r"""A frozen copy of the starting model (eval mode, no gradient), the KL reference of ``frozen_copy``."""
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref
