#!/usr/bin/env python
"""`fastslow_ar` training step against the stock `sft` step: visual tokens per video, step time and peak memory.

Four routes on the same encoded videos (same frames, same batch), each built the way its stage builds it, through
the host's own ``get_train_args`` / ``load_tokenizer`` / ``load_model`` / ``qwen2_vl`` template and mm_plugin /
``SFTDataCollatorWith4DAttentionMask``, and stepped with the host's trainer (``training_step``: forward, loss,
backward; then the trainer's own optimizer ``step`` and ``zero_grad``):

* ``sft``: stock ``stage: sft``, no pooling, ``CustomSeq2SeqTrainer`` (plain causal LM loss on the answer);
* ``sft_pool2``: ``stage: sft`` with the model key ``video_token_pool_stride: 2`` (the host's loader attaches the
  pooling to the processor and the model);
* ``fastslow``: ``stage: fastslow_ar`` with its defaults: slow stride 2 / fast stride 4, interleaved slots,
  frame-causal block mask, reconstruction head and loss (weight 0.15); the stage's workflow pieces
  (``pooling_from_args``, ``attach_to_processor``, ``install_on_model``, ``check_attention``, ``build_head``) and
  ``FastslowTrainer.compute_loss``;
* ``fastslow_nomask``: the same with ``fastslow_frame_causal_mask: false`` (plain causal mask).

Model: a Qwen2.5-VL written by ``build_tiny_model`` (trained tokenizer, real processor allowing ``--side`` px
frames) at ``--hidden`` / ``--layers`` with the realistic 151,936-row vocabulary unless ``--vocab``; random weights.
``finetuning_type: full`` with the host's defaults (vision tower and merger frozen); the embedding and ``lm_head``
are frozen as under LoRA, so the optimizer updates the decoder layers (and the fastslow head). Videos: synthetic
clips (``render_clip``) encoded to mp4 at 2 fps, ``--frames`` frames of ``--side`` x ``--side`` px, sampled by the
host at ``video_fps: 2`` so every frame is kept (asserted).

Step time: the routes alternate step by step in one process after one warm-up step each (the order rotates every
step); median and spread of the wall time, and of the process CPU time (all threads; less sensitive than the wall
time to other jobs on a shared machine, though not immune). Peak memory: on CUDA ``max_memory_allocated`` above
the allocated memory before a step (after the warm-up, so the optimizer state exists); on CPU each route's first
step (optimizer state creation included) runs in a fresh subprocess and the peak RSS above the pre-step RSS
(sampled by a thread) is reported. Ratios are ``sft / route`` (higher = the route is cheaper than stock sft).
No timing assertions anywhere.

    python bench/fastslow_step.py [--quick] [--device cpu|cuda] [--hidden 256 --layers 4 --vocab 151936]
                                  [--batch 2 --frames 16 --side 224 --steps 8] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
import torch
from action_cls_step import time_summary  # bench/ is on sys.path (script directory)


HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")  # the host's per-model INFO lines, 4 routes over
ROUTES = ("sft", "sft_pool2", "fastslow", "fastslow_nomask")
#: model family -> (LlamaFactory template, px per merged LLM token, quick frame side)
FAMILY_TEMPLATES = {"qwen2_5_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl"}
FAMILY_TOKEN_PX = {"qwen2_5_vl": 28, "qwen3_vl": 32}
FAMILY_QUICK_SIDE = {"qwen2_5_vl": 112, "qwen3_vl": 128}
PROMPT = "What is happening in this video?"
ANSWER = "A red square moves slowly to the right across the screen and stops near the corner."
FPS = 2.0  # written and sampled at the host's default video_fps: every frame is kept


# ------------------------------------------------------------------------------------------------ assets
def prepare_assets(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The model directory (processor allowing ``side`` x ``side`` frames) and ``batch`` encoded videos."""
    from llamafactory_video.testing.synthetic_videos import action_classes, render_clip, write_video
    from llamafactory_video.testing.tiny_model import build_tiny_model, build_tiny_processor

    model_dir = os.path.join(
        args.workdir, f"fastslow_{args.family}_h{args.hidden}_l{args.layers}_v{args.vocab}_s{args.side}"
    )
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        from transformers import AutoTokenizer

        partial = f"{model_dir}.partial{os.getpid()}"  # renamed when complete: an interrupted build is not reused
        if args.family == "qwen3_vl":
            from llamafactory_video.testing.tiny_families import build_tiny_qwen3_vl, build_tiny_qwen3_vl_processor

            build_tiny_qwen3_vl(partial, hidden_size=args.hidden, num_layers=args.layers, vocab_size=args.vocab)
            tokenizer = AutoTokenizer.from_pretrained(partial)
            processor = build_tiny_qwen3_vl_processor(tokenizer, max_pixels=args.side * args.side)
        else:
            build_tiny_model(partial, hidden_size=args.hidden, num_layers=args.layers, vocab_size=args.vocab)
            tokenizer = AutoTokenizer.from_pretrained(partial)
            processor = build_tiny_processor(tokenizer, min_pixels=56 * 56, max_pixels=args.side * args.side)
        processor.save_pretrained(partial)
        os.replace(partial, model_dir)
    video_dir = os.path.join(args.workdir, "fastslow_videos")
    classes = action_classes(4)
    videos = []
    for index in range(args.batch):
        path = os.path.join(video_dir, f"s{args.side}_f{args.frames}_{index}.mp4")
        if not os.path.isfile(path):
            rng = np.random.default_rng(index)
            write_video(render_clip(classes[index % 4], rng, size=args.side, num_frames=args.frames), path, fps=FPS)
        videos.append(path)
    return model_dir, videos


