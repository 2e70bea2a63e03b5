"""`stage: action_cls` through the stock llamafactory-cli: learns, saves, reloads, predicts, resumes, runs DDP."""

import os

import pytest
from safetensors.torch import load_file

from .helpers import action_cls_config, assert_same_safetensors, read_json, read_jsonl, run_cli


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tiny_qwen25vl, action_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("action_cls_train"))
    out = os.path.join(workdir, "out")
    # the demo recipe as is: LoRA, preprocessing_num_workers 2 (the action_label column crosses worker processes)
    config = action_cls_config(tiny_qwen25vl, action_data["output_dir"], out, save_steps=432)
    assert config["preprocessing_num_workers"] > 1
    run_cli(config, workdir, "train")
    return {"workdir": workdir, "out": out, "config": config}


def test_learns_the_synthetic_task(trained, action_data):
    metrics = read_json(os.path.join(trained["out"], "eval_results.json"))
    assert metrics["eval_accuracy"] >= 0.9, metrics
    assert metrics["eval_top5_accuracy"] == 1.0
    report = read_json(os.path.join(trained["out"], "eval_report.json"))
    assert report["labels"] == action_data["class_names"]
    assert sum(map(sum, report["confusion_matrix"])) == action_data["num_test"]
    state = read_json(os.path.join(trained["out"], "trainer_state.json"))
    logged = [entry for entry in state["log_history"] if "action_cls/accuracy" in entry]
    assert logged[-1]["action_cls/loss_cls"] < logged[0]["action_cls/loss_cls"]


def test_saves_head_adapter_report_plots_and_predictions(trained, action_data):
    out = trained["out"]
    for name in (
        "adapter_model.safetensors",
        "action_decoder.safetensors",
        "action_decoder_config.json",
        "eval_confusion_matrix.png",
        "training_loss.png",
        "training_action_cls_accuracy.png",
        "action_predictions.jsonl",
        "checkpoint-432/action_decoder.safetensors",
    ):
        assert os.path.isfile(os.path.join(out, name)), name
    head_config = read_json(os.path.join(out, "action_decoder_config.json"))
    assert head_config["num_classes"] == 4 and head_config["decoder_type"] == "linear"
    assert list(head_config["id2label"].values()) == action_data["class_names"]
    # the embedding matrix stays frozen under LoRA: nothing but LoRA weights in the adapter
    adapter = load_file(os.path.join(out, "adapter_model.safetensors"))
    assert adapter and all("lora_" in key for key in adapter), [k for k in adapter if "lora_" not in k][:5]
    head = load_file(os.path.join(out, "action_decoder.safetensors"))
    assert set(head) == {"decoder.net.weight", "decoder.net.bias", "token_embedding.weight"}
    rows = read_jsonl(os.path.join(out, "action_predictions.jsonl"))
    assert len(rows) == action_data["num_test"]
    assert {"index", "dataset", "videos", "label", "prediction", "top5"} <= set(rows[0])
    assert os.path.isfile(rows[0]["videos"][0]) and len(rows[0]["top5"]) == 4
    assert sorted(r["index"] for r in rows) == list(range(action_data["num_test"]))


def test_reloaded_adapter_and_head_predict_the_same(trained):
    out = os.path.join(trained["workdir"], "reload")
    config = dict(trained["config"], output_dir=out)
    # key=value overrides on the command line, as users pass them
    run_cli(
        config,
        trained["workdir"],
        "reload",
        overrides=["do_train=false", "do_eval=false", f"adapter_name_or_path={trained['out']}"],
    )
    before = read_jsonl(os.path.join(trained["out"], "action_predictions.jsonl"))
    after = read_jsonl(os.path.join(out, "action_predictions.jsonl"))
    assert [r["prediction"] for r in after] == [r["prediction"] for r in before]
    for a, b in zip(after, before):
        assert a["top5"][0]["prob"] == pytest.approx(b["top5"][0]["prob"], abs=1e-4)


def test_resumed_run_ends_where_the_uninterrupted_one_does(trained):
    out = os.path.join(trained["workdir"], "resumed")
    config = dict(
        trained["config"],
        output_dir=out,
        do_eval=False,
        do_predict=False,
        plot_loss=False,
        resume_from_checkpoint=os.path.join(trained["out"], "checkpoint-432"),
    )
    proc = run_cli(config, trained["workdir"], "resume")
    assert "Resuming training from checkpoint with epoch 18 and global step 432" in proc.stdout + proc.stderr
    assert_same_safetensors(
        trained["out"], out, ("adapter_model.safetensors", "action_decoder.safetensors"), atol=1e-5, rtol=1e-4
    )
    ref_state = read_json(os.path.join(trained["out"], "trainer_state.json"))
    got_state = read_json(os.path.join(out, "trainer_state.json"))
    assert got_state["global_step"] == ref_state["global_step"] == 480


