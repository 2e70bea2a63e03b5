r"""The degeneration watch: captions generated during training (SCST samples, or greedy captions of a few eval prompts
under XE) gathered over a logging window, their :mod:`~llamafactory_video.metrics.degeneration` metrics logged as
``<prefix>/degeneration/<name>``, and an optional threshold on the share of the most frequent two-word opening that
stops the run with a message naming the opening and the checkpoints to go back to."""

import os
import re
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Optional

from transformers import TrainerCallback

from .._logging import get_logger
from ..metrics.degeneration import degeneration_metrics, opening_message


logger = get_logger(__name__)


class DegenerationStop(RuntimeError):
    r"""Raised when the share of one two-word opening reaches the watch's threshold."""


def checkpoints_hint(output_dir: str) -> str:
    r"""Where the run's checkpoints are, for a stop message: the latest ``checkpoint-N`` in ``output_dir``."""
    found = []
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            match = re.fullmatch(r"checkpoint-(\d+)", name)
            if match and os.path.isdir(os.path.join(output_dir, name)):
                found.append((int(match.group(1)), name))
    if not found:
        return f"No checkpoint was saved in {output_dir} yet (set `save_steps` below the step it stopped at)"
    found.sort()
    listed = ", ".join(name for _, name in found[-3:])
    return f"Checkpoints in {output_dir}: {listed} (the last one before the collapse is a place to restart from)"


class DegenerationWindow:
    r"""Captions of one logging window. ``add`` during the window; ``flush`` at the log step returns the metrics
    (empty when nothing was added) and clears the window; with ``threshold`` set, a window of at least
    ``min_samples`` captions whose top two-word opening share is >= ``threshold`` raises :class:`DegenerationStop`
    from ``flush`` (after the metrics are handed to ``on_metrics``, so they are logged first)."""

    def __init__(self, prefix: str, threshold: Optional[float] = None, min_samples: int = 16) -> None:
        self.prefix = prefix
        self.threshold = threshold
        self.min_samples = min_samples
        self.captions: list[str] = []

    def add(self, captions: Sequence[str]) -> None:
        self.captions.extend(captions)

    def flush(self) -> tuple[dict[str, float], Optional[str]]:
        r"""``(metrics, stop_reason)``: ``{"<prefix>/degeneration/<name>": value}`` of the window and, when the
        threshold is reached, the reason (e.g. ``62% of samples start with "people are" (40 samples)``)."""
        captions, self.captions = self.captions, []
        if not captions:
            return {}, None
        values = degeneration_metrics(captions)
        metrics = {f"{self.prefix}/degeneration/{k}": round(float(v), 4) for k, v in values.items()}
        reason = None
        if (
            self.threshold is not None
            and len(captions) >= self.min_samples
            and values["opening_share"] >= self.threshold
        ):
            reason = opening_message(captions)
        return metrics, reason

    def stop(self, reason: str, step: int, output_dir: str, key: str) -> None:
        raise DegenerationStop(
            f"Degeneration watch: {reason} at step {step}, at or above `{key}: {self.threshold}`; stopping the run. "
            f"{checkpoints_hint(output_dir)}. Lower the learning rate, or raise / unset `{key}` to train on."
        )


# ---------------------------------------------------------------------------------------------------- XE (stock sft)
XE_PREFIX = "caption"
TENSORBOARD_RUN = "caption_degeneration"


def prompt_rows(dataset: Any, count: int, ignore_index: int = -100) -> list[dict[str, Any]]:
    r"""The first ``count`` rows of a tokenised sft dataset cut to their prompt: ``input_ids`` up to the first
    supervised label (the answer), ``labels`` all ignored, the media columns kept."""
    rows = []
    for index in range(min(count, len(dataset))):
        row = dict(dataset[index])
        labels = list(row["labels"])
        start = next((i for i, label in enumerate(labels) if label != ignore_index), len(labels))
        row["input_ids"] = list(row["input_ids"])[:start]
        row["attention_mask"] = [1] * start
        row["labels"] = [ignore_index] * start
        rows.append(row)
    return rows


NO_EVAL_MESSAGE = (
    "`caption_degeneration_watch` captions the first eval prompts at every evaluation, but this run never evaluates: "
    "add `eval_dataset` (or `val_size`) with `eval_strategy: steps` and `eval_steps: N`, or set "
    "`caption_degeneration_watch: off`."
)


