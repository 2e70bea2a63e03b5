"""Rewards as small pure functions / deterministic scorers (tokenised captions in, numpy arrays out)."""

from .cider import CiderDScorer, bleu4

__all__ = ["CiderDScorer", "bleu4"]
