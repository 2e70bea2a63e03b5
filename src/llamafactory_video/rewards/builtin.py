"""Built-in rewards of the ``scst`` stage, each a pure function of the completions and the sample's columns.

Every reward follows the user-reward signature of :mod:`llamafactory_video.rewards.registry`::

    fn(completions: list[str], references: list[list[str]], **columns) -> sequence of N floats

``completions`` are the N decoded captions / answers, ``references[i]`` all reference captions (or answers) of
completion ``i``'s sample, ``columns`` the sample's other columns, one list of N values per column
(``sample_keys``, ``category``, ...). The caption metrics tokenise both sides with
:func:`llamafactory_video.metrics.captions.tokenize` (pycocoevalcap's PTB rules), as the evaluation does.
"""

import re
import string
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..metrics.captions import bleu, meteor, rouge_l, tokenize


def _check_lengths(completions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(completions) != len(references):
        raise ValueError(f"{len(completions)} completions but {len(references)} reference lists")


def bleu_n(completions: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, **_: Any) -> np.ndarray:
    r"""Per-sentence BLEU-``n`` (pycocoevalcap's smoothing), float64 ``(N,)`` in ``[0, 1]``."""
    _check_lengths(completions, references)
    if not completions:
        return np.zeros(0)
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(c)] for i, c in enumerate(completions)}
    return bleu(gts, res, n)[1][n - 1].copy()


def rouge_l_reward(completions: Sequence[str], references: Sequence[Sequence[str]], **_: Any) -> np.ndarray:
    r"""Per-sentence ROUGE-L (F-measure with :math:`\beta = 1.2`, max over references), float64 ``(N,)``."""
    _check_lengths(completions, references)
    if not completions:
        return np.zeros(0)
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(c)] for i, c in enumerate(completions)}
    return rouge_l(gts, res)[1]


def meteor_reward(completions: Sequence[str], references: Sequence[Sequence[str]], **_: Any) -> np.ndarray:
    r"""Per-sentence METEOR 1.5 (the pycocoevalcap jar; needs Java), float64 ``(N,)``."""
    _check_lengths(completions, references)
    if not completions:
        return np.zeros(0)
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(c)] for i, c in enumerate(completions)}
    return meteor(gts, res)[1]


def length_reward(completions: Sequence[str], target: int = 32, slope: float = 0.01, **_: Any) -> np.ndarray:
    r"""The seed's length penalty ``-slope * |words - target|`` (words of the tokenised caption), ``(N,)``."""
    words = np.array([len(tokenize(c).split()) for c in completions], dtype=np.float64)
    return -slope * np.abs(words - target)


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    r"""Lower case, punctuation and the articles a / an / the removed, whitespace collapsed (SQuAD's rule)."""
    text = _PUNCT.sub(" ", text.lower())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)


def answer_span(completion: str) -> str:
    r"""The text inside the last ``<answer>...</answer>`` of a completion, or the whole completion."""
    found = _ANSWER_TAG.findall(completion)
    return found[-1] if found else completion


def exact_match(
    completions: Sequence[str], references: Sequence[Sequence[str]], answer: Optional[Sequence[str]] = None, **_: Any
) -> np.ndarray:
    r"""1 when the (normalised, ``<answer>``-tag aware) completion equals a normalised reference or the
    ``answer`` column's value, else 0."""
    _check_lengths(completions, references)
    out = np.zeros(len(completions))
    for i, (completion, refs) in enumerate(zip(completions, references)):
        given = normalize_answer(answer_span(completion))
        right = list(refs) + ([answer[i]] if answer is not None and answer[i] else [])
        out[i] = float(any(given == normalize_answer(r) for r in right))
    return out


_ONLY_LETTER = re.compile(r"\(?([A-Z])\)?[.:)]?")
_LEADING_LETTER = re.compile(r"\(([A-Z])\)|([A-Z])[.:)](?:\s|$)")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)?\s*:?\s*\(?([A-Z])\)?(?![A-Za-z])", re.I)


def chosen_option(completion: str, letters: str = "ABCDEFGHIJ") -> Optional[str]:
    r"""The option letter a completion picks, inside the ``<answer>`` span when there is one: the whole answer
    is a letter (``B``, ``(B)``, ``B.``), or it starts with one marked as an option (``(B) a cat``, ``B. a cat``,
    ``B: a cat``), or it says ``answer is B`` / ``Answer: B``. ``None`` otherwise: a sentence starting with the
    article "A" picks nothing."""
    span = answer_span(completion).strip()
    found = _ONLY_LETTER.fullmatch(span)
    if found is None:
        found = _LEADING_LETTER.match(span) or _ANSWER_IS.search(span)
    if found is None:
        return None
    letter = next(group for group in found.groups() if group)
    return letter.upper() if letter.upper() in letters else None


def option_accuracy(
    completions: Sequence[str], references: Sequence[Sequence[str]], answer: Optional[Sequence[str]] = None, **_: Any
) -> np.ndarray:
    r"""Multiple-choice accuracy: 1 when the letter the completion picks (:func:`chosen_option`) is the right
    one, else 0. The right letter is the ``answer`` column when the dataset has one, else the first reference
    (a QA row keeps ``references: ["B"]``)."""
    _check_lengths(completions, references)
    out = np.zeros(len(completions))
    for i, completion in enumerate(completions):
        right = answer[i] if answer is not None and answer[i] else references[i][0]
        right = chosen_option(str(right)) or str(right).strip().upper()
        out[i] = float(chosen_option(completion) == right)
    return out


DEFAULT_FORMAT = r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*"


def format_reward(completions: Sequence[str], pattern: str = DEFAULT_FORMAT, **_: Any) -> np.ndarray:
    r"""1 when the whole completion matches the regular expression ``pattern`` (``re.fullmatch``, DOTALL), else 0.
    The default is the R1-style ``<think>...</think><answer>...</answer>``."""
    regex = re.compile(pattern, re.S)
    return np.array([float(regex.fullmatch(c) is not None) for c in completions])
