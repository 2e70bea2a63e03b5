#!/usr/bin/env python
"""HiLight vs Qwen2.5-VL on the same frames: visual tokens per video and train-step time per video (CPU, tiny).

Both models see the same 12 frames of one synthetic billiards clip (``testing/synthetic_billiards.py``):

* visual tokens per video in the LLM: HiLight writes one token per frame (``num_frames``); Qwen2.5-VL writes
  ``T/2 * (H/28) * (W/28)`` (temporal patch 2, 14 px patches merged 2 x 2), counted from its processor's
  ``video_grid_thw``. Reported for the tiny processors (``--size`` px frames) and at the seed's scale (12 frames of
  448 x 448 through a Qwen2.5-VL image processor with ``max_pixels`` 448 x 448; HiLight: 12 tokens whatever the
  resolution);
* train-step time per video: forward + backward of the whole model (every parameter trainable, batch 1, the same
  short answer), median over ``--runs`` after one warm-up, for a tiny HiLight (two 1-layer CLIP towers, 2-layer
  Qwen2 LM, width 48) and a tiny Qwen2.5-VL (2-layer vision tower, 2-layer LM, width 48). The ratio
  HiLight / Qwen2.5-VL is the figure; absolute times are this machine's.

    python bench/hilight_tokens.py [--quick] [--runs 5] [--size 112] [--output FILE]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

DEFAULT_OUTPUT = os.path.join(HERE, "results", "hilight_tokens_cpu.json")
NUM_FRAMES = 12
PROMPT = "Which ball was pocketed?"
ANSWER = "red"


def billiards_frames(size: int, num_frames: int, seed: int = 0) -> list:
    from PIL import Image

    from llamafactory_video.testing.synthetic_billiards import render_billiards_clip, sample_billiards_clip

    rng = np.random.default_rng(seed)
    frames = render_billiards_clip(sample_billiards_clip(rng, size=size), rng)
    idx = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    return [Image.fromarray(frames[i]) for i in idx]


def step_seconds(model, inputs: dict, runs: int) -> list[float]:
    model.train()
    times = []
    for i in range(runs + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(**inputs).loss.backward()
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return times


def hilight_inputs(root: str, frames: list, size: int):
    import torch

    from llamafactory_video.host.hilight import register_transformers
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder
    from llamafactory_video.testing.tiny_hilight import build_tiny_qwen2_lm
    from llamafactory_video.tools.hilight_build import build_hilight

    register_transformers()
    tower = dict(kind="clip", image_size=size, patch_size=16, hidden_size=32, num_layers=1, num_heads=2)
    video = build_tiny_dual_encoder(os.path.join(root, "video"), projection_dim=16, **tower)
    frame = build_tiny_dual_encoder(os.path.join(root, "frame"), projection_dim=16, seed=1, **tower)
    llm = build_tiny_qwen2_lm(os.path.join(root, "llm"), hidden_size=48)
    out = os.path.join(root, "hilight")
    build_hilight(video, frame, llm, out, num_frames=NUM_FRAMES, token_mining_heads=2)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    text = f"<|im_start|>user\n{processor.video_token}{PROMPT}<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>"
    inputs = dict(processor(text=[text], videos=[frames]))
    inputs["labels"] = inputs["input_ids"].clone()
    token_id = model.config.video_token_id
    tokens = int((inputs["input_ids"] == token_id).sum())
    return model, {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}, tokens


def qwen_inputs(root: str, frames: list):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from llamafactory_video.testing.tiny_model import build_tiny_model

    path = build_tiny_model(os.path.join(root, "qwen2_5_vl"), arch="qwen2_5_vl", hidden_size=48)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    video = "<|vision_start|><|video_pad|><|vision_end|>"
    text = f"<|im_start|>user\n{video}{PROMPT}<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>"
    inputs = dict(processor(text=[text], videos=[np.stack([np.asarray(f) for f in frames])], return_tensors="pt"))
    inputs["labels"] = inputs["input_ids"].clone()
    grid = inputs["video_grid_thw"][0].tolist()
    merge = processor.video_processor.merge_size
    return model, inputs, int(grid[0] * grid[1] * grid[2] // (merge * merge)), grid


def seed_scale_qwen_tokens(num_frames: int = NUM_FRAMES, side: int = 448) -> int:
    r"""Qwen2.5-VL's video tokens for ``num_frames`` frames of ``side`` x ``side`` (14 px patches, 2 x 2 merge,
    temporal patch 2): ``num_frames / 2 * (side / 28)^2``."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(side, side, factor=28, min_pixels=56 * 56, max_pixels=side * side)
    return (num_frames // 2) * (h // 28) * (w // 28)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed steps per model (after one warm-up)")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels (the tiny Qwen2.5-VL keeps 112)")
    parser.add_argument("--quick", action="store_true", help="2 timed steps (smoke test)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="results JSON")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    frames = billiards_frames(args.size, NUM_FRAMES)
    with tempfile.TemporaryDirectory() as root:
        hl_model, hl_inputs, hl_tokens = hilight_inputs(root, frames, args.size)
        qw_model, qw_inputs, qw_tokens, grid = qwen_inputs(root, frames)
        hl_times = step_seconds(hl_model, hl_inputs, runs)
        qw_times = step_seconds(qw_model, qw_inputs, runs)
    hl, qw = summary(hl_times), summary(qw_times)
    results = {
        "benchmark": "hilight_tokens",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": "cpu"},
        "settings": {"frames": NUM_FRAMES, "size": args.size, "runs": runs, "torch_threads": torch.get_num_threads()},
        "visual_tokens_per_video": {
            "hilight": hl_tokens,
            "qwen2_5_vl": qw_tokens,
            "qwen2_5_vl_video_grid_thw": grid,
            "ratio_hilight_over_qwen2_5_vl": hl_tokens / qw_tokens,
            "seed_scale_448px": {"hilight": NUM_FRAMES, "qwen2_5_vl": seed_scale_qwen_tokens()},
        },
        "train_step_seconds_per_video": {
            "hilight": hl,
            "qwen2_5_vl": qw,
            "ratio_hilight_over_qwen2_5_vl": hl["median"] / qw["median"],
            "sequence_length": {
                "hilight": int(hl_inputs["input_ids"].shape[1]),
                "qwen2_5_vl": int(qw_inputs["input_ids"].shape[1]),
            },
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: results[k] for k in ("visual_tokens_per_video", "train_step_seconds_per_video")}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
