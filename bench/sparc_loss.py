#!/usr/bin/env python
"""SPARC local loss: the vectorised ``sparc_local_loss`` (one batched einsum / masked logsumexp) against a naive
per-sample, per-token Python loop computing the same numbers (the shape of the seed's reference code), forward +
backward, on CPU.

Sizes: ``B`` pairs, ``L`` caption tokens, ``P`` patches (frames x patches per frame), ``D`` width. The two sides
alternate within each repetition; median and p10/p90 over ``--reps``; ``ratio`` = naive / vectorised (higher = the
vectorised loss is cheaper). ``max_abs_diff`` checks both give the same loss. No timing assertions anywhere.

    python bench/sparc_loss.py [--quick] [--reps 7] [--output FILE]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "sparc_loss_cpu.json")
SIZES = ((8, 16, 4 * 49, 64), (16, 32, 8 * 49, 128), (32, 32, 8 * 196, 256))
QUICK_SIZES = ((4, 8, 32, 16),)


def naive_local_loss(tokens, patches, token_mask, patch_mask, temperature):
    r"""Per sample, per token: min-max, threshold 1/P, renormalise, group, then the two cross-entropies."""
    losses = []
    for i in range(tokens.size(0)):
        valid_tokens = [t for t in range(tokens.size(1)) if bool(token_mask[i, t])]
        if not valid_tokens:
            continue
        x = patches[i][patch_mask[i]]
        grouped = []
        for t in valid_tokens:
            s = x @ tokens[i, t]
            a = (s - s.min()) / (s.max() - s.min()).clamp(min=1e-12)
            a = a * (a >= 1.0 / x.size(0))
            grouped.append((a / a.sum()) @ x)
        e = F.normalize(tokens[i, valid_tokens], dim=-1)
        c = F.normalize(torch.stack(grouped), dim=-1)
        z = e @ c.t() / temperature
        target = torch.arange(len(valid_tokens))
        losses.append(0.5 * (F.cross_entropy(z, target) + F.cross_entropy(z.t(), target)))
    return torch.stack(losses).mean()


def summarize(values):
    ordered = sorted(values)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"median": statistics.median(values), "p10": pick(0.1), "p90": pick(0.9), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
    from llamafactory_video.losses.sparc import sparc_local_loss

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    reps = 2 if args.quick else args.reps
    rows = {}
    for b, n_tok, p, d in QUICK_SIZES if args.quick else SIZES:
        tokens = torch.randn(b, n_tok, d)
        patches = torch.randn(b, p, d)
        token_mask = torch.rand(b, n_tok) > 0.3
        patch_mask = torch.ones(b, p, dtype=torch.bool)
        patch_mask[0, p // 2 :] = False

        def vectorised():
            t = tokens.clone().requires_grad_(True)
            loss, _ = sparc_local_loss(t, patches, token_mask, patch_mask, 0.07)
            loss.backward()
            return float(loss.detach())

        def naive():
            t = tokens.clone().requires_grad_(True)
            loss = naive_local_loss(t, patches, token_mask, patch_mask, 0.07)
            loss.backward()
            return float(loss.detach())

        diff = abs(vectorised() - naive())  # also the warm-up
        times = {"vectorised": [], "naive": []}
        for _ in range(reps):
            for name, fn in (("vectorised", vectorised), ("naive", naive)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        summary = {f"{k}_s": summarize(v) for k, v in times.items()}
        label = f"B{b}_L{n_tok}_P{p}_D{d}"
        rows[label] = {
            **summary,
            "ratio_naive_over_vectorised": summary["naive_s"]["median"] / summary["vectorised_s"]["median"],
            "max_abs_diff": diff,
        }
        print(
            f"B{b} L{n_tok} P{p} D{d}: vectorised {summary['vectorised_s']['median'] * 1e3:.2f} ms, naive "
            f"{summary['naive_s']['median'] * 1e3:.2f} ms, ratio {rows[label]['ratio_naive_over_vectorised']:.1f}x, "
            f"|diff| {diff:.2e}",
            flush=True,
        )
    result = {
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "settings": {"quick": args.quick, "reps": reps},
        "sizes": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
