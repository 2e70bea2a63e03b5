"""sparc_align on a tiny offline X-CLIP: the model's own pairwise logits, global + local losses for every local
layer (finite, differentiable through both towers, mit and prompt generator), frame resampling, save / reload,
pairwise `score`, and the errors for what X-CLIP cannot do."""

import os
import types

import pytest
import torch


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from llamafactory_video.testing.synthetic_videos import make_alignment_dataset
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    root = tmp_path_factory.mktemp("xclip")
    return {
        "xclip": build_tiny_dual_encoder(str(root / "xclip"), kind="xclip", num_frames=4),
        "data": make_alignment_dataset(str(root / "data"), train_per_combo=1, num_test=4),
    }


def loss_args(**overrides):
    from llamafactory_video.hparams import SparcAlignArguments

    return types.SimpleNamespace(**{**SparcAlignArguments().__dict__, **overrides})


def make_model(model_dir, **config):
    from transformers import AutoModel

    from llamafactory_video.model.dual_encoder import SparcModelConfig, VideoTextModel

    backbone = AutoModel.from_pretrained(model_dir)
    return VideoTextModel(backbone, SparcModelConfig(model_type="xclip", **config), loss_args=loss_args())


def batch(model_dir, items):
    from transformers import AutoProcessor

    from llamafactory_video.data.collator import SparcAlignDataCollator
    from llamafactory_video.data.processor.sparc_align import caption_features
    from llamafactory_video.data.sparc import DEFAULT_STOP_WORDS

    processor = AutoProcessor.from_pretrained(model_dir)
    collator = SparcAlignDataCollator(processor.tokenizer, processor.image_processor, video_fps=2.0, video_maxlen=4)
    features = []
    for item in items:
        for caption in item["captions"]:
            f = caption_features(processor.tokenizer, caption, 32, DEFAULT_STOP_WORDS)
            features.append({**f, "videos": [item["video"]], "video_key": item["video"]})
    return collator(features)


def test_similarity_is_xclip_own_logits(assets):
    model = make_model(assets["xclip"]).eval()
    b = batch(assets["xclip"], assets["data"]["test_items"][:3])
    with torch.no_grad():
        out = model.hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"])
        text, _ = model.encode_text(b["input_ids"], b["attention_mask"])
        video, _, visual = model.encode_video_features(b["pixel_values"], b["frame_mask"])
        sim = model.similarity(text, video, visual)
    assert sim.shape == (6, 3)
    torch.testing.assert_close(sim * model.logit_scale.exp(), out.logits_per_text, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="prompt features"):
        model.similarity(text, video)


@pytest.mark.parametrize("layer", ["before_projector", "after_embedding", "all_layers"])
@pytest.mark.parametrize("global_loss", ["multi_positive", "infonce"])
def test_forward_losses_finite_and_differentiable(assets, layer, global_loss):
    model = make_model(assets["xclip"], local_layer=layer)
    model.loss_args = loss_args(
        sparc_local_layer=layer, sparc_global_loss=global_loss, sparc_patch_collapse_weight=0.1
    )
    b = batch(assets["xclip"], assets["data"]["test_items"][:3])
    out = model(**b)
    for key in ("loss", "loss_global", "loss_local", "patch_similarity"):
        assert torch.isfinite(out[key]), key
    assert out["loss_local"] > 0 and out["loss_global"] > 0
    out["loss"].backward()
    hf = model.hf
    for name, module in [
        ("text", hf.text_model),
        ("vision", hf.vision_model),
        ("mit", hf.mit),
        ("prompts", hf.prompts_generator),
        ("local_text", model.local_text),
        ("local_vision", model.local_vision),
    ]:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    assert hf.logit_scale.grad is not None


def test_frames_are_resampled_to_num_frames(assets):
    model = make_model(assets["xclip"]).eval()
    pixels = torch.randn(2, 6, 3, 32, 32)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    fitted, fitted_mask = model.fit_frames(pixels, mask)
    assert fitted.shape == (2, 4, 3, 32, 32) and fitted_mask.all()
    torch.testing.assert_close(fitted[0], pixels[0, [0, 1, 3, 4]])
    torch.testing.assert_close(fitted[1], pixels[1, [0, 0, 1, 1]])  # padding frames are never used
    with torch.no_grad():
        video, patches = model.encode_frames(pixels, mask, with_patches=True)
    assert video.shape == (2, 64) and patches[0].shape == (2, 4 * 16, 64)


def test_transformer_aggregation_is_refused(assets):
    with pytest.raises(ValueError, match="mit"):
        make_model(assets["xclip"], aggregation="transformer")


def test_save_reload_and_pairwise_score(assets, tmp_path):
    from transformers import AutoProcessor

    from llamafactory_video.model.dual_encoder import DualEncoder, load_dual_encoder

    model = make_model(assets["xclip"])
    with torch.no_grad():  # move away from the initialisation so a reload that dropped weights would show
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    processor = AutoProcessor.from_pretrained(assets["xclip"])
    out = str(tmp_path / "saved")
    model.save(out, processor)
    assert os.path.isfile(os.path.join(out, "sparc_align_heads.safetensors"))
    live = DualEncoder(model, processor)
    loaded = load_dual_encoder(out)
    assert type(loaded.model.hf).__name__ == "XCLIPModel"

    item = assets["data"]["test_items"][0]
    texts = ["a red square on the left", "a blue circle at the top", item["captions"][0], "the circle is green"]
    want, got = live.score(item["video"], texts), loaded.score(item["video"], texts)
    assert [row[0] for row in got] == [row[0] for row in want] and sorted(texts) == sorted(r[0] for r in got)
    torch.testing.assert_close(torch.tensor([r[1] for r in got]), torch.tensor([r[1] for r in want]))
    cosines = [r[1] for r in got]
    assert cosines == sorted(cosines, reverse=True)
    scale = float(loaded.model.logit_scale.exp())
    assert all(abs(logit - cosine * scale) < 1e-4 for _, cosine, logit in got)

    # the ranking is the model's: each cosine equals XCLIPModel's own logit over exp(logit_scale)
    frames = loaded.frames(item["video"])
    assert len(frames) == 4
    pixels = loaded.pixel_values(frames)[None]
    enc = loaded.tokenize(texts)
    with torch.no_grad():
        logits = loaded.model.hf(pixel_values=pixels, **enc).logits_per_video[0] / scale
    by_text = dict((t, c) for t, c, _ in got)
    torch.testing.assert_close(torch.tensor([by_text[t] for t in texts]), logits, atol=1e-5, rtol=1e-4)

    with pytest.raises(ValueError, match="no video-independent caption embedding"):
        loaded.encode_texts(texts)
    weights = loaded.token_patch_weights(item["video"], texts[0])
    assert weights["weights"].shape[1] == 4 and len(weights["frames"]) == 4
