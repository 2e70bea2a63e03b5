r"""CIDEr-D and BLEU-4 rewards for self-critical sequence training (``scst``).

:class:`CiderDScorer` is pycocoevalcap's CIDEr-D (see :func:`llamafactory_video.metrics.captions.cider_d` for the
equation) with two changes that matter for rewards, as in ruotianluo/self-critical.pytorch:

* the document frequencies :math:`\mathrm{df}(g)` and the document count :math:`N` come ONCE from the training
  reference corpus (one document = one video's reference set), instead of from whatever batch is being scored.
  pycocoevalcap recomputes them from its input, so a candidate's reward would depend on which other videos share
  its batch (and a batch of one video gives every candidate 0, since then :math:`\ln N = 0`);
* each video's reference tf-idf vectors, their norms and lengths are computed once and cached under a key (the
  video id); scoring a batch only builds the candidates' vectors, and does it for the whole batch at once.

Scores are on pycocoevalcap's scale (``[0, 10]``). Given the same df (the batch's references as the corpus),
:meth:`CiderDScorer.score` equals pycocoevalcap's ``Cider().compute_score`` per-sentence scores to float rounding.

Captions must be tokenised the same way for references and candidates (pass ``tokenize=`` to let the scorer do
it, e.g. :func:`llamafactory_video.metrics.captions.tokenize`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Callable, Optional, Union

import numpy as np

from ..metrics.captions import bleu


def _ngrams_by_order(words: Sequence[str], n: int) -> list[dict[str, int]]:
    """``[counts of 1-grams, counts of 2-grams, ..., counts of n-grams]``, n-grams keyed by their space-joined
    tokens (a bijection for whitespace-free tokens), each in first-occurrence order as pycocoevalcap's ``precook``."""
    shifted = [words[j:] for j in range(n)]
    out = []
    for k in range(1, n + 1):
        grams = words if k == 1 else list(map(" ".join, zip(*shifted[:k])))
        counts = dict.fromkeys(grams, 0)
        for gram in grams:
            counts[gram] += 1
        out.append(counts)
    return out


_KEY_SHIFT = 1 << 32  # pair key = slot * 2**32 + n-gram id


