"""HiLight pure pieces: TokenMining variants against a naive reference, placeholder merging, frame resampling,
the model's shapes on tiny towers, the ``hilight`` mm_plugin, and hilight-build's refusals."""

import math

import pytest
import torch

from llamafactory_video.model.hilight import (
    HiLightConfig,
    HiLightForConditionalGeneration,
    TokenMining,
    merge_video_tokens,
    multi_head_cross_attention,
    resample_frame_indices,
)

VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16)


def naive_attention(q, k, v, heads):
    b, t, d = q.shape
    hd = d // heads
    out = torch.zeros_like(q)
    for i in range(b):
        for h in range(heads):
            s = slice(h * hd, (h + 1) * hd)
            for j in range(t):
                scores = torch.stack([q[i, j, s] @ k[i, n, s] / math.sqrt(hd) for n in range(k.shape[1])])
                w = torch.softmax(scores, dim=0)
                out[i, j, s] = sum(w[n] * v[i, n, s] for n in range(k.shape[1]))
    return out


def test_cross_attention_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 8, generator=g, dtype=torch.float64) for n in (3, 7, 7))
    torch.testing.assert_close(multi_head_cross_attention(q, k, v, 2), naive_attention(q, k, v, 2))
    with pytest.raises(ValueError, match="divisible"):
        multi_head_cross_attention(q, k, v, 3)


@pytest.mark.parametrize("variant", ["a", "b", "c"])
def test_token_mining_variants_match_their_definition(variant):
    torch.manual_seed(0)
    tm = TokenMining(video_dim=12, frame_dim=8, text_dim=10, variant=variant, num_heads=2).double()
    video = torch.randn(2, 9, 12, dtype=torch.float64)  # (B, N, D_v)
    frames = torch.randn(2, 3, 8, dtype=torch.float64)  # (B, T, D_f)
    out = tm(video, frames)
    assert out.shape == (2, 3, 10)

    relu = torch.relu
    if variant == "c":
        v = relu(video @ tm.video_proj[0].weight.T + tm.video_proj[0].bias)
        f = relu(frames @ tm.frame_proj[0].weight.T + tm.frame_proj[0].bias)
    else:
        v, f = video @ tm.video_proj.weight.T + tm.video_proj.bias, frames
    a = tm.attention

    def lin(x, m):
        return x @ m.weight.T + m.bias

    fused = f + lin(naive_attention(lin(f, a.query), lin(v, a.key), lin(v, a.value), 2), a.output)
    linears = [m for m in tm.projector if isinstance(m, torch.nn.Linear)]
    assert len(linears) == (1 if variant == "a" else 2)
    expected = lin(fused, linears[0])
    if variant != "a":
        expected = lin(relu(expected), linears[1])
    torch.testing.assert_close(out, expected)


def test_token_mining_rejects_bad_inputs():
    with pytest.raises(ValueError, match="token_mining must be one of"):
        TokenMining(4, 4, 4, variant="d")
    tm = TokenMining(4, 4, 4, variant="a", num_heads=2)
    with pytest.raises(ValueError, match=r"\(B, N, D_v\)"):
        tm(torch.randn(2, 5, 4), torch.randn(3, 2, 4))


def test_merge_video_tokens_fills_placeholders_in_order():
    ids = torch.tensor([[1, 9, 9, 2, 0], [9, 9, 3, 4, 5]])
    embeds = torch.zeros(2, 5, 3)
    feats = torch.arange(12, dtype=torch.float32).view(2, 2, 3)  # (V, T, H)
    out = merge_video_tokens(ids, embeds, feats, 9)
    torch.testing.assert_close(out[0, 1:3], feats[0])
    torch.testing.assert_close(out[1, 0:2], feats[1])
    assert out[ids != 9].abs().sum() == 0
    with pytest.raises(ValueError, match="4 video placeholder tokens .* 3 video"):
        merge_video_tokens(ids, embeds, torch.zeros(3, 2, 3), 9)


def test_resample_frame_indices():
    assert resample_frame_indices(8, 4) == [0, 2, 5, 7]
    assert resample_frame_indices(2, 4) == [0, 0, 1, 1]
    assert resample_frame_indices(5, 1) == [0]
    with pytest.raises(ValueError):
        resample_frame_indices(0, 3)


