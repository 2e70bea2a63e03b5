"""Caption rewards of the ``scst`` stage: a weighted mix of CIDEr-D and BLEU-4, minus a length penalty."""

from collections.abc import Hashable, Sequence

import numpy as np

from ..metrics.captions import tokenize
from .cider import CiderDScorer, bleu4


def length_penalty(captions: Sequence[str], coefficient: float, target_words: int) -> np.ndarray:
    r"""``coefficient * |words - target_words|`` per (tokenised) caption, ``(N,)``; subtracted from the reward."""
    words = np.array([len(caption.split()) for caption in captions], dtype=np.float64)
    return coefficient * np.abs(words - target_words)


class CaptionReward:
    r"""``reward = sum_m w_m * metric_m(caption, ALL references) - c * |words - target|``.

    CIDEr-D uses document frequencies computed ONCE over the training references (``scorer``, built with
    ``tokenize``), identical on every rank because every rank builds it from the same dataset. Both metrics are
    always computed (they are logged); ``weights`` decides what the reward is made of.
    """

    def __init__(
        self, scorer: CiderDScorer, weights: dict[str, float], length_coefficient: float = 0.0, target_words: int = 32
    ) -> None:
        self.scorer = scorer
        self.weights = dict(weights)
        self.length_coefficient = length_coefficient
        self.target_words = target_words

    def __call__(
        self, captions: Sequence[str], keys: Sequence[Hashable], references: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r"""``(rewards (N,), {"cider_d": (N,), "bleu_4": (N,)})`` for N captions with their video keys/references."""
        for key, refs in zip(keys, references):
            if key not in self.scorer:  # eval videos, or keys the corpus did not cover: df stays the training one
                self.scorer.add_references(key, list(refs))
        tokenized = [tokenize(caption) for caption in captions]
        components = {
            "cider_d": np.asarray(self.scorer.score(list(captions), list(keys)), dtype=np.float64),
            "bleu_4": np.asarray(
                bleu4(tokenized, [[tokenize(r) for r in refs] for refs in references]), dtype=np.float64
            ),
        }
        reward = np.zeros(len(captions), dtype=np.float64)
        for name, weight in self.weights.items():
            reward = reward + weight * components[name]
        if self.length_coefficient:
            reward = reward - length_penalty(tokenized, self.length_coefficient, self.target_words)
        return reward, components
