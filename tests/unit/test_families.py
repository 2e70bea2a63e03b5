"""The family layer: detection, refusals, and, for each family that pools, placeholders == visual features ==
position ids through the host on real encoded videos (two videos of different lengths in one sample, and a video
in the second user turn)."""

import os

import numpy as np
import pytest
import torch

from llamafactory_video.model.families import (
    FAMILIES,
    FamilyNotSupported,
    family_for,
    family_for_template,
    require,
    supported_families,
)
from llamafactory_video.model.fastslow import pooled_axis_positions, video_slot_ids
from llamafactory_video.model.video_pooling import VideoPooling, attach_to_processor, install_on_model
from llamafactory_video.testing.synthetic_videos import write_video


SHARED_VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "videos")
POOLING_FAMILIES = [name for name in FAMILIES if FAMILIES[name].supports("video_token_pool_stride")]


def test_detection_by_config_template_and_model() -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    assert family_for(Qwen2VLConfig()).name == "qwen2_vl"
    assert family_for(Qwen2_5_VLConfig()).name == "qwen2_vl"
    assert family_for(Qwen3VLConfig()).name == "qwen3_vl"
    assert family_for_template("qwen2_vl").name == "qwen2_vl"
    assert family_for_template("qwen3_vl_nothink").name == "qwen3_vl"
    assert family_for_template("llava") is None
    assert FAMILIES["qwen2_vl"].tokens_per_second(Qwen2VLConfig()) is None
    tps = Qwen2_5_VLConfig().vision_config.tokens_per_second
    assert FAMILIES["qwen2_vl"].tokens_per_second(Qwen2_5_VLConfig()) == tps


def test_refusals_name_the_family_and_the_supported_ones() -> None:
    for name, family in FAMILIES.items():
        for stage in ("action_cls", "scst", "fastslow_ar"):
            if family.supports(stage):
                assert require(stage, family.templates[0]) is family
                continue
            with pytest.raises(FamilyNotSupported) as err:
                require(stage, family.templates[0])
            assert name in str(err.value) and all(s in str(err.value) for s in supported_families(stage))
    with pytest.raises(FamilyNotSupported, match="template `llava` belongs to none"):
        require("action_cls", "llava")


def test_qwen3_rope_splits_each_slot_into_its_own_run() -> None:
    grids, flags = FAMILIES["qwen3_vl"]._rope_grids(torch.tensor([[3, 4, 8], [2, 4, 4]]), VideoPooling(2, 4))
    assert grids.tolist() == [[1, 4, 8]] * 3 + [[1, 4, 4]] * 2
    assert [f[0] for f in flags] == [True, False, True, True, False]
    runs = FAMILIES["qwen3_vl"].placeholder_runs(torch.tensor([[3, 4, 8], [2, 4, 4]]), 2, VideoPooling(2, 4))
    assert runs == [[2, 1, 2], [1, 1]]  # slow 2x4 -> 1x2, fast 2x4 -> 1x1; 2x2 -> 1x1 either way
    assert FAMILIES["qwen2_vl"].placeholder_runs(torch.tensor([[3, 4, 8], [2, 4, 4]]), 2, VideoPooling(2, 4)) == [
        [5],
        [2],
    ]


# ------------------------------------------------------------------------------------------- through the host
@pytest.fixture(scope="module", params=POOLING_FAMILIES)
def family_dir(request, tmp_path_factory):
    from llamafactory_video.testing.tiny_families import build_tiny_family_model

    family = FAMILIES[request.param]
    path = build_tiny_family_model(family.tiny_builder, str(tmp_path_factory.mktemp(family.name)))
    return family, path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    r"""Two real videos of different lengths (the shared 9.7 s and 5.0 s mp4 files) and a synthetic webm."""
    root = tmp_path_factory.mktemp("family_videos")
    clip = np.random.default_rng(0).integers(0, 255, size=(6, 64, 128, 3), dtype=np.uint8)
    webm = str(root / "wide.webm")
    write_video(clip, webm, fps=4)
    return [os.path.join(SHARED_VIDEOS, "1.mp4"), os.path.join(SHARED_VIDEOS, "4.mp4"), webm]


def _load(model_dir: str, template: str):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    model_args, data_args, _, finetuning_args, _ = get_train_args(
        {
            "stage": "sft",
            "model_name_or_path": model_dir,
            "do_train": True,
            "finetuning_type": "full",
            "template": template,
            "dataset": "unused",
            "output_dir": "/tmp/lfv-unused",
            "video_maxlen": 8,
            "video_fps": 1.0,
            "video_max_pixels": 128 * 128,
            "report_to": "none",
        }
    )
    module = load_tokenizer(model_args)
    template_obj = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    model = load_model(module["tokenizer"], model_args, finetuning_args, is_trainable=False)
    return module, template_obj, model


