"""Data helpers of ``stage: sparc_align``: caption batching by video, the language mask, caption normalisation."""

import re
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np

# Words that name nothing one can point at in a frame (articles, prepositions, pronouns, auxiliaries, conjunctions
# and a few abstract words). `sparc_language_mask: true` drops their tokens from the local loss; they still feed the
# text encoder and the global loss. `sparc_stop_words: <file>` replaces this list (one word per line).
DEFAULT_STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "it",
        "its",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "has",
        "have",
        "had",
        "having",
        "do",
        "does",
        "did",
        "of",
        "in",
        "on",
        "at",
        "to",
        "from",
        "with",
        "by",
        "for",
        "over",
        "under",
        "into",
        "onto",
        "through",
        "between",
        "behind",
        "near",
        "about",
        "above",
        "below",
        "across",
        "along",
        "around",
        "against",
        "among",
        "upon",
        "within",
        "without",
        "toward",
        "towards",
        "off",
        "out",
        "up",
        "down",
        "via",
        "per",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "yet",
        "as",
        "than",
        "then",
        "while",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "why",
        "how",
        "if",
        "because",
        "although",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "they",
        "them",
        "their",
        "one",
        "ones",
        "some",
        "any",
        "each",
        "every",
        "all",
        "both",
        "either",
        "neither",
        "very",
        "just",
        "also",
        "too",
        "not",
        "no",
        "only",
        "really",
        "quite",
        "rather",
        "still",
        "already",
        "again",
        "ever",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
    ]
)

_WORD = re.compile(r"[A-Za-z0-9']+")


def load_stop_words(path: str | None) -> frozenset[str]:
    r"""The built-in list, or the words of ``path`` (one per line, ``#`` comments allowed), lower-cased."""
    if not path:
        return DEFAULT_STOP_WORDS
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            word = line.split("#", 1)[0].strip().lower()
            if word:
                words.append(word)
    return frozenset(words)


def visual_token_mask(text: str, offsets: Sequence[tuple[int, int]], stop_words: frozenset[str]) -> list[int]:
    r"""1 for tokens that belong to a content word of ``text``, 0 for stop words, punctuation and special tokens.

    Args:
        text: the caption.
        offsets: ``(start, end)`` character span of each token (a fast tokenizer's ``offset_mapping``); special
            tokens have an empty span.
        stop_words: lower-cased words to drop.
    """
    words = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    mask = []
    for start, end in offsets:
        keep = 0
        if end > start:
            for w_start, w_end, word in words:
                if w_start < end and start < w_end:  # token overlaps this word
                    keep = int(word not in stop_words)
                    break
        mask.append(keep)
    return mask


def normalise_captions(value: Any) -> tuple[list[str], str]:
    r"""``(captions, problem)``: a caption or a list of captions, blank ones dropped; ``problem`` when none is left."""
    if value is None:
        return [], "no caption (declare a `captions` column, or give each row an assistant answer / `output`)"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return [], f"captions is {type(value).__name__}, not a string or a list of strings"
    captions = [c.strip() for c in value if isinstance(c, str) and c.strip()]
    if not captions:
        return [], "empty caption list in `captions` (each video needs at least one non-blank caption)"
    return captions, ""


def caption_batches(groups: Sequence[Hashable], batch_size: int, mode: str, seed: int = 0) -> list[list[int]]:
    r"""Order captions into batches by the video (``groups[i]``) they describe.

    * ``random``: a plain shuffle.
    * ``group``: the seed's dataloader fix (section 1.4, option 1): all captions of a video are placed next to each
      other (videos in random order), so a video's captions mostly share a batch and the multi-positive loss sees
      them together.
    * ``separate``: no batch holds two captions of one video while at least ``batch_size`` videos still have
      captions left (the plain InfoNCE then never treats a caption of the right video as a negative).

    Returns:
        batches of dataset indices; every index appears exactly once and every batch but the last few has
        ``batch_size`` items.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    rng = np.random.default_rng(seed)
    n = len(groups)
    if mode == "random":
        order = rng.permutation(n).tolist()
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    by_group: dict[Hashable, list[int]] = {}
    for index, key in enumerate(groups):
        by_group.setdefault(key, []).append(index)
    members = [list(rng.permutation(idx)) for idx in by_group.values()]
    members = [members[i] for i in rng.permutation(len(members))]
    if mode == "group":
        order = [int(i) for idx in members for i in idx]
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if mode != "separate":
        raise ValueError(f"unknown caption batching mode {mode!r}: use random, group or separate")

    batches: list[list[int]] = []
    pools = [idx for idx in members if idx]
    while pools:
        if len(pools) < batch_size:  # too few videos left to keep captions apart: the rest, in order
            rest = [int(i) for pool in pools for i in pool]
            batches.extend(rest[i : i + batch_size] for i in range(0, len(rest), batch_size))
            break
        # the videos with the most captions left first (random tie-break), one caption each
        ranking = sorted(range(len(pools)), key=lambda g: (-len(pools[g]), rng.random()))[:batch_size]
        batches.append([int(pools[g].pop()) for g in ranking])
        pools = [pool for pool in pools if pool]
    return batches


class CaptionBatchSampler:
    r"""A ``torch`` sampler yielding dataset indices in :func:`caption_batches` order (a new shuffle per epoch).

    Used as the Trainer's train sampler with the DataLoader's own ``batch_size``: the batches line up because
    every batch but the trailing ones is full.
    """

    def __init__(self, groups: Sequence[Hashable], batch_size: int, mode: str, seed: int = 0) -> None:
        self.groups = list(groups)
        self.batch_size = batch_size
        self.mode = mode
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        batches = caption_batches(self.groups, self.batch_size, self.mode, seed=self.seed + 1000003 * self.epoch)
        self.epoch += 1
        for batch in batches:
            yield from batch

    def __len__(self) -> int:
        return len(self.groups)
