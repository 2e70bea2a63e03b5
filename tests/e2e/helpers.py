"""Run the STOCK llamafactory-cli as a subprocess, the way users do."""

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Optional

import yaml


BIN = os.path.dirname(sys.executable)
CLI = os.path.join(BIN, "llamafactory-cli")


HILIGHT_NUM_FRAMES = 4  # frames (= visual tokens) of the session's tiny HiLight (conftest.tiny_hilight)


def offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",  # a process killed by a fatal signal prints its Python stacks before it dies
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")  # torchrun / llamafactory-cli of this venv, as when activated
    env.update(extra)
    return env


def run_bounded(
    cmd: list[str], timeout: int, env: Optional[dict[str, str]] = None, cwd: Optional[str] = None
) -> subprocess.CompletedProcess:
    r"""``subprocess.run(cmd, capture_output=True, text=True)`` that can never outlive ``timeout``: the command runs
    in its own process group (llamafactory-cli -> torchrun -> ranks, data-loader workers), and on timeout the whole
    group gets SIGABRT first (with ``PYTHONFAULTHANDLER=1`` every Python process in it prints its stacks), then
    SIGKILL; the output so far is returned with returncode 124 and a line saying so. Leftover processes of a finished
    command (a rank or helper that outlived its launcher) are killed too, so none holds a pipe or a core for the
    tests after it."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGABRT)
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        returncode = 124
        stderr = (stderr or "") + f"\n[run_bounded] {' '.join(cmd[:3])} ran past its {timeout} s timeout: killed\n"
    finally:
        signal_group(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, returncode, stdout or "", stderr or "")


def signal_group(pgid: int, sig: int) -> None:
    r"""Send ``sig`` to process group ``pgid`` (started with ``start_new_session=True``), if anything is left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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
    proc = run_bounded(
        [CLI, "train", path, *(overrides or [])], env=env or offline_env(), timeout=timeout, cwd=workdir
    )
    with open(os.path.join(workdir, f"{name}.log"), "w", encoding="utf-8") as f:
        f.write(proc.stdout + "\n" + proc.stderr)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(
            f"llamafactory-cli train {name} failed ({proc.returncode}); full log: {workdir}/{name}.log\n"
            f"{crash_lines(proc.stderr)}{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc


CRASH_MARKERS = ("Fatal Python error", "Traceback", "terminate called", "Aborted", "Segmentation fault", "panicked")


def crash_lines(text: str, context: int = 15, limit: int = 6000) -> str:
    r"""The first lines of ``text`` that look like a crash, with ``context`` lines after each, so that a failure
    message shows the process that died first and not only the launcher's tail."""
    lines = text.splitlines()
    picked: set[int] = set()
    for i, line in enumerate(lines):
        if any(marker in line for marker in CRASH_MARKERS):
            picked.update(range(i, min(i + context + 1, len(lines))))
    if not picked:
        return ""
    excerpt = "\n".join(lines[i] for i in sorted(picked))[:limit]
    return f"--- first crash lines ---\n{excerpt}\n--- tail ---\n"


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def video_run_keys(**overrides: Any) -> dict[str, Any]:
    r"""The keys every small caption / QA run on the tiny qwen2_vl-template models shares (8 frames at 2 fps, a
    112 x 112 pixel budget, no checkpoints, nothing reported), with ``overrides``."""
    return dict(
        dict(
            video_maxlen=8,
            video_fps=2.0,
            video_max_pixels=12544,
            template="qwen2_vl",
            trust_remote_code=True,
            cutoff_len=512,
            preprocessing_num_workers=1,
            overwrite_output_dir=True,
            overwrite_cache=True,
            report_to="none",
            save_strategy="no",
        ),
        **overrides,
    )


def action_cls_config(model_dir: str, data_dir: str, output_dir: str, **overrides: Any) -> dict[str, Any]:
    r"""The demo recipe (examples/demo/action_cls_tiny.yaml) pointed at test assets."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "examples", "demo", "action_cls_tiny.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config.update(model_name_or_path=model_dir, dataset_dir=data_dir, output_dir=output_dir, overwrite_cache=True)
    config.update(overrides)
    return config


def sparc_config(model_dir: str, data_dir: str, output_dir: str, **overrides: Any) -> dict[str, Any]:
    r"""The sparc_align demo recipe (examples/demo/sparc_align_tiny.yaml) pointed at test assets."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "examples", "demo", "sparc_align_tiny.yaml"), encoding="utf-8") as f:
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


def checkpoint_complete(checkpoint: str) -> bool:
    r"""Whether ``checkpoint`` is fully written: ``trainer_state.json`` is the last file a checkpoint gets."""
    try:
        with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as f:
            json.load(f)
        return True
    except (OSError, ValueError):
        return False


def run_cli_killed_after(config: dict[str, Any], workdir: str, name: str, checkpoint: str, timeout: int = 900) -> int:
    r"""``llamafactory-cli train`` on ``config``, its whole process group SIGKILLed (``kill -9``) as soon as
    ``checkpoint`` is complete; returns the exit status (``-SIGKILL`` when it was killed mid-training)."""
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    with open(os.path.join(workdir, f"{name}.log"), "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [CLI, "train", path],
            env=offline_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if checkpoint_complete(checkpoint):
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait(timeout=60)
    return returncode


def kill_at_checkpoint_and_resume(
    config: dict[str, Any], workdir: str, step: int, name: str = "killed"
) -> subprocess.CompletedProcess:
    r"""Train ``config`` (its ``output_dir``), ``kill -9`` the run once ``checkpoint-<step>`` is complete (asserting
    it died mid-training, before its final weights), then resume it from that checkpoint in the same ``output_dir``
    to the end. Returns the resumed run's process; its log says which checkpoint it resumed from."""
    out = config["output_dir"]
    checkpoint = os.path.join(out, f"checkpoint-{step}")
    returncode = run_cli_killed_after(config, workdir, name, checkpoint)
    assert returncode == -signal.SIGKILL, f"{name}: the run was not killed mid-training (exit {returncode})"
    final = [f for f in ("model.safetensors", "adapter_model.safetensors") if os.path.isfile(os.path.join(out, f))]
    assert not final, f"{name}: the killed run got to write its final weights {final}"
    assert checkpoint_complete(checkpoint)
    return run_cli(config, workdir, f"{name}_resumed", overrides=[f"resume_from_checkpoint={checkpoint}"])


def assert_same_safetensors(
    reference_dir: str, resumed_dir: str, names: tuple[str, ...], atol: float = 1e-6, rtol: float = 1e-5
) -> None:
    r"""Every tensor of each ``<name>`` safetensors file in ``resumed_dir`` equals the one in ``reference_dir``."""
    import torch
    from safetensors.torch import load_file

    for name in names:
        expected = load_file(os.path.join(reference_dir, name))
        got = load_file(os.path.join(resumed_dir, name))
        assert expected and expected.keys() == got.keys(), (name, sorted(set(expected) ^ set(got))[:5])
        for key in expected:
            torch.testing.assert_close(
                got[key], expected[key], atol=atol, rtol=rtol, msg=lambda m, k=key, n=name: f"{n} {k}: {m}"
            )
