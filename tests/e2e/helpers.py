"""Run the STOCK llamafactory-cli as a subprocess, the way users do."""

import json
import os
import subprocess
import sys
from typing import Any, Optional

import yaml


BIN = os.path.dirname(sys.executable)
CLI = os.path.join(BIN, "llamafactory-cli")


def offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")  # torchrun / llamafactory-cli of this venv, as when activated
    env.update(extra)
    return env


def run_cli(
    config: dict[str, Any],
    workdir: str,
    name: str,
    overrides: Optional[list[str]] = None,
    env: Optional[dict[str, str]] = None,
    expect_ok: bool = True,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    r"""Write ``config`` to ``<workdir>/<name>.yaml`` and run ``llamafactory-cli train`` on it
    (plus key=value overrides)."""
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    proc = subprocess.run(
        [CLI, "train", path, *(overrides or [])],
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
    )
    with open(os.path.join(workdir, f"{name}.log"), "w", encoding="utf-8") as f:
        f.write(proc.stdout + "\n" + proc.stderr)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(
            f"llamafactory-cli train {name} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def action_cls_config(model_dir: str, data_dir: str, output_dir: str, **overrides: Any) -> dict[str, Any]:
    r"""The demo recipe (examples/demo/action_cls_tiny.yaml) pointed at test assets."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "examples", "demo", "action_cls_tiny.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config.update(model_name_or_path=model_dir, dataset_dir=data_dir, output_dir=output_dir, overwrite_cache=True)
    config.update(overrides)
    return config


SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def write_sharegpt_dataset(data_dir: str, name: str, rows: list[dict], columns: dict[str, str]) -> str:
    r"""Write ``rows`` as ``<data_dir>/<name>.json``; register it as ``name`` in ``<data_dir>/dataset_info.json``."""
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f)
    info = {name: {"file_name": f"{name}.json", "formatting": "sharegpt", "columns": columns, "tags": SHAREGPT_TAGS}}
    with open(os.path.join(data_dir, "dataset_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f)
    return data_dir
