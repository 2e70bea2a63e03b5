"""``build_tiny_qwen2_lm``'s ``initializer_range``: the std of the tiny LM's random weights (the billiards demo
draws its width-64 LLM with ``64 ** -0.5``, docs/models/hilight.md#offline-billiards-demo)."""

import pytest
import torch
from transformers import Qwen2ForCausalLM

from llamafactory_video.testing.tiny_hilight import build_tiny_qwen2_lm


@pytest.mark.parametrize("std", [0.02, 0.125])
def test_initializer_range_sets_weight_std(tmp_path, std):
    path = build_tiny_qwen2_lm(tmp_path / "llm", seed=0, hidden_size=64, initializer_range=std)
    model = Qwen2ForCausalLM.from_pretrained(path)
    assert model.config.initializer_range == pytest.approx(std)
    weights = torch.cat(
        [
            model.model.layers[0].self_attn.q_proj.weight.flatten(),
            model.model.layers[1].mlp.up_proj.weight.flatten(),
            model.lm_head.weight.flatten(),
        ]
    )
    assert weights.std().item() == pytest.approx(std, rel=0.1)
