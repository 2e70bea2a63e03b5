"""stage: sparc_align through the stock llamafactory-cli on a tiny CLIP and synthetic colour/position videos:
held-out retrieval rises well above chance and above the untrained model; the saved model reloads; `score` and
`attention-map` work on it; bad data stops before training with file, sample index and key."""

import json
import os
import subprocess

import pytest

from .helpers import BIN, offline_env, read_json, run_cli, sparc_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    return build_tiny_dual_encoder(str(tmp_path_factory.mktemp("models") / "tiny-clip"), kind="clip")


@pytest.fixture(scope="module")
def align_data(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_alignment_dataset

    return make_alignment_dataset(str(tmp_path_factory.mktemp("align_data")), train_per_combo=3, num_test=16)


def colour_swaps(caption: str) -> list[str]:
    from llamafactory_video.testing.synthetic_videos import ALIGNMENT_COLOURS

    colours = [name for name, _ in ALIGNMENT_COLOURS]
    own = next(c for c in colours if f" {c}" in f" {caption}")
    return [caption] + [caption.replace(own, other) for other in colours if other != own]


def test_sparc_align_training_lifts_retrieval_and_reloads(tiny_clip, align_data, tmp_path):
    data_dir = align_data["output_dir"]
    before_dir = str(tmp_path / "untrained")
    run_cli(sparc_config(tiny_clip, data_dir, before_dir, do_train=False), str(tmp_path), "before")
    before = read_json(os.path.join(before_dir, "eval_results.json"))

    out = str(tmp_path / "trained")
    run_cli(sparc_config(tiny_clip, data_dir, out), str(tmp_path), "train")
    after = read_json(os.path.join(out, "eval_results.json"))
    chance = 1.0 / align_data["num_test_videos"]
    assert after["eval_num_videos"] == 16 and after["eval_num_captions"] == 32
    assert after["eval_t2v_r1"] >= 2.5 * chance, after
    assert after["eval_t2v_r1"] >= before["eval_t2v_r1"] + 0.1, (before, after)
    assert after["eval_t2v_mean_rank"] < before["eval_t2v_mean_rank"]
    assert after["eval_v2t_r5"] > before["eval_v2t_r5"]
    print(
        f"\n[sparc_align e2e] t2v R@1 untrained {before['eval_t2v_r1']} -> trained {after['eval_t2v_r1']} "
        f"(chance {chance:.4f}); v2t R@1 {before['eval_v2t_r1']} -> {after['eval_v2t_r1']}"
    )

    # logged, namespaced metrics and pictures
    logs = [json.loads(line) for line in open(os.path.join(out, "trainer_log.jsonl"), encoding="utf-8")]
    assert logs
    state = read_json(os.path.join(out, "trainer_state.json"))["log_history"]
    assert any("sparc/loss_local" in e and "sparc/loss_global" in e and "sparc/temperature" in e for e in state)
    for png in (
        "training_loss.png",
        "training_sparc_loss_global.png",
        "training_sparc_loss_local.png",
        "eval_retrieval_curve.png",
    ):
        assert os.path.isfile(os.path.join(out, png)), png
    config = read_json(os.path.join(out, "sparc_align_config.json"))
    assert config["model_type"] == "clip" and config["stage_keys"]["sparc_local_layer"] == "before_projector"
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in os.listdir(out))

    # reload in-process: the right caption beats its colour swaps on most held-out videos
    from llamafactory_video.model.dual_encoder import load_dual_encoder

    encoder = load_dual_encoder(out)
    items = align_data["test_items"]
    wins = sum(
        encoder.score(item["video"], colour_swaps(item["captions"][0]))[0][0] == item["captions"][0] for item in items
    )
    assert wins >= 0.75 * len(items), wins
    emb = encoder.encode_texts(["a red square on the left"])
    assert emb.shape[0] == 1 and abs(float(emb.norm()) - 1.0) < 1e-4

    # the CLI: `score` ranks like the reloaded model and puts the right caption first; `attention-map` draws
    item = next(
        i for i in items if encoder.score(i["video"], colour_swaps(i["captions"][0]))[0][0] == i["captions"][0]
    )
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(colour_swaps(item["captions"][0])) + "\n", encoding="utf-8")
    cli = os.path.join(BIN, "llamafactory-video")
    proc = subprocess.run(
        [cli, "score", "--model", out, "--video", item["video"], "--texts", str(texts), "--json"],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ranked[0]["caption"] == item["captions"][0] and ranked[0]["rank"] == 1
    assert ranked[0]["cosine"] >= ranked[1]["cosine"]
    png = tmp_path / "map" / "attention.png"
    proc = subprocess.run(
        [
            cli,
            "attention-map",
            "--model",
            out,
            "--video",
            item["video"],
            "--text",
            item["captions"][0],
            "--output",
            str(png),
        ],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file() and png.with_suffix(".gif").is_file()


def test_sparc_align_bad_data_fails_before_training(tiny_clip, align_data, tmp_path):
    video = os.path.join(align_data["output_dir"], "videos", "synth_align_test_0000.mp4")
    good = {"instruction": "<video>", "videos": [video], "captions": ["a red square on the right"]}
    empty = {"instruction": "<video>", "videos": [video], "captions": []}
    missing = {"instruction": "<video>", "videos": [str(tmp_path / "missing.mp4")], "captions": ["a blue circle"]}

    def run(name, rows):
        data_dir = tmp_path / name
        data_dir.mkdir()
        (data_dir / "bad.json").write_text(json.dumps(rows), encoding="utf-8")
        info = {
            "bad": {
                "file_name": "bad.json",
                "formatting": "alpaca",
                "columns": {"prompt": "instruction", "videos": "videos", "captions": "captions"},
            }
        }
        (data_dir / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
        out = str(tmp_path / f"out_{name}")
        config = sparc_config(tiny_clip, str(data_dir), out, dataset="bad", eval_dataset=None, do_eval=False)
        config.pop("eval_dataset")
        proc = run_cli(config, str(tmp_path), name, expect_ok=False)
        assert proc.returncode != 0 and not os.path.isfile(os.path.join(out, "model.safetensors"))
        return proc.stdout + proc.stderr

    # a missing video: the probe every stage runs before training names the dataset file, the sample and the file
    text = run("missing", [good, empty, missing])
    assert "dataset `bad.json` sample 2: video" in text and "missing.mp4: missing" in text
    # the stage's own check: an empty caption list, with the sample named, not action_cls's key
    text = run("empty", [good, empty])
    assert "sample 1: empty caption list in `captions`" in text
    assert "cannot train" in text and "action_invalid_samples" not in text


def test_sparc_align_xclip_trains_saves_reloads(align_data, tmp_path_factory, tmp_path):
    """A few steps on a tiny X-CLIP through `llamafactory-cli train`: pairwise global loss + local loss logged, the
    model saved and reloaded, pairwise retrieval metrics on the held-out set, `score` through the CLI."""
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    model_dir = build_tiny_dual_encoder(str(tmp_path_factory.mktemp("models") / "tiny-xclip"), kind="xclip")
    out = str(tmp_path / "xclip")
    config = sparc_config(model_dir, align_data["output_dir"], out, max_steps=4, logging_steps=2, plot_loss=False)
    run_cli(config, str(tmp_path), "xclip")
    metrics = read_json(os.path.join(out, "eval_results.json"))
    assert metrics["eval_num_videos"] == 16 and metrics["eval_num_captions"] == 32
    for key in ("t2v_r1", "t2v_r5", "t2v_r10", "v2t_r1", "t2v_median_rank", "t2v_mean_rank"):
        assert f"eval_{key}" in metrics, key
    assert 0.0 <= metrics["eval_t2v_r1"] <= 1.0 and 1 <= metrics["eval_t2v_mean_rank"] <= 16
    state = read_json(os.path.join(out, "trainer_state.json"))["log_history"]
    logged = [e for e in state if "sparc/loss_global" in e and "sparc/loss_local" in e]
    assert logged and all(e["sparc/loss_global"] > 0 and e["sparc/loss_local"] > 0 for e in logged)
    assert read_json(os.path.join(out, "sparc_align_config.json"))["model_type"] == "xclip"

    from llamafactory_video.model.dual_encoder import load_dual_encoder

    encoder = load_dual_encoder(out)
    item = align_data["test_items"][0]
    texts = colour_swaps(item["captions"][0])
    in_process = encoder.score(item["video"], texts)
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    proc = subprocess.run(
        [
            os.path.join(BIN, "llamafactory-video"),
            "score",
            "--model",
            out,
            "--video",
            item["video"],
            "--texts",
            str(path),
            "--json",
        ],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["caption"] for r in ranked] == [row[0] for row in in_process]
    assert abs(ranked[0]["cosine"] - in_process[0][1]) < 1e-4


def test_sparc_align_clip_vip_trains_saves_reloads(align_data, tmp_path_factory, tmp_path):
    """A few steps on a tiny CLIP-ViP (model_type clip_vip, registered by host/clip_vip.py) through
    `llamafactory-cli train`: global loss on its first-proxy video embedding, SPARC local loss over all M + T*P vision
    tokens with the seed's top-k keep key; saved, reloaded with load_dual_encoder, scores captions."""
    from safetensors.torch import load_file

    from llamafactory_video.testing.tiny_clip_vip import build_tiny_clip_vip

    model_dir = build_tiny_clip_vip(str(tmp_path_factory.mktemp("models") / "tiny-clip-vip"))
    out = str(tmp_path / "clip_vip")
    config = sparc_config(
        model_dir, align_data["output_dir"], out, max_steps=4, logging_steps=2, plot_loss=False, sparc_keep_patches=6
    )
    run_cli(config, str(tmp_path), "clip_vip")
    metrics = read_json(os.path.join(out, "eval_results.json"))
    assert metrics["eval_num_videos"] == 16 and 1 <= metrics["eval_t2v_mean_rank"] <= 16
    state = read_json(os.path.join(out, "trainer_state.json"))["log_history"]
    logged = [e for e in state if "sparc/loss_global" in e and "sparc/loss_local" in e]
    assert logged and all(e["sparc/loss_global"] > 0 and e["sparc/loss_local"] > 0 for e in logged)
    saved = read_json(os.path.join(out, "sparc_align_config.json"))
    assert saved["model_type"] == "clip_vip" and saved["stage_keys"]["sparc_keep_patches"] == 6
    assert read_json(os.path.join(out, "config.json"))["model_type"] == "clip_vip"
    key = "vision_model.embeddings.proxy_embedding"
    before = load_file(os.path.join(model_dir, "model.safetensors"))
    after = load_file(os.path.join(out, "model.safetensors"))
    assert not before[key].equal(after[key])  # the proxies were trained

    from llamafactory_video.model.dual_encoder import load_dual_encoder

    encoder = load_dual_encoder(out)
    assert encoder.model.hf.vision_model.embeddings.proxy_embedding.detach().equal(after[key])
    item = align_data["test_items"][0]
    texts = colour_swaps(item["captions"][0])
    ranked = encoder.score(item["video"], texts)
    assert sorted(r[0] for r in ranked) == sorted(texts) and ranked[0][1] >= ranked[-1][1]
    video = encoder.encode_video(item["video"])
    text = encoder.encode_texts([ranked[0][0]])[0]
    assert abs(float(video @ text) - ranked[0][1]) < 1e-4
    # attention-map's weights: frame patches only (proxies left out), each token's row over the kept patches
    maps = encoder.token_patch_weights(item["video"], item["captions"][0])
    assert maps["weights"].shape == (len(maps["tokens"]), 4, 4, 4)
    assert ((maps["weights"] > 0).flatten(1).sum(1) <= 6).all()