def route_keys(args: argparse.Namespace, route: str, model_dir: str, output_dir: str) -> dict[str, Any]:
    """The training YAML of ``route`` as a dict."""
    keys: dict[str, Any] = {
        "stage": "fastslow_ar" if route.startswith("fastslow") else "sft",
        "model_name_or_path": model_dir,
        "do_train": True,
        "finetuning_type": "full",
        "template": FAMILY_TEMPLATES[args.family],
        "dataset": "unused",
        "output_dir": output_dir,
        "video_fps": FPS,
        "video_maxlen": 128,
        "video_max_pixels": args.side * args.side,
        "video_min_pixels": 56 * 56,
        "flash_attn": "sdpa",
        "per_device_train_batch_size": args.batch,
        "learning_rate": 1e-5,
        "report_to": "none",
        "bf16": args.device == "cuda",
    }
    if args.device == "cpu":
        keys["use_cpu"] = True
    if route == "sft_pool2":
        keys["video_token_pool_stride"] = 2
    if route == "fastslow_nomask":
        keys["fastslow_frame_causal_mask"] = False
    return keys


def encode(template, tokenizer, processor, video: str) -> dict[str, Any]:
    """One sample through the template and mm_plugin, as the host's supervised data processor builds it."""
    messages = [{"role": "user", "content": "<video>" + PROMPT}, {"role": "assistant", "content": ANSWER}]
    messages = template.mm_plugin.process_messages(messages, [], [video], [], processor)
    prompt_ids, answer_ids = template.encode_oneturn(tokenizer, messages)
    return {
        "input_ids": prompt_ids + answer_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(answer_ids)),
        "labels": [-100] * len(prompt_ids) + answer_ids,
        "images": [],
        "videos": [video],
        "audios": [],
    }


