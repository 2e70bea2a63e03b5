"""Classification metrics for ``action_cls``: top-k accuracy, macro-F1, per-class accuracy, confusion matrix."""

from typing import Optional

import numpy as np


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    r"""Fraction of rows whose label is among the ``k`` highest logits.

    Args:
        logits: ``(N, C)``. labels: ``(N,)``. ``k`` is clipped to ``C``.
    """
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[-1])
    topk = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(topk == labels[:, None], axis=-1)))


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    r"""``(C, C)`` counts, row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), preds.astype(np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    r"""Recall of each class, ``(C,)``; NaN for classes absent from the labels."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def macro_f1(matrix: np.ndarray) -> float:
    r"""Unweighted mean F1 over the classes present in the labels or the predictions."""
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    if not present.any():
        return float("nan")
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)
    return float(f1[present].mean())


def classification_report(
    logits: np.ndarray, labels: np.ndarray, num_classes: int, id2label: Optional[dict[int, str]] = None
) -> dict:
    r"""Everything ``do_eval`` logs and writes: scalars plus the confusion matrix and per-class accuracy."""
    id2label = id2label or {}
    preds = np.argmax(logits, axis=-1)
    matrix = confusion_matrix(preds, labels, num_classes)
    per_class = per_class_accuracy(matrix)
    names = [id2label.get(i, str(i)) for i in range(num_classes)]
    return {
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "macro_f1": macro_f1(matrix),
        "num_samples": int(len(labels)),
        "labels": names,
        "per_class_accuracy": {name: (None if np.isnan(acc) else float(acc)) for name, acc in zip(names, per_class)},
        "confusion_matrix": matrix.tolist(),
    }
