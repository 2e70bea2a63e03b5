r"""What the SCST policy samples, made visible while it trains (seed 000: "keep sample_text, watch people are ...").

:class:`ScstSampleMonitor` is fed by the trainer's ``compute_loss`` (one call per micro-batch) and does two things:

* **Sample log** (``scst_sample_log_steps`` N > 0): at every N-th optimizer step, up to ``scst_sample_log_videos``
  videos of rank 0 are written to ``<output_dir>/scst_samples.jsonl``, one JSON object per video and step::

      {"step": 20, "video": "msrvtt_train:17", "references": ["..."],
       "baseline": {"type": "greedy", "caption": "...", "reward": 1.02},      # null with scst_baseline: mean
       "samples": [{"caption": "...", "reward": 1.31, "advantage": 0.29, "cider_d": 1.7, "bleu_4": 0.4}, ...]}

  Each line is flushed and fsync'ed when written, so a crash loses nothing already logged; a run resumed from
  ``checkpoint-S`` first drops the lines of steps after S (they are trained again) and then appends. The file belongs
  to the run that writes it (``artifacts.py``). The same rows go to the reporter at the end of the step: a markdown
  table under the TensorBoard text tag ``scst/samples`` and a ``wandb.Table`` when those are in ``report_to``.
* **Degeneration watch**: every caption sampled during a logging window feeds
  :class:`~llamafactory_video.callbacks.degeneration.DegenerationWindow`; its metrics are logged as
  ``scst/degeneration/{opening_share,distinct_1,distinct_2,repeated_3gram_share,num_samples}`` (captions of all
  ranks gathered), and ``scst_degeneration_threshold`` stops the run (on every rank) when one two-word opening
  takes that share of a window of at least ``scst_degeneration_min_samples`` samples.
"""

import json
import os
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
from transformers import TrainerCallback

from ..._logging import get_logger
from ...callbacks.degeneration import DegenerationWindow


logger = get_logger(__name__)

SAMPLES_FILE = "scst_samples.jsonl"
TEXT_TAG = "scst/samples"


def sample_records(
    step: int,
    keys: Sequence[Any],
    references: Sequence[Sequence[str]],
    captions: Sequence[str],
    rewards: np.ndarray,
    advantages: np.ndarray,
    parts: dict[str, Any],
    baseline_type: str,
    baseline_captions: Optional[Sequence[str]] = None,
    baseline_rewards: Optional[Sequence[float]] = None,
    max_videos: Optional[int] = None,
) -> list[dict[str, Any]]:
    r"""One record per video (the JSONL format above). ``captions`` has ``B*K`` entries, sample-major (video ``i``'s
    samples at ``i*K .. i*K+K-1``); ``rewards`` / ``advantages`` are ``(B, K)``; ``parts`` maps a reward name to
    ``B*K`` values; ``baseline_captions`` / ``baseline_rewards`` have ``B`` entries (None for ``mean``)."""
    rewards = np.asarray(rewards, dtype=float)
    advantages = np.asarray(advantages, dtype=float)
    batch, k = rewards.shape
    records = []
    for i in range(batch if max_videos is None else min(batch, max_videos)):
        samples = []
        for j in range(k):
            entry = {
                "caption": captions[i * k + j],
                "reward": round(float(rewards[i, j]), 4),
                "advantage": round(float(advantages[i, j]), 4),
            }
            for name, values in parts.items():
                entry[name] = round(float(np.asarray(values, dtype=float).reshape(-1)[i * k + j]), 4)
            samples.append(entry)
        baseline = None
        if baseline_captions is not None:
            reward = None if baseline_rewards is None else round(float(baseline_rewards[i]), 4)
            baseline = {"type": baseline_type, "caption": baseline_captions[i], "reward": reward}
        records.append(
            {
                "step": int(step),
                "video": str(keys[i]),
                "references": list(references[i]),
                "baseline": baseline,
                "samples": samples,
            }
        )
    return records


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    r"""The rows of one step as a markdown table (video, kind, caption, reward, advantage), TensorBoard's text tab."""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| video | kind | caption | reward | advantage |", "|---|---|---|---|---|"]
    for record in records:
        video = cell(record["video"])
        if record["baseline"] is not None:
            b = record["baseline"]
            lines.append(f"| {video} | {b['type']} | {cell(b['caption'])} | {b['reward']} | |")
        for s in record["samples"]:
            lines.append(f"| {video} | sample | {cell(s['caption'])} | {s['reward']} | {s['advantage']} |")
        reference = record["references"][0] if record["references"] else ""
        lines.append(f"| {video} | reference | {cell(reference)} | | |")
    return "\n".join(lines)


