#!/usr/bin/env python
"""CLIP-ViP proxy-guided attention: our block-wise ``proxy_guided_attention`` (proxies over all tokens, each frame's
patches over the proxies + their own frame) against the peer, one dense ``scaled_dot_product_attention`` over all
``M + T * P`` tokens with the ``(S, S)`` proxy-guided boolean mask (what reusing a stock attention with a mask gives),
forward + backward, on CPU, at ViP-B/16's token layout (M = 4 proxies, T = 12 frames, P = 196 patches, 12 heads of 64).

After one untimed call of each, the two sides alternate within each repetition; median and p10/p90 over
``--reps``; ``ratio`` = dense / block-wise (higher = block-wise is cheaper). ``max_abs_diff`` checks both give the
same output. No timing assertions anywhere.

    python bench/clip_vip_attention.py [--quick] [--reps 5] [--output FILE]
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
DEFAULT_OUTPUT = os.path.join(HERE, "results", "clip_vip_attention_cpu.json")
# (batch, heads, proxies, frames, patches per frame, head dim)
SIZES = ((1, 12, 4, 12, 196, 64), (2, 12, 4, 8, 196, 64), (2, 12, 4, 12, 49, 64))
QUICK_SIZES = ((1, 2, 4, 3, 16, 8),)


def summarize(values):
    ordered = sorted(values)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"median": statistics.median(values), "p10": pick(0.1), "p90": pick(0.9), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
    from llamafactory_video.model.clip_vip import proxy_guided_attention, proxy_guided_mask

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    reps = 2 if args.quick else args.reps
    rows = {}
    for b, h, m, t, p, d in QUICK_SIZES if args.quick else SIZES:
        s = m + t * p
        q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
        mask = proxy_guided_mask(m, t, p)

        def dense():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        def block():
            return proxy_guided_attention(q, k, v, m, t)

        with torch.no_grad():
            diff = float((dense() - block()).abs().max())  # also a warm-up of both sides
        times = {"dense": [], "block": []}
        for _ in range(reps):
            for name, fn in (("dense", dense), ("block", block)):
                start = time.perf_counter()
                fn().sum().backward()
                times[name].append(time.perf_counter() - start)
                for x in (q, k, v):
                    x.grad = None
        dense_s, block_s = summarize(times["dense"]), summarize(times["block"])
        key = f"B{b}_H{h}_M{m}_T{t}_P{p}_d{d}"
        rows[key] = {
            "tokens": s,
            "dense_s": dense_s,
            "block_s": block_s,
            "ratio": dense_s["median"] / block_s["median"],
            "max_abs_diff": diff,
        }
        print(
            f"{key}: S={s} dense {dense_s['median']:.3f}s block {block_s['median']:.3f}s "
            f"ratio {rows[key]['ratio']:.2f} max|diff| {diff:.1e}"
        )
    result = {
        "benchmark": "clip_vip_attention",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "settings": {"reps": reps, "quick": args.quick, "threads": torch.get_num_threads()},
        "results": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