def test_two_rank_ddp_on_cpu(tiny_qwen25vl, action_data, tmp_path):
    from .helpers import offline_env

    out = str(tmp_path / "ddp")
    # also covers the mlp head and the optional LM loss on the answer
    config = action_cls_config(
        tiny_qwen25vl,
        action_data["output_dir"],
        out,
        max_steps=6,
        save_steps=6,
        do_eval=True,
        do_predict=False,
        per_device_train_batch_size=2,
        logging_steps=2,
        action_decoder_type="mlp",
        action_decoder_hidden_size=32,
        action_lm_loss_weight=0.5,
    )
    proc = run_cli(config, str(tmp_path), "ddp", env=offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    log = proc.stdout + proc.stderr
    assert "world size: 2" in log and "distributed training: True" in log
    assert os.path.isfile(os.path.join(out, "action_decoder.safetensors"))
    assert "eval_accuracy" in read_json(os.path.join(out, "eval_results.json"))
    logged = [
        e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "action_cls/loss_lm" in e
    ]
    assert logged and all(e["action_cls/loss_lm"] > 0 for e in logged)
    assert read_json(os.path.join(out, "action_decoder_config.json"))["decoder_hidden_size"] == 32


def test_full_finetuning_saves_head_apart_and_reloads_from_the_model_dir(tiny_qwen25vl, action_data, tmp_path):
    out = str(tmp_path / "full")
    config = action_cls_config(
        tiny_qwen25vl,
        action_data["output_dir"],
        out,
        finetuning_type="full",
        max_steps=4,
        save_steps=4,
        do_eval=False,
        do_predict=True,
        learning_rate=1e-4,
        plot_loss=False,
    )
    run_cli(config, str(tmp_path), "full")
    weights = load_file(os.path.join(out, "model.safetensors"))
    assert not any("action_head" in key for key in weights)  # the head lives in its own file
    assert os.path.isfile(os.path.join(out, "action_decoder.safetensors"))
    reload_out = str(tmp_path / "full_reload")
    reload = dict(
        config,
        model_name_or_path=out,
        output_dir=reload_out,
        do_train=False,
        action_decoder_path=os.path.join(out, "action_decoder.safetensors"),
    )
    proc = run_cli(reload, str(tmp_path), "full_reload")
    assert "Initialised the action head and <ACTION> embedding from" in proc.stdout + proc.stderr
    before = read_jsonl(os.path.join(out, "action_predictions.jsonl"))
    after = read_jsonl(os.path.join(reload_out, "action_predictions.jsonl"))
    assert [r["prediction"] for r in after] == [r["prediction"] for r in before]


@pytest.mark.parametrize("finetuning_type", ["lora", "full"])
def test_exact_vocab_model_trains_saves_resumes_and_predicts(
    tiny_qwen2vl_exact_vocab, action_data, tmp_path, finetuning_type
):
    r"""No spare embedding row: <ACTION> resizes the embedding. The first save used to die in peft
    (`'Qwen2VLConfig' object has no attribute 'vocab_size'`); now the run saves, resumes to the same weights, and a
    reload predicts the same classes. The adapter stays LoRA-only: the new row lives in action_decoder.safetensors."""
    out = str(tmp_path / "run")
    config = action_cls_config(
        tiny_qwen2vl_exact_vocab,
        action_data["output_dir"],
        out,
        finetuning_type=finetuning_type,
        max_steps=6,
        save_steps=3,
        logging_steps=3,
        do_eval=False,
        do_predict=True,
        plot_loss=False,
        preprocessing_num_workers=1,
        **({"learning_rate": 1e-4} if finetuning_type == "full" else {}),
    )
    proc = run_cli(config, str(tmp_path), "train")
    assert "Resized token embeddings" in proc.stdout + proc.stderr
    weights = "adapter_model.safetensors" if finetuning_type == "lora" else "model.safetensors"
    for name in (f"checkpoint-3/{weights}", "checkpoint-3/action_decoder.safetensors", weights):
        assert os.path.isfile(os.path.join(out, name)), name
    if finetuning_type == "lora":
        adapter = load_file(os.path.join(out, weights))
        assert adapter and all("lora_" in key for key in adapter), [k for k in adapter if "lora_" not in k][:3]

    resumed = str(tmp_path / "resumed")
    run_cli(
        dict(config, output_dir=resumed, do_predict=False, resume_from_checkpoint=os.path.join(out, "checkpoint-3")),
        str(tmp_path),
        "resume",
    )
    assert_same_safetensors(out, resumed, (weights, "action_decoder.safetensors"))

    reload_out = str(tmp_path / "reload")
    reload = dict(config, output_dir=reload_out, do_train=False)
    if finetuning_type == "lora":
        reload["adapter_name_or_path"] = out
    else:
        reload["model_name_or_path"] = out
    run_cli(reload, str(tmp_path), "reload")
    before = read_jsonl(os.path.join(out, "action_predictions.jsonl"))
    after = read_jsonl(os.path.join(reload_out, "action_predictions.jsonl"))
    assert len(after) == action_data["num_test"]
    assert [r["prediction"] for r in after] == [r["prediction"] for r in before]
