"""Tiny, randomly initialised CLIP-ViP models fully offline (tests, ``sparc_align`` on CLIP-ViP, the converter test).

- :func:`build_tiny_clip_vip`: a complete ``model_type: clip_vip`` directory (safetensors, a real ``CLIPTokenizer``
  from :func:`~llamafactory_video.testing.tiny_dual_encoder.build_tiny_clip_tokenizer`, a ``CLIPImageProcessor`` at the
  tiny resolution, a ``CLIPProcessor`` config), loadable with ``AutoModel`` / ``AutoProcessor`` once
  :func:`llamafactory_video.host.clip_vip.register_clip_vip` ran.
- :func:`official_clip_vip_state_dict`: a random state dict laid out exactly as the official CLIP-ViP checkpoint
  (``pretrain_clipvip_base_16.pt``: the ``VidCLIP`` module's ``state_dict()``, keys under ``clipmodel.``, old
  transformers' CLIP names plus ``added_cls`` / ``temporal_embedding`` and the ``position_ids`` buffers), with the
  sizes scaled down.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["build_tiny_clip_vip", "official_clip_vip_state_dict", "TINY_CLIP_VIP"]

# the tiny sizes every test shares (ViP-B/16: vision 768 / 12 layers / 12 heads / patch 16 / 224 px / 4 proxies /
# 12 temporal rows; text 512 / 12 layers / 8 heads; projection 512)
TINY_CLIP_VIP: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    image_size=32,
    patch_size=8,
    num_proxy_tokens=4,
    temporal_size=4,
    projection_dim=64,
)


def _config(tokenizer: Any, sizes: dict[str, Any]) -> Any:
    from ..model.clip_vip import ClipVipConfig

    common = dict(
        hidden_size=sizes["hidden_size"],
        intermediate_size=sizes["intermediate_size"],
        num_hidden_layers=sizes["num_layers"],
        num_attention_heads=sizes["num_heads"],
    )
    return ClipVipConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **common,
        ),
        vision_config=dict(
            image_size=sizes["image_size"],
            patch_size=sizes["patch_size"],
            num_proxy_tokens=sizes["num_proxy_tokens"],
            temporal_size=sizes["temporal_size"],
            **common,
        ),
        projection_dim=sizes["projection_dim"],
    )


def build_tiny_clip_vip(output_dir: str | os.PathLike[str], seed: int = 0, **sizes: Any) -> str:
    r"""Write a tiny random CLIP-ViP (sizes: :data:`TINY_CLIP_VIP`, overridable) to ``output_dir``; returns it.
    The temporal embedding is random too (a fresh model has it at zero), so tests see it act."""
    import torch
    from transformers import CLIPImageProcessor, CLIPProcessor

    from ..model.clip_vip import ClipVipModel
    from .tiny_dual_encoder import build_tiny_clip_tokenizer

    sizes = {**TINY_CLIP_VIP, **sizes}
    os.makedirs(output_dir, exist_ok=True)
    tokenizer = build_tiny_clip_tokenizer()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ClipVipModel(_config(tokenizer, sizes))
        with torch.no_grad():
            model.vision_model.embeddings.temporal_embedding.normal_(std=0.02)
    finally:
        torch.random.set_rng_state(state)
    size = sizes["image_size"]
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    model.save_pretrained(str(output_dir))
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(output_dir))
    return str(output_dir)


def official_clip_vip_state_dict(
    seed: int = 0,
    vocab_size: int = 1024,
    max_text_positions: int = 32,
    text_hidden: int = 32,
    text_layers: int = 2,
    text_intermediate: int = 64,
    **sizes: Any,
) -> dict[str, Any]:
    r"""A random ``{name: tensor}`` with the official CLIP-ViP checkpoint's key names and shape rules (sizes scaled
    down; vision sizes from :data:`TINY_CLIP_VIP`, overridable): what ``torch.save(VidCLIP(...).state_dict())``
    writes with ``clip_vision_additional_config = {type: ViP, add_cls_num: M - 1, temporal_size,
    if_use_temporal_embed: 1}``."""
    import torch

    s = {**TINY_CLIP_VIP, **sizes}
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, std: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def ln(prefix: str, width: int, out: dict[str, torch.Tensor]) -> None:
        out[f"{prefix}.weight"] = 1.0 + r(width, std=0.1)
        out[f"{prefix}.bias"] = r(width)

    def layers(prefix: str, width: int, inner: int, count: int, out: dict[str, torch.Tensor]) -> None:
        for i in range(count):
            p = f"{prefix}.encoder.layers.{i}"
            for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
                out[f"{p}.self_attn.{proj}.weight"] = r(width, width, std=width**-0.5)
                out[f"{p}.self_attn.{proj}.bias"] = r(width)
            ln(f"{p}.layer_norm1", width, out)
            out[f"{p}.mlp.fc1.weight"] = r(inner, width, std=width**-0.5)
            out[f"{p}.mlp.fc1.bias"] = r(inner)
            out[f"{p}.mlp.fc2.weight"] = r(width, inner, std=inner**-0.5)
            out[f"{p}.mlp.fc2.bias"] = r(width)
            ln(f"{p}.layer_norm2", width, out)

    d, patches = s["hidden_size"], (s["image_size"] // s["patch_size"]) ** 2
    sd: dict[str, torch.Tensor] = {"clipmodel.logit_scale": torch.tensor(4.60)}
    t = "clipmodel.text_model"
    sd[f"{t}.embeddings.token_embedding.weight"] = r(vocab_size, text_hidden, std=0.02)
    sd[f"{t}.embeddings.position_embedding.weight"] = r(max_text_positions, text_hidden, std=0.02)
    sd[f"{t}.embeddings.position_ids"] = torch.arange(max_text_positions).expand((1, -1)).clone()
    layers(t, text_hidden, text_intermediate, text_layers, sd)
    ln(f"{t}.final_layer_norm", text_hidden, sd)
    v = "clipmodel.vision_model"
    sd[f"{v}.embeddings.added_cls"] = r(s["num_proxy_tokens"] - 1, d, std=d**-0.5)
    sd[f"{v}.embeddings.class_embedding"] = r(d, std=d**-0.5)
    sd[f"{v}.embeddings.patch_embedding.weight"] = r(d, 3, s["patch_size"], s["patch_size"], std=0.02)
    sd[f"{v}.embeddings.position_embedding.weight"] = r(patches + 1, d, std=0.02)
    sd[f"{v}.embeddings.position_ids"] = torch.arange(patches + 1).expand((1, -1)).clone()
    sd[f"{v}.embeddings.temporal_embedding"] = r(1, s["temporal_size"], d, std=0.02)
    ln(f"{v}.pre_layrnorm", d, sd)
    layers(v, d, s["intermediate_size"], s["num_layers"], sd)
    ln(f"{v}.post_layernorm", d, sd)
    sd["clipmodel.visual_projection.weight"] = r(s["projection_dim"], d, std=d**-0.5)
    sd["clipmodel.text_projection.weight"] = r(s["projection_dim"], text_hidden, std=text_hidden**-0.5)
    return sd
