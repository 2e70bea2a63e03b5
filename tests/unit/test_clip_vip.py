"""CLIP-ViP: proxy-guided attention against a dense reference, the converter on a tiny state dict laid out exactly
like the official ``pretrain_clipvip_base_16.pt`` (checked against a naive re-implementation run on that dict), the
auto-class registration, ``sparc_align`` on CLIP-ViP, and the seed's SPARC thresholds (2344 / 2332 / 2320 of 2356)."""

import types

import pytest
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- naive reference on the official dict


def _ln(x, sd, name, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def _lin(x, sd, name):
    y = x @ sd[f"{name}.weight"].t()
    return y + sd[f"{name}.bias"] if f"{name}.bias" in sd else y


def _layer(x, sd, prefix, heads, allowed):
    r"""One pre-LN CLIP layer, attention written head by head with an explicit ``(S, S)`` allowed-mask."""
    b, s, d = x.shape
    hd = d // heads
    h = _ln(x, sd, f"{prefix}.layer_norm1")
    q, k, v = (_lin(h, sd, f"{prefix}.self_attn.{n}_proj").view(b, s, heads, hd) for n in ("q", "k", "v"))
    out = torch.zeros_like(q)
    for head in range(heads):
        scores = q[:, :, head] @ k[:, :, head].transpose(1, 2) * hd**-0.5
        scores = scores.masked_fill(~allowed, float("-inf"))
        out[:, :, head] = scores.softmax(-1) @ v[:, :, head]
    x = x + _lin(out.reshape(b, s, d), sd, f"{prefix}.self_attn.out_proj")
    h = _lin(_ln(x, sd, f"{prefix}.layer_norm2"), sd, f"{prefix}.mlp.fc1")
    return x + _lin(h * torch.sigmoid(1.702 * h), sd, f"{prefix}.mlp.fc2")  # quick_gelu


def _allowed_by_rule(m, t, p, b):
    r"""The proxy-guided rule, one entry at a time: proxies see all; a patch sees the proxies and its own frame."""
    s = m + t * p
    allowed = torch.zeros(s, s, dtype=torch.bool)
    for i in range(s):
        for j in range(s):
            allowed[i, j] = i < m or j < m or (i - m) // p == (j - m) // p
    return allowed[None].expand(b, s, s)


def naive_video(sd, pixels, heads):
    r"""The official CLIP-ViP vision forward on the official key names: ``(last_hidden_state, video_embedding)``."""
    v = "clipmodel.vision_model"
    b, t, c, hh, ww = pixels.shape
    weight = sd[f"{v}.embeddings.patch_embedding.weight"]
    patch = weight.shape[-1]
    x = F.conv2d(pixels.reshape(b * t, c, hh, ww), weight, stride=patch).flatten(2).transpose(1, 2)
    p, d = x.shape[1], x.shape[2]
    x = x.reshape(b, t, p, d)
    temporal = sd[f"{v}.embeddings.temporal_embedding"]  # (1, T0, D)
    if temporal.shape[1] != t:
        temporal = F.interpolate(temporal.transpose(1, 2), size=t, mode="linear").transpose(1, 2)
    pos = sd[f"{v}.embeddings.position_embedding.weight"]
    x = x + temporal[:, :, None] + pos[1:][None, None]
    cls = (sd[f"{v}.embeddings.class_embedding"] + pos[0])[None, None].expand(b, 1, d)
    added = (sd[f"{v}.embeddings.added_cls"] + pos[0])[None].expand(b, -1, d)
    m = 1 + added.shape[1]
    x = _ln(torch.cat([cls, added, x.reshape(b, t * p, d)], dim=1), sd, f"{v}.pre_layrnorm")
    allowed = _allowed_by_rule(m, t, p, b)
    i = 0
    while f"{v}.encoder.layers.{i}.layer_norm1.weight" in sd:
        x = _layer(x, sd, f"{v}.encoder.layers.{i}", heads, allowed)
        i += 1
    pooled = _ln(x[:, 0], sd, f"{v}.post_layernorm")
    return x, pooled @ sd["clipmodel.visual_projection.weight"].t()


def naive_text(sd, input_ids, attention_mask, heads, eos_id):
    t = "clipmodel.text_model"
    b, n = input_ids.shape
    x = sd[f"{t}.embeddings.token_embedding.weight"][input_ids] + sd[f"{t}.embeddings.position_embedding.weight"][:n]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None] & attention_mask.bool()[:, None, :]
    i = 0
    while f"{t}.encoder.layers.{i}.layer_norm1.weight" in sd:
        x = _layer(x, sd, f"{t}.encoder.layers.{i}", heads, allowed)
        i += 1
    x = _ln(x, sd, f"{t}.final_layer_norm")
    # the official code pools at argmax(input_ids) (CLIP's end-of-text has the largest id); the tiny tokenizer's
    # end-of-text is id 1, so pool at its first position, which is the same token for the real CLIP vocabulary
    eos = (input_ids == eos_id).int().argmax(-1)
    return x[torch.arange(b), eos] @ sd["clipmodel.text_projection.weight"].t()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from llamafactory_video.cli import main
    from llamafactory_video.testing.tiny_clip_vip import official_clip_vip_state_dict
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    root = tmp_path_factory.mktemp("clip_vip")
    clip_dir = build_tiny_dual_encoder(  # the "CLIP it was initialised from": tokenizer, processor, head counts
        str(root / "clip"),
        kind="clip",
        hidden_size=64,
        intermediate_size=128,
        text_hidden_size=32,
        text_intermediate_size=64,
        num_heads=4,
        text_num_heads=2,
    )
    state = official_clip_vip_state_dict(seed=3)
    checkpoint = root / "pretrain_clipvip_base_16.pt"
    torch.save(state, checkpoint)
    out = str(root / "converted")
    assert main(["convert-clip-vip", "--checkpoint", str(checkpoint), "--output", out, "--clip-dir", clip_dir]) == 0
    return {"state": state, "out": out, "clip": clip_dir, "root": root}


