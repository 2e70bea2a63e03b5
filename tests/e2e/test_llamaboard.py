"""LlamaBoard end to end: the stage shows in the train tab, and "Start" launches a working run.

The UI is built in-process exactly as ``llamafactory.webui.interface.create_ui`` builds it (same
``Engine``, same tabs, same ``Manager`` ids) but kept at hand so the test can read the components and
call the runner. Pressing "Start" is reproduced with the very calls ``Runner._launch`` makes:
``_initialize`` (validation), ``_parse_train_args``, ``save_args(llamaboard_config)``, ``save_cmd`` and
``llamafactory-cli train <yaml>`` with ``LLAMABOARD_ENABLED=1`` in the environment. Only the Popen is
ours (a blocking ``subprocess.run`` with a timeout, instead of LlamaBoard's monitor loop).

LlamaBoard writes ``llamaboard_cache/`` (deepspeed configs, user config) relative to the current
directory, so the test runs from ``tmp_path``.
"""

import json
import os
import subprocess
import sys
from typing import Any

import pytest


pytestmark = pytest.mark.e2e

STAGE_LABEL = "Video Action Classification"
STAGE_NAME = "action_cls"
NUM_CLASSES = 4
# A Qwen2.5-VL entry of LlamaBoard's model list: it is in MULTIMODAL_SUPPORTED_MODELS, so the runner
# also takes its multimodal branch (freeze_* flags, image/video pixel limits from the components), as it
# would for a real video user. The weights come from top.model_path (the tiny local checkpoint).
MODEL_NAME = "Qwen2.5-VL-3B-Instruct"
VIDEO_MAX_PIXELS = 12544  # 112 * 112

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DISABLE_VERSION_CHECK": "1",
}


def _cli() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "llamafactory-cli")
    if not os.path.isfile(path):
        pytest.skip(f"llamafactory-cli not found next to {sys.executable}")
    return path


def _build_board():
    """What ``create_ui(demo_mode=False)`` does, returning the engine instead of the Blocks."""
    import gradio as gr
    from llamafactory.webui.common import save_config
    from llamafactory.webui.components import (
        create_eval_tab,
        create_export_tab,
        create_footer,
        create_infer_tab,
        create_top,
        create_train_tab,
    )
    from llamafactory.webui.engine import Engine

    engine = Engine(demo_mode=False, pure_chat=False)
    with gr.Blocks() as demo:
        title, subtitle = gr.HTML(), gr.HTML()
        engine.manager.add_elems("head", {"title": title, "subtitle": subtitle})
        engine.manager.add_elems("top", create_top())
        lang = engine.manager.get_elem_by_id("top.lang")
        with gr.Tab("Train"):
            engine.manager.add_elems("train", create_train_tab(engine))
        with gr.Tab("Evaluate & Predict"):
            engine.manager.add_elems("eval", create_eval_tab(engine))
        with gr.Tab("Chat"):
            engine.manager.add_elems("infer", create_infer_tab(engine))
        with gr.Tab("Export"):
            engine.manager.add_elems("export", create_export_tab(engine))
        engine.manager.add_elems("footer", create_footer())
        demo.load(engine.resume, outputs=engine.manager.get_elem_list(), concurrency_limit=None)
        lang.change(engine.change_lang, [lang], engine.manager.get_elem_list(), queue=False)
        lang.input(save_config, inputs=[lang], queue=False)

    return engine, demo


def _dropdown_choices(dropdown) -> list[str]:
    # gradio 4/5 store choices as (display, value) pairs
    return [choice[1] if isinstance(choice, (tuple, list)) else choice for choice in dropdown.choices]


@pytest.fixture()
def board(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # llamaboard_cache/ and saves/ land here, not in the user's cwd
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)

    from llamafactory.extras.constants import TRAINING_STAGES

    assert TRAINING_STAGES.get(STAGE_LABEL) == STAGE_NAME, "plugin not active: is llamafactory_video.pth installed?"
    engine, _ = _build_board()
    return engine


def test_stage_in_train_tab(board):
    from llamafactory.extras.constants import TRAINING_STAGES

    dropdown = board.manager.get_elem_by_id("train.training_stage")
    assert STAGE_LABEL in _dropdown_choices(dropdown)
    assert TRAINING_STAGES[STAGE_LABEL] == STAGE_NAME
    # stock stages keep their place: the dropdown's default is still the first stock stage
    assert dropdown.value == "Supervised Fine-Tuning"

    # what LlamaBoard does when the user picks our stage (train.training_stage.change)
    from llamafactory.webui.control import change_stage

    datasets, packing = change_stage(STAGE_LABEL)
    assert datasets == [] and packing is False


def test_hilight_templates_in_top_dropdown(board):
    r"""LlamaBoard's template dropdown (``top.template``, built from the host's ``TEMPLATES`` when the UI is made)
    offers the HiLight templates the plugin registers. HiLight is not in LlamaBoard's model list, so no model name
    selects them by itself: the user picks "Custom", types the path and picks the template (docs/models/hilight.md)."""
    from llamafactory.webui.common import get_template

    choices = _dropdown_choices(board.manager.get_elem_by_id("top.template"))
    assert {"hilight", "hilight_qwen"} <= set(choices)
    assert "Custom" in _dropdown_choices(board.manager.get_elem_by_id("top.model_name"))
    assert get_template("Custom") == "default"  # no mapping: the user's dropdown choice is what the runner sends

    # stage 1 as docs/models/hilight.md tells a LlamaBoard user: the runner sends no multimodal keys for a Custom
    # model, so the freezing and frame sampling come from "Extra arguments" and reach the train YAML as given
    stage1 = {
        "freeze_language_model": True,
        "freeze_multi_modal_projector": False,
        "video_fps": 2.0,
        "video_maxlen": 12,
    }
    data = _default_data(board.manager)
    for elem_id, value in (
        ("top.lang", "en"),
        ("top.model_name", "Custom"),
        ("top.model_path", "saves/hilight-2b"),
        ("top.template", "hilight"),
        ("top.finetuning_type", "full"),
        ("train.output_dir", "saves/hilight-2b/stage1"),
        ("train.extra_args", json.dumps(stage1)),
    ):
        data[board.manager.get_elem_by_id(elem_id)] = value
    args = board.runner._parse_train_args(data)
    assert args["template"] == "hilight" and args["model_name_or_path"] == "saves/hilight-2b"
    assert {key: args[key] for key in stage1} == stage1
    assert "freeze_vision_tower" not in args  # the host's default (true) freezes both towers


