"""Ownership of the files our stages write beside a model (issue 16, item 4): the table, the manifest and
``written_by`` records, claiming a reused ``output_dir``, trusting ``video_pooling.json`` only beside its weights,
refusing to resume another stage's checkpoint."""

import json
import os
import time
from types import SimpleNamespace

import pytest

from llamafactory_video import artifacts
from llamafactory_video.artifacts import MANIFEST_NAME, POOLING_FILE


class _Log:
    def __init__(self):
        self.lines = []

    def warning_rank0(self, message):
        self.lines.append(message)


def _write(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else json.dumps(data).encode())


def _age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))


def _fastslow_dir(directory, stamped=True):
    r"""What a fastslow_ar save leaves: weights, head, pooling (stamped with its weights' fingerprint)."""
    _write(os.path.join(directory, "model.safetensors"), os.urandom(4096))
    _write(os.path.join(directory, "fastslow_head.safetensors"), b"head")
    _write(os.path.join(directory, "fastslow_head_config.json"), {"hidden_size": 8})
    _write(os.path.join(directory, POOLING_FILE), {"slow_stride": 2, "fast_stride": 4})
    if stamped:
        run = artifacts.new_run("fastslow_ar", directory)
        artifacts.stamp_and_record(directory, run)
        return run
    return None


def test_every_file_the_code_writes_is_in_the_table():
    from llamafactory_video.model import action_head, dual_encoder, fastslow_head, video_pooling

    expected = {
        action_head.HEAD_WEIGHTS_NAME: "action_cls",
        action_head.HEAD_CONFIG_NAME: "action_cls",
        "action_predictions.jsonl": "action_cls",
        "predict_report.json": "action_cls",
        "eval_confusion_matrix.png": "action_cls",
        "training_action_cls_accuracy.png": "action_cls",
        fastslow_head.HEAD_WEIGHTS_NAME: "fastslow_ar",
        fastslow_head.HEAD_CONFIG_NAME: "fastslow_ar",
        video_pooling.POOLING_FILE: "fastslow_ar",
        "training_fastslow_autoregressive_loss.png": "fastslow_ar",
        dual_encoder.CONFIG_NAME: "sparc_align",
        dual_encoder.HEADS_NAME: "sparc_align",
        "eval_retrieval_curve.png": "sparc_align",
        "training_eval_t2v_r1.png": "sparc_align",
        "eval_captions.jsonl": "scst",
        "predict_caption_metrics.json": "scst",
        "training_scst_reward_mean.png": "scst",
    }
    for name, stage in expected.items():
        assert artifacts.artifact_stage(name) == stage, name
    for stock in ("adapter_model.safetensors", "model.safetensors", "training_loss.png", "trainer_state.json"):
        assert artifacts.artifact_stage(stock) is None, stock


def test_save_writes_manifest_and_stamps_configs_with_weights_fingerprint(tmp_path):
    out = str(tmp_path / "out")
    run = _fastslow_dir(out)
    manifest = json.load(open(os.path.join(out, MANIFEST_NAME)))
    assert manifest["stage"] == "fastslow_ar" and manifest["run"] == run.run_id
    assert set(manifest["files"]) == {"fastslow_head.safetensors", "fastslow_head_config.json", POOLING_FILE}
    assert all(entry == {"stage": "fastslow_ar", "run": run.run_id} for entry in manifest["files"].values())
    pooling = json.load(open(os.path.join(out, POOLING_FILE)))
    record = pooling["written_by"]
    assert record["stage"] == "fastslow_ar" and record["run"] == run.run_id and record["plugin_version"]
    assert record["weights"]["file"] == "model.safetensors" and record["weights"]["size"] == 4096
    assert json.load(open(os.path.join(out, "fastslow_head_config.json")))["written_by"]["stage"] == "fastslow_ar"


def test_save_removes_files_an_earlier_run_left_in_the_folder(tmp_path):
    checkpoint = str(tmp_path / "checkpoint-2")
    _write(os.path.join(checkpoint, "adapter_model.safetensors"))
    _write(os.path.join(checkpoint, POOLING_FILE), {"slow_stride": 2})
    _age(os.path.join(checkpoint, POOLING_FILE))  # from a run before this one
    _write(os.path.join(checkpoint, "action_decoder.safetensors"))  # this run's
    log = _Log()
    artifacts.stamp_and_record(checkpoint, artifacts.new_run("action_cls", str(tmp_path)), log)
    assert not os.path.exists(os.path.join(checkpoint, POOLING_FILE))
    assert any(POOLING_FILE in line for line in log.lines)
    files = json.load(open(os.path.join(checkpoint, MANIFEST_NAME)))["files"]
    assert set(files) == {"action_decoder.safetensors"}


@pytest.mark.parametrize("stamped", [True, False])
def test_claim_with_overwrite_removes_another_stages_files(tmp_path, stamped):
    out = str(tmp_path / "out")
    _fastslow_dir(out, stamped=stamped)
    log = _Log()
    artifacts.claim_output_dir(out, "action_cls", True, None, log)
    for name in ("fastslow_head.safetensors", "fastslow_head_config.json", POOLING_FILE, MANIFEST_NAME):
        assert not os.path.exists(os.path.join(out, name)), name
    assert os.path.exists(os.path.join(out, "model.safetensors"))  # the host's files are the host's business
    assert len(log.lines) == 3 and all("stage fastslow_ar" in line for line in log.lines)


def test_claim_without_overwrite_refuses_naming_files_and_stage(tmp_path):
    out = str(tmp_path / "out")
    _fastslow_dir(out)
    with pytest.raises(ValueError) as err:
        artifacts.claim_output_dir(out, "action_cls", False, None)
    message = str(err.value)
    assert POOLING_FILE in message and "fastslow_head.safetensors" in message and "stage fastslow_ar" in message
    assert "overwrite_output_dir: true" in message
    assert os.path.exists(os.path.join(out, POOLING_FILE))