def tiny_config(token_mining="b", frames=3, llm="qwen2", frame_tower="clip"):
    text = dict(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    if llm == "gemma":
        text.update(head_dim=8)
    if frame_tower == "clip":
        frame = dict(model_type="clip_vision_model", patch_size=16, projection_dim=8, **VISION)
    else:  # SigLIP: the pooled output (attention-pooling head) is the frame embedding, hidden_size wide
        frame = dict(model_type="siglip_vision_model", patch_size=16, **{**VISION, "hidden_size": 8})
    return HiLightConfig(
        video_config=dict(model_type="clip_vision_model", patch_size=8, **VISION),
        frame_config=frame,
        text_config=dict(model_type=llm, **text),
        token_mining=token_mining,
        token_mining_heads=2,
        num_frames=frames,
        video_token_id=39,
    )


@pytest.mark.parametrize(
    "variant, llm, frame_tower", [("a", "qwen2", "clip"), ("c", "qwen2", "siglip"), ("b", "gemma", "clip")]
)
def test_model_shapes_and_loss(variant, llm, frame_tower):
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config(variant, llm=llm, frame_tower=frame_tower)).eval()
    videos = torch.randn(2, 3, 3, 16, 16)  # (V, T, C, H, W)
    assert model.get_video_tokens(videos).shape == (2, 3 * 4, 16)  # CLS dropped: 4 patches a frame
    assert model.get_frame_embeddings(videos).shape == (2, 3, 8)
    assert model.get_video_features(videos, videos).shape == (2, 3, 16)
    ids = torch.tensor([[1, 39, 39, 39, 5, 6], [39, 39, 39, 7, 8, 9]])
    out = model(input_ids=ids, pixel_values_videos=videos, frame_pixel_values=videos, labels=ids)
    assert out.logits.shape == (2, 6, 40) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.token_mining.attention.query.weight.grad is not None


def test_model_calls_a_video_tower_with_get_video_patch_features():
    model = HiLightForConditionalGeneration(tiny_config()).eval()

    class ProxyTower(torch.nn.Module):  # CLIP-ViP-like: M=2 proxy tokens + T * P patch tokens
        dtype = torch.float32

        def get_video_patch_features(self, pixel_values):
            v, t = pixel_values.shape[:2]
            return torch.ones(v, 2 + t * 4, 16)

    model.video_tower = ProxyTower()
    assert model.get_video_tokens(torch.zeros(1, 3, 3, 16, 16)).shape == (1, 14, 16)


def test_config_round_trip(tmp_path):
    tiny_config("c", frames=5).save_pretrained(tmp_path)
    loaded = HiLightConfig.from_pretrained(tmp_path)
    assert (loaded.token_mining, loaded.num_frames, loaded.video_token_id) == ("c", 5, 39)
    assert loaded.frame_config.projection_dim == 8 and loaded.text_config.model_type == "qwen2"
    with pytest.raises(ValueError, match="token_mining"):
        HiLightConfig(token_mining="x")


@pytest.fixture(scope="module")
def tiny_processor():
    from transformers import CLIPImageProcessor

    from llamafactory_video.model.hilight import HILIGHT_VIDEO_TOKEN, HiLightProcessor
    from llamafactory_video.testing.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [HILIGHT_VIDEO_TOKEN]})
    size = dict(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    frame_size = dict(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})
    return HiLightProcessor(CLIPImageProcessor(**size), CLIPImageProcessor(**frame_size), tokenizer, num_frames=3)


def test_hilight_plugin_expands_videos_and_builds_pixel_inputs(tiny_processor):
    from llamafactory.data.mm_plugin import VIDEO_PLACEHOLDER
    from llamafactory.data.template import TEMPLATES
    from PIL import Image

    plugin = TEMPLATES["hilight_qwen"].mm_plugin
    video = [Image.new("RGB", (40, 30), (10 * i, 0, 0)) for i in range(5)]
    messages = [
        {"role": "user", "content": f"{VIDEO_PLACEHOLDER}What happens?"},
        {"role": "assistant", "content": "x"},
    ]
    out = plugin.process_messages(messages, [], [video], [], tiny_processor)
    assert out[0]["content"] == plugin.video_token * 3 + "What happens?"
    assert messages[0]["content"].startswith(VIDEO_PLACEHOLDER)  # the input is not modified
    inputs = plugin.get_mm_inputs([], [video, video], [], [0], [2], [0], [[1]], tiny_processor)
    assert tuple(inputs["pixel_values_videos"].shape) == (2, 3, 3, 16, 16)
    assert tuple(inputs["frame_pixel_values"].shape) == (2, 3, 3, 24, 24)
    with pytest.raises(ValueError, match="number of videos"):
        plugin.process_messages(messages, [], [video, video], [], tiny_processor)


