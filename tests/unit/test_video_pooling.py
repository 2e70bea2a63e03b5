"""Video token pooling through the host: the qwen2_vl mm_plugin's placeholders, the collator's M-RoPE positions and
the model's pooled features agree on real encoded videos, for both architectures; configuration sources; the
fastslow_ar block mask and reconstruction wiring."""

import json
import os

import numpy as np
import pytest
import torch

from llamafactory_video.model.fastslow import (
    frame_causal_mask,
    next_slot_pairs,
    reconstruction_loss,
    rope_position_ids,
    slot_token_counts,
    video_slot_ids,
)
from llamafactory_video.model.video_pooling import (
    POOLING_FILE,
    VideoPooling,
    install_on_model,
    pooling_from_model_args,
    processor_pooling,
)
from llamafactory_video.testing.synthetic_videos import write_video


def _train_args(model_dir: str, **extra):
    from llamafactory.hparams import get_train_args

    args = {
        "stage": "sft",
        "model_name_or_path": model_dir,
        "do_train": True,
        "finetuning_type": "full",
        "template": "qwen2_vl",
        "dataset": "unused",
        "output_dir": "/tmp/lfv-unused",
        "video_maxlen": 8,
        "video_fps": 4.0,
        "video_max_pixels": 112 * 112,
        "report_to": "none",
    }
    args.update(extra)
    return get_train_args(args)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def tiny_dir(request, tmp_path_factory) -> str:
    from llamafactory_video.testing.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp(request.param)), arch=request.param)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    """Three real videos: 8 frames (4 slots), 4 frames (2 slots), 6 frames at 2:1 aspect (3 slots)."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for i, (frames, h, w) in enumerate([(8, 112, 112), (4, 112, 112), (6, 64, 128)]):
        clip = rng.integers(0, 255, size=(frames, h, w, 3), dtype=np.uint8)
        path = str(root / f"v{i}.mp4")
        write_video(clip, path, fps=4)
        paths.append(path)
    return paths


def _encode(template, tokenizer, processor, videos: list[str], text: str) -> dict:
    n = len(videos)
    messages = [
        {"role": "user", "content": "<video>" * n + text},
        {"role": "assistant", "content": "A red square."},
    ]
    messages = template.mm_plugin.process_messages(messages, [], videos, [], processor)
    prompt_ids, answer_ids = template.encode_oneturn(tokenizer, messages)
    return {
        "input_ids": prompt_ids + answer_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(answer_ids)),
        "labels": [-100] * len(prompt_ids) + answer_ids,
        "images": [],
        "videos": videos,
        "audios": [],
    }


@pytest.mark.parametrize(
    "pooling",
    [VideoPooling.uniform(2), VideoPooling(2, 4, "interleave"), VideoPooling(1, 4, "uniform", 0.3, "max")],
    ids=["uniform2", "slow2-fast4", "uniform-ratio-max"],
)
def test_placeholders_positions_and_features_agree_through_the_host(tiny_dir, videos, pooling) -> None:
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_template_and_fix_tokenizer
    from llamafactory.model import load_model, load_tokenizer

    from llamafactory_video.model.video_pooling import attach_to_processor

    model_args, data_args, _, finetuning_args, _ = _train_args(tiny_dir)
    module = load_tokenizer(model_args)
    tokenizer, processor = module["tokenizer"], module["processor"]
    attach_to_processor(processor, pooling)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    model = load_model(tokenizer, model_args, finetuning_args, is_trainable=False)
    core = install_on_model(model, pooling, keep_features=True)

    features = [
        _encode(template, tokenizer, processor, videos[:2], "Two videos?"),
        _encode(template, tokenizer, processor, videos[2:], "One video?"),
    ]
    video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, label_pad_token_id=-100, **module)
    batch = collator(features)
    grid = batch["video_grid_thw"]
    merge = core.visual.spatial_merge_size
    assert grid[:, 0].tolist() == [4, 2, 3]

    # 1. placeholders: per video, the pooled counts (not the stock T*H*W/4)
    expected = pooling.placeholder_counts(grid, merge)
    runs = [sum(1 for t in f["input_ids"] if t == video_id) for f in features]
    assert runs == [expected[0] + expected[1], expected[2]]
    assert sum(expected) < int((grid.prod(-1) // merge**2).sum())

    # 2. positions: the collator called the patched get_rope_index == rope_position_ids on the same batch
    reference, _ = rope_position_ids(
        batch["input_ids"],
        batch["attention_mask"],
        grid,
        pooling.patterns(grid),
        video_id,
        slow_stride=pooling.slow_stride,
        fast_stride=pooling.fast_stride,
        pool_mode=pooling.mode,
        spatial_merge_size=merge,
        tokens_per_second=getattr(core.config.vision_config, "tokens_per_second", None)
        if "2_5" in type(core).__name__
        else None,
        second_per_grid_ts=batch.get("second_per_grid_ts"),
    )
    assert torch.equal(batch["position_ids"][-3:], reference)

    # 3. features: the model's own placeholder check passes and the kept features have one row per placeholder
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.loss)
    assert core.last_pooled_video_features.shape[0] == int((batch["input_ids"] == video_id).sum())

    # 4. the fastslow block mask on the same batch: shape, and video tokens never see a later slot
    counts = slot_token_counts(grid, merge, pooling.patterns(grid), pooling.slow_stride, pooling.fast_stride)
    slots = video_slot_ids(batch["input_ids"], video_id, counts)
    mask = frame_causal_mask(slots, batch["attention_mask"])
    for b in range(slots.shape[0]):
        s = slots[b]
        later = (s[None, :] > s[:, None]) & (s[:, None] >= 0)
        assert not (mask[b, 0] & later).any()
    with torch.no_grad():  # boolean (what the trainer gives sdpa) and additive (eager) forms agree
        as_bool = model(**{**batch, "attention_mask": frame_causal_mask(slots, batch["attention_mask"])})
        additive = model(
            **{**batch, "attention_mask": frame_causal_mask(slots, batch["attention_mask"], torch.float32)}
        )
    assert torch.isfinite(as_bool.loss)
    torch.testing.assert_close(as_bool.loss, additive.loss)


def test_stock_expansion_untouched_without_pooling(tiny_dir, videos) -> None:
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    model_args, data_args, *_ = _train_args(tiny_dir)
    module = load_tokenizer(model_args)
    assert processor_pooling(module["processor"]) is None
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    messages = [{"role": "user", "content": "<video>Hi"}, {"role": "assistant", "content": "Yes."}]
    ours = template.mm_plugin.process_messages(messages, [], videos[:1], [], module["processor"])
    stock = type(template.mm_plugin).process_messages.__wrapped__(
        template.mm_plugin, messages, [], videos[:1], [], module["processor"]
    )
    assert ours == stock
    assert ours[0]["content"].count("<|video_pad|>") == 4 * 4 * 4  # 4 slots of 4 x 4 merged tokens


def test_model_key_and_saved_json(tiny_dir, tmp_path) -> None:
    model_args, *_ = _train_args(tiny_dir, video_token_pool_stride=2, video_token_pool_mode="max")
    pooling, source = pooling_from_model_args(model_args)
    assert pooling == VideoPooling.uniform(2, "max") and source == "video_token_pool_stride"

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    VideoPooling(2, 4, "first_slow", 0.3).save(str(adapter))
    model_args, *_ = _train_args(tiny_dir)
    model_args.adapter_name_or_path = [str(adapter)]
    pooling, source = pooling_from_model_args(model_args)
    assert pooling == VideoPooling(2, 4, "first_slow", 0.3) and source.endswith(POOLING_FILE)

    (adapter / POOLING_FILE).write_text(json.dumps({"slow_stride": 0}))
    with pytest.raises(ValueError, match=POOLING_FILE):
        pooling_from_model_args(model_args)

    with pytest.raises(ValueError, match="video_token_pool_stride"):
        _train_args(tiny_dir, video_token_pool_stride=0)


def test_model_arguments_copyfrom_keeps_our_keys(tiny_dir) -> None:
    from llamafactory.hparams import ModelArguments

    model_args, *_ = _train_args(tiny_dir, video_token_pool_stride=2)
    copy = ModelArguments.copyfrom(model_args, model_name_or_path="other")  # how the host builds ref/reward models
    assert copy.video_token_pool_stride == 2 and copy.model_name_or_path == "other"


def test_pooling_config_validation() -> None:
    with pytest.raises(ValueError, match="slow_stride"):
        VideoPooling(0, 2)
    with pytest.raises(ValueError, match="strategy"):
        VideoPooling(2, 4, "random")
    with pytest.raises(ValueError, match="mode"):
        VideoPooling(2, 4, mode="median")
    assert VideoPooling().is_identity
    assert "6.4x fewer" in VideoPooling(2, 4).saving_line(8)  # 8 slots of 8x8: 4*16 + 4*4 = 80 vs 512


def test_reconstruction_loss_accumulation_matches_full_batch() -> None:
    """Batch 8 in one step == 4 micro-batches of 2 averaged (the Trainer divides by the accumulation steps)."""
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 5))
    grids_per_sample = [[(2, 2), (1, 1), (2, 2)] for _ in range(8)]  # equal pairs per sample (2 each)
    hidden = [torch.randn(9, 6) for _ in range(8)]
    feats = [torch.randn(9, 5) for _ in range(8)]

    def loss_of(samples: list[int]) -> torch.Tensor:
        x, y = next_slot_pairs(
            torch.cat([hidden[i] for i in samples]),
            torch.cat([feats[i] for i in samples]),
            [grids_per_sample[i] for i in samples],
        )
        return reconstruction_loss(head(x), y, "mse")

    head.zero_grad()
    loss_of(list(range(8))).backward()
    full = [p.grad.clone() for p in head.parameters()]
    head.zero_grad()
    for start in range(0, 8, 2):
        (loss_of([start, start + 1]) / 4).backward()
    for a, p in zip(full, head.parameters()):
        torch.testing.assert_close(p.grad, a, rtol=1e-5, atol=1e-6)


def test_fastslow_checks_before_training() -> None:
    from types import SimpleNamespace

    from llamafactory_video.train.fastslow_ar.workflow import check_attention, check_run_args

    model_args = SimpleNamespace(video_token_pool_stride=1, block_diag_attn=False)
    data_args = SimpleNamespace(packing=True, neat_packing=False, template="qwen2_vl")
    with pytest.raises(ValueError, match="packing: false"):
        check_run_args(model_args, data_args, None, None)
    data_args.packing = False
    data_args.template = "llava"
    with pytest.raises(ValueError, match=r"template `llava` belongs to none.*Supported: qwen2_vl"):
        check_run_args(model_args, data_args, None, None)
    data_args.template = "qwen2_vl"
    model_args.video_token_pool_stride = 2
    with pytest.raises(ValueError, match="fastslow_slow_stride"):
        check_run_args(model_args, data_args, None, None)

    fa2 = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    args = SimpleNamespace(fastslow_frame_causal_mask=True, fastslow_mask_fallback="error")
    with pytest.raises(ValueError, match="flash_attn: sdpa"):
        check_attention(fa2, args)
    args.fastslow_mask_fallback = "causal"
    assert check_attention(fa2, args) is False
    sdpa = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa"))
    assert check_attention(sdpa, args) is True
    args.fastslow_frame_causal_mask = False
    assert check_attention(sdpa, args) is False


def test_fastslow_keys_validation(tiny_dir) -> None:
    base = {"stage": "fastslow_ar"}
    _train_args(tiny_dir, **base)  # defaults are valid
    for extra, match in [
        ({"fastslow_slow_stride": 4, "fastslow_fast_stride": 2}, "Swap"),
        ({"fastslow_slow_frame_ratio": 1.5}, "fastslow_slow_frame_ratio"),
        ({"fastslow_ar_loss_weight": -1}, "fastslow_ar_loss_weight"),
        ({"use_dft_loss": True}, "use_dft_loss"),
    ]:
        with pytest.raises(ValueError, match=match):
            _train_args(tiny_dir, **base, **extra)
    assert os.environ.get("LLAMAFACTORY_VIDEO_DISABLE") is None


def test_batch_without_video_still_touches_the_head() -> None:
    """A rank whose micro-batch has no video gets a zero loss that still reaches every head parameter (DDP)."""
    from types import SimpleNamespace

    from llamafactory_video.model.fastslow_head import FastslowHeadConfig, attach_head
    from llamafactory_video.train.fastslow_ar.trainer import FastslowTrainer

    config = FastslowHeadConfig(hidden_size=6, feature_dim=5, mlp_hidden_size=7)
    holder = torch.nn.Module()
    attach_head(holder, config.build())
    fake = SimpleNamespace(
        model=holder,
        head_config=config,
        _hidden=torch.randn(2, 4, 6),
        core=SimpleNamespace(last_pooled_video_features=None),
    )
    loss, pairs = FastslowTrainer._reconstruction(fake, torch.zeros(2, 4, dtype=torch.long), None)
    assert pairs == 0 and loss.item() == 0.0
    loss.backward()
    assert all(p.grad is not None for p in holder.fastslow_head.parameters())


def test_text_only_batch_with_the_hosts_fake_image(tiny_dir) -> None:
    """The host's collator gives a text-only batch a masked fake image; pooled positions still equal the stock ones."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_template_and_fix_tokenizer
    from llamafactory.model import load_model, load_tokenizer

    from llamafactory_video.model.video_pooling import attach_to_processor

    model_args, data_args, _, finetuning_args, _ = _train_args(tiny_dir)
    module = load_tokenizer(model_args)
    attach_to_processor(module["processor"], VideoPooling(2, 4))
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    model = load_model(module["tokenizer"], model_args, finetuning_args, is_trainable=False)
    stock = model.model.get_rope_index
    core = install_on_model(model, VideoPooling(2, 4))
    features = [_encode(template, module["tokenizer"], module["processor"], [], "Say hi.")]
    batch = SFTDataCollatorWith4DAttentionMask(template=template, model=model, label_pad_token_id=-100, **module)(
        features
    )
    assert batch["image_grid_thw"].shape[0] == 1 and "video_grid_thw" not in batch  # the fake image
    types = torch.zeros_like(batch["input_ids"])
    types[batch["input_ids"] == core.config.image_token_id] = 1
    want, _ = stock(
        batch["input_ids"], types, image_grid_thw=batch["image_grid_thw"], attention_mask=batch["attention_mask"]
    )
    assert torch.equal(batch["position_ids"][-3:], want)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_saving_line_describes_the_run_and_labels_height_by_width():
    line = VideoPooling(2, 4).saving_line(4, video_maxlen=6)  # 6 sampled frames -> 3 slots of 4x4 merged tokens
    assert "a 3-slot video (video_maxlen 6 frames) of 4x4 (HxW) tokens per slot" in line
    assert "instead of 48 tokens" in line
    assert "a 5-slot video (video_maxlen 9 frames)" in VideoPooling(2, 4).saving_line(4, video_maxlen=9)
