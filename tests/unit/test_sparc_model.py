"""sparc_align dual encoder on tiny offline CLIP / SigLIP: forward for every local layer, LoRA and full save/reload,
the collator on real videos, argument validation."""

import types

import pytest
import torch


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from llamafactory_video.testing.synthetic_videos import make_alignment_dataset
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    root = tmp_path_factory.mktemp("sparc")
    return {
        "clip": build_tiny_dual_encoder(str(root / "clip"), kind="clip"),
        "siglip": build_tiny_dual_encoder(str(root / "siglip"), kind="siglip"),
        "data": make_alignment_dataset(str(root / "data"), train_per_combo=1, num_test=4),
    }


def loss_args(**overrides):
    from llamafactory_video.hparams import SparcAlignArguments

    return types.SimpleNamespace(**{**SparcAlignArguments().__dict__, **overrides})


def batch_for(model_dir, items, pad_to=0):
    from transformers import AutoProcessor

    from llamafactory_video.data.collator import SparcAlignDataCollator
    from llamafactory_video.data.processor.sparc_align import caption_features
    from llamafactory_video.data.sparc import DEFAULT_STOP_WORDS

    processor = AutoProcessor.from_pretrained(model_dir)
    collator = SparcAlignDataCollator(
        processor.tokenizer, processor.image_processor, video_fps=2.0, video_maxlen=4, pad_to_length=pad_to
    )
    features = []
    for item in items:
        for caption in item["captions"]:
            f = caption_features(processor.tokenizer, caption, 32, DEFAULT_STOP_WORDS)
            features.append({**f, "videos": [item["video"]], "video_key": item["video"]})
    return collator(features)


def test_collator_decodes_each_video_once_with_host_sampling(assets):
    items = assets["data"]["test_items"][:3]
    batch = batch_for(assets["clip"], items)
    assert batch["pixel_values"].shape == (3, 4, 3, 32, 32)  # 8 frames at 4 fps = 2 s -> video_fps 2 -> 4 frames
    assert batch["video_index"].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch["frame_mask"].all()
    # "a red square on the left": start/end tokens, "a", "on", "the" are masked
    assert batch["token_mask"][0].sum() == 3 and batch["input_ids"].shape[0] == 6


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("layer", ["before_projector", "after_embedding", "all_layers"])
def test_forward_every_local_layer_backpropagates(assets, kind, layer):
    from llamafactory_video.model.dual_encoder import SparcModelConfig, VideoTextModel, load_backbone

    backbone = load_backbone(assets[kind])
    config = SparcModelConfig(model_type=kind, local_layer=layer, aggregation="transformer", max_frames=8)
    model = VideoTextModel(
        backbone, config, loss_args(sparc_token_collapse_weight=0.1, sparc_patch_collapse_weight=0.1)
    )
    batch = batch_for(assets[kind], assets["data"]["test_items"][:2], pad_to=32 if kind == "siglip" else 0)
    out = model(**batch)
    assert set(out) >= {"loss", "loss_global", "loss_local", "temperature", "token_similarity", "patch_similarity"}
    assert torch.isfinite(out["loss"]) and out["loss_local"] > 0
    out["loss"].backward()
    assert model.local_text.weight.grad.abs().sum() > 0
    vision = model.hf.vision_model.embeddings.patch_embedding.weight.grad
    assert vision is not None and vision.abs().sum() > 0


def test_transformer_aggregation_starts_as_the_mean():
    from llamafactory_video.model.dual_encoder import TemporalTransformer, masked_mean

    agg = TemporalTransformer(16, max_frames=4)
    x = torch.randn(2, 4, 16)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(agg(x, mask), masked_mean(x, mask))
    torch.testing.assert_close(masked_mean(x, mask)[0], x[0, :3].mean(0))


