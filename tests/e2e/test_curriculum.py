"""The three-stage curriculum (examples/curriculum/tiny/) chained with the stock ``llamafactory-cli train``:
stage 1 (image-text, projector only) -> stage 2 (video captions, from stage 1's checkpoint) -> stage 3 (video
QA with subtitles in the prompts, LoRA q_proj/v_proj r64 a16, from stage 2's checkpoint); then the API path
of chat (``llamafactory.chat.ChatModel`` with a video) with and without stage 3's adapter."""

import json
import os

import pytest
import yaml
from safetensors.torch import load_file

from llamafactory_video.testing.synthetic_qa import make_curriculum_dataset

from .helpers import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "..", "examples", "curriculum", "tiny")


def _config(stage: str, **overrides):
    with open(os.path.join(TINY, f"{stage}.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config.update(overrides)
    return config


def _weights(folder):
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors") and not f.startswith("adapter")]
    assert files, f"no weights in {folder}: {os.listdir(folder)}"
    state = {}
    for name in files:
        state.update(load_file(os.path.join(folder, name)))
    return state


def _changed(before, after):
    assert set(before) == set(after)
    return sorted(k for k in before if not (before[k] == after[k]).all())


@pytest.fixture(scope="module")
def chain(tiny_qwen2vl, tmp_path_factory):
    work = str(tmp_path_factory.mktemp("curriculum"))
    data = make_curriculum_dataset(os.path.join(work, "data"))
    out = {name: os.path.join(work, name) for name in ("stage1", "stage2", "stage3")}
    common = {"dataset_dir": data["output_dir"], "overwrite_cache": True}
    run_cli(
        _config("stage1_image_align", model_name_or_path=tiny_qwen2vl, output_dir=out["stage1"], **common), work, "s1"
    )
    run_cli(
        _config("stage2_video_caption", model_name_or_path=out["stage1"], output_dir=out["stage2"], **common),
        work,
        "s2",
    )
    run_cli(
        _config("stage3_video_instruct", model_name_or_path=out["stage2"], output_dir=out["stage3"], **common),
        work,
        "s3",
    )
    return {"base": tiny_qwen2vl, "data": data, "work": work, **out}


def test_stage1_trains_only_the_projector(chain):
    base, stage1 = _weights(chain["base"]), _weights(chain["stage1"])
    changed = _changed(base, stage1)
    assert changed and all("visual.merger" in k for k in changed), changed
    assert len(changed) == sum("visual.merger" in k for k in base)  # every projector tensor moved


def test_stage2_loads_stage1_and_trains_the_projector_on_video(chain):
    stage1, stage2 = _weights(chain["stage1"]), _weights(chain["stage2"])
    changed = _changed(stage1, stage2)
    assert changed and all("visual.merger" in k for k in changed), changed
    with open(os.path.join(chain["work"], "s2.log"), encoding="utf-8") as f:
        assert chain["stage1"] in f.read()  # stage 2 was started from stage 1's folder


def test_stage3_lora_on_stage2(chain):
    folder = chain["stage3"]
    with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
        adapter = json.load(f)
    assert adapter["r"] == 64 and adapter["lora_alpha"] == 16
    targets = adapter["target_modules"]  # the host narrows q_proj,v_proj to the language model (vision frozen)
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"q_proj", "v_proj"}
    assert all("language_model" in t for t in targets)
    assert adapter["base_model_name_or_path"] == chain["stage2"]
    lora = load_file(os.path.join(folder, "adapter_model.safetensors"))
    assert lora and all(("q_proj" in k or "v_proj" in k) and "visual" not in k for k in lora)
    with open(os.path.join(folder, "trainer_log.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    assert len(losses) == 4 and all(0 < loss < 100 for loss in losses)  # 8 samples / (1 x 2 accumulation)


def test_chat_model_answers_about_a_video(chain):
    from llamafactory.chat import ChatModel

    from llamafactory_video.data.subtitles import with_subtitles

    video = os.path.join(chain["data"]["output_dir"], "videos", "red_square_moves_right_0.mp4")
    question = with_subtitles("Which direction does the object move?", video, video_fps=2.0, video_maxlen=4)
    assert question.startswith("Subtitles (timed to the 4 sampled frames):")
    common = {"template": "qwen2_vl", "video_fps": 2.0, "video_maxlen": 4, "video_max_pixels": 12544}
    common.update(max_new_tokens=6, do_sample=False, infer_backend="huggingface")
    answers = {}
    for name, extra in (
        ("stage2", {"model_name_or_path": chain["stage2"]}),
        (
            "stage3",
            {
                "model_name_or_path": chain["stage2"],
                "adapter_name_or_path": chain["stage3"],
                "video_token_pool_stride": 2,  # stage 3 trained pooled
            },
        ),
    ):
        chat = ChatModel({**common, **extra, "finetuning_type": "lora"})
        responses = chat.chat([{"role": "user", "content": question}], videos=[video])
        assert len(responses) == 1 and responses[0].prompt_length > 16  # video tokens + subtitles in the prompt
        assert responses[0].response_length >= 1
        answers[name] = (responses[0].response_text, responses[0].prompt_length)
        if name == "stage3":
            from peft import PeftModel

            assert isinstance(chat.engine.model, PeftModel) or hasattr(chat.engine.model, "peft_config")
        del chat
    assert answers["stage3"][1] < answers["stage2"][1]  # same prompt, 4x fewer video tokens