def test_processor_expands_text(tiny_processor):
    from PIL import Image

    batch = tiny_processor(text=["a <|hilight_video|> b"], videos=[[Image.new("RGB", (20, 20))] * 2])
    token = tiny_processor.tokenizer.convert_tokens_to_ids("<|hilight_video|>")
    assert int((batch["input_ids"] == token).sum()) == 3
    assert tuple(batch["pixel_values_videos"].shape) == (1, 3, 3, 16, 16)


@pytest.fixture(scope="module")
def tiny_towers(tmp_path_factory):
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    root = tmp_path_factory.mktemp("hilight_towers")
    common = dict(kind="clip", image_size=16, patch_size=8, hidden_size=16, num_layers=1, num_heads=2)
    return {
        "video": build_tiny_dual_encoder(root / "video", projection_dim=8, **common),
        "frame": build_tiny_dual_encoder(root / "frame", projection_dim=12, **common),
    }


def test_build_refuses_a_bad_tower_dir_naming_it(tmp_path, tiny_towers):
    from llamafactory_video.tools.hilight_build import TowerError, build_hilight

    bad = tmp_path / "not_a_model"
    bad.mkdir()
    with pytest.raises(TowerError, match=f"--video-tower: cannot load a model from {bad}"):
        build_hilight(str(bad), tiny_towers["frame"], str(tmp_path / "llm"), str(tmp_path / "out"))
    with pytest.raises(TowerError, match=f"--frame-tower: {tmp_path / 'missing'} is not a directory"):
        build_hilight(tiny_towers["video"], str(tmp_path / "missing"), str(tmp_path / "llm"), str(tmp_path / "out"))


def test_build_refuses_a_width_mismatch_naming_dir_and_shapes(tmp_path, tiny_towers, capsys):
    from llamafactory_video.cli import main

    rc = main(
        [
            "hilight-build",
            "--video-tower",
            tiny_towers["video"],
            "--frame-tower",
            tiny_towers["frame"],
            "--llm",
            str(tmp_path / "llm"),
            "--output",
            str(tmp_path / "out"),
            "--token-mining-heads",
            "5",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"--frame-tower {tiny_towers['frame']}" in err and "width 12" in err and "5" in err
    assert not (tmp_path / "out").exists()


def test_probe_names_the_tower_whose_shapes_do_not_fit(tiny_processor):
    import copy

    from llamafactory_video.tools.hilight_build import TowerError, probe

    model = HiLightForConditionalGeneration(tiny_config()).eval()
    paths = {"video-tower": "/v", "frame-tower": "/f"}
    # the frame processor writes 24 px frames, the frame tower takes 16 px
    with pytest.raises(TowerError, match=r"--frame-tower /f: frames \(1, 3, 3, 24, 24\) from its image processor"):
        probe(model, tiny_processor, paths)
    processor = copy.copy(tiny_processor)
    processor.frame_image_processor = tiny_processor.image_processor  # 16 px
    model.config.frame_config.projection_dim = 6  # what the config promises; the tower gives 8
    with pytest.raises(TowerError, match=r"--frame-tower /f: frame embeddings \(1, 3, 8\), expected \(1, 3, 6\)"):
        probe(model, processor, paths)


def test_build_merges_a_sparc_align_lora_output(tmp_path, tiny_towers):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, CLIPVisionModel

    from llamafactory_video.model.dual_encoder import SparcModelConfig
    from llamafactory_video.tools.hilight_build import _load_backbone, _vision_part

    torch.manual_seed(0)
    peft_model = get_peft_model(
        AutoModel.from_pretrained(tiny_towers["video"]), LoraConfig(r=2, target_modules=["q_proj"])
    )
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # a trained adapter: merging changes the weights
    out = tmp_path / "sparc_lora"
    peft_model.save_pretrained(out)
    SparcModelConfig(finetuning_type="lora", base_model=tiny_towers["video"]).save(str(out))
    expected = peft_model.merge_and_unload().vision_model.encoder.layers[0].self_attn.q_proj.weight

    model, processor_dir = _load_backbone(str(out), "video-tower")
    assert processor_dir == tiny_towers["video"]  # the adapter dir has no image processor: the base's
    config, state = _vision_part(model, "video-tower", str(out))
    tower = CLIPVisionModel(config)
    tower.load_state_dict(state)
    base = AutoModel.from_pretrained(tiny_towers["video"]).vision_model.encoder.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(tower.encoder.layers[0].self_attn.q_proj.weight, expected)
    assert not torch.equal(expected, base)
