#!/usr/bin/env python
"""`scst` training step broken into its phases, so the bottleneck is visible.

One step of the ``scst`` stage (``ScstTrainer.compute_loss``) on B videos with K samples each, phase by phase:

* ``generate_samples``: ``generate`` of K sampled captions per video (eval mode, no gradient, the stage's sampling
  settings: temperature 0.7, top-p 0.9, top-k 50, ``scst_max_new_tokens``);
* ``generate_baseline``: the greedy baseline caption per video (``--baseline greedy``, the stage default; skipped
  with ``--baseline mean``);
* ``reward``: decoding the tokens and ``CaptionReward`` (CIDEr-D with document frequencies over a training corpus,
  ``CiderDScorer``; BLEU-4 is computed too, as in training) for the samples and the baseline;
* ``forward_backward``: the teacher-forced forward over prompt + sampled captions (vocabulary logits for the caption
  positions only, ``logits_to_keep``), log-softmax, the SCST loss and ``backward``.

Model: a Qwen2.5-VL built by ``build_tiny_model`` (trained tokenizer + real processor), random weights from the
config, with a realistic 151,936-row vocabulary unless ``--vocab`` (embedding and ``lm_head`` frozen as under
LoRA). The ``lm_head`` rows past the tokenizer's ~2k tokens are zeroed so that samples decode to text (the
vocabulary matmul is still computed in full). Videos: synthetic clips through the processor, as in
``bench/action_cls_step.py``. References: the MSR-VTT-like corpus of ``bench/caption_reward.py`` (20 per video).

Vision passes (``--route``, the stage's ``scst_vision_pass``): ``per_call`` runs the vision tower inside each of the
three calls (K samples, baseline, K teacher-forced copies: 2K+1 encodings of each video), ``once`` encodes each
video once (phase ``encode_visual``) and hands the features to the three calls (``train/scst/vision_pass.py``).
``--compare-routes`` runs both routes at each K of ``--ks`` in its own subprocess (so the peak memory of each is
its own: CUDA's peak allocation, or on CPU the peak RSS above the RSS of the loaded model) and writes the ratios
old / new to ``bench/results/scst_vision_pass_<device>.json``. The vision-heavy configuration of
``docs/stages/scst.md`` (16 frames, a tower as deep as the LLM with Qwen2.5-VL-3B's vision / LLM parameter ratio):

    python bench/scst_step.py --compare-routes --ks 4,8,16 --vision-heavy

Random weights generate random words, so the captions usually run to ``--max-new-tokens``: the generation figures
are the worst case of a trained model. ``reward_realistic_s`` times the reward on MSR-VTT-like captions of the same
count for comparison (not part of the step). Median and spread over ``--steps`` steps after one warm-up step; no
timing assertions anywhere.

    python bench/scst_step.py [--quick] [--device cpu|cuda] [--hidden 256 --layers 4 --vocab 151936]
                              [--batch 4 --samples 5 --max-new-tokens 32 --steps 5] [--output FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

from caption_reward import make_caption, make_corpus, summarize  # bench/ is on sys.path (script directory)


HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = (
    "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Describe this video in one sentence."
    "<|im_end|>\n<|im_start|>assistant\n"
)
PHASES = ("encode_visual", "generate_samples", "generate_baseline", "reward", "forward_backward")
ROUTES = ("per_call", "once")


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Model, processor batch, reward and generation settings of the benchmark."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

    from llamafactory_video.rewards import CiderDScorer
    from llamafactory_video.rewards.scst import CaptionReward
    from llamafactory_video.testing.synthetic_videos import action_classes, render_clip
    from llamafactory_video.testing.tiny_model import build_tiny_model, build_tiny_processor
    from llamafactory_video.train.scst.tokens import suppressed_token_ids
    from llamafactory_video.train.scst.trainer import ScstTrainer

    name = f"qwen2_5_vl_h{args.hidden}_l{args.layers}_v{args.vocab}"
    vision = dict(vision_depth=args.vision_depth, vision_hidden_size=args.vision_hidden,
                  vision_num_heads=args.vision_heads, vision_intermediate_size=args.vision_intermediate)
    if args.vision_depth != 2 or args.vision_hidden != 32 or args.intermediate:
        name += f"_i{args.intermediate}_vd{args.vision_depth}_vh{args.vision_hidden}_vi{args.vision_intermediate}"
    cache = os.path.join(args.workdir, name)
    if not os.path.isfile(os.path.join(cache, "config.json")):
        build_tiny_model(cache, hidden_size=args.hidden, num_layers=args.layers, vocab_size=args.vocab,
                         intermediate_size=args.intermediate or None, max_pixels=args.pixels, **vision)
    tokenizer = AutoTokenizer.from_pretrained(cache)
    processor = build_tiny_processor(tokenizer, max_pixels=args.pixels, min_pixels=56 * 56)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(cache), dtype=dtype)
    with torch.no_grad():  # samples decode to text: no logit for rows the tokenizer cannot decode
        model.get_output_embeddings().weight[len(tokenizer) :] = 0
    model = model.to(args.device).train()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        module.weight.requires_grad_(False)  # frozen as under LoRA

    rng = np.random.default_rng(0)
    classes = action_classes(4)
    clips = [render_clip(classes[i % 4], rng, size=args.size, num_frames=args.frames) for i in range(args.batch)]
    batch = processor(text=[PROMPT] * args.batch, videos=[list(c) for c in clips], return_tensors="pt", padding=True)
    batch.pop("mm_token_type_ids", None)
    stage = stage_view(model)
    inputs = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    prompt = ScstTrainer._model_inputs(stage, inputs)

    corpus, topics = make_corpus(args.corpus_videos, 20, seed=0)
    started = time.perf_counter()
    scorer = CiderDScorer(corpus)
    scorer_build_s = time.perf_counter() - started
    keys = [f"video{i}" for i in range(args.batch)]
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return {
        "model": model,
        "stage": stage,
        "prompt": prompt,
        "keys": keys,
        "decode": lambda tokens: [c.strip() for c in tokenizer.batch_decode(tokens, skip_special_tokens=True)],
        "references": [corpus[k] for k in keys],
        "topics": [topics[k] for k in keys],
        "reward": CaptionReward(scorer, {"cider_d": 1.0}),
        "eos_ids": eos_ids,
        "scorer": {
            "build_s": scorer_build_s,
            "corpus_videos": args.corpus_videos,
            "refs_per_video": 20,
            "distinct_ngrams": len(scorer.document_frequency),
        },
        **generation_kwargs(
            eos_ids,
            tokenizer.pad_token_id,
            args.samples,
            args.max_new_tokens,
            # as the stage: no sampled placeholder / special token (it would break the teacher-forced pass)
            suppress_tokens=suppressed_token_ids(
                tokenizer, eos_ids, processor, model.config, model.config.get_text_config().vocab_size
            ),
        ),
    }


def stage_view(model: torch.nn.Module) -> SimpleNamespace:
    """The attributes ``ScstTrainer``'s prompt / teacher-forced input builders read, for a model outside a trainer:
    the bench calls the stage's own ``_model_inputs`` / ``_teacher_forced_inputs`` on it."""
    from llamafactory_video.model.families import family_for
    from llamafactory_video.train.scst.tokens import mm_token_type_ids, rope_needs_mm_token_types

    image_id, video_id = getattr(model.config, "image_token_id", None), getattr(model.config, "video_token_id", None)
    return SimpleNamespace(
        model=model,
        family=family_for(model),
        image_token_id=image_id,
        video_token_id=video_id,
        use_mm_token_types=rope_needs_mm_token_types(model) and (image_id is not None or video_id is not None),
        _mm_token_types=lambda ids: mm_token_type_ids(ids, image_id, video_id),
    )


