#!/usr/bin/env python
"""`action_cls` training step: our route against the seed's `output_hidden_states` route and a stock `sft` step.

* ``ours``:  the input ends at ``<ACTION>`` (the answer cannot influence a causal model's ``<ACTION>`` state) and
  the backbone projects ONE position onto the vocabulary (``logits_to_keep=1``);
* ``seed``:  the seed's ``compute_loss``: the whole conversation, ``model(**inputs, output_hidden_states=True)``
  (vocabulary logits for every position), hidden state at ``<ACTION>``, head, CE;
* ``sft``:   LlamaFactory's stock ``sft`` step on the same batch as ``seed`` (whole conversation), with LM labels on
  the assistant answer only (prompt tokens ``-100``, as the sft data processor masks them):
  ``model(**batch, labels=labels).loss.backward()``; no head.

All three run forward + backward (embedding and lm_head frozen, as under LoRA) on the same videos through a
Qwen2.5-VL built from a config (random weights, realistic 151,936-token vocabulary unless ``--vocab``), the same
head, the same batch. Step time: the three routes alternate step by step in one process after a warm-up (the order
rotates every step); median and spread.
Peak memory: on CUDA ``max_memory_allocated`` per route; on CPU each route's first step runs in a fresh subprocess
and the peak RSS above the pre-step RSS (sampled by a thread) is reported. Ratios are seed / ours and sft / ours
(higher = ours cheaper). No timing assertions anywhere.

    python bench/action_cls_step.py [--quick] [--device cpu|cuda] [--hidden 256 --layers 4 --batch 4]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch


HERE = os.path.dirname(os.path.abspath(__file__))
ROUTES = ("ours", "seed", "sft")
ANSWER = "The person in the video is performing the action slowly and carefully in front of a plain background."


def build(args):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

    from llamafactory_video.model.action_head import ActionHead, ActionHeadConfig, attach_action_head
    from llamafactory_video.testing.synthetic_videos import action_classes, render_clip
    from llamafactory_video.testing.tiny_model import build_tiny_model, build_tiny_processor

    cache = os.path.join(args.workdir, f"qwen2_5_vl_h{args.hidden}_l{args.layers}_v{args.vocab}")
    if not os.path.isfile(os.path.join(cache, "config.json")):
        build_tiny_model(cache, hidden_size=args.hidden, num_layers=args.layers, vocab_size=args.vocab)
    tokenizer = AutoTokenizer.from_pretrained(cache)
    tokenizer.add_tokens(["<ACTION>"], special_tokens=True)
    processor = build_tiny_processor(tokenizer, max_pixels=args.pixels, min_pixels=56 * 56)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    torch.manual_seed(0)  # random weights from the config: no loading transient to hide the step's peak
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(cache), dtype=dtype)
    model = model.to(args.device).train()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        module.weight.requires_grad_(False)  # frozen as under LoRA (the <ACTION> row lives in the head)
    token_id = tokenizer.convert_tokens_to_ids("<ACTION>")
    embed = model.get_input_embeddings()
    head = ActionHead(
        ActionHeadConfig(hidden_size=args.hidden, num_classes=101), token_id, embed.weight[:token_id].float().mean(0)
    )
    attach_action_head(model, head.to(args.device))

    rng = np.random.default_rng(0)
    classes = action_classes(4)
    clips = [render_clip(classes[i % 4], rng, size=args.size, num_frames=args.frames) for i in range(args.batch)]
    prompt = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What action is being performed?<ACTION>"
    routes = {}
    conversation = prompt + f"<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>\n"
    for name, text in (("ours", prompt), ("seed", conversation)):
        batch = processor(text=[text] * args.batch, videos=[list(c) for c in clips], return_tensors="pt", padding=True)
        batch = {k: v.to(args.device) for k, v in batch.items()}
        batch.pop("mm_token_type_ids", None)
        routes[name] = batch
    answer_len = len(tokenizer(f"{ANSWER}<|im_end|>\n", add_special_tokens=False)["input_ids"])
    routes["sft"] = dict(routes["seed"], labels=answer_labels(routes["seed"], answer_len))
    labels = torch.arange(args.batch, device=args.device) % 101
    return model, head, token_id, routes, labels


def answer_labels(batch: dict[str, Any], answer_len: int) -> torch.Tensor:
    r"""LM labels of the stock ``sft`` step: the last ``answer_len`` real tokens of each row (the assistant answer and
    its end tokens) keep their ids, everything else (prompt, video, padding) is ``-100``."""
    input_ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    labels = torch.full_like(input_ids, -100)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=-1, keepdim=True).values
    keep = mask & (positions > last - answer_len)
    labels[keep] = input_ids[keep]
    return labels


def step(model, head, token_id, batch, labels, route):
    from llamafactory_video.losses import action_cls_loss, gather_token_hidden

    if route == "sft":  # the stock step: LM loss on the answer, no head
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()
    if route == "ours":
        out = model(**batch, output_hidden_states=True, use_cache=False, logits_to_keep=1)
    else:
        out = model(**batch, output_hidden_states=True, use_cache=False)
    hidden = gather_token_hidden(out.hidden_states[-1], batch["input_ids"], token_id)
    loss = action_cls_loss(head(hidden), labels)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(args) -> None:
    r"""Peak RSS above the pre-step RSS during one step, sampled every 0.2 ms by a thread (``ru_maxrss`` would
    report the model-building transient instead)."""
    import threading

    model, head, token_id, routes, labels = build(args)
    before = rss_bytes()
    samples = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(rss_bytes())
            time.sleep(0.0002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    step(model, head, token_id, routes[args.route], labels, args.route)
    done.set()
    thread.join()
    peak = max(samples)
    print(
        json.dumps(
            {
                "peak_above_start_mb": max(0, peak - before) / 2**20,
                "tokens": int(routes[args.route]["input_ids"].shape[1]),
            }
        )
    )


def time_summary(values: list[float]) -> dict:
    """Median, spread (min, max, p10, p90) and the raw values of one route's step times (seconds)."""
    ordered = sorted(values)

    def pct(q: float) -> float:
        pos = (len(ordered) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {
        "median": statistics.median(values),
        "min": ordered[0],
        "max": ordered[-1],
        "p10": pct(10),
        "p90": pct(90),
        "n": len(values),
        "values": [round(v, 6) for v in values],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--pixels", type=int, default=112 * 112)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 steps: a smoke run")
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"))
    parser.add_argument("--output", default=None)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--route", default="ours", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.layers, args.vocab, args.batch, args.steps = 64, 2, 32000, 2, 2
    if args.memory_child:
        memory_child(args)
        return 0

    torch.manual_seed(0)
    print(f"building the model (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}) ...", flush=True)
    model, head, token_id, routes, labels = build(args)
    times = {route: [] for route in ROUTES}
    for route in ROUTES:  # warm-up
        step(model, head, token_id, routes[route], labels, route)
    print(f"timing {args.steps} steps per route ...", flush=True)
    for index in range(args.steps):
        for route in ROUTES[index % len(ROUTES) :] + ROUTES[: index % len(ROUTES)]:  # rotate the order
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(model, head, token_id, routes[route], labels, route)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[route].append(time.perf_counter() - start)

    memory = {}
    print("peak memory per route ...", flush=True)
    for route in ROUTES:
        if args.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step(model, head, token_id, routes[route], labels, route)
            memory[route] = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            child = [sys.executable, __file__, "--memory-child", "--route", route, "--device", "cpu"]
            for key in ("hidden", "layers", "vocab", "batch", "frames", "size", "pixels", "workdir"):
                child += [f"--{key}", str(getattr(args, key))]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            memory[route] = json.loads(out)["peak_above_start_mb"]

    result = {
        "benchmark": "action_cls_step",
        "device": args.device,
        "device_name": (
            torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
        ),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {
            k: getattr(args, k) for k in ("hidden", "layers", "vocab", "batch", "frames", "size", "pixels", "steps")
        },
        "tokens": {route: int(batch["input_ids"].shape[1]) for route, batch in routes.items()},
        "step_time_s": {route: time_summary(v) for route, v in times.items()},
        "peak_memory_mb": memory,
    }
    for peer in ("seed", "sft"):
        result[f"ratio_{peer}_over_ours"] = {
            "step_time": result["step_time_s"][peer]["median"] / result["step_time_s"]["ours"]["median"],
            "peak_memory": memory[peer] / max(memory["ours"], 1e-9),
        }
    print(
        f"action_cls step on {args.device} (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
        f"batch {args.batch}):"
    )
    for route in ROUTES:
        t = result["step_time_s"][route]
        print(
            f"  {route:5s} {result['tokens'][route]:4d} tokens  step {t['median'] * 1000:8.1f} ms "
            f"[{t['min'] * 1000:.1f}-{t['max'] * 1000:.1f}]  peak +{memory[route]:8.1f} MiB"
        )
    for peer in ("seed", "sft"):
        r = result[f"ratio_{peer}_over_ours"]
        print(f"  {peer} / ours: step time x{r['step_time']:.2f}, peak memory x{r['peak_memory']:.2f}")
    output = args.output or os.path.join(HERE, "results", f"action_cls_step_{args.device}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
