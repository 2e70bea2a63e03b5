#!/usr/bin/env python
"""Real-size Qwen2.5-VL (3B / 7B configs, random weights, bf16) on a GPU: tokens/s, MFU and peak memory.

The architectures are built in code from the published sizes (nothing is downloaded):

==========  ======  ======  =====  ========  ============  ======  =============================================
model       hidden  layers  heads  kv heads  intermediate  vocab   vision tower
==========  ======  ======  =====  ========  ============  ======  =============================================
``3b``      2048    36      16     2         11008         151936  depth 32, hidden 1280, out 2048 (tied lm_head)
``7b``      3584    28      28     4         18944         151936  depth 32, hidden 1280, out 3584
``tiny``    64      2       4      2         128           151936  depth 2, hidden 32, out 64 (CPU code-path check)
==========  ======  ======  =====  ========  ============  ======  =============================================

For every model and attention variant (``sdpa``; ``flash_attention_2`` when ``flash_attn`` imports; Liger kernels
when ``liger_kernel`` imports), in its own subprocess (a CUDA OOM or a kernel failure is recorded, the rest goes on):

* ``action_cls``: our route, one full-parameter forward + backward (no optimizer step): the input ends at
  ``<ACTION>``, vocabulary logits for one position (``forward_action_logits`` of the stage's trainer), the head, CE;
* ``sft``: the stock ``sft`` step on the same videos: prompt + answer, LM labels on the answer,
  ``model(**batch, labels=labels).loss.backward()``;
* ``scst``: one step of the ``scst`` stage (``bench/scst_step.py``'s ``scst_step``): K sampled captions per video
  (fixed length: ``min_new_tokens = max_new_tokens``), the greedy baseline, the CIDEr-D reward (on MSR-VTT-like
  captions: there is no tokenizer to decode the random model's tokens), the teacher-forced forward + backward.

The two training routes alternate step by step after warm-up steps; median and spread. Reported: tokens/s
(``input_ids`` tokens of the step / step time), videos/s, peak memory (``max_memory_allocated``, weights and
gradients included), scst samples/s and, with the device's dense bf16 peak (a table keyed by the device name;
``--peak-tflops`` overrides), model FLOPs utilisation:

* ``mfu`` = 6 * params * tokens / time / peak, params = every parameter but the input embedding (the vision tower
  included), tokens = the language model's tokens (the usual formula);
* ``mfu_detailed`` = 6 * (text params * tokens + lm_head params * positions with vocabulary logits + vision
  params * patches + merger params * patches / 4) / time / peak (what the route computes; attention excluded).

On CPU (``--device cpu``, ``--quick``) the same code runs on the ``tiny`` config so the path is tested; its figures
mean nothing. No timing assertions anywhere.

    python bench/gpu.py [--device cuda] [--models 3b,7b] [--attn sdpa,flash_attention_2] [--liger auto|off]
                        [--batch 2 --frames 16 --side 336] [--steps 5] [--gradient-checkpointing]
                        [--peak-tflops 989] [--output FILE]

Peak memory here is full-parameter (a gradient for every weight); under LoRA subtract about 2 bytes per parameter
(the weights' bf16 gradients) to estimate the LoRA peak.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

from caption_reward import make_caption, make_corpus, summarize  # bench/ is on sys.path (script directory)
from scst_step import generation_kwargs, scst_step, stage_view


HERE = os.path.dirname(os.path.abspath(__file__))

#: Published sizes of Qwen2.5-VL-3B/7B-Instruct (config.json), and a tiny one for CPU code-path checks.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "3b": {
        "hidden": 2048,
        "layers": 36,
        "heads": 16,
        "kv_heads": 2,
        "intermediate": 11008,
        "vocab": 151936,
        "tie": True,
        "vision_depth": 32,
        "vision_hidden": 1280,
        "vision_heads": 16,
        "vision_intermediate": 3420,
        "fullatt": [7, 15, 23, 31],
    },
    "7b": {
        "hidden": 3584,
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "intermediate": 18944,
        "vocab": 151936,
        "tie": False,
        "vision_depth": 32,
        "vision_hidden": 1280,
        "vision_heads": 16,
        "vision_intermediate": 3420,
        "fullatt": [7, 15, 23, 31],
    },
    "tiny": {
        "hidden": 64,
        "layers": 2,
        "heads": 4,
        "kv_heads": 2,
        "intermediate": 128,
        "vocab": 151936,
        "tie": False,
        "vision_depth": 2,
        "vision_hidden": 32,
        "vision_heads": 2,
        "vision_intermediate": 64,
        "fullatt": [1],
    },
}

#: Dense bf16 tensor-core peak in TFLOP/s, matched in order as a substring of ``torch.cuda.get_device_name()``.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM
    ("A100", 312.0),
)

# Qwen2.5-VL token ids (the released tokenizer); <ACTION> takes the first free embedding row
BOS, IM_START, IM_END = 151643, 151644, 151645
VISION_START, VISION_END, VIDEO_PAD = 151652, 151653, 151656
ACTION_ID = 151665
PATCH, MERGE, TEMPORAL = 14, 2, 2
ANSWER_TOKENS = 24
ROUTES = ("action_cls", "sft")


# ------------------------------------------------------------------------------------------------ model
def make_config(size: dict[str, Any]) -> Any:
    """A ``Qwen2_5_VLConfig`` with the given sizes (M-RoPE sections and token ids of the released models)."""
    from transformers import Qwen2_5_VLConfig

    head_dim = size["hidden"] // size["heads"]
    half = head_dim // 2
    mrope = [16, 24, 24] if head_dim == 128 else [half - 2 * (half // 3), half // 3, half // 3]
    text = {
        "vocab_size": size["vocab"],
        "hidden_size": size["hidden"],
        "intermediate_size": size["intermediate"],
        "num_hidden_layers": size["layers"],
        "num_attention_heads": size["heads"],
        "num_key_value_heads": size["kv_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "max_window_layers": size["layers"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
        "bos_token_id": BOS,
        "eos_token_id": IM_END,
        "pad_token_id": BOS,
        "tie_word_embeddings": size["tie"],
    }
    vision = {
        "depth": size["vision_depth"],
        "hidden_size": size["vision_hidden"],
        "num_heads": size["vision_heads"],
        "intermediate_size": size["vision_intermediate"],
        "out_hidden_size": size["hidden"],
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "window_size": 112,
        "fullatt_block_indexes": size["fullatt"],
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=151655,
        video_token_id=VIDEO_PAD,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
        bos_token_id=BOS,
        eos_token_id=IM_END,
        pad_token_id=BOS,
        tie_word_embeddings=size["tie"],
    )


def parameter_groups(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts: ``embedding`` (input), ``lm_head`` (0 when tied), ``text`` (decoder layers + final norm),
    ``vision`` (patch embedding + blocks), ``merger``, ``total`` (unique parameters)."""
    groups = {"embedding": 0, "lm_head": 0, "text": 0, "vision": 0, "merger": 0}
    seen: set[int] = set()
    embedding = model.get_input_embeddings().weight
    for name, param in model.named_parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        if param is embedding:
            groups["embedding"] += param.numel()
        elif name.startswith("lm_head"):
            groups["lm_head"] += param.numel()
        elif ".visual.merger" in name or name.startswith("visual.merger"):
            groups["merger"] += param.numel()
        elif ".visual." in name or name.startswith("visual."):
            groups["vision"] += param.numel()
        elif "action_head" not in name:
            groups["text"] += param.numel()
    groups["total"] = sum(groups.values())
    return groups


