"""A model with no spare embedding rows: adding a token resizes the embedding, and every save path must hold.

peft 0.18 + transformers 5.6 crash in ``get_peft_model_state_dict(save_embedding_layers="auto")`` on composite VL
configs once the vocabulary was resized (``'Qwen2VLConfig' object has no attribute 'vocab_size'``); host/peft_save
resolves ``"auto"`` itself. These tests build both tiny layouts with the real Qwen2-VL tokenizer / model classes.
"""

import os

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from llamafactory_video.testing.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("layouts")
    return {
        layout: build_tiny_model(str(root / layout), arch="qwen2_vl", vocab_layout=layout)
        for layout in ("exact", "padded")
    }


def _lora_with_new_token(path: str, token: str = "<ACTION>"):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    import llamafactory.model.loader  # noqa: F401  (installs the host patches, peft's save among them)
    from llamafactory.model.model_utils.embedding import resize_embedding_layer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_special_tokens({"additional_special_tokens": [token]})
    model = AutoModelForImageTextToText.from_pretrained(path)
    resize_embedding_layer(model, tokenizer)  # the host's resize (no-op with spare rows): sets config.vocab_size
    model = get_peft_model(model, LoraConfig(target_modules=["q_proj", "v_proj"], r=4))
    return tokenizer, model


def test_builder_layouts(tiny_models):
    from transformers import AutoConfig, AutoTokenizer

    for layout, path in tiny_models.items():
        rows = AutoConfig.from_pretrained(path).get_text_config().vocab_size
        tokens = len(AutoTokenizer.from_pretrained(path))
        assert (rows == tokens) if layout == "exact" else (rows >= tokens + 64), (layout, rows, tokens)


def test_stock_peft_check_still_reads_a_top_level_vocab_size():
    r"""The contract our wrapper works around: peft's "auto" branch reads ``config.__class__.from_pretrained(...)
    .vocab_size`` (fails on composite configs), and PeftModel.save_pretrained calls the module-level name."""
    import inspect

    import peft.peft_model
    from peft.utils import save_and_load

    source = inspect.getsource(save_and_load.get_peft_model_state_dict)
    assert "model.config.__class__.from_pretrained(model_id).vocab_size" in source
    save_source = inspect.getsource(peft.peft_model.PeftModel.save_pretrained)
    assert "get_peft_model_state_dict(" in save_source and "save_embedding_layers=save_embedding_layers" in save_source
    sig = inspect.signature(
        getattr(peft.peft_model.get_peft_model_state_dict, "__wrapped__", save_and_load.get_peft_model_state_dict)
    )
    assert list(sig.parameters) == ["model", "state_dict", "adapter_name", "unwrap_compiled", "save_embedding_layers"]


def test_unpatched_peft_crashes_on_a_resized_composite_config(tiny_models, tmp_path):
    r"""Guard: the bug is real on this stack (if peft fixes it, the wrapper can go)."""
    from peft.utils import save_and_load

    _, model = _lora_with_new_token(tiny_models["exact"])
    with pytest.raises(AttributeError, match="vocab_size"):
        save_and_load.get_peft_model_state_dict(model, save_embedding_layers="auto")


def test_resized_adapter_saves_embedding_for_stock_sft(tiny_models, tmp_path):
    _, model = _lora_with_new_token(tiny_models["exact"])
    model.save_pretrained(str(tmp_path))  # crashed before the host patch
    keys = load_file(os.path.join(tmp_path, "adapter_model.safetensors")).keys()
    assert any("embed_tokens" in key for key in keys), "a resized vocabulary's rows must be kept"


def test_rows_saved_apart_keep_the_adapter_lora_only(tiny_models, tmp_path):
    from llamafactory_video.host.peft_save import ROWS_SAVED_APART_ATTR

    for layout, path in tiny_models.items():
        _, model = _lora_with_new_token(path)
        setattr(model, ROWS_SAVED_APART_ATTR, True)
        out = tmp_path / layout
        model.save_pretrained(str(out))
        keys = load_file(os.path.join(out, "adapter_model.safetensors")).keys()
        assert keys and all("lora_" in key for key in keys), (layout, [k for k in keys if "lora_" not in k][:3])


def test_padded_layout_is_not_resized(tiny_models, tmp_path):
    _, model = _lora_with_new_token(tiny_models["padded"])
    model.save_pretrained(str(tmp_path))
    keys = load_file(os.path.join(tmp_path, "adapter_model.safetensors")).keys()
    assert all("lora_" in key for key in keys)


def test_new_row_init_has_a_typical_norm():
    from llamafactory_video.train.action_cls.workflow import _new_row_init

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(500, 32)
    torch.nn.init.normal_(embedding.weight, std=0.02)
    model = torch.nn.Module()
    model.get_input_embeddings = lambda: embedding
    row = _new_row_init(model, 400)
    norms = embedding.weight[:400].norm(dim=-1)
    assert row.norm().item() == pytest.approx(norms.mean().item(), rel=1e-4)
    mean = embedding.weight[:400].mean(0)
    assert torch.nn.functional.cosine_similarity(row, mean, dim=0).item() == pytest.approx(1.0, abs=1e-5)
    assert mean.norm() < 0.2 * norms.mean()  # the plain mean would be a far-too-short token


def test_model_without_one_input_embedding_saves_its_adapter(tmp_path):
    r"""A composite model with no single input embedding (CLIPModel: ``get_input_embeddings`` raises) saves its
    LoRA adapter with the host patch installed, as with stock peft (a sparc_align LoRA merged by hilight-build)."""
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPConfig, CLIPModel

    import llamafactory.model.loader  # noqa: F401  (installs the host patches, peft's save among them)

    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
            patch_size=16,
        ),
        projection_dim=16,
    )
    base = tmp_path / "clip"
    CLIPModel(config).save_pretrained(str(base))
    model = get_peft_model(CLIPModel.from_pretrained(str(base)), LoraConfig(target_modules=["q_proj"], r=2))
    with pytest.raises(NotImplementedError):
        model.get_input_embeddings()
    model.save_pretrained(str(tmp_path / "adapter"))
    keys = load_file(os.path.join(tmp_path, "adapter", "adapter_model.safetensors")).keys()
    assert keys and all("lora_" in key for key in keys)