def _default_data(manager) -> dict[Any, Any]:
    """{component: value} with every component's initial value, as gradio would pass them."""
    return {elem: getattr(elem, "value", None) for elem in manager.get_elem_list()}


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:] if text else ""


def test_start_button_runs_action_cls(board, tmp_path):
    from llamafactory.extras.constants import LLAMABOARD_CONFIG
    from llamafactory.webui.common import save_args, save_cmd

    from llamafactory_video.testing.synthetic_videos import make_action_dataset
    from llamafactory_video.testing.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny-qwen2_5-vl")
    data_info = make_action_dataset(tmp_path / "data", num_classes=NUM_CLASSES, train_per_class=2, test_per_class=1)
    output_dir = str(tmp_path / "saves" / "llamaboard_action_cls")

    manager, runner = board.manager, board.runner
    data = _default_data(manager)

    def set_value(elem_id: str, value: Any) -> None:
        data[manager.get_elem_by_id(elem_id)] = value

    extra_args = {
        "num_action_classes": NUM_CLASSES,
        "action_decoder_type": "linear",
        "action_token_lr_scale": 0.1,
        "video_maxlen": 8,
        "video_fps": 2.0,
        "video_max_pixels": VIDEO_MAX_PIXELS,
        "max_steps": 4,
        "save_steps": 4,
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "per_device_train_batch_size": 2,
        "lora_rank": 8,
    }
    set_value("top.lang", "en")
    set_value("top.model_name", MODEL_NAME)
    set_value("top.model_path", model_dir)
    set_value("top.template", "qwen2_vl")
    set_value("top.finetuning_type", "lora")
    set_value("train.training_stage", STAGE_LABEL)
    set_value("train.dataset_dir", str(tmp_path / "data"))
    set_value("train.dataset", [data_info["train_dataset"]])
    set_value("train.cutoff_len", 512)
    set_value("train.output_dir", output_dir)  # contains os.sep: get_save_dir keeps it as is
    # The default compute type is bf16 (fp16/bf16 Trainer flags): the CPU run needs full fp32.
    set_value("train.compute_type", "fp32")
    # Default 8; 1 keeps the 4 optimizer steps to 4 micro-batches (speed only, not a CPU limitation).
    set_value("train.gradient_accumulation_steps", 1)
    # The runner writes lora_rank from the LoRA tab AFTER merging extra_args, so lora_rank in extra_args
    # is overwritten by this slider (default 8): set the component, the JSON key alone would be lost.
    set_value("train.lora_rank", 8)
    # Same for the multimodal tab (model in MULTIMODAL_SUPPORTED_MODELS): video_max_pixels from the
    # component (default "256*256") overrides extra_args. Keep the tiny run at 112*112.
    set_value("train.video_max_pixels", "112*112")
    set_value("train.extra_args", json.dumps(extra_args))

    # "Start": _launch -> _initialize(from_preview=False) would also warn "no CUDA" through gr.Warning;
    # from_preview=True runs the same checks without that UI-only warning.
    error = runner._initialize(data, do_train=True, from_preview=True)
    assert error == "", error

    args = runner._parse_train_args(data)
    assert args["stage"] == STAGE_NAME
    assert args["fp16"] is False and args["bf16"] is False and args["pure_bf16"] is False
    assert args["output_dir"] == output_dir
    assert args["num_action_classes"] == NUM_CLASSES and args["action_decoder_type"] == "linear"
    assert args["preprocessing_num_workers"] == 1  # extra_args wins over the runner's hard-coded 16
    assert args["lora_rank"] == 8
    assert args["video_max_pixels"] == VIDEO_MAX_PIXELS

    os.makedirs(args["output_dir"], exist_ok=True)
    save_args(os.path.join(args["output_dir"], LLAMABOARD_CONFIG), runner._build_config_dict(data))
    yaml_path = save_cmd(args)
    assert os.path.isfile(yaml_path)

    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["LLAMABOARD_ENABLED"] = "1"
    env["LLAMABOARD_WORKDIR"] = args["output_dir"]
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        proc = subprocess.run(
            [_cli(), "train", yaml_path],
            check=False,
            env=env,
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        errs = (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        pytest.fail(f"llamafactory-cli train timed out\n--- stdout ---\n{_tail(out)}\n--- stderr ---\n{_tail(errs)}")

    logs = f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}"
    assert proc.returncode == 0, f"llamafactory-cli train exited with {proc.returncode}\n{logs}"
    produced = sorted(os.listdir(output_dir))
    for name in ("action_decoder.safetensors", "adapter_model.safetensors"):
        assert name in produced, f"{name} missing from {output_dir}: {produced}\n{logs}"

    # LlamaBoard's monitor reads these (LLAMABOARD_ENABLED=1)
    assert os.path.isfile(os.path.join(output_dir, LLAMABOARD_CONFIG))
