"""Trainer of the ``action_cls`` stage.

Loss: cross-entropy of ``ActionDecoder(h_<ACTION>)`` (+ ``action_lm_loss_weight`` x the LM loss of the
answer). The backbone is asked for the vocabulary logits of ONE position (``logits_to_keep=1``) when
the LM loss is off, instead of every position as the seed's ``output_hidden_states`` route does.
"""

import json
import math
import os
from typing import Any, Optional

import numpy as np
import torch
from peft import PeftModel
from transformers import TrainerCallback
from typing_extensions import override

from ..._logging import get_logger
from ...losses import action_cls_loss, gather_token_hidden, scale_gradient
from ...metrics.classification import classification_report
from ...model.action_head import (
    HEAD_MODULE_NAME,
    get_action_head,
    head_state_dict_from,
    load_action_head_files,
    save_action_head,
)
from ..trainer_utils import HeadCheckpointMixin, VideoStageTrainer


logger = get_logger(__name__)

METRIC_PREFIX = "action_cls"


def forward_action_logits(
    model: torch.nn.Module,
    inputs: dict[str, Any],
    token_id: int,
    with_lm_loss: bool,
    backbone_grad_scale: float = 1.0,
):
    r"""``(class_logits (B, C), lm_loss or None)`` for a collated batch (``action_labels`` already popped).
    ``backbone_grad_scale`` scales the classification gradient that reaches the backbone (0 in the head warm-up)."""
    inputs = dict(inputs)
    if with_lm_loss:
        outputs = model(**inputs, output_hidden_states=True, return_dict=True, use_cache=False)
        lm_loss = outputs.loss
    else:
        inputs.pop("labels", None)
        outputs = model(**inputs, output_hidden_states=True, return_dict=True, use_cache=False, logits_to_keep=1)
        lm_loss = None
    hidden = gather_token_hidden(outputs.hidden_states[-1], inputs["input_ids"], token_id)
    return get_action_head(model)(scale_gradient(hidden, backbone_grad_scale)), lm_loss


class ComputeActionMetrics:
    r"""``compute_metrics`` for the Trainer: top-1 (``accuracy``), top-5, macro-F1; keeps the full report."""

    def __init__(self, num_classes: int, id2label: dict[int, str], per_class_limit: int = 32) -> None:
        self.num_classes = num_classes
        self.id2label = id2label
        self.per_class_limit = per_class_limit
        self.last_report: Optional[dict] = None

    def __call__(self, eval_preds) -> dict[str, float]:
        logits = np.asarray(eval_preds.predictions, dtype=np.float32)
        labels = np.asarray(eval_preds.label_ids).astype(np.int64)
        report = classification_report(logits, labels, self.num_classes, self.id2label)
        self.last_report = report
        metrics = {"accuracy": report["top1"], "top5_accuracy": report["top5"], "macro_f1": report["macro_f1"]}
        if self.num_classes <= self.per_class_limit:
            for name, acc in report["per_class_accuracy"].items():
                if acc is not None:
                    metrics[f"class_accuracy/{name}"] = acc
        return metrics


