r"""Retrievers over clip texts (caption + subtitles): BM25 built in, embeddings from any text encoder.

A retriever ranks documents for a query::

    class Retriever(Protocol):
        name: str
        def fingerprint(self) -> str: ...                       # cache key of what it stores in the index
        def rank(self, query, documents, cache) -> list[tuple[int, float]]: ...   # best first

An embedding retriever wraps a :class:`TextEncoder` (anything with ``encode_texts(list[str]) -> Tensor[N, D]``):
:class:`MeanPoolingEncoder` (a local sentence-embedding checkpoint through ``AutoModel`` + mean pooling) or
the ``sparc_align`` dual encoder (``llamafactory_video.model.dual_encoder.load_dual_encoder(dir)``), see
:func:`load_text_encoder`. Document embeddings are kept in the index's ``cache`` dict under the encoder's
fingerprint, so a second question embeds only the question.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "of",
        "in",
        "on",
        "at",
        "to",
        "and",
        "or",
        "what",
        "which",
        "who",
        "when",
        "where",
        "why",
        "how",
        "does",
        "do",
        "did",
        "this",
        "that",
        "it",
        "its",
        "there",
        "here",
        "with",
        "for",
        "from",
        "by",
        "as",
        "into",
        "than",
        "then",
    ]
)


def tokenize(text: str) -> list[str]:
    r"""Lower-cased alphanumeric words without stop words (the same for documents and queries)."""
    return [token for token in _TOKEN.findall(text.lower()) if token not in STOPWORDS]


class BM25:
    r"""Okapi BM25 over tokenised documents.

    ``score(q, d) = sum_{t in set(q)} idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))``
    with ``idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))`` (never negative); each distinct query term
    counts once.
    """

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tfs = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.n = len(documents)
        self.avgdl = (sum(self.lengths) / self.n) if self.n else 0.0
        self.df: Counter = Counter()
        for tf in self.tfs:
            self.df.update(tf.keys())

    def idf(self, term: str) -> float:
        n = self.df.get(term, 0)
        return math.log(1.0 + (self.n - n + 0.5) / (n + 0.5))

    def scores(self, query: Sequence[str]) -> list[float]:
        terms = list(dict.fromkeys(query))
        out = []
        for tf, length in zip(self.tfs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / self.avgdl) if self.avgdl else self.k1
            out.append(sum(self.idf(t) * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in terms if tf.get(t)))
        return out


def _top(scores: Sequence[float], top_k: int | None) -> list[tuple[int, float]]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [(i, float(scores[i])) for i in order[: top_k if top_k else len(order)]]


class Retriever(Protocol):
    name: str

    def fingerprint(self) -> str: ...

    def rank(
        self, query: str, documents: Sequence[str], cache: dict[str, Any], top_k: int | None = None
    ) -> list[tuple[int, float]]: ...


class BM25Retriever:
    r"""Lexical retrieval; stateless, so nothing is cached in the index."""

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b

    def fingerprint(self) -> str:
        return f"bm25-k1={self.k1}-b={self.b}"

    def rank(
        self, query: str, documents: Sequence[str], cache: dict[str, Any] | None = None, top_k: int | None = None
    ) -> list[tuple[int, float]]:
        bm25 = BM25([tokenize(doc) for doc in documents], self.k1, self.b)
        return _top(bm25.scores(tokenize(query)), top_k)


class TextEncoder(Protocol):
    def encode_texts(self, texts: list[str]) -> Any:  # torch.Tensor [N, D]
        ...


class MeanPoolingEncoder:
    r"""A local sentence-embedding checkpoint (BERT / MiniLM / BGE style): ``AutoModel`` last hidden states,
    mean-pooled over the attention mask, L2-normalised."""

    def __init__(self, path: str, device: str | None = None, batch_size: int = 32, max_length: int = 256) -> None:
        if not os.path.isdir(path):
            raise ValueError(f"{path}: embedding model folder not found (a local path is required)")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.batch_size, self.max_length = batch_size, max_length

    def encode_texts(self, texts: list[str]) -> Any:
        import torch

        outputs = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                outputs.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(outputs) if outputs else torch.zeros(0, 0)


def _dir_fingerprint(path: str) -> str:
    h = hashlib.sha256(os.path.abspath(path).encode())
    for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
        full = os.path.join(path, name)
        if os.path.isfile(full):
            st = os.stat(full)
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_text_encoder(path: str, kind: str = "hf") -> TextEncoder:
    r"""``hf``: :class:`MeanPoolingEncoder`; ``sparc_align``: the dual encoder trained by the sparc_align stage."""
    if kind == "hf":
        return MeanPoolingEncoder(path)
    if kind == "sparc_align":
        try:
            from ...model.dual_encoder import load_dual_encoder  # type: ignore[import-not-found]
        except ImportError as err:
            raise ValueError(
                f"--embedder-kind sparc_align needs llamafactory_video.model.dual_encoder: {err}"
            ) from None
        return load_dual_encoder(path)
    raise ValueError(f"unknown embedder kind {kind!r} (choose hf or sparc_align)")


class EmbeddingRetriever:
    r"""Cosine similarity between the question's and the documents' embeddings from ``encoder``."""

    name = "embedding"

    def __init__(self, encoder: TextEncoder, fingerprint: str) -> None:
        self.encoder = encoder
        self._fingerprint = fingerprint

    @classmethod
    def from_path(cls, path: str, kind: str = "hf") -> EmbeddingRetriever:
        return cls(load_text_encoder(path, kind), f"{kind}-{_dir_fingerprint(path)}")

    def fingerprint(self) -> str:
        return self._fingerprint

    def rank(
        self, query: str, documents: Sequence[str], cache: dict[str, Any] | None = None, top_k: int | None = None
    ) -> list[tuple[int, float]]:
        import torch

        cache = cache if cache is not None else {}
        key = f"embeddings:{self._fingerprint}"
        stored = cache.get(key)
        if stored is None or len(stored) != len(documents):
            docs = torch.as_tensor(self.encoder.encode_texts(list(documents))).float()
            cache[key] = docs.tolist()
        else:
            docs = torch.tensor(stored, dtype=torch.float32)
        query_vec = torch.as_tensor(self.encoder.encode_texts([query])).float()
        sims = torch.nn.functional.normalize(docs, dim=-1) @ torch.nn.functional.normalize(query_vec, dim=-1).T
        return _top(sims.squeeze(-1).tolist(), top_k)
