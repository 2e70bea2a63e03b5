r"""Caption metrics that reproduce pycocoevalcap 1.2 (the COCO caption evaluation code) number for number.

All scorers take pycocoevalcap's input format and return its numbers:

* ``gts``: ``Mapping[K, Sequence[str]]``, the references of each sample (video), at least one each;
* ``res``: ``Mapping[K, Sequence[str] | str]``, the ONE candidate caption of each sample (a one-element list as in
  pycocoevalcap, or a bare string); ``res`` must have exactly the keys of ``gts``;
* captions are already tokenised: tokens separated by whitespace (see :func:`tokenize`).

Per-sample outputs follow the iteration order of ``gts`` (as pycocoevalcap's). Scores are on pycocoevalcap's scale:
BLEU, METEOR and ROUGE-L in ``[0, 1]``; CIDEr-D in ``[0, 10]`` (it is multiplied by 10).

================  =======================================================================================
:func:`bleu`      BLEU-1..n, corpus level and per sentence, "closest" reference length (``Bleu(4)``)
:func:`rouge_l`   ROUGE-L F-measure with beta = 1.2, best precision / recall over the references (``Rouge()``)
:func:`cider_d`   CIDEr-D: n = 4, sigma = 6, clipping, Gaussian length penalty, x10, idf from ``gts`` (``Cider()``)
:func:`meteor`    METEOR 1.5 through pycocoevalcap's jar (needs ``java``; else :class:`MetricUnavailable`)
================  =======================================================================================

The equations are in each function's docstring and in ``docs/metrics.md``. Everything but :func:`meteor` is pure
Python + numpy, needs no Java, and is deterministic.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Optional, TypeVar, Union

import numpy as np

K = TypeVar("K", bound=Hashable)
Ngram = tuple[str, ...]

#: Tokens pycocoevalcap's ``PTBTokenizer`` drops after tokenising (``tokenizer/ptbtokenizer.py``). The bracket tokens
#: never match there because PTBTokenizer lower-cases them first (``-lrb-``): brackets survive as ``-lrb-`` etc.
PTB_PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

#: The keys :func:`caption_metrics` returns (pycocoevalcap's scale).
METRIC_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed on this machine (METEOR without ``java``, pycocoevalcap not installed)."""


# ----------------------------------------------------------------------------------------------------------------
# tokenisation
# ----------------------------------------------------------------------------------------------------------------

