#!/usr/bin/env python
"""One-command GPU check: bf16 training steps of every stage through the stock ``llamafactory-cli train`` on
real-width random-weight models, the flash-attn / Liger / DeepSpeed ZeRO-3 variants, then ``bench/run.py --only gpu``.

Checks (each a ``llamafactory-cli train`` run of a YAML generated from ``examples/demo/<stage>_tiny.yaml``, a few
steps, eval / predict off, synthetic videos from ``llamafactory_video.testing.synthetic_videos``):

* ``sdpa``: ``action_cls``, ``scst``, ``fastslow_ar``, ``sparc_align`` (``flash_attn: sdpa``, ``bf16: true``);
* ``fa2``: the three Qwen stages with ``flash_attn: fa2`` (when ``flash_attn`` imports and CUDA is there);
* ``liger``: the three Qwen stages with ``enable_liger_kernel: true`` (when ``liger_kernel`` imports, CUDA);
* ``ds_z3``: every stage under ``examples/deepspeed/ds_z3_config.json`` on one process (torchrun, 1 rank; when
  ``deepspeed`` imports, CUDA);
* ``bench``: ``python bench/run.py --device cuda --only gpu`` (``--bench quick`` adds ``--quick``), its results and
  generated markdown written under ``<out>/bench`` (the committed ``bench/results`` and docs are left alone).

Models (built in code, nothing downloaded): a Qwen2.5-VL with the 3B text width (hidden 2048, 16 heads, 2 KV heads,
MLP 11008, 151,936-row vocabulary) but ``--layers`` decoder layers and a ``--vision-depth``-block vision tower of the
released width (1280, 16 heads, MLP 3420); a CLIP ViT-B/16-sized dual encoder (vision 768 x 12, patch 16, 224 px;
text 512 x 12; projection 512).

``--dry-run``: the same code paths on CPU with the tiny default sizes, fp32, one step each; the GPU-only variants
are listed as skipped with their reason and the benchmark is skipped (``--bench quick`` runs ``bench/run.py
--quick`` on CPU instead).

Writes ``<out>/summary.md`` (the table), ``<out>/summary.json``, ``<out>/gpu_check.log`` (this console),
``<out>/logs/<check>.log`` (each run's output), ``<out>/configs/<check>.yaml`` and ``<out>/runs/<check>/`` (the
small trainer files). Models, videos and checkpoints stay in ``--workdir`` (default under the temp dir), so
``<out>`` is small enough to copy back. Exit status: 0 when every check that ran passed, 1 when one failed or timed
out, 2 when ``llamafactory`` / ``llamafactory_video`` cannot be imported.

    python scripts/gpu_check.py [--dry-run] [--out DIR] [--workdir DIR] [--steps N] [--jobs N]
                                [--only sdpa,fa2,liger,ds_z3] [--stages action_cls,...] [--bench full|quick|off]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("action_cls", "scst", "fastslow_ar", "sparc_align")
QWEN_STAGES = ("action_cls", "scst", "fastslow_ar")
VARIANTS = ("sdpa", "fa2", "liger", "ds_z3")
DS_Z3_CONFIG = os.path.join(ROOT, "examples", "deepspeed", "ds_z3_config.json")
SMALL_OUTPUT_FILES = ("trainer_log.jsonl", "trainer_state.json", "train_results.json", "all_results.json")
WHEEL_HINT = (
    "install the carried wheels first, e.g. `pip install --no-index --no-deps --target /tmp/site .whl/*.whl` and "
    "`export PYTHONPATH=/tmp/site` (see docs/benchmarks.md, 'GPU check')"
)

#: Qwen2.5-VL builder sizes: the 3B text width at a few layers, the released vision tower width (GPU); the builder's
#: tiny defaults (dry run).
QWEN_GPU = dict(
    hidden_size=2048,
    num_heads=16,
    num_kv_heads=2,
    intermediate_size=11008,
    vocab_size=151936,
    vision_hidden_size=1280,
    vision_num_heads=16,
    vision_intermediate_size=3420,
    max_pixels=224 * 224,
    dtype="bfloat16",
)
#: CLIP ViT-B/16 sizes (GPU); the builder's tiny defaults (dry run).
CLIP_GPU = dict(
    image_size=224,
    patch_size=16,
    hidden_size=768,
    intermediate_size=3072,
    num_layers=12,
    num_heads=12,
    projection_dim=512,
    text_hidden_size=512,
    text_intermediate_size=2048,
    text_num_layers=12,
    text_num_heads=8,
    text_vocab_size=49408,
)


@dataclass
class Check:
    """One row of the summary."""

    name: str
    stage: str
    variant: str
    status: str = "pending"  # ok | failed | timeout | skipped
    seconds: float = 0.0
    detail: str = ""
    log: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Console:
    """print() that also appends to ``<out>/gpu_check.log``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        with open(path, "w", encoding="utf-8"):
            pass

    def __call__(self, message: str = "") -> None:
        with self.lock:
            print(message, flush=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(message + "\n")


# ------------------------------------------------------------------------------------------------ environment
def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def version_of(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def child_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        DISABLE_VERSION_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    bins = [os.path.dirname(sys.executable)] + list(args.extra_bins)
    env["PATH"] = os.pathsep.join(bins + [env.get("PATH", "")])  # torchrun / llamafactory-cli of this Python
    if args.shim_dir:
        env["PYTHONPATH"] = os.pathsep.join([args.shim_dir] + [p for p in [env.get("PYTHONPATH", "")] if p])
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is a CPU run even on a GPU machine
    env.update(extra)
    return env


def plugin_hook_active(args: argparse.Namespace) -> bool:
    """Whether a fresh interpreter with the children's environment runs the plugin's start-up hook (the ``.pth``)."""
    code = "import sys; print(int('llamafactory_video._bootstrap' in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(args), capture_output=True, text=True, check=False, timeout=120
    )
    return proc.stdout.strip().endswith("1")


def install_hook_shim(args: argparse.Namespace, site_dir: str | None = None) -> str:
    r"""``pip install --target DIR`` + ``PYTHONPATH=DIR`` does not run ``DIR/llamafactory_video.pth`` (only site
    directories' ``.pth`` files run), so the stock CLI would not know our stages: put a ``sitecustomize`` on the
    children's PYTHONPATH that makes DIR a site directory (and then runs any other ``sitecustomize``)."""
    if site_dir is None:
        import llamafactory_video

        site_dir = os.path.dirname(os.path.dirname(os.path.abspath(llamafactory_video.__file__)))
    shim = os.path.join(args.workdir, "site_shim")
    os.makedirs(shim, exist_ok=True)
    with open(os.path.join(shim, "sitecustomize.py"), "w", encoding="utf-8") as f:
        f.write(
            "# written by scripts/gpu_check.py: run the llamafactory_video.pth of a --target install\n"
            "import importlib, os, site, sys\n"
            f"site.addsitedir({site_dir!r})\n"
            "_here = os.path.dirname(os.path.abspath(__file__))\n"
            "_path = sys.path[:]\n"
            "sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _here]\n"
            "sys.modules.pop('sitecustomize', None)\n"
            "try:\n"
            "    importlib.import_module('sitecustomize')\n"
            "except ImportError:\n"
            "    pass\n"
            "finally:\n"
            "    sys.path[:] = _path\n"
        )
    return shim


def cli_command() -> list[str]:
    """The stock ``llamafactory-cli``: its console script when there is one, else the same entry point via ``-c``
    (a ``--target`` install puts the script under ``DIR/bin``, often not on PATH)."""
    for candidate in (
        os.path.join(os.path.dirname(sys.executable), "llamafactory-cli"),
        shutil.which("llamafactory-cli"),
    ):
        if candidate and os.path.isfile(candidate):
            return [candidate]
    return [
        sys.executable,
        "-c",
        "import sys; from llamafactory.cli import main; sys.argv[0] = 'llamafactory-cli'; sys.exit(main())",
    ]


# ------------------------------------------------------------------------------------------------ assets
def _cached(path: str, spec: dict[str, Any]) -> bool:
    marker = os.path.join(path, ".gpu_check_spec.json")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == spec:
                return True
    return False


def _mark(path: str, spec: dict[str, Any]) -> None:
    with open(os.path.join(path, ".gpu_check_spec.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f)


def build_assets(args: argparse.Namespace, stages: list[str], log: Console) -> dict[str, Any]:
    """Models and synthetic data sets under ``<workdir>/assets`` (reused when built with the same spec)."""
    from llamafactory_video.testing import synthetic_videos as sv

    gpu = not args.dry_run
    base = os.path.join(args.workdir, "assets")
    assets: dict[str, Any] = {}
    size = 224 if gpu else 64
    frames = 16 if gpu else 8
    if any(s in QWEN_STAGES for s in stages):
        spec: dict[str, Any] = dict(QWEN_GPU, num_layers=args.layers, vision_depth=args.vision_depth) if gpu else {}
        path = os.path.join(base, "qwen2_5_vl_gpu" if gpu else "qwen2_5_vl_tiny")
        t0 = time.time()
        if not _cached(path, spec):
            from llamafactory_video.testing.tiny_model import build_tiny_model

            shutil.rmtree(path, ignore_errors=True)
            build_tiny_model(path, arch="qwen2_5_vl", **spec)
            _mark(path, spec)
        assets["qwen"] = path
        log(f"[assets] Qwen2.5-VL {spec or '(tiny defaults)'}: {path} ({time.time() - t0:.1f} s)")
    if "sparc_align" in stages:
        spec = dict(CLIP_GPU) if gpu else {}
        path = os.path.join(base, "clip_gpu" if gpu else "clip_tiny")
        t0 = time.time()
        if not _cached(path, spec):
            from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

            shutil.rmtree(path, ignore_errors=True)
            build_tiny_dual_encoder(path, kind="clip", **spec)
            _mark(path, spec)
        assets["clip"] = path
        log(f"[assets] CLIP {spec or '(tiny defaults)'}: {path} ({time.time() - t0:.1f} s)")
    data_specs = {
        "action": ("action_cls" in stages, sv.make_action_dataset, dict(train_per_class=2, test_per_class=1)),
        "caption": (
            "scst" in stages or "fastslow_ar" in stages,
            sv.make_caption_dataset,
            dict(train_per_class=2, test_per_class=1),
        ),
        "align": ("sparc_align" in stages, sv.make_alignment_dataset, dict(train_per_combo=1, num_test=4)),
    }
    for key, (wanted, make, kwargs) in data_specs.items():
        if not wanted:
            continue
        kwargs = dict(kwargs, size=size if key != "align" else (224 if gpu else 32), num_frames=frames)
        if key != "align":
            kwargs.update(num_classes=4, formats=("mp4",))
        path = os.path.join(base, f"{key}_{'gpu' if gpu else 'cpu'}")
        t0 = time.time()
        if not _cached(path, kwargs):
            shutil.rmtree(path, ignore_errors=True)
            make(path, **kwargs)
            _mark(path, kwargs)
        assets[key] = path
        log(f"[assets] {key} videos ({kwargs}): {path} ({time.time() - t0:.1f} s)")
    return assets


# ------------------------------------------------------------------------------------------------ configs
def demo_config(stage: str) -> dict[str, Any]:
    import yaml

    with open(os.path.join(ROOT, "examples", "demo", f"{stage}_tiny.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def stage_config(args: argparse.Namespace, stage: str, variant: str, assets: dict[str, Any], output_dir: str) -> dict:
    """The demo recipe of ``stage`` pointed at the check's assets: ``steps`` steps, no eval / predict / saves."""
    gpu = not args.dry_run
    config = demo_config(stage)
    for key in ("eval_dataset", "per_device_eval_batch_size", "num_train_epochs", "save_steps", "warmup_ratio"):
        config.pop(key, None)
    config.update(
        output_dir=output_dir,
        overwrite_output_dir=True,
        overwrite_cache=True,
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        plot_loss=False,
        report_to="none",
        do_train=True,
        do_eval=False,
        do_predict=False,
        dataloader_num_workers=0,
        preprocessing_num_workers=4 if gpu else 1,
        per_device_train_batch_size=2 if stage != "sparc_align" else 4,
        seed=42,
    )
    if stage == "sparc_align":
        config.update(model_name_or_path=assets["clip"], dataset_dir=assets["align"])
    else:
        config.update(model_name_or_path=assets["qwen"])
        config.update(dataset_dir=assets["action" if stage == "action_cls" else "caption"])
        if gpu:  # 16 frames of 224 x 224: 8 temporal patches x 64 merged tokens = 512 video tokens per clip
            config.update(video_maxlen=16, video_fps=4.0, video_max_pixels=224 * 224, cutoff_len=2048)
    if stage == "action_cls":
        config.update(action_divergence_check="warn")  # a random model may look collapsed after 1-3 steps
    if stage == "scst" and not gpu:
        config.update(scst_num_samples=2, scst_max_new_tokens=8, max_new_tokens=8)
    if gpu:
        config["bf16"] = True
    config["flash_attn"] = "fa2" if variant == "fa2" else "sdpa"
    if variant == "liger":
        config["enable_liger_kernel"] = True
    if variant == "ds_z3":
        config["deepspeed"] = DS_Z3_CONFIG
    return config


def plan(args: argparse.Namespace) -> list[Check]:
    """Every (stage, variant) row, the ones that cannot run here marked skipped with the reason."""
    cuda = not args.dry_run and torch_cuda_available()
    needs = {"fa2": "flash_attn", "liger": "liger_kernel", "ds_z3": "deepspeed"}
    checks = []
    for variant in VARIANTS:
        for stage in STAGES:
            if stage not in args.stages or (variant in ("fa2", "liger") and stage not in QWEN_STAGES):
                continue
            check = Check(name=f"{stage}__{variant}", stage=stage, variant=variant)
            if variant not in args.only:
                check.status, check.detail = "skipped", "not selected (--only)"
            elif variant in needs:
                reasons = []
                if args.dry_run:
                    reasons.append("dry run on CPU: needs CUDA")
                elif not cuda:
                    reasons.append("torch sees no CUDA device")
                if not importable(needs[variant]):
                    reasons.append(f"{needs[variant]} is not importable")
                if reasons:
                    check.status, check.detail = "skipped", "; ".join(reasons)
            checks.append(check)
    return checks


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------ running
def run_logged(cmd: list[str], log_path: str, env: dict[str, str], cwd: str, timeout: float) -> tuple[int, bool]:
    """Run ``cmd`` in its own process group, output to ``log_path``; (exit code, timed out)."""
    with open(log_path, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # this run's group only (torchrun and its ranks)
            except ProcessLookupError:
                pass
            proc.wait()
            return -9, True


def last_error(log_path: str) -> str:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error:" in line or "Exception" in line:
            return line[-300:]
    return (lines[-1] if lines else "no output")[-300:]


def completed_steps(output_dir: str) -> tuple[int, float | None]:
    """Steps the run finished (``trainer_state.json``, else ``trainer_log.jsonl``) and its last logged loss."""
    steps, loss = 0, None
    state = os.path.join(output_dir, "trainer_state.json")
    if os.path.isfile(state):
        with open(state, encoding="utf-8") as f:
            data = json.load(f)
        steps = int(data.get("global_step") or 0)
        losses = [e["loss"] for e in data.get("log_history", []) if "loss" in e]
        loss = losses[-1] if losses else None
    jsonl = os.path.join(output_dir, "trainer_log.jsonl")
    if os.path.isfile(jsonl):
        with open(jsonl, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        steps = max([steps] + [int(r.get("current_steps") or 0) for r in rows])
        if loss is None:
            losses = [r["loss"] for r in rows if r.get("loss") is not None]
            loss = losses[-1] if losses else None
    return steps, loss


def run_check(args: argparse.Namespace, check: Check, assets: dict[str, Any], log: Console) -> Check:
    import yaml

    output_dir = os.path.join(args.workdir, "runs", check.name)
    shutil.rmtree(output_dir, ignore_errors=True)
    config = stage_config(args, check.stage, check.variant, assets, output_dir)
    config_path = os.path.join(args.out, "configs", f"{check.name}.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    check.log = os.path.join(args.out, "logs", f"{check.name}.log")
    extra_env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "1"} if check.variant == "ds_z3" else {}
    log(f"[run] {check.name}: llamafactory-cli train {config_path}")
    t0 = time.time()
    code, timed_out = run_logged(
        args.cli + ["train", config_path], check.log, child_env(args, **extra_env), args.workdir, args.timeout
    )
    check.seconds = round(time.time() - t0, 1)
    steps, loss = completed_steps(output_dir)
    kept = os.path.join(args.out, "runs", check.name)
    os.makedirs(kept, exist_ok=True)
    for name in SMALL_OUTPUT_FILES:
        if os.path.isfile(os.path.join(output_dir, name)):
            shutil.copy(os.path.join(output_dir, name), kept)
    check.extra = {"steps": steps, "loss": loss, "exit_code": code, "config": config_path}
    if timed_out:
        check.status, check.detail = "timeout", f"killed after {args.timeout:.0f} s ({steps} steps done)"
    elif code != 0:
        check.status, check.detail = "failed", f"exit {code}: {last_error(check.log)}"
    elif steps < args.steps:
        check.status, check.detail = "failed", f"exit 0 but {steps}/{args.steps} steps logged"
    elif loss is not None and loss != loss:  # NaN
        check.status, check.detail = "failed", f"{steps} steps, loss is NaN"
    else:
        check.status = "ok"
        check.detail = f"{steps} step{'s' if steps != 1 else ''}" + (f", loss {loss:.4g}" if loss is not None else "")
    if not args.keep_outputs:
        shutil.rmtree(output_dir, ignore_errors=True)
    log(f"[done] {check.name}: {check.status} in {check.seconds} s ({check.detail})")
    return check


def run_bench(args: argparse.Namespace, log: Console) -> Check:
    check = Check(name="bench__gpu", stage="bench/run.py --only gpu", variant=args.bench)
    if args.bench == "off":
        check.status, check.detail = "skipped", "--bench off"
        return check
    if args.dry_run and args.bench == "full":  # the default: a dry run lists the GPU benchmark as skipped
        check.status, check.detail = (
            "skipped",
            "dry run on CPU: needs CUDA (--bench quick runs it with --quick on CPU)",
        )
        return check
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch_cuda_available():
        check.status, check.detail = "skipped", "torch sees no CUDA device"
        return check
    results = os.path.join(args.out, "bench")
    cmd = [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--device", device, "--only", "gpu"]
    cmd += ["--results-dir", results, "--docs", os.path.join(results, "benchmarks.md")]
    cmd += ["--workdir", os.path.join(args.workdir, "bench_cache"), "--timeout-s", str(args.bench_timeout)]
    cmd += ["--quick"] if args.bench == "quick" else []
    check.log = os.path.join(args.out, "logs", "bench_gpu.log")
    log(f"[run] bench: {' '.join(cmd[1:])}")
    t0 = time.time()
    code, timed_out = run_logged(cmd, check.log, child_env(args), ROOT, args.bench_timeout + 30)
    check.seconds = round(time.time() - t0, 1)
    if timed_out:
        check.status, check.detail = "timeout", f"killed after {args.bench_timeout:.0f} s"
    elif code != 0:
        check.status, check.detail = "failed", f"exit {code}: {last_error(check.log)}"
    else:
        check.status, check.detail = "ok", f"results in {results}"
        path = os.path.join(results, f"{device}{'_quick' if args.bench == 'quick' else ''}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                rows = json.load(f)["benchmarks"]["gpu"].get("summary", {}).get("variants", [])
            states = [f"{r['model']}/{r['attn']}{'+liger' if r['liger'] else ''}: {r['status']}" for r in rows]
            check.detail += "; " + ", ".join(states)
            if any(r["status"] not in ("ok", "unavailable") for r in rows):
                check.status = "failed"
    log(f"[done] bench: {check.status} in {check.seconds} s ({check.detail})")
    return check


# ------------------------------------------------------------------------------------------------ summary
def render_table(checks: list[Check]) -> str:
    header = ("stage", "variant", "status", "seconds", "detail")
    rows = [(c.stage, c.variant, c.status, f"{c.seconds:.1f}", c.detail) for c in checks]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny default sizes, fp32, 1 step each")
    parser.add_argument("--out", default="gpu_check_out", help="logs, configs, table (default ./gpu_check_out)")
    parser.add_argument("--workdir", default=None, help="models, videos, checkpoints (default: temp dir)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per check (default 3; dry run 1)")
    parser.add_argument("--jobs", type=int, default=None, help="checks run at once (default 4 on GPU, 2 dry run)")
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma list of {', '.join(STAGES)}")
    parser.add_argument("--layers", type=int, default=4, help="Qwen2.5-VL decoder layers (GPU)")
    parser.add_argument("--vision-depth", type=int, default=4, help="Qwen2.5-VL vision blocks (GPU)")
    parser.add_argument(
        "--bench",
        choices=("full", "quick", "off"),
        default=None,
        help="bench/run.py --only gpu (default full; a dry run skips full)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per training check (default 300; dry 240)"
    )
    parser.add_argument("--bench-timeout", type=float, default=360.0, help="seconds for the benchmark")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the runs' output dirs in --workdir")
    args = parser.parse_args(argv)
    args.only = [v.strip() for v in args.only.split(",") if v.strip()]
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for name, values, allowed in (("--only", args.only, VARIANTS), ("--stages", args.stages, STAGES)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"{name}: unknown {unknown}; choose from {list(allowed)}")
    args.steps = args.steps or (1 if args.dry_run else 3)
    args.jobs = args.jobs or (2 if args.dry_run else 4)
    args.bench = args.bench or "full"
    args.timeout = args.timeout or (240.0 if args.dry_run else 300.0)
    args.out = os.path.abspath(args.out)
    args.workdir = os.path.abspath(
        args.workdir or os.path.join(tempfile.gettempdir(), f"lfv_gpu_check_{'cpu' if args.dry_run else 'gpu'}")
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sub in ("logs", "configs", "runs"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    log = Console(os.path.join(args.out, "gpu_check.log"))
    started = time.time()
    mode = "dry run (CPU, tiny, fp32)" if args.dry_run else "GPU (bf16, real-width)"
    log(
        f"[gpu_check] {mode}; out {args.out}; workdir {args.workdir}; "
        f"{args.steps} step(s) per check, {args.jobs} at once"
    )

    missing = [name for name in ("llamafactory", "llamafactory_video") if not importable(name)]
    if missing:
        log(f"[gpu_check] cannot import {', '.join(missing)} with {sys.executable}: {WHEEL_HINT}")
        return 2
    import llamafactory
    import llamafactory_video

    args.extra_bins, args.shim_dir = [], None
    env_check = Check(name="env", stage="environment", variant="-")
    t0 = time.time()
    notes = []
    if not plugin_hook_active(args):
        args.shim_dir = install_hook_shim(args)
        if not plugin_hook_active(args):
            env_check.status = "failed"
            env_check.detail = "llamafactory_video.pth start-up hook does not run in child processes"
            log(f"[gpu_check] {env_check.detail}: {WHEEL_HINT}")
            return 2
        notes.append("plugin hook via sitecustomize shim (--target install)")
    site_bin = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(llamafactory.__file__))), "bin")
    if os.path.isdir(site_bin):
        args.extra_bins.append(site_bin)
    args.cli = cli_command()
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "no CUDA"
    optional = {
        name: version_of(dist)
        for name, dist in (("flash_attn", "flash-attn"), ("liger_kernel", "liger-kernel"), ("deepspeed", "deepspeed"))
    }
    env_check.status = "ok"
    env_check.seconds = round(time.time() - t0, 1)
    env_check.detail = "; ".join(
        [
            f"torch {torch.__version__} ({device})",
            f"llamafactory {llamafactory.__version__}",
            f"transformers {version_of('transformers')}",
            f"llamafactory_video {os.path.dirname(llamafactory_video.__file__)}",
            "optional: " + ", ".join(f"{k} {v or 'missing'}" for k, v in optional.items()),
        ]
        + notes
    )
    log(f"[env] {env_check.detail}")
    log(f"[env] cli: {' '.join(args.cli) if len(args.cli) == 1 else 'python -c <llamafactory.cli:main>'}")
    if not args.dry_run and not cuda:
        log("[gpu_check] torch sees no CUDA device: the bf16 checks will fail (use --dry-run for the CPU path)")

    checks = plan(args)
    stages = sorted({c.stage for c in checks if c.status == "pending"}, key=STAGES.index)
    assets_check = Check(name="assets", stage="assets", variant="-")
    t0 = time.time()
    try:
        assets = build_assets(args, stages, log)
        assets_check.status = "ok"
        assets_check.detail = ", ".join(sorted(assets))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        assets, assets_check.status, assets_check.detail = {}, "failed", f"{type(exc).__name__}: {exc}"[-300:]
        for check in checks:
            if check.status == "pending":
                check.status, check.detail = "skipped", "assets failed"
    assets_check.seconds = round(time.time() - t0, 1)

    pending = [c for c in checks if c.status == "pending"]
    for check in checks:
        if check.status == "skipped":
            log(f"[skip] {check.name}: {check.detail}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_check, args, check, assets, log) for check in pending]
        for future in futures:
            future.result()
    bench = run_bench(args, log)

    rows = [env_check, assets_check] + checks + [bench]
    table = render_table(rows)
    failed = [c.name for c in rows if c.status in ("failed", "timeout")]
    total = round(time.time() - started, 1)
    verdict = f"FAILED: {', '.join(failed)}" if failed else "every check that ran passed"
    log("")
    log(table)
    log("")
    log(f"[gpu_check] {mode}: total {total} s; {verdict}")
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(f"# GPU check: {mode}\n\n{table}\n\nTotal {total} s; {verdict}.\n")
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "mode": mode,
                "dry_run": args.dry_run,
                "total_s": total,
                "failed": failed,
                "checks": [asdict(c) for c in rows],
            },
            f,
            indent=2,
        )
        f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
