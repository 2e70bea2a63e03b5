r"""The degeneration watch: captions generated during training (SCST samples, or greedy captions of a few eval prompts
under XE) gathered over a logging window, their :mod:`~llamafactory_video.metrics.degeneration` metrics logged as
``<prefix>/degeneration/<name>``, and an optional threshold on the share of the most frequent two-word opening that
stops the run with a message naming the opening and the checkpoints to go back to."""

import os
import re
from collections.abc import Sequence
from typing import Optional

from ..metrics.degeneration import degeneration_metrics, opening_message


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
        return f"no checkpoint was saved in {output_dir} yet (set `save_steps` below the step it stopped at)"
    found.sort()
    listed = ", ".join(name for _, name in found[-3:])
    return f"checkpoints in {output_dir}: {listed} (the last one before the collapse is a place to restart from)"


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
