"""scripts/gpu_check.py pieces that need no training: the plan of checks, the YAML it generates from the demo
recipes, the sitecustomize shim that runs a --target install's .pth in child processes, and the table."""

import argparse
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(ROOT, "scripts", "gpu_check.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dry_run_plan_skips_gpu_variants_with_reasons(gpu_check):
    args = gpu_check.parse_args(["--dry-run", "--out", "x"])
    assert args.steps == 1 and args.bench == "full"
    checks = gpu_check.plan(args)
    pending = [c.name for c in checks if c.status == "pending"]
    assert pending == [f"{s}__sdpa" for s in gpu_check.STAGES]
    skipped = [c for c in checks if c.status == "skipped"]
    assert len(skipped) == 3 + 3 + 4 and all("needs CUDA" in c.detail for c in skipped)
    only = gpu_check.plan(gpu_check.parse_args(["--dry-run", "--only", "sdpa", "--stages", "scst"]))
    assert [(c.name, c.status) for c in only] == [
        ("scst__sdpa", "pending"),
        ("scst__fa2", "skipped"),
        ("scst__liger", "skipped"),
        ("scst__ds_z3", "skipped"),
    ]
    assert all(c.detail == "not selected (--only)" for c in only[1:])


def test_stage_configs_come_from_the_demo_recipes(gpu_check):
    assets = {"qwen": "/m/q", "clip": "/m/c", "action": "/d/a", "caption": "/d/c", "align": "/d/s"}
    gpu = gpu_check.parse_args(["--out", "x"])
    config = gpu_check.stage_config(gpu, "fastslow_ar", "ds_z3", assets, "/o")
    assert config["stage"] == "fastslow_ar" and config["bf16"] is True and config["max_steps"] == 3
    assert config["deepspeed"].endswith("ds_z3_config.json") and os.path.isfile(config["deepspeed"])
    assert config["video_max_pixels"] == 224 * 224 and config["dataset_dir"] == "/d/c"
    assert not config["do_eval"] and "eval_dataset" not in config
    assert gpu_check.stage_config(gpu, "scst", "fa2", assets, "/o")["flash_attn"] == "fa2"
    assert gpu_check.stage_config(gpu, "action_cls", "liger", assets, "/o")["enable_liger_kernel"] is True
    dry = gpu_check.stage_config(gpu_check.parse_args(["--dry-run"]), "sparc_align", "sdpa", assets, "/o")
    assert "bf16" not in dry and dry["model_name_or_path"] == "/m/c" and dry["max_steps"] == 1


def test_sitecustomize_shim_runs_the_pth_of_a_target_dir(gpu_check, tmp_path):
    target = tmp_path / "site"
    target.mkdir()
    (target / "marker_mod.py").write_text("import os\nos.environ['GPU_CHECK_MARKER'] = 'ran'\n")
    (target / "marker.pth").write_text("import marker_mod\n")
    args = argparse.Namespace(workdir=str(tmp_path / "work"))
    shim = gpu_check.install_hook_shim(args, site_dir=str(target))
    code = "import os, sys; print(os.environ.get('GPU_CHECK_MARKER'), 'marker_mod' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=shim)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env,
        capture_output=True, text=True, check=True, timeout=600
    ).stdout
    assert out.split() == ["ran", "True"]


def test_table(gpu_check):
    rows = [gpu_check.Check(name="a", stage="scst", variant="fa2", status="skipped", detail="why")]
    assert gpu_check.render_table(rows).splitlines()[-1] == "| scst | fa2 | skipped | 0.0 | why |"