def model_flops(
    groups: dict[str, int], tokens: int, logit_positions: int, patches: int, tied: bool
) -> dict[str, float]:
    """FLOPs of one forward + backward: ``simple`` (6 * params * tokens) and ``detailed`` (see the module doc)."""
    lm_head = groups["lm_head"] or (groups["embedding"] if tied else 0)
    params = groups["text"] + lm_head + groups["vision"] + groups["merger"]
    detailed = (
        groups["text"] * tokens
        + lm_head * logit_positions
        + groups["vision"] * patches
        + groups["merger"] * patches / (MERGE * MERGE)
    )
    return {"simple": 6.0 * params * tokens, "detailed": 6.0 * detailed, "params_counted": params}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The device's dense bf16 peak (TFLOP/s) from ``PEAK_BF16_TFLOPS``, ``override`` first; None when unknown."""
    if override:
        return float(override)
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# ------------------------------------------------------------------------------------------------ batches
def video_batch(
    batch: int, frames: int, side: int, route: str, device: str, dtype: torch.dtype, seed: int = 0
) -> dict[str, torch.Tensor]:
    """What the Qwen2.5-VL processor + LlamaFactory collator produce for ``batch`` videos of ``frames`` frames at
    ``side`` x ``side`` px, without a tokenizer: random text ids around the video placeholder tokens.

    ``route``: ``action_cls`` (ends at ``<ACTION>``), ``sft`` (+ an answer with LM labels) or ``scst`` (ends at the
    assistant header, for ``generate``).
    """
    gen = torch.Generator().manual_seed(seed)
    grid_t, grid_h, grid_w = max(1, frames // TEMPORAL), side // PATCH, side // PATCH
    video_tokens = grid_t * grid_h * grid_w // (MERGE * MERGE)

    def words(n: int) -> list[int]:
        return torch.randint(0, 150000, (n,), generator=gen).tolist()

    prompt = [IM_START] + words(3) + [VISION_START] + [VIDEO_PAD] * video_tokens + [VISION_END] + words(10)
    if route in ("action_cls", "sft"):
        prompt = prompt + [ACTION_ID]
    answer: list[int] = []
    if route == "sft":
        answer = words(ANSWER_TOKENS) + [IM_END]
        prompt = prompt + [IM_END, IM_START] + words(2)
    elif route == "scst":
        prompt = prompt + [IM_END, IM_START] + words(2)
    ids = torch.tensor([prompt + answer] * batch)
    out = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values_videos": torch.randn(
            batch * grid_t * grid_h * grid_w, 3 * TEMPORAL * PATCH * PATCH, generator=gen
        ).to(dtype),
        "video_grid_thw": torch.tensor([[grid_t, grid_h, grid_w]] * batch),
        "second_per_grid_ts": torch.tensor([TEMPORAL / 2.0] * batch),  # 2 fps sampling
    }
    if route == "sft":
        labels = torch.full_like(ids, -100)
        labels[:, len(prompt) :] = ids[:, len(prompt) :]
        out["labels"] = labels
    return {k: v.to(device) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------ child: one variant
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def train_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], route: str) -> float:
    """One forward + backward of ``route``; gradients dropped (no optimizer step)."""
    from llamafactory_video.losses import action_cls_loss
    from llamafactory_video.train.action_cls.trainer import forward_action_logits

    if route == "sft":
        loss = model(**batch, use_cache=False).loss
    else:
        labels = torch.arange(batch["input_ids"].shape[0], device=batch["input_ids"].device) % 101
        logits, _ = forward_action_logits(model, batch, ACTION_ID, with_lm_loss=False)
        loss = action_cls_loss(logits, labels)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return float(loss.item())


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    """Build one model / attention / Liger variant and measure the routes and the scst step."""
    from transformers import AutoModelForImageTextToText

    from llamafactory_video.model.action_head import ActionHead, ActionHeadConfig, attach_action_head

    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    size = MODEL_SIZES[args.model]
    if args.liger:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2_5_vl

        apply_liger_kernel_to_qwen2_5_vl()  # patches the classes: before the model is built
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(make_config(size), dtype=dtype, attn_implementation=args.attn)
    model.train()
    if args.gradient_checkpointing:  # LlamaFactory's default; MFU still counts model FLOPs (6N), not the recompute
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    embed = model.get_input_embeddings()
    head = ActionHead(
        ActionHeadConfig(hidden_size=size["hidden"], num_classes=101),
        ACTION_ID,
        embed.weight[:ACTION_ID].float().mean(0),
    )
    attach_action_head(model, head.to(device))
    groups = parameter_groups(model)
    result: dict[str, Any] = {
        "model": args.model,
        "attn": args.attn,
        "liger": bool(args.liger),
        "status": "ok",
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "build_s": time.perf_counter() - started,
        "parameters": groups,
        "routes": {},
    }
    if device == "cuda":
        result["weights_gib"] = torch.cuda.memory_allocated() / 2**30
    peak = peak_tflops(result_device_name(device), args.peak_tflops)

    # ---- action_cls and sft, alternating
    batches = {route: video_batch(args.batch, args.frames, args.side, route, device, dtype) for route in ROUTES}
    grid = batches["sft"]["video_grid_thw"]
    patches = int(grid.prod(-1).sum())
    times: dict[str, list[float]] = {route: [] for route in ROUTES}
    failed: dict[str, str] = {}
    for _ in range(args.warmup):
        for route in ROUTES:
            if route in failed:
                continue
            try:
                train_step(model, batches[route], route)
            except RuntimeError as exc:  # OOM (or a kernel failure): recorded, the other route goes on
                failed[route] = "oom" if _is_oom(exc) else f"error: {str(exc)[:300]}"
                model.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.empty_cache()
    live = [route for route in ROUTES if route not in failed]
    for index in range(args.steps):
        for route in live[index % max(len(live), 1) :] + live[: index % max(len(live), 1)]:
            _sync(device)
            start = time.perf_counter()
            train_step(model, batches[route], route)
            _sync(device)
            times[route].append(time.perf_counter() - start)
    for route in ROUTES:
        if route in failed:
            result["routes"][route] = {"status": failed[route]}
            continue
        block: dict[str, Any] = {"status": "ok", "step_s": summarize(times[route])}
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            train_step(model, batches[route], route)
            block["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        else:
            block["peak_allocated_gib"] = None  # CPU peak memory: bench/action_cls_step.py
        tokens = int(batches[route]["input_ids"].numel())
        logit_positions = args.batch if route == "action_cls" else tokens
        flops = model_flops(groups, tokens, logit_positions, patches, size["tie"])
        median = block["step_s"]["median"]
        block.update(
            {
                "tokens": tokens,
                "patches": patches,
                "tokens_per_s": tokens / median,
                "videos_per_s": args.batch / median,
                "flops_simple": flops["simple"],
                "flops_detailed": flops["detailed"],
                "mfu": flops["simple"] / median / (peak * 1e12) if peak else None,
                "mfu_detailed": flops["detailed"] / median / (peak * 1e12) if peak else None,
            }
        )
        result["routes"][route] = block
    if "action_cls" in result["routes"] and "sft" in result["routes"] and not failed:
        sft, ours = result["routes"]["sft"], result["routes"]["action_cls"]
        result["ratio_sft_over_action_cls"] = {"step_time": sft["step_s"]["median"] / ours["step_s"]["median"]}
        if device == "cuda":
            result["ratio_sft_over_action_cls"]["peak_memory"] = sft["peak_allocated_gib"] / ours["peak_allocated_gib"]
    del batches

    # ---- scst
    if args.scst_steps:
        try:
            result["scst"] = run_scst(model, args, dtype)
        except RuntimeError as exc:
            result["scst"] = {"status": "oom" if _is_oom(exc) else f"error: {str(exc)[:300]}"}
    return result


def run_scst(model: torch.nn.Module, args: argparse.Namespace, dtype: torch.dtype) -> dict[str, Any]:
    """The scst step on the real-size model: phases and samples/s (captions: MSR-VTT-like text, see the doc)."""
    from llamafactory_video.rewards import CiderDScorer
    from llamafactory_video.rewards.scst import CaptionReward

    model.zero_grad(set_to_none=True)
    if args.device == "cuda":
        torch.cuda.empty_cache()
    corpus, topics = make_corpus(max(args.scst_batch, 200), 20, seed=0)
    keys = [f"video{i}" for i in range(args.scst_batch)]
    rng = random.Random(0)
    prompt = video_batch(args.scst_batch, args.scst_frames, args.scst_side, "scst", args.device, dtype)
    ctx = {
        "model": model,
        "prompt": prompt,
        "keys": keys,
        "references": [corpus[k] for k in keys],
        # no tokenizer for a random real-size model: every generated row becomes an MSR-VTT-like caption
        "decode": lambda tokens: [
            make_caption(rng, topics[keys[(i * args.scst_batch) // len(tokens)]]) for i in range(len(tokens))
        ],
        "reward": CaptionReward(CiderDScorer(corpus), {"cider_d": 1.0}),
        "eos_ids": [IM_END, BOS],
        "stage": stage_view(model),
        **generation_kwargs(
            [IM_END, BOS],
            BOS,
            args.scst_samples,
            args.scst_max_new_tokens,
            min_new_tokens=args.scst_max_new_tokens,
            # as the stage: never sample a placeholder / vision token (no tokenizer here: the config's ids)
            suppress_tokens=[
                getattr(model.config, name)
                for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
                if getattr(model.config, name, None) is not None
            ],
        ),
    }
    step_args = argparse.Namespace(samples=args.scst_samples, baseline="greedy", device=args.device)
    scst_step(ctx, step_args)  # warm-up
    times: dict[str, list[float]] = {}
    for _ in range(args.scst_steps):
        step_times, _ = scst_step(ctx, step_args)
        for name, value in step_times.items():
            times.setdefault(name, []).append(value)
    phases = {name: summarize(values) for name, values in times.items()}
    parts = {name: v["median"] for name, v in phases.items() if name != "step"}
    out: dict[str, Any] = {
        "status": "ok",
        "batch": args.scst_batch,
        "samples": args.scst_samples,
        "new_tokens": args.scst_max_new_tokens,
        "prompt_tokens": int(prompt["input_ids"].shape[1]),
        "phases_s": phases,
        "share_of_step": {k: v / sum(parts.values()) for k, v in parts.items()},
        "bottleneck": max(parts, key=parts.get),
        "samples_per_s": args.scst_batch * args.scst_samples / phases["step"]["median"],
    }
    if args.device == "cuda":
        out["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def result_device_name(device: str) -> str:
    """``torch.cuda.get_device_name()`` on CUDA, else the CPU's name."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------ parent
def plan_variants(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (model, attention, liger) variant to run, unavailable ones marked as such."""
    flash = importlib.util.find_spec("flash_attn") is not None
    liger = importlib.util.find_spec("liger_kernel") is not None
    variants = []
    for model in args.models:
        for attn in args.attn:
            variant = {"model": model, "attn": attn, "liger": False}
            if attn == "flash_attention_2" and not (flash and args.device == "cuda"):
                variant["status"] = "unavailable"
                variant["reason"] = "flash_attn is not importable" if not flash else "flash-attn needs CUDA"
            variants.append(variant)
        if args.liger != "off":
            use_flash = flash and args.device == "cuda" and "flash_attention_2" in args.attn
            attn = "flash_attention_2" if use_flash else "sdpa"
            variant = {"model": model, "attn": attn, "liger": True}
            if not liger:
                variant.update(status="unavailable", reason="liger_kernel is not importable")
            variants.append(variant)
    return variants


def run_child(args: argparse.Namespace, variant: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in a fresh interpreter; its result, or a failure record."""
    with tempfile.TemporaryDirectory(prefix="lfv_gpu_") as tmp:
        out = os.path.join(tmp, "variant.json")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            "--child-output",
            out,
            "--device",
            args.device,
            "--model",
            variant["model"],
            "--attn-one",
            variant["attn"],
            "--liger-one",
            str(int(variant["liger"])),
        ]
        for key in (
            "batch",
            "frames",
            "side",
            "steps",
            "warmup",
            "scst_batch",
            "scst_samples",
            "scst_max_new_tokens",
            "scst_frames",
            "scst_side",
            "scst_steps",
        ):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
        if args.peak_tflops:
            cmd += ["--peak-tflops", str(args.peak_tflops)]
        if args.gradient_checkpointing:
            cmd.append("--gradient-checkpointing")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s, check=False)
        if proc.returncode != 0 or not os.path.isfile(out):
            tail = (proc.stdout + proc.stderr)[-2000:]
            status = "oom" if "out of memory" in tail.lower() else "failed"
            return dict(variant, status=status, error=tail)
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` = the ``tiny`` config, one step (on CPU: the code-path check)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--models", default=None, help="comma list of 3b,7b,tiny (default 3b,7b on CUDA, tiny on CPU)")
    parser.add_argument("--attn", default="sdpa,flash_attention_2", help="attention implementations to try")
    parser.add_argument("--liger", choices=("auto", "off"), default="auto", help="add a Liger variant if importable")
    parser.add_argument("--batch", type=int, default=2, help="videos per training step")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (2 per temporal patch)")
    parser.add_argument("--side", type=int, default=336, help="frame side in pixels (multiple of 28)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per route")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up steps per route")
    parser.add_argument("--scst-batch", type=int, default=2, help="videos per scst step (B)")
    parser.add_argument("--scst-samples", type=int, default=4, help="samples per video (K)")
    parser.add_argument("--scst-max-new-tokens", type=int, default=32)
    parser.add_argument("--scst-frames", type=int, default=8)
    parser.add_argument("--scst-side", type=int, default=336)
    parser.add_argument("--scst-steps", type=int, default=3, help="timed scst steps (0 skips scst)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in backward (LlamaFactory's default), to fit more frames",
    )
    parser.add_argument("--quick", action="store_true", help="tiny config, one step: a smoke run")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per variant")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/gpu_<device>.json)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--attn-one", default="sdpa", help=argparse.SUPPRESS)
    parser.add_argument("--liger-one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models = args.models or ("tiny" if args.device == "cpu" else "3b")
        args.batch, args.steps, args.warmup = 1, 1, 1
        args.scst_batch, args.scst_samples, args.scst_max_new_tokens, args.scst_steps = 1, 2, 4, 1
        if args.models == "tiny":
            args.frames, args.side, args.scst_frames, args.scst_side = 4, 56, 4, 56
    args.models = [m for m in (args.models or ("3b,7b" if args.device == "cuda" else "tiny")).split(",") if m]
    args.attn = [a for a in args.attn.split(",") if a]
    unknown = [m for m in args.models if m not in MODEL_SIZES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODEL_SIZES)}")
    if args.side % (PATCH * MERGE) or args.scst_side % (PATCH * MERGE):
        parser.error(f"--side and --scst-side must be multiples of {PATCH * MERGE}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        args.attn, args.liger = args.attn_one, bool(args.liger_one)
        result = run_variant(args)
        with open(args.child_output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        return 0

    started = time.time()
    device_name = result_device_name(args.device)
    peak = peak_tflops(device_name, args.peak_tflops)
    variants = plan_variants(args)
    results = []
    for variant in variants:
        label = f"{variant['model']} / {variant['attn']}{' + liger' if variant['liger'] else ''}"
        if variant.get("status") == "unavailable":
            print(f"{label}: unavailable ({variant['reason']})", flush=True)
            results.append(variant)
            continue
        print(f"{label}: building and timing ...", flush=True)
        results.append(run_child(args, variant))
        if results[-1].get("status") != "ok":
            print(f"  {results[-1]['status']}: {results[-1].get('error', '')[-500:]}", flush=True)

    output = {
        "benchmark": "gpu",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name,
        "peak_bf16_tflops": peak,
        "peak_source": (
            "--peak-tflops" if args.peak_tflops else "table" if peak else "unknown device: MFU not computed"
        ),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30
            if args.device == "cuda"
            else None,
        },
        "settings": {
            k: getattr(args, k)
            for k in (
                "quick",
                "models",
                "attn",
                "liger",
                "gradient_checkpointing",
                "batch",
                "frames",
                "side",
                "steps",
                "warmup",
                "scst_batch",
                "scst_samples",
                "scst_max_new_tokens",
                "scst_frames",
                "scst_side",
                "scst_steps",
            )
        },
        "dtype": "bfloat16" if args.device == "cuda" else "float32",
        "note": "random weights; full-parameter forward+backward without optimizer step"
        + ("; CPU tiny run = code-path check, figures meaningless" if args.device == "cpu" else ""),
        "variants": results,
        "wall_s": time.time() - started,
    }
    path = args.output or os.path.join(HERE, "results", f"gpu_{args.device}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=2)
        f.write("\n")

    print(f"device: {device_name}, dense bf16 peak: {peak} TFLOP/s")
    print(
        f"{'variant':34s} {'route':11s} {'tokens':>7s} {'step ms':>9s} {'tok/s':>9s} {'MFU':>6s} {'MFU det':>7s} "
        f"{'peak GiB':>8s}"
    )
    for row in results:
        label = f"{row['model']} / {row['attn']}{' + liger' if row['liger'] else ''}"
        if row.get("status") != "ok":
            print(f"{label:34s} {row.get('status')}")
            continue
        for route, block in row["routes"].items():
            if block["status"] != "ok":
                print(f"{label:34s} {route:11s} {block['status']}")
                continue
            mfu = f"{block['mfu'] * 100:5.1f}%" if block["mfu"] is not None else "   n/a"
            mfu_d = f"{block['mfu_detailed'] * 100:6.1f}%" if block["mfu_detailed"] is not None else "    n/a"
            mem = f"{block['peak_allocated_gib']:8.1f}" if block["peak_allocated_gib"] is not None else "     n/a"
            print(
                f"{label:34s} {route:11s} {block['tokens']:7d} {block['step_s']['median'] * 1000:9.1f} "
                f"{block['tokens_per_s']:9.0f} {mfu:>6s} {mfu_d:>7s} {mem}"
            )
        scst = row.get("scst")
        if scst and scst.get("status") == "ok":
            print(f"{label:34s} {'scst':11s} {scst['samples_per_s']:.2f} samples/s, bottleneck {scst['bottleneck']}")
        elif scst:
            print(f"{label:34s} {'scst':11s} {scst['status']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