def test_claim_of_a_new_run_of_the_same_stage_also_clears_the_old_runs_files(tmp_path):
    out = str(tmp_path / "out")
    _fastslow_dir(out)
    artifacts.claim_output_dir(out, "fastslow_ar", True, None)
    assert not os.path.exists(os.path.join(out, POOLING_FILE))


def test_resuming_the_same_stage_continues_its_run_and_keeps_its_files(tmp_path):
    out = str(tmp_path / "out")
    run = _fastslow_dir(out)
    checkpoint = os.path.join(out, "checkpoint-2")
    _fastslow_dir(checkpoint)
    manifest = json.load(open(os.path.join(checkpoint, MANIFEST_NAME)))
    resumed = artifacts.claim_output_dir(out, "fastslow_ar", False, checkpoint)
    assert resumed.run_id == manifest["run"]
    assert os.path.exists(os.path.join(out, POOLING_FILE)) and run.run_id


def test_resume_check_refuses_another_stages_checkpoint(tmp_path):
    out = str(tmp_path / "out")
    checkpoint = os.path.join(out, "checkpoint-3")
    _fastslow_dir(checkpoint)
    with pytest.raises(ValueError) as err:
        artifacts.check_resume_checkpoint(checkpoint, "sft", out, overwrite_output_dir=False)
    assert checkpoint in str(err.value) and "stage: fastslow_ar" in str(err.value)
    assert "overwrite_output_dir" in str(err.value) and "by itself" in str(err.value)
    artifacts.check_resume_checkpoint(checkpoint, "fastslow_ar", out, overwrite_output_dir=False)

    legacy = os.path.join(out, "checkpoint-4")  # written before manifests: the head file tells the stage
    _write(os.path.join(legacy, "action_decoder.safetensors"))
    with pytest.raises(ValueError, match="stage: action_cls"):
        artifacts.check_resume_checkpoint(legacy, "fastslow_ar", out, overwrite_output_dir=False)

    stock = os.path.join(out, "checkpoint-5")
    _write(os.path.join(stock, "adapter_model.safetensors"))
    artifacts.check_resume_checkpoint(stock, "action_cls", out, overwrite_output_dir=False)  # nothing to go by


def test_pooling_is_trusted_only_beside_the_weights_it_was_written_for(tmp_path):
    out = str(tmp_path / "out")
    _fastslow_dir(out)
    path = os.path.join(out, POOLING_FILE)
    assert artifacts.pooling_is_trusted(path)[0]
    _write(os.path.join(out, "model.safetensors"), os.urandom(4096))  # a later stock sft run's weights
    trusted, why = artifacts.pooling_is_trusted(path)
    assert not trusted and "fastslow_ar" in why

    adapter = str(tmp_path / "adapter")  # a LoRA run: the adapter is what the fingerprint covers
    _write(os.path.join(adapter, "adapter_model.safetensors"), os.urandom(512))
    _write(os.path.join(adapter, POOLING_FILE), {"slow_stride": 2})
    artifacts.stamp_and_record(adapter, artifacts.new_run("fastslow_ar", adapter))
    assert json.load(open(os.path.join(adapter, POOLING_FILE)))["written_by"]["weights"]["file"] == (
        "adapter_model.safetensors"
    )
    assert artifacts.pooling_is_trusted(os.path.join(adapter, POOLING_FILE))[0]


def test_legacy_pooling_file_is_trusted_unless_the_weights_are_newer(tmp_path):
    out = str(tmp_path / "legacy")
    _fastslow_dir(out, stamped=False)
    path = os.path.join(out, POOLING_FILE)
    _age(os.path.join(out, "model.safetensors"), 120)
    _age(path, 110)
    assert artifacts.pooling_is_trusted(path)[0]
    _write(os.path.join(out, "adapter_model.safetensors"))  # a later LoRA run into the same directory
    trusted, why = artifacts.pooling_is_trusted(path)
    assert not trusted and "newer" in why


def test_saved_pooling_skips_a_stale_file(tmp_path):
    from llamafactory_video.model.video_pooling import pooling_from_model_args

    out = str(tmp_path / "out")
    _fastslow_dir(out)
    args = SimpleNamespace(adapter_name_or_path=None, model_name_or_path=out, video_token_pool_stride=1)
    pooling, source = pooling_from_model_args(args)
    assert pooling is not None and pooling.slow_stride == 2 and source.endswith(POOLING_FILE)

    _write(os.path.join(out, "adapter_model.safetensors"))  # action_cls LoRA written over it, file left behind
    args = SimpleNamespace(adapter_name_or_path=[out], model_name_or_path=str(tmp_path / "base"))
    assert pooling_from_model_args(args) == (None, "")


def test_readers_accept_stamped_and_legacy_configs(tmp_path):
    from llamafactory_video.model.action_head import ActionHeadConfig
    from llamafactory_video.model.video_pooling import VideoPooling

    record = {"stage": "x", "run": "r", "plugin_version": "0"}
    path = str(tmp_path / POOLING_FILE)
    _write(path, {"slow_stride": 2, "fast_stride": 4, "written_by": record})
    assert VideoPooling.load(path) == VideoPooling(slow_stride=2, fast_stride=4)
    _write(path, {"slow_stride": 2, "fast_stride": 4})
    assert VideoPooling.load(path) == VideoPooling(slow_stride=2, fast_stride=4)
    config = ActionHeadConfig(hidden_size=4, num_classes=2, id2label={0: "a", 1: "b"})
    assert ActionHeadConfig.from_json_dict({**config.to_json_dict(), "written_by": record}) == config