# ----------------------------------------------------------------------------- tests


def test_block_wise_attention_equals_dense_masked_attention():
    from llamafactory_video.model.clip_vip import proxy_guided_attention, proxy_guided_mask

    m, t, p = 3, 4, 5
    torch.testing.assert_close(proxy_guided_mask(m, t, p), _allowed_by_rule(m, t, p, 1)[0])
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, m + t * p, 8, generator=g, dtype=torch.float64) for _ in range(3))
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=proxy_guided_mask(m, t, p))
    torch.testing.assert_close(proxy_guided_attention(q, k, v, m, t), dense)
    # a frame's patches do not see other frames: changing frame 2 leaves frames 0, 1, 3 unchanged
    k2, v2 = k.clone(), v.clone()
    frame2 = slice(m + 2 * p, m + 3 * p)
    k2[:, :, frame2] += 1.0
    v2[:, :, frame2] += 1.0
    moved = proxy_guided_attention(q, k2, v2, m, t) - proxy_guided_attention(q, k, v, m, t)
    assert moved[:, :, m : m + 2 * p].abs().max() == 0 and moved[:, :, m + 3 * p :].abs().max() == 0
    assert moved[:, :, :m].abs().max() > 0 and moved[:, :, frame2].abs().max() > 0


@pytest.mark.parametrize("frames", [4, 3])  # the trained temporal_size, and 3 (temporal embedding interpolated)
def test_converted_model_equals_a_naive_forward_of_the_official_dict(converted, frames):
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from llamafactory_video.model.clip_vip import ClipVipModel

    config = AutoConfig.from_pretrained(converted["out"])
    assert config.model_type == "clip_vip" and config.num_proxy_tokens == 4
    assert config.vision_config.num_attention_heads == 4 and config.text_config.num_attention_heads == 2
    model = AutoModel.from_pretrained(converted["out"]).eval()
    assert isinstance(model, ClipVipModel)
    state = converted["state"]
    pixels = torch.randn(2, frames, 3, 32, 32, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        hidden = model.get_video_patch_features(pixels)
        video = model.get_video_features(pixels)
        ref_hidden, ref_video = naive_video(state, pixels, heads=4)
    assert hidden.shape == (2, 4 + frames * 16, 64)
    torch.testing.assert_close(hidden, ref_hidden, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(video, ref_video, atol=2e-5, rtol=1e-4)
    assert float(model.logit_scale.detach()) == pytest.approx(float(state["clipmodel.logit_scale"]))

    tokenizer = AutoProcessor.from_pretrained(converted["out"]).tokenizer
    enc = tokenizer(["a red square on the left", "a blue circle"], padding=True, return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(enc["input_ids"], enc["attention_mask"])
    ref_text = naive_text(state, enc["input_ids"], enc["attention_mask"], heads=2, eos_id=tokenizer.eos_token_id)
    torch.testing.assert_close(text, ref_text, atol=2e-5, rtol=1e-4)


def test_converter_accepts_the_wrapped_layouts_and_refuses_others(converted, tmp_path, capsys):
    from llamafactory_video.cli import main
    from llamafactory_video.tools.convert_clip_vip import load_official_state_dict

    state = converted["state"]
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    loaded = load_official_state_dict(str(wrapped))
    assert "vision_model.embeddings.added_cls" in loaded and not any(k.startswith("clipmodel.") for k in loaded)

    def convert(name, payload):
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        args = ["convert-clip-vip", "--checkpoint", str(path), "--output", str(tmp_path / name)]
        code = main(args + ["--clip-dir", converted["clip"]])
        return code, capsys.readouterr().out

    plain = {k: v for k, v in state.items() if "added_cls" not in k}  # a plain CLIP: no proxies
    code, text = convert("plain", plain)
    assert code == 2 and "vision_model.embeddings.added_cls" in text and "not a CLIP-ViP" in text
    code, text = convert("pickled", {"model": types.SimpleNamespace(a=1)})  # arbitrary objects are never unpickled
    assert code == 2 and "weights_only=True" in text
    truncated = {k: v for k, v in state.items() if "visual_projection" not in k}
    code, text = convert("truncated", truncated)
    assert code == 2 and "'visual_projection.weight'" in text


def test_vip_b16_token_layout_and_the_seed_thresholds():
    r"""ViP-B/16's token layout (4 proxies + 12 frames x 196 patches = 2356, narrow tower) and the seed's SPARC
    splits 2344 / 2332 / 2320 of 2356 = ``sparc_keep_patches`` 12 / 24 / 36 (the seed: "2332/2356 (keep 24
    patches)"), parsed by the real argument parser and keeping exactly that many of the 2356 local features."""
    import yaml
    from llamafactory.hparams import get_train_args

    from llamafactory_video.losses.sparc import sparc_alignment_weights
    from llamafactory_video.model.clip_vip import ClipVipConfig, ClipVipModel

    assert ClipVipConfig().num_video_tokens() == 2356  # the defaults are ViP-B/16
    config = ClipVipConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
        projection_dim=16,
    )
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (224, 16)
    model = ClipVipModel(config).eval()
    with torch.no_grad():
        features = model.get_video_patch_features(torch.randn(1, 12, 3, 224, 224))
    assert features.shape == (1, 2356, 16)
    tokens = torch.randn(1, 5, 16)
    similarity = torch.einsum("bld,bpd->blp", tokens, features)
    for split, keep in ((2344, 12), (2332, 24), (2320, 36)):
        args = yaml.safe_load(f"stage: sparc_align\nsparc_keep_patches: {2356 - split}\n")
        assert args["sparc_keep_patches"] == keep
        parsed = get_train_args(
            dict(args, model_name_or_path="x", do_train=False, output_dir="/tmp/none", template="qwen2_vl")
        )[3]
        assert parsed.sparc_keep_patches == keep
        weights = sparc_alignment_weights(similarity, torch.ones(1, 2356, dtype=torch.bool), None, keep)
        assert ((weights > 0).sum(-1) == keep).all()
        top = similarity.topk(keep, dim=-1).indices.sort(-1).values
        assert torch.equal((weights[0] > 0).nonzero()[:, 1].view(5, keep), top[0])


@pytest.mark.parametrize("layer", ["before_projector", "all_layers"])
def test_sparc_forward_on_clip_vip_uses_every_video_token(tmp_path_factory, layer):
    from llamafactory_video.hparams import SparcAlignArguments
    from llamafactory_video.model.dual_encoder import SparcModelConfig, VideoTextModel, load_backbone
    from llamafactory_video.testing.tiny_clip_vip import build_tiny_clip_vip

    model_dir = build_tiny_clip_vip(str(tmp_path_factory.mktemp("tiny") / "clip-vip"))
    args = types.SimpleNamespace(**{**SparcAlignArguments().__dict__, "sparc_keep_patches": 6})
    model = VideoTextModel(load_backbone(model_dir), SparcModelConfig(model_type="clip_vip", local_layer=layer), args)
    ids = torch.tensor([[0, 5, 6, 7, 1], [0, 8, 9, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    pixels = torch.randn(2, 3, 3, 32, 32)
    frame_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)  # resampled to temporal_size (4) frames
    video, patches = model.encode_frames(pixels, frame_mask, with_patches=True)
    assert patches[-1].shape == (2, 4 + 4 * 16, 64) and video.shape == (2, 64)
    torch.testing.assert_close(
        model.patch_mask(torch.ones(2, 4, dtype=torch.bool), patches[-1].size(1)), torch.ones(2, 68).bool()
    )
    out = model(ids, mask, mask.bool(), pixels, frame_mask, torch.tensor([0, 1]))
    assert torch.isfinite(out["loss"]) and out["loss_local"] > 0
    out["loss"].backward()
    emb = model.hf.vision_model.embeddings
    assert emb.proxy_embedding.grad.abs().sum() > 0 and emb.temporal_embedding.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="first proxy"):
        VideoTextModel(load_backbone(model_dir), SparcModelConfig(model_type="clip_vip", aggregation="transformer"))


def test_config_round_trip_keeps_the_proxy_settings(tmp_path):
    from transformers import AutoConfig

    from llamafactory_video.host.clip_vip import register_clip_vip
    from llamafactory_video.model.clip_vip import ClipVipConfig

    register_clip_vip()
    vision = dict(num_proxy_tokens=2, temporal_size=5, use_temporal_embedding=False, image_size=64, patch_size=8)
    ClipVipConfig(vision_config=vision, projection_dim=32).save_pretrained(str(tmp_path))
    config = AutoConfig.from_pretrained(str(tmp_path))
    assert type(config) is ClipVipConfig and config.projection_dim == 32
    assert {k: getattr(config.vision_config, k) for k in vision} == vision
    assert config.num_video_tokens(3) == 2 + 3 * 64
    from huggingface_hub.errors import StrictDataclassClassValidationError

    with pytest.raises(StrictDataclassClassValidationError, match="num_proxy_tokens must be >= 1"):
        ClipVipConfig(vision_config=dict(num_proxy_tokens=0))