def build_route(args: argparse.Namespace, route: str, model_dir: str, videos: list[str], tmp: str) -> dict[str, Any]:
    """Model, collated batch, trainer and optimizer of one route, built as its stage's workflow builds them."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_template_and_fix_tokenizer
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer
    from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer

    from llamafactory_video.model.video_pooling import attach_to_processor, install_on_model, installed_pooling

    model_args, data_args, training_args, finetuning_args, _ = get_train_args(
        route_keys(args, route, model_dir, os.path.join(tmp, route))
    )
    module = load_tokenizer(model_args)
    tokenizer, processor = module["tokenizer"], module["processor"]
    fastslow = route.startswith("fastslow")
    if fastslow:
        from llamafactory_video.train.fastslow_ar.workflow import pooling_from_args

        pooling = pooling_from_args(finetuning_args)
        attach_to_processor(processor, pooling)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    torch.manual_seed(0)
    model = load_model(tokenizer, model_args, finetuning_args, is_trainable=True)
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        layer.weight.requires_grad_(False)  # frozen as under LoRA: the optimizer updates the decoder layers
    common = {
        "model": model,
        "args": training_args,
        "finetuning_args": finetuning_args,
        "gen_kwargs": {},
    }
    if fastslow:
        from llamafactory_video.train.fastslow_ar.trainer import FastslowTrainer
        from llamafactory_video.train.fastslow_ar.workflow import build_head, check_attention

        install_on_model(model, pooling, keep_features=True)
        use_block_mask = check_attention(model, finetuning_args)
        head_config = build_head(model, finetuning_args)
    else:
        pooling = installed_pooling(model)  # sft_pool2: applied by the host's loader from the model key
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template,
        model=model,
        pad_to_multiple_of=8,
        label_pad_token_id=IGNORE_INDEX,
        block_diag_attn=False,
        neat_packing=False,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        compute_dtype=model_args.compute_dtype,
        **module,
    )
    features = [encode(template, tokenizer, processor, video) for video in videos]
    batch = collator(features)
    if fastslow:
        trainer = FastslowTrainer(
            pooling=pooling,
            head_config=head_config,
            use_block_mask=use_block_mask,
            data_collator=collator,
            **common,
            **module,
        )
    else:
        trainer = CustomSeq2SeqTrainer(data_collator=collator, **common, **module)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which a bare step skips
    device = trainer.args.device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    grid = batch["video_grid_thw"].cpu()
    merge = int(processor.image_processor.merge_size)
    per_video = (batch["input_ids"] == video_id).sum(-1).tolist()
    if grid[:, 0].tolist() != [args.frames // 2] * len(videos):
        raise RuntimeError(f"the host sampled {grid[:, 0].tolist()} slots, expected {args.frames // 2} per video")
    expected = pooling.placeholder_counts(grid, merge) if pooling is not None else (grid.prod(-1) // merge**2).tolist()
    if per_video != expected:
        raise RuntimeError(f"{route}: {per_video} video tokens per sample, the pooling formula gives {expected}")
    info = {
        "stage": "fastslow_ar" if fastslow else "sft",
        "pooling": pooling.describe() if pooling is not None else "none",
        "block_mask": bool(fastslow and trainer.use_block_mask),
        "video_grid_thw": grid[0].tolist(),
        "video_tokens_per_video": per_video[0],
        "video_tokens_stock": int(grid[0].prod()) // merge**2,
        "tokens_per_sample": len(features[0]["input_ids"]),
        "sequence_length": int(batch["input_ids"].shape[1]),
        "label_tokens": int((batch["labels"] != IGNORE_INDEX).sum()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    return {"model": model, "trainer": trainer, "batch": batch, "info": info}


def step(r: dict[str, Any]) -> float:
    """One training step: the trainer's ``training_step`` (forward, loss, backward), optimizer step, zero grad."""
    trainer = r["trainer"]
    loss = trainer.training_step(r["model"], r["batch"])
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return float(loss)


# ------------------------------------------------------------------------------------------------ measuring
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(args: argparse.Namespace) -> None:
    r"""Peak RSS above the pre-step RSS during the first step of one route, sampled every 0.2 ms by a thread."""
    model_dir, videos = prepare_assets(args)
    with tempfile.TemporaryDirectory(prefix="lfv_fastslow_") as tmp:
        r = build_route(args, args.route, model_dir, videos, tmp)
        before = rss_bytes()
        samples = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_bytes())
                time.sleep(0.0002)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        loss = step(r)
        done.set()
        thread.join()
    print(json.dumps({"peak_above_start_mb": max(0, max(samples) - before) / 2**20, "loss": loss}))