class DivergenceWatch(TrainerCallback):
    r"""Stops (or warns about) a run whose classifier diverged, instead of saving a chance-level model in silence.

    Reads the per-window means the trainer logs (``action_cls/loss_cls``, ``action_cls/accuracy``):

    - a non-finite loss: diverged at once;
    - collapsed: after the loss once fell below ``0.75 ln C``, ``patience`` consecutive windows with the loss at
      least ``0.95 ln C`` and the batch accuracy at most ``1.5 / C`` (a uniform or constant classifier).

    ``action="stop"`` raises :class:`TrainingDivergedError` (checkpoints already written stay), ``"warn"`` logs
    once and trains on. A held-out accuracy at chance after evaluation is always warned about.
    """

    def __init__(self, num_classes: int, action: str = "stop", patience: int = 3) -> None:
        self.num_classes = num_classes
        self.action = action
        self.patience = patience
        self.chance_loss = math.log(num_classes)
        self.best: Optional[tuple[float, int]] = None
        self.last: Optional[tuple[float, int]] = None
        self.at_chance: list[int] = []
        self.warned = False

    def _act(self, message: str, args) -> None:
        if self.action == "stop":
            raise TrainingDivergedError(
                message + f" The checkpoints written so far stay in {args.output_dir}. "
                "Set `action_divergence_check: warn` to train on regardless."
            )
        if not self.warned:
            logger.warning_rank0(message)
            self.warned = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss = logs.get(f"{METRIC_PREFIX}/loss_cls")
        if loss is None:
            return
        step, lr = state.global_step, logs.get("learning_rate")
        if not math.isfinite(loss):
            self._act(
                f"action_cls diverged: the classification loss is {loss} at step {step} (learning rate {lr}). "
                "Lower `learning_rate`, set `max_grad_norm: 1.0`, or raise `action_head_warmup_ratio`.",
                args,
            )
            return
        self.last = (loss, step)
        if self.best is None or loss < self.best[0]:
            self.best = (loss, step)
        accuracy = logs.get(f"{METRIC_PREFIX}/accuracy", 0.0)
        learned = self.best[0] < 0.75 * self.chance_loss
        if learned and loss >= 0.95 * self.chance_loss and accuracy <= 1.5 / self.num_classes:
            self.at_chance.append(step)
        else:
            self.at_chance = []
        if len(self.at_chance) >= self.patience:
            self._act(
                f"action_cls collapsed to chance: the classification loss reached {self.best[0]:.3f} at step "
                f"{self.best[1]}, then stayed at {loss:.3f} (ln {self.num_classes} = {self.chance_loss:.3f}, a "
                f"uniform classifier) with batch accuracy {accuracy:.3f} for {len(self.at_chance)} logging windows "
                f"(steps {self.at_chance[0]}-{self.at_chance[-1]}, learning rate {lr}). The learning rate is too high "
                "for this model: lower `learning_rate`, set `max_grad_norm: 1.0`, "
                "or raise `action_head_warmup_ratio`.",
                args,
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.last is not None and self.last[0] >= 0.95 * self.chance_loss:
            logger.warning_rank0(
                f"action_cls ended training at chance: the last logged classification loss is {self.last[0]:.3f} "
                f"(ln {self.num_classes} = {self.chance_loss:.3f}) at step {self.last[1]}. The model has not learned "
                "the task: check the labels, train longer, or change `learning_rate`."
            )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        accuracy = (metrics or {}).get("eval_accuracy")
        if accuracy is not None and accuracy <= 1.0 / self.num_classes + 1e-6 and state.global_step > 0:
            logger.warning_rank0(
                f"action_cls: held-out accuracy {accuracy:.3f} at step {state.global_step} is chance level "
                f"(1/{self.num_classes}). The model has not learned the task; see the training loss curve."
            )


class TrainingDivergedError(RuntimeError):
    r"""Raised by :class:`DivergenceWatch` with ``action_divergence_check: stop``."""


class ActionClsTrainer(HeadCheckpointMixin, VideoStageTrainer):
    metric_prefix = METRIC_PREFIX

    def __init__(self, finetuning_args: Any, head_config: Any, processor: Optional[Any] = None, **kwargs) -> None:
        super().__init__(finetuning_args, processor=processor, **kwargs)
        self.head_config = head_config
        self.action_token_id = get_action_head(self.model).token_embedding.token_id
        self.lm_weight = float(finetuning_args.action_lm_loss_weight)
        if finetuning_args.action_divergence_check != "off":
            self.add_callback(
                DivergenceWatch(
                    num_classes=head_config.num_classes,
                    action=finetuning_args.action_divergence_check,
                    patience=finetuning_args.action_divergence_patience,
                )
            )

    @property
    def head_warmup_steps(self) -> int:
        r"""Steps (of ``state.max_steps``, known once training starts) in which only the head learns."""
        return math.ceil(self.finetuning_args.action_head_warmup_ratio * max(self.state.max_steps or 0, 0))

    # ---------------------------------------------------------------- optimisation
    @override
    def create_optimizer(self, *args, **kwargs) -> torch.optim.Optimizer:
        optimizer = super().create_optimizer(*args, **kwargs)
        token_weight = get_action_head(self.model).token_embedding.weight
        if token_weight.requires_grad and not getattr(optimizer, "_action_token_group", False):
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if p is not token_weight]
            optimizer.add_param_group(
                {
                    "params": [token_weight],
                    "lr": self.args.learning_rate * self.finetuning_args.action_token_lr_scale,
                    "weight_decay": 0.0,
                }
            )
            optimizer._action_token_group = True
        return optimizer

    # ---------------------------------------------------------------- loss and metrics
    @override
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        inputs = dict(inputs)
        labels = inputs.pop("action_labels")
        warming_up = model.training and self.state.global_step < self.head_warmup_steps
        logits, lm_loss = forward_action_logits(
            model, inputs, self.action_token_id, self.lm_weight > 0, backbone_grad_scale=0.0 if warming_up else 1.0
        )
        cls_loss = action_cls_loss(logits, labels, self.finetuning_args.action_label_smoothing)
        loss = cls_loss if lm_loss is None else cls_loss + self.lm_weight * lm_loss

        if model.training:
            with torch.no_grad():
                self.record("loss_cls", cls_loss.item())
                self.record("accuracy", (logits.argmax(-1) == labels).float().mean().item())
                if lm_loss is not None:
                    self.record("loss_lm", lm_loss.item())
        return (loss, (logits, labels)) if return_outputs else loss

    @override
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, (logits, labels) = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), logits.detach().float(), labels.detach()

    # ---------------------------------------------------------------- saving and resuming
    @override
    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is None:
            head_state = get_action_head(self.model).state_dict()
            if not isinstance(self.model, PeftModel):
                state_dict = {k: v for k, v in self.model.state_dict().items() if HEAD_MODULE_NAME not in k.split(".")}
        else:
            head_state = head_state_dict_from(state_dict)
            state_dict = {k: v for k, v in state_dict.items() if HEAD_MODULE_NAME not in k.split(".")}
        super()._save(output_dir, state_dict=state_dict)
        save_action_head(output_dir, self.head_config, head_state)

    def _load_head(self, checkpoint_dir: str) -> None:
        _, state = load_action_head_files(checkpoint_dir)
        head = get_action_head(self.model)
        head.load_state_dict({k: v.to(head.token_embedding.weight.device) for k, v in state.items()})
        logger.info_rank0(f"Restored the action head and <ACTION> embedding from {checkpoint_dir}.")