class CaptionDegenerationCallback(TrainerCallback):
    r"""The degeneration watch for cross-entropy captioning with the stock ``sft`` stage
    (``caption_degeneration_watch: log | stop``; ``host/tuner.py`` installs it). At every evaluation, the first
    ``caption_degeneration_prompts`` eval samples are cut to their prompt and captioned greedily
    (``caption_degeneration_max_new_tokens``; special and placeholder tokens suppressed); their metrics are added to
    the evaluation's metrics and log entry as ``caption/degeneration/<name>``; with ``stop``, a top two-word opening
    share >= ``caption_degeneration_threshold`` stops the run naming it and the checkpoints."""

    def __init__(self, watch_args: Any) -> None:
        self.mode = watch_args.caption_degeneration_watch
        self.prompts = int(watch_args.caption_degeneration_prompts)
        self.max_new_tokens = int(watch_args.caption_degeneration_max_new_tokens)
        self.window = DegenerationWindow(
            XE_PREFIX,
            threshold=watch_args.caption_degeneration_threshold if self.mode == "stop" else None,
            min_samples=1,
        )
        self.last_captions: list[str] = []

    def on_train_begin(self, args, state, control, **kwargs):
        strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
        if strategy == "no":
            raise ValueError(NO_EVAL_MESSAGE)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        loader = kwargs.get("eval_dataloader")
        if loader is None or model is None or processing_class is None:
            return
        captions = self.generate(model, processing_class, loader)
        self.last_captions = captions
        self.window.add(captions)
        values, reason = self.window.flush()
        if metrics is not None:
            metrics.update(values)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            entry = state.log_history[-1]
            if any(key.startswith("eval_") for key in entry):
                entry.update(values)
        shown = "; ".join(repr(c) for c in captions[:3])
        logger.info_rank0(f"Degeneration watch at step {state.global_step}: {values} (e.g. {shown})")
        if state.is_world_process_zero and "tensorboard" in (args.report_to or []):
            self.to_tensorboard(args.output_dir, state.global_step, values, captions)
        if reason is not None:
            self.window.stop(reason, state.global_step, args.output_dir, "caption_degeneration_threshold")

    @staticmethod
    def to_tensorboard(output_dir: str, step: int, values: dict[str, float], captions: list[str]) -> None:
        r"""Scalars and the captions (a text table) under ``<output_dir>/runs/caption_degeneration``: a callback gets
        the evaluation's log after the reporting callbacks sent it, so the watch writes its own TensorBoard run."""
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=os.path.join(output_dir, "runs", TENSORBOARD_RUN))
        try:
            for key, value in values.items():
                writer.add_scalar(key, value, step)
            rows = "\n".join(f"| {i} | {c.replace('|', '/')} |" for i, c in enumerate(captions))
            writer.add_text(f"{XE_PREFIX}/degeneration/captions", "| prompt | caption |\n|---|---|\n" + rows, step)
        finally:
            writer.close()

    def generate(self, model: Any, tokenizer: Any, loader: Any) -> list[str]:
        import torch

        from ..train.scst.tokens import mm_token_type_ids, rope_needs_mm_token_types, suppressed_token_ids

        config = getattr(model, "config", None)
        image_id, video_id = getattr(config, "image_token_id", None), getattr(config, "video_token_id", None)
        use_types = rope_needs_mm_token_types(model) and (image_id is not None or video_id is not None)
        eos = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        eos = [i for i in eos if isinstance(i, int) and i != tokenizer.unk_token_id]
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        suppress = suppressed_token_ids(tokenizer, eos, None, config, getattr(text_config, "vocab_size", None))
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        captions = []
        try:
            for row in prompt_rows(loader.dataset, self.prompts):
                batch = loader.collate_fn([row])
                batch = {
                    k: v.to(device) if hasattr(v, "to") else v
                    for k, v in batch.items()
                    if k not in ("labels", "position_ids", "rope_deltas", "token_type_ids")
                }
                if use_types:
                    batch["mm_token_type_ids"] = mm_token_type_ids(batch["input_ids"], image_id, video_id)
                else:
                    batch.pop("mm_token_type_ids", None)
                with torch.no_grad():
                    out = model.generate(
                        **batch,
                        do_sample=False,
                        num_beams=1,
                        max_new_tokens=self.max_new_tokens,
                        eos_token_id=eos,
                        pad_token_id=tokenizer.pad_token_id,
                        suppress_tokens=suppress,
                    )
                text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
                captions.append(text.strip())
        finally:
            model.train(was_training)
        return captions


def watch_from_raw_args(raw: Any) -> Optional[CaptionDegenerationCallback]:
    r"""The XE watch for a stock stage's raw arguments (the YAML dict, or ``--key value`` list) when
    ``caption_degeneration_watch`` is ``log`` / ``stop``; None otherwise. The keys are checked by their dataclass."""
    from ..hparams import CaptionWatchArguments

    names = [f.name for f in fields(CaptionWatchArguments)]
    values: dict[str, Any] = {}
    eval_strategy: Any = "no"  # TrainingArguments' default
    if isinstance(raw, dict):
        values = {name: raw[name] for name in names if name in raw}
        eval_strategy = raw.get("eval_strategy", "no")
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            if item == "--eval_strategy" and i + 1 < len(raw):
                eval_strategy = raw[i + 1]
            elif isinstance(item, str) and item.startswith("--eval_strategy="):
                eval_strategy = item.split("=", 1)[1]
            for name in names:
                if item == f"--{name}" and i + 1 < len(raw):
                    values[name] = raw[i + 1]
                elif isinstance(item, str) and item.startswith(f"--{name}="):
                    values[name] = item.split("=", 1)[1]
        for name in names[1:]:
            if name in values:
                values[name] = float(values[name]) if "threshold" in name else int(values[name])
    watch = CaptionWatchArguments(**values)
    watch.validate()
    if watch.caption_degeneration_watch == "off":
        return None
    if str(eval_strategy) == "no":  # before the model and data load (on_train_begin checks it again)
        raise ValueError(NO_EVAL_MESSAGE)
    return CaptionDegenerationCallback(watch)
