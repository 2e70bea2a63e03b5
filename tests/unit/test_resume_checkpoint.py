"""host/checkpoint.py: full-weight checkpoints written by save_pretrained load back into the model being trained
(keys mapped as from_pretrained maps them), and weights that do not load stop the run."""

import os

import pytest
import torch
from safetensors.torch import load_file, save_file


TOKEN_IDS = {"bos": 1, "eos": 2, "pad": 0, "image": 60, "video": 61, "vision_start": 62, "vision_end": 63}


def _config(arch: str = "qwen2_vl", tie: bool = False):
    from llamafactory_video.testing.tiny_model import _build_config

    config = _build_config(arch, TOKEN_IDS, vocab_size=64, hidden_size=24, num_layers=1)
    if tie:
        config.tie_word_embeddings = True
        config.get_text_config().tie_word_embeddings = True
    return config


def _model_class(arch: str):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    return Qwen2VLForConditionalGeneration if arch == "qwen2_vl" else Qwen2_5_VLForConditionalGeneration


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def base_dir(request, tmp_path_factory) -> tuple[str, str]:
    torch.manual_seed(0)
    model = _model_class(request.param)(_config(request.param))
    path = str(tmp_path_factory.mktemp(f"base_{request.param}"))
    model.save_pretrained(path)
    return request.param, path


def _trained_checkpoint(arch: str, base: str, out: str):
    r"""A model loaded like LlamaFactory loads it, its weights moved, saved like a Trainer checkpoint."""
    model = _model_class(arch).from_pretrained(base)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    model.save_pretrained(out)
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_saved_checkpoint_keys_differ_from_the_model_keys_and_stock_loading_misses_them(base_dir, tmp_path):
    r"""The bug: save_pretrained writes `model.layers.*` / `visual.*`, the model has `model.language_model.*` /
    `model.visual.*`, and the stock resume (`load_state_dict(state_dict, False)`) restores only lm_head."""
    arch, base = base_dir
    trained = _trained_checkpoint(arch, base, str(tmp_path))
    saved = load_file(os.path.join(tmp_path, "model.safetensors"))
    assert any(k.startswith("model.layers.") for k in saved) and any(k.startswith("visual.") for k in saved)
    assert any(k.startswith("model.language_model.") for k in trained.state_dict())
    fresh = _model_class(arch).from_pretrained(base)
    result = fresh.load_state_dict(saved, False)
    assert len(result.missing_keys) == len(trained.state_dict()) - 1  # all but lm_head.weight


def test_checkpoint_loads_back_exactly(base_dir, tmp_path):
    from llamafactory_video.host.checkpoint import load_model_checkpoint

    arch, base = base_dir
    trained = _trained_checkpoint(arch, base, str(tmp_path))
    fresh = _model_class(arch).from_pretrained(base)
    load_model_checkpoint(fresh, str(tmp_path))
    _same(fresh, trained)


def test_model_built_from_config_uses_the_registered_conversions(tmp_path):
    from llamafactory_video.host.checkpoint import load_model_checkpoint

    torch.manual_seed(1)
    source = _model_class("qwen2_vl")(_config())
    source.save_pretrained(str(tmp_path))
    target = _model_class("qwen2_vl")(_config())
    assert getattr(target, "_weight_conversions", None) is None
    load_model_checkpoint(target, str(tmp_path))
    _same(target, source)


def test_sharded_and_tied_checkpoints(tmp_path):
    from llamafactory_video.host.checkpoint import load_model_checkpoint

    torch.manual_seed(2)
    source = _model_class("qwen2_vl")(_config(tie=True))
    assert source.lm_head.weight is source.get_input_embeddings().weight
    source.save_pretrained(str(tmp_path), max_shard_size="20KB")
    assert os.path.isfile(os.path.join(tmp_path, "model.safetensors.index.json"))
    target = _model_class("qwen2_vl")(_config(tie=True))
    load_model_checkpoint(target, str(tmp_path))  # lm_head.weight is not in the files: tied to the embeddings
    _same(target, source)