def generation_kwargs(
    eos_ids: list[int],
    pad_id: int,
    samples: int,
    max_new_tokens: int,
    min_new_tokens: int | None = None,
    suppress_tokens: list[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{"sample_kwargs", "baseline_kwargs"}`` of ``generate``, as ``ScstTrainer`` builds them (stage defaults:
    temperature 0.7, top-p 0.9, top-k 50; greedy baseline)."""
    common: dict[str, Any] = dict(
        eos_token_id=eos_ids, pad_token_id=pad_id, use_cache=True, max_new_tokens=max_new_tokens
    )
    if min_new_tokens:
        common["min_new_tokens"] = min_new_tokens
    if suppress_tokens:
        common["suppress_tokens"] = suppress_tokens
    return {
        "sample_kwargs": dict(
            common, do_sample=True, temperature=0.7, top_p=0.9, top_k=50, num_return_sequences=samples
        ),
        "baseline_kwargs": dict(common, do_sample=False, num_beams=1, num_return_sequences=1),
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def generate(model: torch.nn.Module, prompt: dict[str, Any], **kwargs: Any) -> torch.Tensor:
    """Generated tokens only, in eval mode without gradient (as ``ScstTrainer._generate``)."""
    model.eval()
    try:
        with torch.no_grad():
            sequences = model.generate(**prompt, **kwargs)
    finally:
        model.train()
    return sequences[:, prompt["input_ids"].shape[1] :]


def generate_once(model: torch.nn.Module, vision: Any, prompt: dict[str, Any], **kwargs: Any) -> torch.Tensor:
    """As :func:`generate`, from the features computed once (``VisionPass.generate``)."""
    repeats = int(kwargs.get("num_return_sequences") or 1)
    model.eval()
    try:
        with torch.no_grad():
            sequences = vision.generate(model, prompt, repeats, **kwargs)
    finally:
        model.train()
    return sequences[:, prompt["input_ids"].shape[1] :]


def scst_step(ctx: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    """One SCST step; returns ``({phase: seconds}, {"generated_tokens": ..., "caption_words": ...})``.

    ``ctx``: ``model``, ``prompt`` (the processor batch), ``keys`` / ``references`` of the B videos, ``decode``
    (generated tokens -> captions), ``reward`` (a ``CaptionReward``), ``eos_ids``, ``sample_kwargs``,
    ``baseline_kwargs``; ``args``: ``samples`` (K), ``baseline`` (``greedy`` / ``mean``), ``device`` and ``route``
    (``per_call``: every call encodes the videos; ``once``: ``encode_visual`` once, the calls reuse the features).
    """
    from llamafactory_video.losses.scst import first_eos_mask, scst_loss
    from llamafactory_video.train.scst.trainer import ScstTrainer
    from llamafactory_video.train.scst.vision_pass import VisionPass

    model, prompt, k = ctx["model"], ctx["prompt"], args.samples
    batch = prompt["input_ids"].shape[0]
    times: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        _sync(args.device)
        start = time.perf_counter()
        out = fn()
        _sync(args.device)
        times[name] = time.perf_counter() - start
        return out

    vision = None
    if getattr(args, "route", "per_call") == "once":
        # as ScstTrainer._vision_once: the graph is kept (the model trains; here the tower does too)
        vision = timed("encode_visual", lambda: VisionPass(ctx["stage"].family, model, prompt, with_grad=True))

        def run(kwargs: dict[str, Any]) -> torch.Tensor:
            return generate_once(model, vision, prompt, **kwargs)
    else:

        def run(kwargs: dict[str, Any]) -> torch.Tensor:
            return generate(model, prompt, **kwargs)

    sampled = timed("generate_samples", lambda: run(ctx["sample_kwargs"]))
    baseline_tokens = None
    if args.baseline == "greedy":
        baseline_tokens = timed("generate_baseline", lambda: run(ctx["baseline_kwargs"]))

    def reward() -> tuple[np.ndarray, np.ndarray, list[str]]:
        decode = ctx["decode"]
        captions = decode(sampled)
        rep_keys = [key for key in ctx["keys"] for _ in range(k)]
        rep_refs = [refs for refs in ctx["references"] for _ in range(k)]
        rewards, _ = ctx["reward"](captions, rep_keys, rep_refs)
        if baseline_tokens is not None:
            base_captions = decode(baseline_tokens)
            base, _ = ctx["reward"](base_captions, ctx["keys"], ctx["references"])
            baseline = np.repeat(base, k)
        else:  # mean of the other samples
            grid = rewards.reshape(batch, k)
            baseline = ((grid.sum(1, keepdims=True) - grid) / max(k - 1, 1)).reshape(-1)
        return rewards, baseline, captions

    rewards, baseline, captions = timed("reward", reward)

    def forward_backward() -> float:
        advantages = torch.tensor(rewards - baseline, dtype=torch.float32, device=args.device)
        gen_len = sampled.shape[1]
        mask = first_eos_mask(sampled, ctx["eos_ids"])
        forward = ScstTrainer._teacher_forced_inputs(ctx["stage"], prompt, sampled, mask, k, vision)
        context: Callable[[], Any] = contextlib.nullcontext
        if vision is not None:
            forward, context = vision.forward_inputs(forward, k)
        with context():
            outputs = model(**forward, use_cache=False, logits_to_keep=gen_len + 1)
        logits = outputs.logits[:, :-1].float()
        logprobs = torch.gather(torch.log_softmax(logits, dim=-1), 2, sampled.unsqueeze(-1)).squeeze(-1)
        loss = scst_loss(logprobs, mask.to(logprobs.device), advantages)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return float(loss.item())

    timed("forward_backward", forward_backward)
    times["step"] = sum(times.values())
    info = {
        "generated_tokens": float(sampled.shape[1]),
        "caption_words": float(np.mean([len(c.split()) for c in captions])),
    }
    return times, info


def realistic_reward_time(ctx: dict[str, Any], args: argparse.Namespace, rng: random.Random) -> float:
    """Seconds of the reward on MSR-VTT-like captions (8-12 words) of the same count as one step's samples."""
    captions = [make_caption(rng, topic) for topic in ctx["topics"] for _ in range(args.samples)]
    rep_keys = [key for key in ctx["keys"] for _ in range(args.samples)]
    rep_refs = [refs for refs in ctx["references"] for _ in range(args.samples)]
    start = time.perf_counter()
    ctx["reward"](captions, rep_keys, rep_refs)
    return time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` shrinks everything to a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=151936, help="embedding rows (realistic: 151936)")
    parser.add_argument("--batch", type=int, default=4, help="videos per step (B)")
    parser.add_argument("--samples", type=int, default=5, help="sampled captions per video (K, scst_num_samples)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="scst_max_new_tokens")
    parser.add_argument("--baseline", choices=("greedy", "mean"), default="greedy")
    parser.add_argument("--intermediate", type=int, default=0, help="LLM MLP width (0: 2 x hidden)")
    parser.add_argument("--vision-depth", type=int, default=2, help="vision tower blocks")
    parser.add_argument("--vision-hidden", type=int, default=32, help="vision tower width")
    parser.add_argument("--vision-heads", type=int, default=2, help="vision tower heads")
    parser.add_argument("--vision-intermediate", type=int, default=None, help="vision MLP width (None: 2 x width)")
    parser.add_argument("--route", choices=ROUTES, default="per_call", help="scst_vision_pass of the step")
    parser.add_argument("--compare-routes", action="store_true",
                        help="both routes at each K of --ks, each in a subprocess; ratios per_call / once")
    parser.add_argument("--ks", default="4,8,16", help="K values of --compare-routes")
    parser.add_argument("--vision-heavy", action="store_true",
                        help="16 frames at 224 px (CPU stand-in for 448 px), B 1, LLM 4 x 256 (MLP 1376), tower "
                        "4 x 160 (MLP 427): tower as deep as the LLM, Qwen2.5-VL-3B's vision / LLM parameter ratio")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--pixels", type=int, default=112 * 112)
    parser.add_argument("--corpus-videos", type=int, default=2000, help="training videos of the reward's df corpus")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, one timed step: a smoke run")
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"))
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/scst_step_<device>.json)")
    args = parser.parse_args(argv)
    if args.vision_heavy:
        args.hidden, args.layers, args.intermediate = 256, 4, 1376
        args.vision_depth, args.vision_hidden, args.vision_heads, args.vision_intermediate = 4, 160, 4, 427
        args.frames, args.size, args.pixels, args.batch, args.max_new_tokens = 16, 224, 224 * 224, 1, 16
    if args.quick:
        args.hidden, args.layers, args.vocab, args.batch, args.samples = 64, 2, 32000, 2, 3
        args.max_new_tokens, args.steps, args.corpus_videos = 8, 1, 200
    if min(args.batch, args.samples, args.steps, args.max_new_tokens) < 1:
        parser.error("--batch, --samples, --steps and --max-new-tokens must be >= 1")
    if args.baseline == "mean" and args.samples < 2:
        parser.error("--baseline mean needs --samples >= 2")
    return args


def _rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def compare_routes(args: argparse.Namespace, argv: list[str]) -> int:
    """Each route at each K of ``--ks`` in its own subprocess (own peak memory); ratios per_call / once."""
    import subprocess
    import tempfile

    ks = [int(k) for k in args.ks.split(",")]
    passthrough: list[str] = []  # the subprocesses' arguments: ours less --compare-routes and --output
    skip = False
    for arg in argv:
        if skip or arg == "--compare-routes" or arg.startswith("--output="):
            skip = False
            continue
        if arg == "--output":
            skip = True
            continue
        passthrough.append(arg)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in ks:
            for route in ROUTES:
                out = os.path.join(tmp, f"{route}_{k}.json")
                cmd = [sys.executable, os.path.abspath(__file__), *passthrough, "--route", route,
                       "--samples", str(k), "--output", out]
                print(f"K={k} route={route}: {' '.join(cmd[1:])}", flush=True)
                subprocess.run(cmd, check=True)
                with open(out, encoding="utf-8") as f:
                    runs[f"{route}_k{k}"] = json.load(f)
    rows = []
    for k in ks:
        old, new = runs[f"per_call_k{k}"], runs[f"once_k{k}"]
        rows.append({
            "k": k,
            "step_s": {"per_call": old["phases_s"]["step"]["median"], "once": new["phases_s"]["step"]["median"]},
            "step_time_ratio": old["phases_s"]["step"]["median"] / new["phases_s"]["step"]["median"],
            "peak_memory_bytes": {"per_call": old["memory"]["peak_step_bytes"],
                                  "once": new["memory"]["peak_step_bytes"]},
            "peak_memory_ratio": old["memory"]["peak_step_bytes"] / max(new["memory"]["peak_step_bytes"], 1),
            "phases_median_s": {route: {name: runs[f"{route}_k{k}"]["phases_s"][name]["median"]
                                        for name in (*PHASES, "step") if name in runs[f"{route}_k{k}"]["phases_s"]}
                                for route in ROUTES},
        })
    first = runs[f"once_k{ks[0]}"]
    result = {
        "benchmark": "scst_vision_pass",
        "command": "python bench/scst_step.py --compare-routes " + " ".join(passthrough),
        "device": args.device,
        "device_name": first["device_name"],
        "machine": first["machine"],
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {key: value for key, value in first["config"].items() if key not in ("samples", "route")},
        "tokens": first["tokens"],
        "memory_measure": first["memory"]["measure"],
        "ratios": rows,
        "runs": runs,
    }
    print(f"scst step, vision pass per call / once ({args.device}, {first['tokens']['prompt']} prompt tokens):")
    for row in rows:
        print(f"  K={row['k']:3d}: step {row['step_s']['per_call']:.2f} s / {row['step_s']['once']:.2f} s = "
              f"{row['step_time_ratio']:.2f}x; peak memory {row['peak_memory_bytes']['per_call'] / 2**20:.0f} MiB / "
              f"{row['peak_memory_bytes']['once'] / 2**20:.0f} MiB = {row['peak_memory_ratio']:.2f}x")
    output = args.output or os.path.join(HERE, "results", f"scst_vision_pass_{args.device}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.compare_routes:
        return compare_routes(args, argv)
    print(
        f"building the model (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}) and the reward ...",
        flush=True,
    )
    ctx = build(args)
    torch.manual_seed(0)
    rng = random.Random(0)
    rss_before = _rss_bytes()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
    print("warm-up step ...", flush=True)
    scst_step(ctx, args)
    realistic_reward_time(ctx, args, rng)
    times: dict[str, list[float]] = {}
    infos: list[dict[str, float]] = []
    realistic: list[float] = []
    for index in range(args.steps):
        print(f"step {index + 1}/{args.steps} ...", flush=True)
        step_times, info = scst_step(ctx, args)
        for name, value in step_times.items():
            times.setdefault(name, []).append(value)
        infos.append(info)
        realistic.append(realistic_reward_time(ctx, args, rng))

    if args.device == "cuda":
        memory = {"measure": "torch.cuda.max_memory_allocated above the allocation of the loaded model",
                  "peak_step_bytes": int(torch.cuda.max_memory_allocated() - allocated_before)}
    else:
        memory = {"measure": "peak RSS of the process (ru_maxrss) above its RSS with the model loaded",
                  "peak_step_bytes": int(_peak_rss_bytes() - rss_before)}
    phases = {name: summarize(values) for name, values in times.items()}
    parts = {name: phases[name]["median"] for name in PHASES if name in phases}
    total = sum(parts.values())
    samples = args.batch * args.samples
    result = {
        "benchmark": "scst_step",
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
            k: getattr(args, k)
            for k in (
                "hidden",
                "layers",
                "vocab",
                "batch",
                "samples",
                "max_new_tokens",
                "baseline",
                "route",
                "intermediate",
                "vision_depth",
                "vision_hidden",
                "vision_heads",
                "vision_intermediate",
                "frames",
                "size",
                "pixels",
                "steps",
                "quick",
            )
        },
        "tokens": {
            "prompt": int(ctx["prompt"]["input_ids"].shape[1]),
            "generated_mean": float(np.mean([i["generated_tokens"] for i in infos])),
            "caption_words_mean": float(np.mean([i["caption_words"] for i in infos])),
        },
        "scorer": ctx["scorer"],
        "memory": memory,
        "phases_s": phases,
        "share_of_step": {name: value / total for name, value in parts.items()},
        "bottleneck": max(parts, key=parts.get),
        "samples_per_s": samples / phases["step"]["median"],
        "reward_realistic_s": summarize(realistic),
    }
    print(
        f"scst step on {args.device} (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
        f"B={args.batch} x K={args.samples}, {result['tokens']['generated_mean']:.0f} new tokens):"
    )
    for name in (*parts, "step"):
        p = phases[name]
        share = f"{result['share_of_step'][name] * 100:5.1f} %" if name in parts else ""
        print(f"  {name:18s} {p['median'] * 1000:9.1f} ms [{p['p10'] * 1000:.1f}-{p['p90'] * 1000:.1f}] {share}")
    print(
        f"  bottleneck: {result['bottleneck']}; {result['samples_per_s']:.2f} samples/s; reward on MSR-VTT-like "
        f"captions {result['reward_realistic_s']['median'] * 1000:.1f} ms"
    )
    output = args.output or os.path.join(HERE, "results", f"scst_step_{args.device}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