_TRANSLATE = str.maketrans(
    {
        "(": " -lrb- ",
        ")": " -rrb- ",
        "[": " -lsb- ",
        "]": " -rsb- ",
        "{": " -lcb- ",
        "}": " -rcb- ",
        '"': " ",
        "`": " ",
        "\u201c": " ",  # left/right double quotation marks, low-9 quote, guillemets
        "\u201d": " ",
        "\u201e": " ",
        "\u00ab": " ",
        "\u00bb": " ",
        "\u2018": "'",  # curly single quotes act as apostrophes ("it’s" -> "it 's")
        "\u2019": "'",
        "\u2014": " -- ",  # em and en dashes separate words
        "\u2013": " -- ",
        "\u2026": " ... ",
        "\t": " ",
        "\r": " ",
        "\n": " ",
    }
)
_ELLIPSIS = re.compile(r"\.{2,}")
_DASHES = re.compile(r"-{2,}")
_COMMA = re.compile(r"(?<!\d),|,(?!\d)")  # "1,000" and "3,5" stay one token
_COLON = re.compile(r"(?<!\d):(?!//)|:(?!\d|//)")  # "3:30" and "http://" stay whole
_BANG_END = re.compile(r"([!?]+)(?=\s|$)")  # "ok?!" -> "ok ?!"; "a!b" stays
_BANG_START = re.compile(r"(?:(?<=\s)|^)([!?]+)")
_SYMBOLS = re.compile(r"([$%*=~^|\\;]|(?<!\+)\+(?!\+))")  # "$5" -> "$ 5", "50%" -> "50 %"; "c++" stays
_NT = re.compile(r"(?<=\w)n't(?=\s|$)")  # "can't" -> "ca n't", "isn't" -> "is n't"
_CLITIC = re.compile(r"(?<=\w)'(s|re|ll|ve|m|d)(?=\s|$)")  # "it's" -> "it 's", "1990's" -> "1990 's"
_SPLIT_WORDS = {
    "cannot": "can not",
    "gonna": "gon na",
    "gotta": "got ta",
    "wanna": "wan na",
    "lemme": "lem me",
    "gimme": "gim me",
}
_KEEP_LEADING_APOSTROPHE = frozenset({"'s", "'re", "'ll", "'ve", "'m", "'d", "'em", "'n", "'til", "'cause"})
_DECADE = re.compile(r"'\d0s")
_NUMBER = re.compile(r"[\d.,]+")
#: Words whose final period PTBTokenizer keeps (a subset of its abbreviation list: the ones captions use).
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr st jr sr vs etc inc co ltd corp prof mt ft ave gen gov sen rep lt col sgt capt adm rev hon
    jan feb mar apr jun jul aug sep sept oct nov dec fig dept""".split()
)
_BRACKET_TOKENS = frozenset({"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"})


def _clean_token(token: str, next_token: str) -> str:
    if token in _BRACKET_TOKENS:
        return token
    if token.startswith("'") and token not in _KEEP_LEADING_APOSTROPHE and not _DECADE.fullmatch(token):
        token = token.lstrip("'")
    if len(token) > 1 and token.endswith("'") and not token.startswith("'"):
        token = token.rstrip("'")  # "cats'" -> "cats", "goodbye'" -> "goodbye"
    if token.startswith("-") or (token.startswith(".") and not token[1:2].isdigit()):
        token = token.lstrip("-.")  # "-word" -> "word", ".net" -> "net"
    if len(token) > 1 and token.endswith("-"):
        token = token.rstrip("-")
    if len(token) > 1 and token.endswith("."):
        core = token[:-1]
        keep = (
            ("." in core and not _NUMBER.fullmatch(core))  # acronyms: "u.s.", "e.g.", "ph.d."
            or (len(core) == 1 and core.isalpha())  # initials: "j."
            or core in _ABBREVIATIONS
            or (core == "no" and next_token[:1].isdigit())  # "no. 5"
        )
        if not keep:
            token = core
    return token


def tokenize(caption: str) -> str:
    r"""Java-free approximation of pycocoevalcap's ``PTBTokenizer`` (Stanford PTBTokenizer 3.4.1 with
    ``-preserveLines -lowerCase``, then the :data:`PTB_PUNCTUATIONS` tokens dropped).

    Lower-cases; splits off and drops ``. , ; : ? ! - -- ... ' " `` `` `` ``''``; splits clitics the PTB way
    (``can't`` -> ``ca n't``, ``it's`` -> ``it 's``, ``cannot`` -> ``can not``, ``gonna`` -> ``gon na``); keeps the
    period of acronyms, initials and common abbreviations (``u.s.``, ``j.``, ``mr.``, ``etc.``); keeps numbers such
    as ``1,000``, ``3.5``, ``3:30`` whole; splits ``$ % * = ~ ^ | \`` and a lone ``+`` into their own (kept) tokens;
    turns brackets into ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and KEEPS them (pycocoevalcap's punctuation list is
    upper-case, so after ``-lowerCase`` the bracket tokens survive: we reproduce that quirk).

    Known differences from the Java tokenizer (rare in captions): PTB's long abbreviation list is cut to
    :data:`_ABBREVIATIONS`; PTB sometimes drops the period of an initial or abbreviation when the NEXT line starts
    with a capital (its sentence splitter looks across ``-preserveLines`` boundaries), we always keep it;
    ``a&b`` stays one token (PTB: ``a & b``); ``10:30am`` stays one token (PTB: ``10:30 am``); emoticons
    (``:)`` -> PTB ``:-rrb-``, ours ``-rrb-``), ``'tis``, ``y'all``, ``rock'n'roll``, ``more'n``, ``a...`` and
    ``a..b`` differ. ``tests/unit/test_caption_metrics.py`` pins the cases
    that agree and compares with the jar when ``java`` is present.

    Args:
        caption: one raw caption (any case, punctuation, newlines).
    Returns:
        the tokens joined by single spaces (``""`` for a caption with no word).
    """
    s = caption.lower().translate(_TRANSLATE)
    s = _ELLIPSIS.sub(" ", s)
    s = _DASHES.sub(" ", s)
    s = _COMMA.sub(" ", s)
    s = _COLON.sub(" ", s)
    s = _BANG_END.sub(r" \1 ", s)
    s = _BANG_START.sub(r" \1 ", s)
    s = _SYMBOLS.sub(r" \1 ", s)
    s = _NT.sub(" n't", s)
    s = _CLITIC.sub(r" '\1", s)
    raw = " ".join(_SPLIT_WORDS.get(word, word) for word in s.split()).split(" ")
    tokens = []
    for i, token in enumerate(raw):
        token = _clean_token(token, raw[i + 1] if i + 1 < len(raw) else "")
        if token and token not in PTB_PUNCTUATIONS:
            tokens.append(token)
    return " ".join(tokens)


def tokenize_corpus(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    r""":func:`tokenize` applied to every caption: ``{key: [caption, ...]}`` -> ``{key: [tokenised, ...]}``.

    Same shape as pycocoevalcap's ``PTBTokenizer().tokenize`` output (whose input is ``{key: [{"caption": str}]}``).
    """
    return {key: [tokenize(c) for c in caps] for key, caps in captions.items()}


def ptb_tokenize_corpus(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    r"""The real pycocoevalcap ``PTBTokenizer`` (Java) on ``{key: [caption, ...]}``; same output shape as
    :func:`tokenize_corpus`. Raises :class:`MetricUnavailable` without ``java`` or pycocoevalcap.

    Note: the jar writes a temporary file next to itself (inside site-packages), which must be writable.
    """
    if shutil.which("java") is None:
        raise MetricUnavailable("the PTB tokenizer needs Java ('java' is not on PATH)")
    try:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MetricUnavailable("the PTB tokenizer needs pycocoevalcap (pip install pycocoevalcap==1.2)") from err
    keys = list(captions)
    if not keys:
        return {}
    tokenised = PTBTokenizer().tokenize({i: [{"caption": c} for c in captions[k]] for i, k in enumerate(keys)})
    return {k: tokenised.get(i, []) for i, k in enumerate(keys)}


# ----------------------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------------------


def ngram_counts(sentence: Union[str, Sequence[str]], n: int = 4) -> dict[Ngram, int]:
    r"""Counts of every 1..n-gram of a tokenised sentence (pycocoevalcap's ``precook``).

    Args:
        sentence: a whitespace-tokenised string, or its token list.
    Returns:
        ``{ngram tuple: count}``, in pycocoevalcap's insertion order (all 1-grams left to right, then 2-grams, ...).
    """
    words = sentence.split() if isinstance(sentence, str) else list(sentence)
    counts: dict[Ngram, int] = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return dict(counts)


def document_frequency(reference_sets: Iterable[Sequence[str]], n: int = 4) -> tuple[dict[Ngram, float], int]:
    r"""Document frequency of every n-gram over a corpus whose documents are REFERENCE SETS.

    One document = the references of one sample (video): ``df(g) = #{ j : g occurs in some reference of j }``,
    as pycocoevalcap's ``CiderScorer.compute_doc_freq``.

    Returns:
        ``(df, num_documents)``; ``df`` maps ngram tuples to float counts.
    """
    df: dict[Ngram, float] = defaultdict(float)
    num_documents = 0
    for refs in reference_sets:
        num_documents += 1
        for ngram in {g for ref in refs for g in ngram_counts(ref, n)}:
            df[ngram] += 1
    return dict(df), num_documents


def _aligned(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Union[Sequence[str], str]]
) -> list[tuple[K, str, list[str]]]:
    """``[(key, candidate, references)]`` in ``gts`` order after pycocoevalcap's sanity checks."""
    if set(gts) != set(res):
        missing, extra = set(gts) - set(res), set(res) - set(gts)
        raise ValueError(
            f"gts and res must have the same keys (missing in res: {sorted(map(str, missing))[:5]}, "
            f"missing in gts: {sorted(map(str, extra))[:5]})"
        )
    if not gts:
        raise ValueError("no samples to score")
    rows = []
    for key in gts:
        hyp = res[key]
        if isinstance(hyp, str):
            hyp = [hyp]
        if len(hyp) != 1:
            raise ValueError(f"res[{key!r}] must hold exactly one candidate caption, got {len(hyp)}")
        refs = list(gts[key])
        if not refs:
            raise ValueError(f"gts[{key!r}] has no reference caption")
        rows.append((key, hyp[0], refs))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# BLEU
# ----------------------------------------------------------------------------------------------------------------


def bleu(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Union[Sequence[str], str]], n: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    r"""BLEU-1..n exactly as pycocoevalcap's ``Bleu(n).compute_score`` (``BleuScorer``, option ``"closest"``).

    For a candidate :math:`c` with references :math:`R`: clipped matches
    :math:`m_k = \sum_{g \in c, |g|=k} \min(\mathrm{count}_c(g), \max_{r\in R} \mathrm{count}_r(g))`, guesses
    :math:`g_k = \max(0, |c| - k + 1)`, reference length :math:`\rho` = the length of the reference closest to
    :math:`|c|` (ties -> the shorter). With :math:`\epsilon = 10^{-15}`, :math:`\delta = 10^{-9}`:

    .. math:: \mathrm{BLEU}_k = \mathrm{BP}\,\Big(\prod_{i=1}^k \frac{m_i + \epsilon}{g_i + \delta}\Big)^{1/k},
              \qquad \mathrm{BP} = \min\!\big(1, e^{\,1 - 1/r}\big),\ r = \frac{|c| + \epsilon}{\rho + \delta}

    Corpus level: the same formula on the sums of :math:`m_i`, :math:`g_i`, :math:`|c|` and :math:`\rho` over all
    samples (NOT the mean of the per-sentence scores). Per sentence: on that sentence's counts (the
    :math:`\epsilon / \delta` smoothing makes a sentence without any k-gram match score about :math:`10^{-6/k}`
    rather than 0, as in pycocoevalcap).

    Returns:
        ``(corpus, per_sentence)``: ``corpus`` float64 ``(n,)`` (BLEU-1..n); ``per_sentence`` float64 ``(n, N)``.
    """
    small, tiny = 1e-9, 1e-15
    rows = _aligned(gts, res)
    total_test, total_ref = 0, 0
    total_guess, total_correct = [0] * n, [0] * n
    per_sentence: list[list[float]] = [[] for _ in range(n)]
    for _, hyp, refs in rows:
        reflens, maxcounts = [], {}
        for ref in refs:
            words = ref.split()
            reflens.append(len(words))
            for ngram, count in ngram_counts(words, n).items():
                maxcounts[ngram] = max(maxcounts.get(ngram, 0), count)
        words = hyp.split()
        testlen = len(words)
        reflen = min((abs(length - testlen), length) for length in reflens)[1]
        guess = [max(0, testlen - k + 1) for k in range(1, n + 1)]
        correct = [0] * n
        for ngram, count in ngram_counts(words, n).items():
            correct[len(ngram) - 1] += min(maxcounts.get(ngram, 0), count)
        total_test += testlen
        total_ref += reflen
        for k in range(n):
            total_guess[k] += guess[k]
            total_correct[k] += correct[k]
        score = 1.0
        for k in range(n):
            score *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
            per_sentence[k].append(score ** (1.0 / (k + 1)))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            for k in range(n):
                per_sentence[k][-1] *= math.exp(1 - 1 / ratio)
    corpus = []
    score = 1.0
    for k in range(n):
        score *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        corpus.append(score ** (1.0 / (k + 1)))
    ratio = (total_test + tiny) / (total_ref + small)
    if ratio < 1:
        for k in range(n):
            corpus[k] *= math.exp(1 - 1 / ratio)
    return np.array(corpus, dtype=np.float64), np.array(per_sentence, dtype=np.float64).reshape(n, len(rows))


# ----------------------------------------------------------------------------------------------------------------
# ROUGE-L
# ----------------------------------------------------------------------------------------------------------------


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(|a| |b|) time, O(min) memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Union[Sequence[str], str]], beta: float = 1.2
) -> tuple[float, np.ndarray]:
    r"""ROUGE-L exactly as pycocoevalcap's ``Rouge().compute_score``.

    Tokens come from ``caption.split(" ")`` (single spaces, as pycocoevalcap: an empty caption is one empty
    token). With :math:`P = \max_r \mathrm{LCS}(c, r)/|c|` and :math:`R = \max_r \mathrm{LCS}(c, r)/|r|` (each
    maximised over the references separately):

    .. math:: \mathrm{ROUGE\text{-}L} = \frac{(1 + \beta^2) P R}{R + \beta^2 P}, \quad \beta = 1.2
              \quad (0 \text{ if } P = 0 \text{ or } R = 0)

    Returns:
        ``(mean, per_sentence)``: the unweighted mean over samples and float64 ``(N,)``.
    """
    scores = []
    for _, hyp, refs in _aligned(gts, res):
        token_c = hyp.split(" ")
        prec, rec = [], []
        for ref in refs:
            token_r = ref.split(" ")
            lcs = lcs_length(token_r, token_c)
            prec.append(lcs / float(len(token_c)))
            rec.append(lcs / float(len(token_r)))
        prec_max, rec_max = max(prec), max(rec)
        if prec_max != 0 and rec_max != 0:
            scores.append(((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max))
        else:
            scores.append(0.0)
    per_sentence = np.array(scores, dtype=np.float64)
    return float(np.mean(per_sentence)), per_sentence


# ----------------------------------------------------------------------------------------------------------------
# CIDEr-D
# ----------------------------------------------------------------------------------------------------------------


def _tfidf(counts: Mapping[Ngram, int], df: Mapping[Ngram, float], log_num_docs: float, n: int):
    """pycocoevalcap's ``counts2vec``: per-order tf-idf dicts, their L2 norms and the bigram count."""
    vec: list[dict[Ngram, float]] = [{} for _ in range(n)]
    norm = [0.0 for _ in range(n)]
    length = 0
    for ngram, term_freq in counts.items():
        log_df = np.log(max(1.0, df.get(ngram, 0.0)))
        k = len(ngram) - 1
        vec[k][ngram] = float(term_freq) * (log_num_docs - log_df)
        norm[k] += pow(vec[k][ngram], 2)
        if k == 1:
            length += term_freq
    return vec, [np.sqrt(x) for x in norm], length


def cider_d(
    gts: Mapping[K, Sequence[str]],
    res: Mapping[K, Union[Sequence[str], str]],
    n: int = 4,
    sigma: float = 6.0,
    df: Optional[Mapping[Ngram, float]] = None,
    num_documents: Optional[int] = None,
) -> tuple[float, np.ndarray]:
    r"""CIDEr-D exactly as pycocoevalcap 1.2's ``Cider().compute_score`` (whose ``cider_scorer.py`` IS CIDEr-D).

    With :math:`N` documents (by default the samples of ``gts``: one document = one sample's reference SET) and
    :math:`\mathrm{df}(g)` the number of documents with n-gram :math:`g` in some reference, every sentence
    :math:`s` becomes, per order :math:`k = 1..n`, the vector of raw-count tf-idf weights

    .. math:: w_k(s)_g = \mathrm{count}_s(g) \cdot \big(\ln N - \ln \max(1, \mathrm{df}(g))\big), \quad |g| = k

    (n-grams unseen in the references get the full :math:`\ln N`). For a candidate :math:`c` with references
    :math:`r_1..r_M`, with :math:`\ell(s)` = the number of BIGRAMS of :math:`s` (pycocoevalcap's "length": the word
    count minus one, 0 for an empty or one-word sentence):

    .. math::
        \mathrm{CIDEr\text{-}D}(c) = \frac{10}{M} \sum_{j=1}^{M} \frac{1}{n}\sum_{k=1}^{n}
        e^{-\frac{(\ell(c) - \ell(r_j))^2}{2\sigma^2}}
        \frac{\sum_g \min\big(w_k(c)_g, w_k(r_j)_g\big)\, w_k(r_j)_g}{\lVert w_k(c)\rVert\,\lVert w_k(r_j)\rVert}

    (a zero norm leaves the numerator undivided; it is then 0). :math:`n = 4`, :math:`\sigma = 6`, the clipping
    :math:`\min(\cdot)` and the Gaussian length penalty are the "-D" of CIDEr-D (Vedantam et al. 2015).
    ``df`` / ``num_documents`` default to the statistics of ``gts`` itself (pycocoevalcap's behaviour);
    :class:`llamafactory_video.rewards.CiderDScorer` is the cached, corpus-df version for rewards.

    Note: with one sample, :math:`N = 1` and every weight is 0, so every candidate scores 0 (pycocoevalcap too).

    Returns:
        ``(mean, per_sentence)``: the mean over samples and float64 ``(N,)``.
    """
    rows = _aligned(gts, res)
    if df is None:
        df, num_documents = document_frequency((refs for _, _, refs in rows), n)
    elif num_documents is None:
        raise ValueError("num_documents is required with df")
    log_num_docs = np.log(float(num_documents))
    penalty_denominator = 2 * sigma**2
    scores = []
    for _, hyp, refs in rows:
        vec, norm, length = _tfidf(ngram_counts(hyp, n), df, log_num_docs, n)
        score = np.array([0.0 for _ in range(n)])
        for ref in refs:
            vec_ref, norm_ref, length_ref = _tfidf(ngram_counts(ref, n), df, log_num_docs, n)
            delta = float(length - length_ref)
            val = np.array([0.0 for _ in range(n)])
            for k in range(n):
                ref_k = vec_ref[k]
                for ngram, weight in vec[k].items():
                    ref_weight = ref_k.get(ngram, 0.0)
                    val[k] += min(weight, ref_weight) * ref_weight
                if norm[k] != 0 and norm_ref[k] != 0:
                    val[k] /= norm[k] * norm_ref[k]
                val[k] *= np.e ** (-(delta**2) / penalty_denominator)
            score += val
        score_avg = np.mean(score)
        score_avg /= len(refs)
        score_avg *= 10.0
        scores.append(score_avg)
    per_sentence = np.array(scores, dtype=np.float64)
    return float(np.mean(per_sentence)), per_sentence


# ----------------------------------------------------------------------------------------------------------------
# METEOR (Java)
# ----------------------------------------------------------------------------------------------------------------

_METEOR_LOCK = threading.Lock()
_METEOR: Optional["_MeteorJar"] = None
#: seconds one :func:`meteor` call may wait on the jar (its first call also loads the paraphrase table, ~10-20 s)
METEOR_TIMEOUT_S = 300.0


class _MeteorJar:
    r"""The METEOR 1.5 jar that pycocoevalcap ships, spoken to with pycocoevalcap's own line protocol (same command,
    same ``SCORE`` / ``EVAL`` lines, so the same numbers), but never able to hang its caller: every read has a
    deadline, the jar's stderr goes to /dev/null (pycocoevalcap pipes it and never reads it, so a chatty jar would
    block on a full pipe), and a failure releases everything (pycocoevalcap's ``Meteor`` keeps its lock after an
    exception, and its ``__del__`` then waits on that lock forever)."""

    def __init__(self, jar_dir: str) -> None:
        self.proc = subprocess.Popen(
            ["java", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=jar_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _send(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def _read_line(self, deadline: float) -> str:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the METEOR jar within {METEOR_TIMEOUT_S:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"the METEOR jar exited (status {self.proc.poll()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace").strip()

    def compute_score(self, gts: Mapping[int, list[str]], res: Mapping[int, list[str]]) -> tuple[float, list[float]]:
        deadline = time.monotonic() + METEOR_TIMEOUT_S
        stats = []
        for key in gts:
            hypothesis = res[key][0].replace("|||", "").replace("  ", " ")
            self._send(" ||| ".join(("SCORE", " ||| ".join(gts[key]), hypothesis)))
            stats.append(self._read_line(deadline))
        self._send(" ||| ".join(["EVAL", *stats]))
        scores = [float(self._read_line(deadline)) for _ in stats]
        return float(self._read_line(deadline)), scores

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:  # pragma: no cover
            pass
        self.proc.kill()
        self.proc.wait()


def _drop_jar() -> None:
    r"""Stop the process-wide jar (the caller holds ``_METEOR_LOCK``)."""
    global _METEOR
    jar, _METEOR = _METEOR, None
    if jar is not None:
        jar.close()


def _close_meteor() -> None:
    with _METEOR_LOCK:
        _drop_jar()


atexit.register(_close_meteor)  # once: the jar a process still holds is stopped at exit (a no-op when none ran)


def meteor_available() -> Optional[str]:
    """``None`` when :func:`meteor` can run here, else the reason it cannot (a one-line message)."""
    if shutil.which("java") is None:
        return "METEOR needs Java ('java' is not on PATH; install a JRE >= 8)"
    try:
        import pycocoevalcap.meteor.meteor  # noqa: F401
    except ImportError:
        return "METEOR needs pycocoevalcap (pip install pycocoevalcap==1.2)"
    return None


def _meteor_jar() -> "_MeteorJar":
    r"""The process-wide jar (started on first use; the caller holds ``_METEOR_LOCK``)."""
    global _METEOR
    if _METEOR is None or not _METEOR.alive():
        import pycocoevalcap.meteor.meteor as pycoco_meteor

        _METEOR = _MeteorJar(os.path.dirname(os.path.abspath(pycoco_meteor.__file__)))
    return _METEOR


def meteor(gts: Mapping[K, Sequence[str]], res: Mapping[K, Union[Sequence[str], str]]) -> tuple[float, np.ndarray]:
    r"""METEOR 1.5: pycocoevalcap's jar and line protocol (``java -jar meteor-1.5.jar - - -stdio -l en -norm``),
    through :class:`_MeteorJar` (same numbers as pycocoevalcap's ``Meteor``; a jar that dies or stops answering
    raises :class:`MetricUnavailable` within ``METEOR_TIMEOUT_S`` instead of hanging).

    The corpus score is the jar's aggregate over the sufficient statistics of all samples (NOT the mean of the
    per-sentence scores). One Java process is started on first use (about 10-20 s: it loads the paraphrase table)
    and reused by later calls in this Python process; it is stopped at exit.

    Raises:
        MetricUnavailable: no ``java`` on PATH or pycocoevalcap missing, or the jar died.
    Returns:
        ``(corpus, per_sentence)``: float and float64 ``(N,)``.
    """
    rows = _aligned(gts, res)
    reason = meteor_available()
    if reason is not None:
        raise MetricUnavailable(reason)
    # the jar speaks a line protocol: a newline inside a caption would desynchronise it
    gts_clean = {i: [r.replace("\n", " ") for r in refs] for i, (_, _, refs) in enumerate(rows)}
    res_clean = {i: [hyp.replace("\n", " ")] for i, (_, hyp, _) in enumerate(rows)}
    with _METEOR_LOCK:
        try:
            score, scores = _meteor_jar().compute_score(gts_clean, res_clean)
        except (ValueError, OSError, EOFError, TimeoutError) as err:
            _drop_jar()
            raise MetricUnavailable(f"the METEOR jar failed ({err}); is there memory for java -Xmx2G?") from err
    return float(score), np.array(scores, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------------
# all of them
# ----------------------------------------------------------------------------------------------------------------


def caption_metrics(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Union[Sequence[str], str]], with_meteor: bool = True
) -> dict[str, Optional[float]]:
    r"""BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of tokenised captions, keyed by :data:`METRIC_KEYS`.

    ``meteor`` is ``None`` when ``with_meteor`` is false; :class:`MetricUnavailable` propagates when it is true and
    METEOR cannot run (callers decide whether that is fatal). CIDEr-D's idf comes from ``gts`` (pycocoevalcap).
    """
    bleus, _ = bleu(gts, res, 4)
    out: dict[str, Optional[float]] = {f"bleu_{k + 1}": float(bleus[k]) for k in range(4)}
    out["meteor"] = meteor(gts, res)[0] if with_meteor else None
    out["rouge_l"] = rouge_l(gts, res)[0]
    out["cider"] = cider_d(gts, res)[0]
    return {key: out[key] for key in METRIC_KEYS}