@pytest.mark.parametrize("finetuning_type", ["full", "lora"])
def test_save_and_reload_give_the_same_embeddings(assets, tmp_path, finetuning_type):
    from transformers import AutoProcessor

    from llamafactory_video.model.dual_encoder import SparcModelConfig, VideoTextModel, load_dual_encoder
    from llamafactory_video.train.sparc_align.workflow import build_backbone

    model_args = types.SimpleNamespace(model_name_or_path=assets["clip"], cache_dir=None, trust_remote_code=False)
    ft_args = loss_args(
        finetuning_type=finetuning_type,
        lora_target=["all"],
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.0,
        sparc_freeze_text_tower=False,
        sparc_freeze_vision_tower=True,
    )
    backbone = build_backbone(model_args, ft_args, is_trainable=True)
    config = SparcModelConfig(
        model_type="clip",
        base_model=assets["clip"],
        finetuning_type=finetuning_type,
        aggregation="transformer",
        max_frames=4,
        video_maxlen=4,
    )
    model = VideoTextModel(backbone, config, ft_args)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("logit_scale" in n for n in names) and any(n.startswith("temporal.") for n in names)
    assert not any("vision_model" in n for n in names)  # the frozen tower, under LoRA too
    if finetuning_type == "lora":
        assert any("lora_A" in n for n in names) and not any(("text_model" in n and "lora" not in n) for n in names)
    with torch.no_grad():  # move away from the initial weights, so reloading the base alone would differ
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    out = tmp_path / finetuning_type
    model.save(str(out), AutoProcessor.from_pretrained(assets["clip"]))
    if finetuning_type == "lora":
        assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    encoder = load_dual_encoder(str(out))
    model.eval()
    ids = encoder.tokenize(["a red square on the left", "a blue circle"])
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(**ids)[0], dim=-1)
    torch.testing.assert_close(
        encoder.encode_texts(["a red square on the left", "a blue circle"]), want, atol=1e-5, rtol=1e-4
    )
    video = assets["data"]["test_items"][0]["video"]
    pixels = encoder.pixel_values(encoder.frames(video))[None]
    with torch.no_grad():
        want_v = torch.nn.functional.normalize(
            model.encode_frames(pixels, torch.ones(1, pixels.size(1), dtype=torch.bool))[0], dim=-1
        )[0]
    torch.testing.assert_close(encoder.encode_video(video), want_v, atol=1e-5, rtol=1e-4)
    weights = encoder.token_patch_weights(video, "a red square on the left")
    assert weights["weights"].shape[1:] == (4, 4, 4)
    torch.testing.assert_close(weights["weights"].sum((1, 2, 3)), torch.ones(len(weights["tokens"])))

    # the saved model is the embedding retriever of `llamafactory-video long-qa --embedder-kind sparc_align`
    from llamafactory_video.tools.long_qa.retrieval import EmbeddingRetriever

    retriever = EmbeddingRetriever.from_path(str(out), kind="sparc_align")
    docs = ["a red square on the left", "a blue circle"]
    ranked = retriever.rank("a blue circle", docs)
    sims = (encoder.encode_texts(docs) @ encoder.encode_texts(["a blue circle"]).T).squeeze(-1)
    assert [i for i, _ in ranked] == sims.argsort(descending=True).tolist()
    assert ranked[0][0] == 1  # identical text ranks first


def test_validation_messages_say_what_to_do():
    from llamafactory_video.hparams import SparcAlignArguments

    def check(**kw):
        args = SparcAlignArguments(**{k: v for k, v in kw.items() if k != "finetuning_type"})
        if "finetuning_type" in kw:
            args.finetuning_type = kw["finetuning_type"]
        args.validate()

    check()
    with pytest.raises(ValueError, match="not both"):
        check(sparc_sparsity_threshold=0.1, sparc_keep_patches=3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check(sparc_sparsity_threshold=2.0)
    with pytest.raises(ValueError, match="at least one"):
        check(sparc_global_weight=0.0, sparc_local_weight=0.0)
    with pytest.raises(ValueError, match="sparc_freeze_text_tower"):
        check(finetuning_type="freeze")
    with pytest.raises(ValueError, match="does not exist"):
        check(sparc_stop_words="/nonexistent/stop.txt")
    with pytest.raises(ValueError, match=">= 1"):
        check(sparc_keep_patches=0)
