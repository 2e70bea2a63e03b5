import os

import pytest
import torch

from llamafactory_video.model.action_head import (
    ActionDecoder,
    ActionHead,
    ActionHeadConfig,
    attach_action_head,
    get_action_head,
    head_state_dict_from,
    load_action_head_files,
    save_action_head,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from llamafactory_video.testing.tiny_model import build_tiny_model

    path = build_tiny_model(str(tmp_path_factory.mktemp("m") / "tiny"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_tokens(["<ACTION>"], special_tokens=True)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return model, tokenizer


def test_decoder_shapes():
    h = torch.randn(3, 16)
    assert ActionDecoder(16, 5)(h).shape == (3, 5)
    mlp = ActionDecoder(16, 5, "mlp", 32)
    assert mlp(h).shape == (3, 5) and mlp.net[0].out_features == 32
    with pytest.raises(ValueError, match="linear` or `mlp"):
        ActionDecoder(16, 5, "conv")


def test_last_hidden_state_is_post_norm(tiny):
    # contract: hidden_states[-1] is the final-norm output the lm_head reads (what the head classifies)
    model, tokenizer = tiny
    ids = torch.tensor([tokenizer.encode("The red square moves right.")])
    out = model(input_ids=ids, output_hidden_states=True, logits_to_keep=1)
    logits = model.lm_head(out.hidden_states[-1][:, -1])
    torch.testing.assert_close(logits, out.logits[:, -1], atol=1e-5, rtol=1e-5)
    assert out.logits.shape[1] == 1  # logits_to_keep=1 skips the vocabulary projection elsewhere


def test_action_embedding_row_is_trainable_alone(tiny):
    model, tokenizer = tiny
    token_id = tokenizer.convert_tokens_to_ids("<ACTION>")
    embed = model.get_input_embeddings()
    embed.weight.requires_grad_(False)
    head = ActionHead(
        ActionHeadConfig(hidden_size=embed.embedding_dim, num_classes=3), token_id, embed.weight[:token_id].mean(0)
    )
    attach_action_head(model, head)
    try:
        ids = torch.tensor([tokenizer.encode("red square") + [token_id]])
        out = model(input_ids=ids, output_hidden_states=True, logits_to_keep=1)
        logits = get_action_head(model)(out.hidden_states[-1][:, -1])
        logits.sum().backward()
        assert head.token_embedding.weight.grad is not None and head.token_embedding.weight.grad.abs().sum() > 0
        assert embed.weight.grad is None
        assert "action_head.decoder.net.weight" in dict(model.named_parameters())
        # the written row really is the head's parameter
        emb = embed(ids)
        torch.testing.assert_close(emb[0, -1], head.token_embedding.weight.detach())
    finally:
        head._embedding_hook.remove()
        del model.action_head


def test_save_load_roundtrip(tmp_path):
    config = ActionHeadConfig(
        hidden_size=8, num_classes=3, decoder_type="mlp", decoder_hidden_size=4, id2label={0: "a", 1: "b", 2: "c"}
    )
    head = ActionHead(config, token_id=5, init_embedding=torch.randn(8))
    save_action_head(str(tmp_path), config, head.state_dict())
    loaded_config, state = load_action_head_files(str(tmp_path))
    assert loaded_config == config
    fresh = ActionHead(loaded_config, token_id=5, init_embedding=torch.zeros(8))
    fresh.load_state_dict(state)
    for key, value in head.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in os.listdir(tmp_path))
    with pytest.raises(FileNotFoundError, match="action_decoder_path"):
        load_action_head_files(str(tmp_path / "nope"))


def test_head_keys_are_split_from_a_full_state_dict():
    state = {
        "base_model.model.lm_head.weight": 1,
        "action_head.decoder.net.weight": 2,
        "module.action_head.token_embedding.weight": 3,
    }
    assert head_state_dict_from(state) == {"decoder.net.weight": 2, "token_embedding.weight": 3}