def _encode(template, tokenizer, processor, messages, videos) -> dict:
    messages = template.mm_plugin.process_messages(messages, [], videos, [], processor)
    pairs = template.encode_multiturn(tokenizer, messages)
    ids, labels = [], []
    for prompt, answer in pairs:
        ids += prompt + answer
        labels += [-100] * len(prompt) + answer
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels, "images": [], "videos": videos,
            "audios": []}


def _naive_positions(ids: list[int], video_id: int, runs: list[tuple[int, int, int]], merge: int) -> torch.Tensor:
    r"""Reference M-RoPE positions of one unpadded sample: ``runs`` lists ``(grid_h, grid_w, stride)`` (patch
    units) per placeholder run, in order. Text counts on; a run at ``p`` gets ``(p + t0, p + row, p + col)`` with
    rows / cols the centres of the pooled regions and advances ``p`` by ``max(h, w)`` merged tokens."""
    out, p, i, r = [], 0, 0, 0
    while i < len(ids):
        if ids[i] != video_id:
            out.append([p, p, p])
            p, i = p + 1, i + 1
            continue
        h, w, stride = runs[r]
        rows = pooled_axis_positions(h // merge, stride, "average")
        cols = pooled_axis_positions(w // merge, stride, "average")
        out += [[p, p + a, p + b] for a in rows for b in cols]
        i += len(rows) * len(cols)
        p += max(h, w) // merge
        r += 1
    return torch.tensor(out).T


@pytest.mark.parametrize("pooling", [VideoPooling.uniform(2), VideoPooling(2, 4, "interleave")], ids=["s2", "s2f4"])
def test_pooled_placeholders_features_and_positions_agree(family_dir, videos, pooling) -> None:
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    family, model_dir = family_dir
    module, template, model = _load(model_dir, family.templates[0])
    tokenizer, processor = module["tokenizer"], module["processor"]
    attach_to_processor(processor, pooling)
    core = install_on_model(model, pooling, keep_features=True)
    assert family_for(model) is family and family.find_core(model) is core
    video_id = family.video_token_id(core.config)
    merge = family.merge_size(core)

    two_videos = [
        {"role": "user", "content": "<video><video>What differs?"},
        {"role": "assistant", "content": "Speed."},
    ]
    second_turn = [
        {"role": "user", "content": "Hello."},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "<video>And this one?"},
        {"role": "assistant", "content": "A square."},
    ]
    features = [
        _encode(template, tokenizer, processor, two_videos, videos[:2]),
        _encode(template, tokenizer, processor, second_turn, videos[2:]),
    ]
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, label_pad_token_id=-100, **module)
    batch = collator(features)
    grid = batch["video_grid_thw"]
    assert grid[0, 0] != grid[1, 0]  # two videos of different lengths in the first sample
    assert not set(family.processor_only_keys) & set(batch)  # the host drops them (generate refuses them)
    if family.processor_only_keys:  # ... because the stock plugin emits them
        stock = type(template.mm_plugin).get_mm_inputs.__wrapped__(
            template.mm_plugin, [], videos[2:], [], [0], [1], [0], [features[1]["input_ids"]], processor
        )
        assert set(family.processor_only_keys) <= set(stock)

    # 1. placeholders: each video its own pooled count (not the first video's, not the stock T*H*W/m^2)
    counts = family.placeholder_counts(grid, merge, pooling)
    per_sample = [sum(1 for t in f["input_ids"] if t == video_id) for f in features]
    assert per_sample == [counts[0] + counts[1], counts[2]]
    assert sum(counts) < int((grid.prod(-1) // merge**2).sum())

    # 2. positions: the collator's (through the patched get_rope_index) == a naive walk over the runs
    per_slot_runs = len(family.placeholder_runs([[2, 4, 4]], merge)[0]) == 2
    if per_slot_runs:  # one run per slot (Qwen3-VL): positions are a naive walk over the runs
        runs = [
            [(h, w, pooling.slow_stride if slow else pooling.fast_stride) for slow in pattern]
            for (t, h, w), pattern in zip(grid.tolist(), pooling.patterns(grid))
        ]
        sample_runs = [runs[0] + runs[1], runs[2]]
        for b, feature in enumerate(features):
            keep = batch["attention_mask"][b].bool()
            reference = _naive_positions(feature["input_ids"], video_id, sample_runs[b], merge)
            assert torch.equal(batch["position_ids"][-3:][:, b, keep], reference)
    else:  # one run per video (Qwen2-VL family): positions come from the family's pooled rope index
        reference, _ = family.pooled_rope_index(core, pooling)(
            batch["input_ids"], video_grid_thw=grid, attention_mask=batch["attention_mask"],
            second_per_grid_ts=batch.get("second_per_grid_ts"),
        )
        assert torch.equal(batch["position_ids"][-3:], reference)
    assert batch["position_ids"].shape[-1] == batch["input_ids"].shape[-1]

    # 3. features: the model's own placeholder check passes, one pooled feature row per placeholder
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.loss)
    assert core.last_pooled_video_features.shape[0] == int((batch["input_ids"] == video_id).sum())

    # 4. fastslow_ar: slot ids number every slot of a sample in order; the block-masked forward runs
    if family.supports("fastslow_ar"):
        from llamafactory_video.train.fastslow_ar.trainer import block_mask_inputs

        slots = video_slot_ids(batch["input_ids"], video_id, family.fastslow_slot_counts(grid, merge, pooling))
        t = grid[:, 0].tolist()
        assert [int(slots[b].max()) + 1 for b in range(2)] == [t[0] + t[1], t[2]]
        masked = block_mask_inputs(batch, core, pooling, None)
        assert masked["attention_mask"].dim() == 4
        with torch.no_grad():
            assert torch.isfinite(model(**masked).loss)


def test_identity_pooling_positions_equal_the_stock_rope_index(family_dir, videos) -> None:
    r"""With strides 1 the family's rope index is the model's own on a one-video sample."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    family, model_dir = family_dir
    module, template, model = _load(model_dir, family.templates[0])
    core = family.find_core(model)
    messages = [{"role": "user", "content": "<video>Describe."}, {"role": "assistant", "content": "A square."}]
    feature = _encode(template, module["tokenizer"], module["processor"], messages, videos[1:2])
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, label_pad_token_id=-100, **module)
    batch = collator([feature])
    types = family.extra_forward_kwargs(core.config, batch["input_ids"])
    ours, _ = family.pooled_rope_index(core, VideoPooling())(
        batch["input_ids"], video_grid_thw=batch["video_grid_thw"], attention_mask=batch["attention_mask"],
        second_per_grid_ts=batch.get("second_per_grid_ts"), **types,
    )
    stock, _ = type(core).get_rope_index(
        core, batch["input_ids"], image_grid_thw=None, video_grid_thw=batch["video_grid_thw"],
        attention_mask=batch["attention_mask"], **types,
        **({"second_per_grid_ts": batch["second_per_grid_ts"]} if "second_per_grid_ts" in batch else {}),
    )
    assert torch.equal(ours, stock)


def test_host_contract_for_family_plugins():
    r"""What host/pooling.py relies on for every family's LlamaFactory plugin and loader (test_host_contract style)."""
    import dataclasses
    import inspect

    from llamafactory.data import mm_plugin
    from llamafactory.model import loader

    assert list(inspect.signature(loader.load_config).parameters) == ["model_args"]
    for family in FAMILIES.values():
        for name in family.mm_plugins:
            plugin = getattr(mm_plugin, name)
            assert plugin in mm_plugin.PLUGINS.values(), name
            wrapped = plugin.process_messages.__wrapped__  # ours wraps the plugin's own process_messages
            assert list(inspect.signature(wrapped).parameters) == [
                "self", "messages", "images", "videos", "audios", "processor"
            ], name
            if not family.supports("video_token_pool_stride"):
                continue  # the pooled expansion below never runs for it (load_tokenizer refuses the key)
            for attr in ("_validate_input", "_validate_messages", "_get_mm_token_metadata", "_get_mm_inputs",
                         "vision_bos_token", "vision_eos_token", "video_token", "image_token"):
                assert hasattr(plugin, attr) or attr in {f.name for f in dataclasses.fields(plugin)}, (name, attr)
            if family.processor_only_keys:
                assert hasattr(plugin.get_mm_inputs, "__wrapped__"), name
    # Qwen3-VL's stock expansion: one timestamped run per slot (what Qwen3VLFamily writes on the pooled path)
    stock = inspect.getsource(inspect.unwrap(mm_plugin.Qwen3VLPlugin.process_messages))  # under host/qwen3_vl.py
    assert "seconds>" in stock and "_calculate_timestamps" in stock


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_module_paths_resolve_on_the_tiny_model(name, tmp_path) -> None:
    r"""``vision_tower`` / ``projector`` / ``language_model`` of each family are real submodules of its tiny model,
    also found through a PEFT wrapper (the core is searched among all modules)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForImageTextToText

    from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS

    family = FAMILIES[name]
    model_dir = FAMILY_BUILDERS[family.tiny_builder](str(tmp_path / name), vocab_layout="exact")
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    for target in (model, wrapped):
        parts = {what: getattr(family, what)(target) for what in ("vision_tower", "projector", "language_model")}
        owned = {id(m) for m in model.modules()}
        assert all(id(part) in owned for part in parts.values()), name
        assert len({id(part) for part in parts.values()}) == 3, name
        assert isinstance(parts["language_model"].embed_tokens, torch.nn.Embedding), name
        assert sum(p.numel() for p in parts["vision_tower"].parameters()) > 0, name
