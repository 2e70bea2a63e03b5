"""Pictures a person would rather look at than numbers: confusion matrices and training curves."""

import os
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str, title: str = "") -> str:
    r"""Row-normalised confusion matrix heat map with raw counts in the cells; returns ``path``."""
    plt = _pyplot()
    counts = np.asarray(matrix)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, np.maximum(rows, 1))
    size = max(6.0, 0.45 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    ax.set_title(title or "confusion matrix", fontsize=10, wrap=True)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_log_history(log_history: list[dict], keys: Sequence[str], output_dir: str) -> list[str]:
    r"""One PNG per key found in the Trainer's ``log_history`` (x = step), named ``training_<key>.png``."""
    plt = _pyplot()
    written = []
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if not points:
            continue
        steps, values = zip(*points)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {os.path.basename(os.path.abspath(output_dir))}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(output_dir, "training_{}.png".format(key.replace("/", "_")))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def plot_recall_curves(
    ranks: dict[str, Sequence[int]],
    num_candidates: dict[str, int],
    path: str,
    title: str = "",
    positives: dict[str, Sequence[int]] | None = None,
) -> str:
    r"""Recall@K against K for each retrieval direction, with the chance curve of a random ranking (``positives``:
    positives per query of each direction, 1 each when omitted); returns ``path``."""
    from .retrieval import chance_recall_curve, recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, direction_ranks in ranks.items():
        n = num_candidates[label]
        ks = np.arange(1, n + 1)
        line = ax.plot(ks, recall_curve(direction_ranks, n), marker="o", markersize=3, label=label)[0]
        per_query = (positives or {}).get(label) or [1] * len(direction_ranks)
        chance = chance_recall_curve(n, per_query)
        ax.plot(ks, chance, linestyle=":", color=line.get_color(), label=f"{label} chance")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "retrieval")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
