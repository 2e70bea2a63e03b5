"""Text-video retrieval metrics (R@K, median and mean rank), numpy in, numbers out."""

from collections.abc import Sequence

import numpy as np


def ranks_of_positives(similarity: np.ndarray, positives: np.ndarray) -> np.ndarray:
    r"""1-based rank of the best-ranked positive of each query.

    Args:
        similarity: ``(Q, C)`` scores, higher = better.
        positives: ``(Q, C)`` bool, at least one ``True`` per row.

    Returns:
        ``(Q,)`` ints: 1 + the number of negatives scoring higher than or equal to the query's best positive. Ties
        count against the query, so a collapsed model (all scores equal) gets the worst rank, never a perfect one.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    if similarity.shape != positives.shape:
        raise ValueError(f"similarity {similarity.shape} and positives {positives.shape} differ in shape")
    if not positives.any(axis=1).all():
        raise ValueError("every query needs at least one positive candidate")
    best_positive = np.where(positives, similarity, -np.inf).max(axis=1, keepdims=True)
    return 1 + (np.where(positives, -np.inf, similarity) >= best_positive).sum(axis=1)


def rank_summary(ranks: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    r"""``{"r1": ..., "r5": ..., "r10": ..., "median_rank": ..., "mean_rank": ...}``; recalls are fractions."""
    ranks = np.asarray(ranks)
    out = {f"r{k}": float((ranks <= k).mean()) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    out["mean_rank"] = float(ranks.mean())
    return out


def retrieval_metrics(
    similarity: np.ndarray, caption_to_video: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    r"""Both directions of caption-video retrieval, MSR-VTT style.

    Args:
        similarity: ``(N_captions, N_videos)`` scores.
        caption_to_video: ``(N_captions,)`` index of each caption's video.

    Returns:
        ``t2v_r1, t2v_r5, t2v_r10, t2v_median_rank, t2v_mean_rank`` (each caption ranks the videos) and the same
        with ``v2t_`` (each video ranks all captions; its rank is that of its best-ranked own caption).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    caption_to_video = np.asarray(caption_to_video)
    positives = caption_to_video[:, None] == np.arange(similarity.shape[1])[None, :]
    metrics = {f"t2v_{k}": v for k, v in rank_summary(ranks_of_positives(similarity, positives), ks).items()}
    metrics.update({f"v2t_{k}": v for k, v in rank_summary(ranks_of_positives(similarity.T, positives.T), ks).items()})
    return metrics


def recall_curve(ranks: Sequence[int], max_k: int) -> np.ndarray:
    r"""``R@K`` for ``K = 1 .. max_k``: the fraction of queries whose rank is at most ``K``; ``(max_k,)`` floats."""
    ranks = np.asarray(ranks)
    return (ranks[None, :] <= np.arange(1, max_k + 1)[:, None]).mean(axis=1)


def retrieval_ranks(similarity: np.ndarray, caption_to_video: Sequence[int]) -> dict[str, np.ndarray]:
    r"""``{"text->video": (N_captions,), "video->text": (N_videos,)}`` ranks, as :func:`retrieval_metrics` uses."""
    similarity = np.asarray(similarity, dtype=np.float64)
    caption_to_video = np.asarray(caption_to_video)
    positives = caption_to_video[:, None] == np.arange(similarity.shape[1])[None, :]
    return {
        "text->video": ranks_of_positives(similarity, positives),
        "video->text": ranks_of_positives(similarity.T, positives.T),
    }


def chance_recall_curve(num_candidates: int, positives_per_query: Sequence[int]) -> np.ndarray:
    r"""Expected ``R@K`` (``K = 1 .. num_candidates``) of a random ranking: a query with ``p`` positives among ``n``
    candidates has its best positive in the top ``K`` with probability ``1 - C(n - p, K) / C(n, K)``."""
    from math import comb

    n = num_candidates
    curve = [float(np.mean([1.0 - comb(n - p, k) / comb(n, k) for p in positives_per_query])) for k in range(1, n + 1)]
    return np.asarray(curve)