def test_missing_and_unknown_weights_stop_with_the_checkpoint_named(base_dir, tmp_path):
    from llamafactory_video.host.checkpoint import CheckpointLoadError, load_model_checkpoint

    arch, base = base_dir
    _trained_checkpoint(arch, base, str(tmp_path))
    path = os.path.join(tmp_path, "model.safetensors")
    saved = load_file(path)
    dropped = sorted(k for k in saved if k.startswith("model.layers.0.self_attn."))
    save_file({k: v for k, v in saved.items() if k not in dropped}, path, metadata={"format": "pt"})
    fresh = _model_class(arch).from_pretrained(base)
    with pytest.raises(CheckpointLoadError, match=rf"{tmp_path}.*model\.language_model\.layers\.0\.self_attn\."):
        load_model_checkpoint(fresh, str(tmp_path))

    save_file(dict(saved, **{"extra.weight": torch.zeros(2)}), path, metadata={"format": "pt"})
    with pytest.raises(CheckpointLoadError, match=r"match no model weight: \['extra\.weight'\]"):
        load_model_checkpoint(fresh, str(tmp_path))

    # keys the trainer restores from its own file are not missing
    save_file({k: v for k, v in saved.items() if k not in dropped}, path, metadata={"format": "pt"})
    load_model_checkpoint(fresh, str(tmp_path), lambda model, keys: [k for k in keys if ".layers.0.self_attn." in k])


def test_trainer_resume_goes_through_the_patch(base_dir, tmp_path):
    r"""``Trainer._load_from_checkpoint`` (patched once LlamaFactory's trainer utils are imported) restores the
    weights; the trainer's ``checkpoint_keys_saved_apart`` excuses the keys it keeps in its own file."""
    import llamafactory.train.trainer_utils  # noqa: F401  (installs the patch)
    from transformers import Trainer, TrainingArguments

    from llamafactory_video.host.checkpoint import CheckpointLoadError

    arch, base = base_dir
    trained = _trained_checkpoint(arch, str(base), str(tmp_path / "ckpt"))
    fresh = _model_class(arch).from_pretrained(base)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    trainer = Trainer(model=fresh, args=args)
    trainer._load_from_checkpoint(str(tmp_path / "ckpt"))
    _same(fresh, trained)

    class Head(torch.nn.Module):  # a module the plugin attaches at the model root and saves apart
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(2, 2)

    Head.__module__ = "llamafactory_video.model.fake_head"
    from llamafactory_video.train.trainer_utils import HeadCheckpointMixin

    class HeadTrainer(HeadCheckpointMixin, Trainer):
        def _load_head(self, checkpoint_dir: str) -> None:
            self.head_loaded_from = checkpoint_dir

    fresh.add_module("fake_head", Head())
    HeadTrainer(model=fresh, args=args)._load_from_checkpoint(str(tmp_path / "ckpt"))
    with pytest.raises(CheckpointLoadError, match="fake_head.proj.weight"):
        trainer._load_from_checkpoint(str(tmp_path / "ckpt"))  # a stock trainer does not save it apart


def test_sparc_full_resume_restores_every_backbone_weight(tmp_path):
    r"""sparc_align resumes through ``load_trainable_state``: the CLIP backbone must come back whole (it used a
    silent ``load_state_dict(strict=False)``), and a checkpoint missing weights stops it."""
    import types

    from llamafactory_video.hparams import SparcAlignArguments
    from llamafactory_video.host.checkpoint import CheckpointLoadError
    from llamafactory_video.model.dual_encoder import SparcModelConfig, VideoTextModel, load_trainable_state
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder
    from llamafactory_video.train.sparc_align.workflow import build_backbone

    base = build_tiny_dual_encoder(str(tmp_path / "clip"), kind="clip")
    model_args = types.SimpleNamespace(model_name_or_path=base, cache_dir=None, trust_remote_code=False)
    ft_args = types.SimpleNamespace(**{**SparcAlignArguments().__dict__, "finetuning_type": "full"})
    config = SparcModelConfig(model_type="clip", base_model=base, finetuning_type="full", max_frames=4, video_maxlen=4)

    def build():
        return VideoTextModel(build_backbone(model_args, ft_args, is_trainable=True), config, ft_args)

    trained = build()
    with torch.no_grad():
        for param in trained.parameters():
            param.add_(0.05 * torch.randn_like(param))
    trained.save(str(tmp_path / "ckpt"))
    fresh = build()
    load_trainable_state(fresh, str(tmp_path / "ckpt"))
    _same(fresh, trained)

    path = str(tmp_path / "ckpt" / "model.safetensors")
    state = load_file(path)
    save_file({k: v for k, v in state.items() if "vision_model" not in k}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointLoadError, match=r"ckpt do not load.*vision_model"):
        load_trainable_state(build(), str(tmp_path / "ckpt"))