def peak_memory_mb(args: argparse.Namespace, route: str, r: dict[str, Any]) -> float:
    """Peak memory of one step of ``route`` in MiB: CUDA in this process, CPU in a fresh subprocess."""
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(r)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    child = [sys.executable, os.path.abspath(__file__), "--memory-child", "--route", route]
    child += ["--device", "cpu", "--workdir", args.workdir]
    for key in ("hidden", "layers", "vocab", "batch", "frames", "side", "family"):
        child += [f"--{key}", str(getattr(args, key))]
    proc = subprocess.run(child, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child of {route} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_above_start_mb"]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16, help="frames per video (even: 2 frames per slot)")
    parser.add_argument("--side", type=int, default=224, help="frame side in px (multiple of 28; Qwen3-VL: of 32)")
    parser.add_argument("--family", default="qwen2_5_vl", choices=sorted(FAMILY_TEMPLATES), help="tiny model family")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma list of {', '.join(ROUTES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 step, no CPU peak memory: a smoke run")
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CPU peak memory, one fresh subprocess per route (default: on, off with --quick)",
    )
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"))
    parser.add_argument("--output", default=None)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--route", default="sft", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        quick = {
            "hidden": 64, "layers": 2, "vocab": 32000, "batch": 1, "frames": 8,
            "side": FAMILY_QUICK_SIDE[args.family], "steps": 1,
        }
        for key, value in quick.items():
            setattr(args, key, value)
    if args.memory is None:
        args.memory = not args.quick
    if args.frames % 2 or args.side % FAMILY_TOKEN_PX[args.family]:
        parser.error(f"--frames must be even and --side a multiple of {FAMILY_TOKEN_PX[args.family]}")
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if "sft" not in args.routes or any(r not in ROUTES for r in args.routes):
        parser.error(f"--routes: a comma list of {ROUTES} that includes sft (the reference)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return 0

    print(f"building (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}) ...", flush=True)
    model_dir, videos = prepare_assets(args)
    with tempfile.TemporaryDirectory(prefix="lfv_fastslow_") as tmp:
        routes = {route: build_route(args, route, model_dir, videos, tmp) for route in args.routes}
        names = list(routes)
        losses = {route: step(routes[route]) for route in names}  # warm-up
        print(f"timing {args.steps} steps per route ...", flush=True)
        times: dict[str, list[float]] = {route: [] for route in names}
        cpu_times: dict[str, list[float]] = {route: [] for route in names}
        for index in range(args.steps):
            for route in names[index % len(names) :] + names[: index % len(names)]:  # rotate the order
                _sync(args.device)
                start, cpu_start = time.perf_counter(), time.process_time()
                losses[route] = step(routes[route])
                _sync(args.device)
                times[route].append(time.perf_counter() - start)
                cpu_times[route].append(time.process_time() - cpu_start)

        memory: dict[str, float | None] = dict.fromkeys(names)
        if args.device == "cuda" or args.memory:
            print("peak memory per route ...", flush=True)
            for route in names:
                memory[route] = peak_memory_mb(args, route, routes[route])
        info = {route: routes[route]["info"] for route in names}
    bad = {route: loss for route, loss in losses.items() if not math.isfinite(loss)}
    if bad:
        raise RuntimeError(f"non-finite training loss: {bad}")

    result: dict[str, Any] = {
        "benchmark": "fastslow_step",
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
            for k in ("family", "hidden", "layers", "vocab", "batch", "frames", "side", "steps", "quick")
        },
        "routes": info,
        "final_loss": losses,
        "step_time_s": {route: time_summary(v) for route, v in times.items()},
        "step_cpu_time_s": {route: time_summary(v) for route, v in cpu_times.items()},
        "peak_memory_mb": memory,
        "ratio_sft_over_route": {},
    }
    ref = info["sft"]
    for route in names:
        if route == "sft":
            continue
        result["ratio_sft_over_route"][route] = {
            "video_tokens": ref["video_tokens_per_video"] / info[route]["video_tokens_per_video"],
            "tokens_per_sample": ref["tokens_per_sample"] / info[route]["tokens_per_sample"],
            "step_time": result["step_time_s"]["sft"]["median"] / result["step_time_s"][route]["median"],
            "step_cpu_time": result["step_cpu_time_s"]["sft"]["median"] / result["step_cpu_time_s"][route]["median"],
            "peak_memory": None if memory[route] is None else memory["sft"] / max(memory[route], 1e-9),
        }
    print(
        f"fastslow step on {args.device} ({args.family}, hidden {args.hidden}, {args.layers} layers, "
        f"vocab {args.vocab}, "
        f"batch {args.batch} x {args.frames} frames of {args.side} px):"
    )
    for route in names:
        t, i = result["step_time_s"][route], info[route]
        print(
            f"  {route:15s} {i['video_tokens_per_video']:5d} video tokens/video, "
            f"{i['tokens_per_sample']:5d} tokens/sample  "
            f"step {t['median'] * 1000:8.1f} ms [{t['min'] * 1000:.1f}-{t['max'] * 1000:.1f}]"
            + ("" if memory[route] is None else f"  peak +{memory[route]:8.1f} MiB")
        )
    for route, r in result["ratio_sft_over_route"].items():
        print(
            f"  sft / {route}: video tokens x{r['video_tokens']:.2f}, tokens/sample x{r['tokens_per_sample']:.2f}, "
            f"step time x{r['step_time']:.2f} (CPU time x{r['step_cpu_time']:.2f})"
            + ("" if r["peak_memory"] is None else f", peak memory x{r['peak_memory']:.2f}")
        )
    suffix = "" if args.family == "qwen2_5_vl" else f"_{args.family}"
    output = args.output or os.path.join(HERE, "results", f"fastslow_step_{args.device}{suffix}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
