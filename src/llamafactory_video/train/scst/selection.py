r"""``scst_keep_best: train_reward``: end SCST with the best policy seen, chosen without held-out data.

SCST on a small task moves a few borderline videos at each update, either way (docs/stages/scst.md, "Does it beat
XE?"). :class:`KeepBestPolicy` scores the policy's greedy captions of a fixed set of TRAINING videos (the first
``scst_keep_best_samples`` rows) with the training reward before the first update and after every epoch,
keeps a CPU copy of the trainable parameters of the best policy so far, and puts the best back at the end of
training, before the model is saved. A later policy replaces the kept one only when it scores strictly higher, so
a run that does not improve that score ends with its starting (XE) weights.

Logged: ``scst/keep_best/reward`` at each check and ``scst/keep_best/kept_epoch`` at the end (0 = the start).
"""

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.integrations import is_deepspeed_zero3_enabled

from ..._logging import get_logger


logger = get_logger(__name__)


def best_index(scores: Sequence[float]) -> int:
    r"""Index of the highest of ``scores`` (``(N,)``, in check order); ties go to the EARLIEST check (the starting
    policy first); NaN scores never win (all NaN: 0, the start)."""
    best: Optional[int] = None
    for i, score in enumerate(scores):
        if not np.isnan(score) and (best is None or score > scores[best]):
            best = i
    return 0 if best is None else best


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    r"""CPU copies of the trainable parameters of ``model`` (what training can change), by name."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    r"""Copy ``state`` (from :func:`snapshot`) back into the parameters of ``model``; every name must be there."""
    params = dict(model.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise KeyError(f"scst_keep_best: parameters {missing[:5]} of the kept policy are not in the model.")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


class KeepBestPolicy(TrainerCallback):
    r"""Callback of ``scst_keep_best: train_reward`` for :class:`~.trainer.ScstTrainer` (see the module doc)."""

    def __init__(self, trainer: Any, num_samples: int) -> None:
        if is_deepspeed_zero3_enabled() or getattr(trainer, "is_fsdp_enabled", False):
            raise ValueError(
                "`scst_keep_best: train_reward` keeps a copy of the whole trainable state, which ZeRO-3 / FSDP shard: "
                "train with LoRA under DDP, or set `scst_keep_best: none`."
            )
        self.trainer = trainer
        self.num_samples = num_samples
        self.scores: list[float] = []
        self.epochs: list[float] = []
        self.best: Optional[dict[str, torch.Tensor]] = None

    def _dataset(self) -> Any:
        dataset = self.trainer.train_dataset
        return dataset.select(range(min(self.num_samples, len(dataset))))

    def _check(self, epoch: float) -> None:
        trainer = self.trainer
        records = trainer.generate_captions(self._dataset(), "scst_keep_best")
        score = float(trainer.reward_report(records).get("reward", float("nan")))
        self.scores.append(score)
        self.epochs.append(epoch)
        if best_index(self.scores) == len(self.scores) - 1:
            self.best = snapshot(trainer.accelerator.unwrap_model(trainer.model))
        logger.info_rank0(f"scst_keep_best: greedy training reward {score:.4f} at epoch {epoch:g}.")
        trainer.log({"scst/keep_best/reward": score})

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:  # a resumed run has no starting policy to compare with
            self._check(0.0)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._check(float(round(state.epoch or 0.0, 4)))

    def on_train_end(self, args, state, control, **kwargs):
        if not self.scores or self.best is None:
            return
        index = best_index(self.scores)
        if index != len(self.scores) - 1:
            restore(self.trainer.accelerator.unwrap_model(self.trainer.model), self.best)
        logger.info_rank0(
            f"scst_keep_best: ending with the policy of epoch {self.epochs[index]:g} "
            f"(greedy training reward {self.scores[index]:.4f}; checks: "
            + ", ".join(f"{e:g}: {s:.4f}" for e, s in zip(self.epochs, self.scores))
            + ")."
        )
        state.log_history.append({"scst/keep_best/kept_epoch": self.epochs[index], "step": state.global_step})