def write_predictions(
    path: str, dataset: Any, logits: np.ndarray, labels: np.ndarray, id2label: dict[int, str]
) -> str:
    r"""JSONL: index, dataset, videos, label, prediction and top-5 (name, id, probability) per sample."""
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :5]
    name = lambda i: id2label.get(int(i), str(int(i)))  # noqa: E731
    with open(path, "w", encoding="utf-8") as f:
        for row, (sample_index, dataset_name, videos) in enumerate(
            zip(dataset["sample_index"], dataset["dataset_name"], dataset["videos"])
        ):
            prediction = int(order[row, 0])
            record = {
                "index": int(sample_index),
                "dataset": dataset_name,
                "videos": videos,
                "label": int(labels[row]),
                "label_name": name(labels[row]),
                "prediction": prediction,
                "prediction_name": name(prediction),
                "top5": [{"id": int(i), "label": name(i), "prob": round(float(probs[row, i]), 6)} for i in order[row]],
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def write_eval_report(output_dir: str, prefix: str, report: dict) -> list[str]:
    r"""``<prefix>_report.json`` (all metrics, per-class accuracy, confusion matrix) and
    ``<prefix>_confusion_matrix.png``."""
    from ...metrics.plots import plot_confusion_matrix

    json_path = os.path.join(output_dir, f"{prefix}_report.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    png_path = plot_confusion_matrix(
        report["confusion_matrix"],
        report["labels"],
        os.path.join(output_dir, f"{prefix}_confusion_matrix.png"),
        title=f"{prefix}: top-1 {report['top1']:.3f}, macro-F1 {report['macro_f1']:.3f}",
    )
    return [json_path, png_path]