class CiderDScorer:
    r"""CIDEr-D with document frequencies fixed over a training reference corpus and cached reference vectors.

    With the corpus' :math:`N` documents (reference sets) and document frequencies :math:`\mathrm{df}`, a sentence
    :math:`s` has, per order :math:`k`, the tf-idf vector
    :math:`w_k(s)_g = \mathrm{count}_s(g)\,(\ln N - \ln\max(1, \mathrm{df}(g)))` (n-grams absent from the corpus:
    :math:`\ln N`), and a candidate :math:`c` for the video whose cached references are :math:`r_1..r_M` scores

    .. math::
        \mathrm{CIDEr\text{-}D}(c) = \frac{10}{M} \sum_{j=1}^{M} \frac{1}{n}\sum_{k=1}^{n}
        e^{-\frac{(\ell(c) - \ell(r_j))^2}{2\sigma^2}}
        \frac{\sum_g \min\big(w_k(c)_g, w_k(r_j)_g\big)\, w_k(r_j)_g}{\lVert w_k(c)\rVert\,\lVert w_k(r_j)\rVert}

    where :math:`\ell(s)` is the number of bigrams of :math:`s` (pycocoevalcap's length) and a zero norm leaves
    the (then zero) numerator undivided. df and :math:`N` never change after construction: references added later
    with :meth:`add_references` reuse them (their n-grams unseen in the corpus get the full :math:`\ln N`).

    Cache layout (numpy, built once, vectorised): every (video, n-gram of its references) pair sorted by
    ``slot * 2**32 + ngram_id``, with a CSR list of the references holding it and their weights; per reference its
    ``n`` norms and its length. :meth:`score` extracts the candidates' n-grams in Python, then does the lookups
    (one ``searchsorted``), the clipped dot products, norms and penalties for the whole batch in numpy.

    Args:
        references_corpus: the training references, either ``{key: [ref, ...]}`` (each entry is one document AND
            is cached under its key) or an iterable of reference lists (documents; cached under their positions
            ``0..D-1``). Every document needs at least one reference.
        n: largest n-gram order (4).
        sigma: standard deviation of the Gaussian length penalty (6.0).
        tokenize: optional ``str -> str`` applied to every reference and candidate (default: captions are already
            tokenised; tokens are split on whitespace).

    Memory: one dict entry per distinct corpus n-gram, plus about 16 bytes per (video, distinct n-gram) pair and
    16 bytes per (reference, distinct n-gram) entry: for MSR-VTT train (6513 videos x 20 refs) a few hundred MB,
    mostly the n-gram dict (the same table a df pickle holds).
    """

    def __init__(
        self,
        references_corpus: Union[Mapping[Hashable, Sequence[str]], Iterable[Sequence[str]]],
        n: int = 4,
        sigma: float = 6.0,
        tokenize: Optional[Callable[[str], str]] = None,
    ) -> None:
        self.n = int(n)
        self.sigma = float(sigma)
        self._tokenize = tokenize
        if isinstance(references_corpus, Mapping):
            items = [(key, self._prepare(refs, key)) for key, refs in references_corpus.items()]
        else:
            items = [(i, self._prepare(refs, i)) for i, refs in enumerate(references_corpus)]
        if not items:
            raise ValueError("the reference corpus is empty")
        # document frequencies, once: df(g) = number of reference SETS with g in some reference
        df: dict[str, int] = {}
        for _, refs in items:
            seen: set[str] = set()
            for words in refs:
                for counts in _ngrams_by_order(words, self.n):
                    seen.update(counts)
            for gram in seen:
                df[gram] = df.get(gram, 0) + 1
        self._vocab: dict[str, int] = {gram: i for i, gram in enumerate(df)}
        self._df = np.fromiter(df.values(), dtype=np.float64, count=len(df))
        self._log_df = np.log(np.maximum(1.0, self._df))  # (corpus n-grams,); ids >= its length: ln 1 = 0
        self.num_documents = len(items)
        self.log_num_documents = np.log(float(self.num_documents))
        # reference cache
        self._slot_of: dict[Hashable, int] = {}
        self._refs: list[list[str]] = []
        self._chunks: list[dict[str, np.ndarray]] = []
        self._arrays: dict[str, np.ndarray] = {}
        self._encode(items)
        self._build()

    # ------------------------------------------------------------------------------------------------------------
    def _prepare(self, refs: Sequence[str], key: Hashable) -> list[list[str]]:
        if isinstance(refs, str):
            raise TypeError(f"references of {key!r} must be a list of captions, not a string")
        if len(refs) == 0:
            raise ValueError(f"{key!r} has no reference caption")
        if self._tokenize is not None:
            refs = [self._tokenize(r) for r in refs]
        return [r.split() for r in refs]

    @property
    def document_frequency(self) -> dict[tuple[str, ...], float]:
        """``{ngram tuple: df}`` over the construction corpus (pycocoevalcap's format; for inspection)."""
        return {tuple(g.split(" ")): float(self._df[gid]) for g, gid in self._vocab.items() if gid < len(self._df)}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slot_of

    def __len__(self) -> int:
        return len(self._slot_of)

    def references(self, key: Hashable) -> list[str]:
        """The (tokenised) references cached under ``key``."""
        return list(self._refs[self._slot_of[key]])

    def add_references(self, key: Hashable, refs: Sequence[str]) -> None:
        """Cache (or replace) the references of ``key``; df and :math:`N` stay those of the construction corpus.

        Prefer passing every video to the constructor: each call appends to the cache's arrays (a copy of them on
        the next :meth:`score`), so adding many videos one by one is quadratic.
        """
        self._encode([(key, self._prepare(refs, key))])

    def _encode(self, items: list[tuple[Hashable, list[list[str]]]]) -> None:
        """Append ``[(key, tokenised refs)]`` as new slots: one chunk of the global arrays (see :meth:`_build`)."""
        n = self.n
        vocab = self._vocab
        setdefault = vocab.setdefault
        first_slot = len(self._refs)
        gid_list: list[int] = []
        tf_list: list[int] = []
        seg_len: list[int] = []  # entries of each (reference, order) segment, row-major
        ref_slot: list[int] = []
        num_refs: list[int] = []
        for offset, (key, refs) in enumerate(items):
            self._slot_of[key] = first_slot + offset  # a replaced key points to its new slot
            self._refs.append([" ".join(words) for words in refs])
            num_refs.append(len(refs))
            for words in refs:
                ref_slot.append(first_slot + offset)
                for counts in _ngrams_by_order(words, n):
                    # n-grams unseen in the df corpus get new ids (df 0 -> ln max(1, 0) = 0)
                    gid_list.extend([setdefault(g, len(vocab)) for g in counts])
                    tf_list.extend(counts.values())
                    seg_len.append(len(counts))
        num_ref = len(ref_slot)
        seg = np.asarray(seg_len, dtype=np.int64)
        ref_of = np.repeat(np.arange(num_ref * n, dtype=np.int64) // n, seg)
        order = np.repeat(np.arange(num_ref * n, dtype=np.int64) % n, seg)
        gid = np.asarray(gid_list, dtype=np.int64)
        tf = np.asarray(tf_list, dtype=np.float64)
        log_df = np.zeros(len(gid), dtype=np.float64)
        known = gid < len(self._log_df)
        log_df[known] = self._log_df[gid[known]]
        weight = tf * (self.log_num_documents - log_df)
        norms = np.sqrt(np.bincount(ref_of * n + order, weights=weight * weight, minlength=num_ref * n))
        lengths = np.bincount(ref_of, weights=np.where(order == 1, tf, 0.0), minlength=num_ref)
        key = np.asarray(ref_slot, dtype=np.int64)[ref_of] * _KEY_SHIFT + gid
        perm = np.lexsort((ref_of, key))
        pair_key, first = np.unique(key[perm], return_index=True)
        ref_base = len(self._arrays.get("ref_lengths", ())) + sum(len(c["ref_lengths"]) for c in self._chunks)
        slot_ref_start = ref_base + np.concatenate([[0], np.cumsum(num_refs)[:-1]]).astype(np.int64)
        self._chunks.append(
            {
                "pair_key": pair_key,
                "pair_first": first,  # chunk-local start of each pair's entries (indptr without the end)
                "ref_idx": ref_of[perm] + ref_base,
                "weights": weight[perm],
                "ref_norms": norms.reshape(num_ref, n),
                "ref_lengths": lengths,
                "slot_ref_start": slot_ref_start,
                "slot_num_refs": np.asarray(num_refs, dtype=np.int64),
            }
        )

    def _build(self) -> dict[str, np.ndarray]:
        """Concatenate pending chunks onto the global arrays. Slots only grow, so pair keys stay sorted.

        ``pair_key (P,)`` sorted; ``indptr (P + 1,)`` into ``ref_idx / weights (E,)``: the global index and tf-idf
        weight of each reference holding the pair's n-gram; ``ref_norms (R, n)``; ``ref_lengths (R,)`` (bigram
        counts); ``slot_ref_start / slot_num_refs (S,)``: each slot's references are
        ``slot_ref_start[s] + 0..slot_num_refs[s]-1``.
        """
        if not self._chunks:
            return self._arrays
        a = self._arrays
        names = ("pair_key", "ref_idx", "weights", "ref_norms", "ref_lengths", "slot_ref_start", "slot_num_refs")
        parts: dict[str, list[np.ndarray]] = {name: [a[name]] if a else [] for name in names}
        starts = [a["indptr"][:-1]] if a else []
        nnz = len(a["ref_idx"]) if a else 0
        for chunk in self._chunks:
            for name, values in parts.items():
                values.append(chunk[name])
            starts.append(chunk["pair_first"] + nnz)
            nnz += len(chunk["ref_idx"])
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        arrays["indptr"] = np.concatenate(starts + [np.array([nnz], dtype=np.int64)])
        self._arrays = arrays
        self._chunks = []
        return arrays

    # ------------------------------------------------------------------------------------------------------------
    def score(self, candidates: Sequence[str], keys: Sequence[Hashable]) -> np.ndarray:
        r"""CIDEr-D of each candidate against the cached references of its key.

        Args:
            candidates: ``B`` captions (tokenised unless ``tokenize`` was given). Several candidates may share a key
                (e.g. 5 samples per video).
            keys: ``B`` keys registered at construction or with :meth:`add_references`.
        Returns:
            float64 ``(B,)``, pycocoevalcap's scale (0..10).
        """
        if len(candidates) != len(keys):
            raise ValueError(f"{len(candidates)} candidates but {len(keys)} keys")
        num = len(candidates)
        if num == 0:
            return np.zeros(0, dtype=np.float64)
        try:
            slots = np.fromiter((self._slot_of[k] for k in keys), dtype=np.int64, count=num)
        except KeyError as err:
            raise KeyError(f"no references cached for key {err.args[0]!r}") from None
        a = self._build()
        n = self.n
        vocab_get = self._vocab.get
        gid_list: list[int] = []
        tf_list: list[int] = []
        seg_len: list[int] = []  # entries of each (candidate, order) segment
        for cand in candidates:
            if self._tokenize is not None:
                cand = self._tokenize(cand)
            for counts in _ngrams_by_order(cand.split(), n):
                gid_list.extend([vocab_get(g, -1) for g in counts])  # -1: not in any reference
                tf_list.extend(counts.values())
                seg_len.append(len(counts))
        seg = np.asarray(seg_len, dtype=np.int64)
        cand_of = np.repeat(np.arange(num * n, dtype=np.int64) // n, seg)
        order = np.repeat(np.arange(num * n, dtype=np.int64) % n, seg)
        gid = np.asarray(gid_list, dtype=np.int64)
        tf = np.asarray(tf_list, dtype=np.float64)
        # candidate tf-idf weights, norms (B, n) and lengths (bigram counts)
        log_df = np.zeros(len(gid), dtype=np.float64)
        known = (gid >= 0) & (gid < len(self._log_df))
        log_df[known] = self._log_df[gid[known]]
        weight = tf * (self.log_num_documents - log_df)
        hyp_norm = np.sqrt(np.bincount(cand_of * n + order, weights=weight * weight, minlength=num * n))
        hyp_norm = hyp_norm.reshape(num, n)
        hyp_len = np.bincount(cand_of, weights=np.where(order == 1, tf, 0.0), minlength=num)
        # (candidate, reference) pairs: candidate i owns refs ref_start[i] + 0..num_refs[i]-1
        num_refs = a["slot_num_refs"][slots]
        ref_start = a["slot_ref_start"][slots]
        pair_offset = np.cumsum(num_refs) - num_refs
        total_pairs = int(num_refs.sum())
        # candidate n-grams present in the references of the candidate's video: one searchsorted for the batch
        query = slots[cand_of] * _KEY_SHIFT + gid
        pos = np.minimum(np.searchsorted(a["pair_key"], query), max(len(a["pair_key"]) - 1, 0))
        if len(a["pair_key"]) == 0:  # every cached reference is empty
            pos = pos[:0]
        matched = np.flatnonzero((gid >= 0) & (a["pair_key"][pos] == query)) if len(pos) else pos
        pos = pos[matched]
        starts = a["indptr"][pos]
        counts = a["indptr"][pos + 1] - starts
        # expand each matched n-gram over the references holding it
        expand = np.repeat(np.arange(len(matched)), counts)
        entry = starts[expand] + (np.arange(len(expand)) - (np.cumsum(counts) - counts)[expand])
        ref_weight = a["weights"][entry]
        hyp_weight = weight[matched][expand]
        entry_cand = cand_of[matched][expand]
        pair = pair_offset[entry_cand] + a["ref_idx"][entry] - ref_start[entry_cand]
        val = (
            np.bincount(
                pair * n + order[matched][expand],
                weights=np.minimum(hyp_weight, ref_weight) * ref_weight,
                minlength=total_pairs * n,
            )
            .astype(np.float64)
            .reshape(total_pairs, n)
        )  # (empty -> int64)
        pair_cand = np.repeat(np.arange(num), num_refs)
        pair_ref = np.arange(total_pairs) - pair_offset[pair_cand] + ref_start[pair_cand]
        denom = hyp_norm[pair_cand] * a["ref_norms"][pair_ref]
        val = np.divide(val, denom, out=val, where=denom != 0)
        delta = hyp_len[pair_cand] - a["ref_lengths"][pair_ref]
        penalty = np.exp(-(delta**2) / (2 * self.sigma**2))
        per_pair = (val * penalty[:, None]).mean(axis=1)
        return np.bincount(pair_cand, weights=per_pair, minlength=num) / num_refs * 10.0

    def __call__(self, candidates: Sequence[str], keys: Sequence[Hashable]) -> np.ndarray:
        """Alias of :meth:`score`, so the scorer is itself a reward function."""
        return self.score(candidates, keys)


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    r"""Per-candidate BLEU-4 reward: pycocoevalcap's per-sentence BLEU-4 (``Bleu(4)``'s ``scores[3]``).

    .. math:: \mathrm{BLEU}_4(c) = \mathrm{BP}\,\Big(\prod_{k=1}^4 \frac{m_k + 10^{-15}}{g_k + 10^{-9}}\Big)^{1/4},
              \quad \mathrm{BP} = \min(1, e^{1 - \rho/|c|})

    with clipped k-gram matches :math:`m_k`, candidate k-gram counts :math:`g_k` and :math:`\rho` the length of the
    reference closest to :math:`|c|` (see :func:`llamafactory_video.metrics.captions.bleu`). No df, nothing cached:
    each candidate's score depends on its own references only.

    Args:
        candidates: ``B`` tokenised captions. references: ``B`` lists of tokenised references (non-empty).
    Returns:
        float64 ``(B,)`` in ``[0, 1]``.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if len(candidates) == 0:
        return np.zeros(0, dtype=np.float64)
    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [cand] for i, cand in enumerate(candidates)}
    return bleu(gts, res, 4)[1][3].copy()
