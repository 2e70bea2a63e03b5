import math

import numpy as np
import pytest
import torch

from llamafactory_video.losses import action_cls_loss, gather_token_hidden
from llamafactory_video.metrics.classification import (
    classification_report,
    confusion_matrix,
    macro_f1,
    per_class_accuracy,
    topk_accuracy,
)


def naive_ce(logits, labels, eps):
    total = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        m = max(row)
        logz = m + math.log(sum(math.exp(x - m) for x in row))
        logp = [x - logz for x in row]
        c = len(row)
        total += -sum(((1 - eps) * (j == label) + eps / c) * logp[j] for j in range(c))
    return total / len(labels)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_action_cls_loss_matches_naive_reference(eps):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g) * 3
    labels = torch.randint(0, 5, (7,), generator=g)
    assert action_cls_loss(logits, labels, eps).item() == pytest.approx(naive_ce(logits, labels, eps), rel=1e-5)


def test_action_cls_loss_pinned_value():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([0, 2])
    assert action_cls_loss(logits, labels).item() == pytest.approx(
        0.6216271, abs=1e-6
    )  # hand-computed: (0.2413 + 1.0019) / 2


def test_loss_batch8_equals_mean_of_four_batches_of_2():
    # (batch 8, accumulation 1) == (batch 2, accumulation 4) for a per-batch mean of equal-size micro-batches
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 4, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (8,), generator=g)
    full = action_cls_loss(logits, labels, 0.1)
    (grad_full,) = torch.autograd.grad(full, logits)
    acc = sum(action_cls_loss(logits[i : i + 2], labels[i : i + 2], 0.1) / 4 for i in range(0, 8, 2))
    (grad_acc,) = torch.autograd.grad(acc, logits)
    assert full.item() == pytest.approx(acc.item(), rel=1e-6)
    assert torch.allclose(grad_full, grad_acc, atol=1e-7)


def test_gather_token_hidden_takes_last_occurrence_per_row():
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    ids = torch.tensor([[1, 9, 2, 9, 0], [9, 3, 3, 0, 0]])
    out = gather_token_hidden(hidden, ids, 9)
    assert torch.equal(out[0], hidden[0, 3]) and torch.equal(out[1], hidden[1, 0])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        gather_token_hidden(hidden, torch.tensor([[9, 0, 0, 0, 0], [1, 2, 3, 4, 5]]), 9)


def test_topk_and_confusion_against_naive():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 6))
    labels = rng.integers(0, 6, size=50)
    for k in (1, 3, 5):
        naive = np.mean([labels[i] in sorted(range(6), key=lambda j: -logits[i, j])[:k] for i in range(50)])
        assert topk_accuracy(logits, labels, k) == pytest.approx(naive)
    preds = logits.argmax(-1)
    cm = confusion_matrix(preds, labels, 6)
    naive_cm = np.zeros((6, 6), int)
    for t, p in zip(labels, preds):
        naive_cm[t, p] += 1
    assert (cm == naive_cm).all()
    f1s = []
    for c in range(6):
        tp = np.sum((preds == c) & (labels == c))
        fp = np.sum((preds == c) & (labels != c))
        fn = np.sum((preds != c) & (labels == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    assert macro_f1(cm) == pytest.approx(np.mean(f1s))


def test_per_class_accuracy_and_report():
    labels = np.array([0, 0, 1, 1, 2])
    logits = np.eye(4)[[0, 1, 1, 1, 0]]
    report = classification_report(logits, labels, 4, {0: "a", 1: "b", 2: "c", 3: "d"})
    assert report["top1"] == pytest.approx(0.6)
    assert report["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0, "d": None}
    assert report["confusion_matrix"][2] == [1, 0, 0, 0]
    assert np.isnan(per_class_accuracy(np.zeros((2, 2), int))).all()