def truncate_after(path: str, step: int) -> int:
    r"""Keep the lines of ``path`` whose ``step`` is <= ``step`` (rewritten atomically); returns how many were
    dropped. A torn last line (a crash mid-write) is dropped too."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                dropped += 1
                continue
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
            else:
                dropped += 1
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return dropped


class ScstSampleMonitor(TrainerCallback):
    r"""Sample log + degeneration watch of one SCST trainer (see the module docstring)."""

    def __init__(self, trainer: Any, finetuning_args: Any) -> None:
        self.trainer = trainer
        self.log_steps = int(getattr(finetuning_args, "scst_sample_log_steps", 0) or 0)
        self.max_videos = int(getattr(finetuning_args, "scst_sample_log_videos", 4))
        self.baseline_type = str(finetuning_args.scst_baseline)
        self.window = DegenerationWindow(
            "scst",
            threshold=getattr(finetuning_args, "scst_degeneration_threshold", None),
            min_samples=int(getattr(finetuning_args, "scst_degeneration_min_samples", 16)),
        )
        self.path = os.path.join(trainer.args.output_dir, SAMPLES_FILE)
        self.logged: dict[int, int] = {}  # step -> videos written
        self.pending: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ fed by compute_loss
    def observe(
        self,
        step: int,
        keys: Sequence[Any],
        references: Sequence[Sequence[str]],
        captions: Sequence[str],
        rewards: Any,
        advantages: Any,
        parts: dict[str, Any],
        baseline_captions: Optional[Sequence[str]] = None,
        baseline_rewards: Any = None,
    ) -> None:
        r"""One micro-batch: ``captions`` ``B*K`` (sample-major), ``rewards`` and ``advantages`` ``(B, K)`` tensors or
        arrays (the advantages the loss uses: ``r - b``, or GRPO's normalised ones), ``parts`` reward name ->
        ``B*K`` values, ``baseline_captions`` ``B`` (greedy / beam) or None and their rewards ``baseline_rewards``
        ``(B,)``."""
        self.window.add(captions)
        if self.log_steps <= 0 or step % self.log_steps != 0 or not self.trainer.is_world_process_zero():
            return
        room = self.max_videos - self.logged.get(step, 0)
        if room <= 0:
            return
        rewards = np.asarray(rewards, dtype=float)
        advantages = np.asarray(advantages, dtype=float)
        base_rewards = np.asarray(baseline_rewards, dtype=float) if baseline_rewards is not None else None
        records = sample_records(
            step, keys, references, captions, rewards, advantages, parts, self.baseline_type,
            baseline_captions, base_rewards, max_videos=room,
        )
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.logged[step] = self.logged.get(step, 0) + len(records)
        self.pending.extend(records)

    # ------------------------------------------------------------------ called from the trainer's log()
    def window_metrics(self) -> tuple[dict[str, float], Optional[str]]:
        r"""Metrics of the window (captions of every rank) and the stop reason, the same on every rank."""
        if self.trainer.args.world_size > 1:
            from accelerate.utils import gather_object

            self.window.captions = list(gather_object(self.window.captions))
        return self.window.flush()

    def stop(self, reason: str) -> None:
        self.window.stop(
            reason, self.trainer.state.global_step, self.trainer.args.output_dir, "scst_degeneration_threshold"
        )

    # ------------------------------------------------------------------ callback events
    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0 and os.path.isfile(self.path):
            dropped = truncate_after(self.path, state.global_step)
            logger.info_rank0(
                f"Resuming at step {state.global_step}: {self.path} keeps its earlier lines"
                + (f", {dropped} line(s) of later steps dropped (trained again)." if dropped else ".")
            )

    def on_step_end(self, args, state, control, **kwargs):
        if not self.pending:
            return
        records, self.pending = self.pending, []
        table = markdown_table(records)
        for callback in self.trainer.callback_handler.callbacks:
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                writer.add_text(TEXT_TAG, table, state.global_step)
                writer.flush()
        if "wandb" in (args.report_to or []):
            try:
                import wandb
            except ImportError:
                return
            if wandb.run is not None:
                rows = [
                    [state.global_step, r["video"], s["caption"], s["reward"], s["advantage"],
                     (r["baseline"] or {}).get("caption"), r["references"][0] if r["references"] else ""]
                    for r in records
                    for s in r["samples"]
                ]
                columns = ["step", "video", "caption", "reward", "advantage", "baseline", "reference"]
                wandb.log({TEXT_TAG: wandb.Table(columns=columns, data=rows)}, commit=False)
