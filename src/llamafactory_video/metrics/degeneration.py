r"""Degeneration of generated captions: the same opening over and over ("people are ..."), a shrinking vocabulary,
loops. Pure functions over a window of captions (a list of ``N`` strings), no model, no state; standard library only.

Words: a caption is lower-cased and split into runs of letters / digits / apostrophes (:func:`caption_words`), so
"People are dancing." and "people are dancing" are the same three words. Definitions, over a window of ``N`` captions
``c_1 .. c_N`` with words ``w_i = (w_{i,1} .. w_{i,L_i})``:

* opening share (:func:`top_opening`): the most frequent tuple of the first ``n`` words (``n = 2``) among captions
  with at least ``n`` words, and ``#{i : w_{i,1..n} = that tuple} / N`` (shorter captions count in ``N`` only);
* distinct-n (:func:`distinct_n`): ``|{distinct n-grams of the window}| / #{n-gram occurrences in the window}``
  (Li et al., 2016), pooled over the window; 1.0 when no caption has ``n`` words;
* repeated n-gram share (:func:`repeated_ngram_share`): of all n-gram occurrences (``n = 3``), the share that repeats
  an n-gram already seen EARLIER IN THE SAME caption: ``sum_i (#occurrences_i - #distinct_i) / sum_i #occurrences_i``;
  0.0 when no caption has ``n`` words.
"""

import re
from collections import Counter
from collections.abc import Sequence
from typing import Optional


WORD = re.compile(r"[a-z0-9']+")
OPENING_WORDS = 2
REPEAT_N = 3


def caption_words(caption: str) -> list[str]:
    r"""Lower-cased words of ``caption``: runs of ``[a-z0-9']`` (punctuation dropped)."""
    return WORD.findall(caption.lower())


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def top_opening(captions: Sequence[str], n: int = OPENING_WORDS) -> tuple[float, Optional[str]]:
    r"""``(share, opening)``: the most frequent first-``n``-words opening of the ``N`` captions and the fraction of
    the ``N`` captions that start with it (a float in [0, 1]); ``(0.0, None)`` when no caption has ``n`` words.
    Ties go to the opening seen first."""
    if not captions:
        return 0.0, None
    openings = [tuple(words[:n]) for words in map(caption_words, captions) if len(words) >= n]
    if not openings:
        return 0.0, None
    opening, count = Counter(openings).most_common(1)[0]
    return count / len(captions), " ".join(opening)


def distinct_n(captions: Sequence[str], n: int) -> float:
    r"""distinct-n of the window: distinct n-grams / n-gram occurrences, pooled over the ``N`` captions (a float in
    (0, 1]; 1.0 when there is no n-gram)."""
    grams = [gram for caption in captions for gram in _ngrams(caption_words(caption), n)]
    return len(set(grams)) / len(grams) if grams else 1.0


def repeated_ngram_share(captions: Sequence[str], n: int = REPEAT_N) -> float:
    r"""Share of the window's n-gram occurrences that repeat an n-gram seen earlier in the same caption (a float in
    [0, 1); 0.0 when there is no n-gram). "a man is a man is a man" has 6 trigrams, 3 distinct: 3/6."""
    total = repeats = 0
    for caption in captions:
        grams = _ngrams(caption_words(caption), n)
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return repeats / total if total else 0.0


def degeneration_metrics(captions: Sequence[str]) -> dict[str, float]:
    r"""The watch's metrics of a window of captions: ``opening_share`` (:func:`top_opening`, first two words),
    ``distinct_1``, ``distinct_2``, ``repeated_3gram_share`` and ``num_samples`` (N)."""
    share, _ = top_opening(captions, OPENING_WORDS)
    return {
        "opening_share": share,
        "distinct_1": distinct_n(captions, 1),
        "distinct_2": distinct_n(captions, 2),
        "repeated_3gram_share": repeated_ngram_share(captions, REPEAT_N),
        "num_samples": float(len(captions)),
    }


def opening_message(captions: Sequence[str]) -> str:
    r"""``'62% of samples start with "people are"'`` for a window (the watch's stop message)."""
    share, opening = top_opening(captions, OPENING_WORDS)
    if opening is None:
        return f"no sample of {len(captions)} has {OPENING_WORDS} words"
    return f'{round(100 * share)}% of samples start with "{opening}" ({len(captions)} samples)'
