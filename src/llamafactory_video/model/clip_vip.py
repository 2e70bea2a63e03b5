"""CLIP-ViP (Xue et al., ICLR 2023, arXiv 2209.06430): a CLIP ViT that reads a whole clip at once through video proxy
tokens and proxy-guided attention. Our own implementation, written from the paper and the public code's behaviour.

Vision side, for a clip of ``T`` frames with ``P = (image_size / patch_size)^2`` patches each and ``M``
(``num_proxy_tokens``) proxies, width ``D``:

- embeddings: each frame's patches get CLIP's patch embedding, CLIP's spatial position embedding (positions ``1..P``)
  and a temporal embedding (``temporal_size`` rows, linearly interpolated to ``T`` when ``T`` differs); the ``M``
  proxy tokens are learnt vectors plus CLIP's position 0 (the CLS position). The first proxy is CLIP's own class
  embedding, the other ``M - 1`` are added ones. Sequence: ``[proxies (M), frame 0 patches (P), ..., frame T-1]``.
- proxy-guided attention in every layer: a proxy attends to all ``M + T * P`` tokens; a patch of frame ``t`` attends
  to the ``M`` proxies and the ``P`` patches of frame ``t`` only (no direct patch-to-patch attention across frames).
- the video embedding (the global loss's) is ``visual_projection(post_layernorm(h[:, 0]))``: the first proxy, as the
  official code's ``image_embeds``.

Text side: CLIP's text transformer unchanged (``transformers``' ``CLIPTextModel``), ``text_projection`` of its pooled
(end-of-text) state.

Our parameter layout is CLIP's (``text_model.*``, ``vision_model.encoder.layers.{i}.self_attn.q_proj`` ...) except for
``vision_model.embeddings.proxy_embedding`` ``(M, D)`` and ``vision_model.embeddings.temporal_embedding``
``(temporal_size, D)``; ``tools/convert/clip_vip.py`` maps the official ``pretrain_clipvip_base_16.pt`` onto it.
The model registers with ``transformers``' auto classes (``model_type: clip_vip``) through ``host/clip_vip.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import initialization as init
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.configuration_clip import CLIPTextConfig, CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPMLP, CLIPPreTrainedModel, CLIPTextModel
from transformers.utils import ModelOutput

__all__ = [
    "ClipVipConfig",
    "ClipVipVisionConfig",
    "ClipVipModel",
    "proxy_guided_attention",
    "proxy_guided_mask",
]


@strict
class ClipVipVisionConfig(CLIPVisionConfig):
    r"""CLIP's vision config plus the video proxy settings.

    num_proxy_tokens (`int`, defaults to 4): ``M``, proxy tokens in front of the patches (CLIP's class embedding and
        ``M - 1`` added ones; the official ``add_cls_num`` is ``M - 1``).
    temporal_size (`int`, defaults to 12): rows of the temporal embedding (frames the model was trained on).
    use_temporal_embedding (`bool`, defaults to True): add the temporal embedding to every patch.
    """

    model_type = "clip_vip_vision_model"
    base_config_key = "vision_config"
    patch_size: int | list[int] | tuple[int, int] | None = 16
    num_proxy_tokens: int = 4
    temporal_size: int = 12
    use_temporal_embedding: bool = True

    def validate_architecture(self):
        super().validate_architecture()
        if self.num_proxy_tokens < 1:
            raise ValueError(
                f"num_proxy_tokens must be >= 1 (the first is the CLS token), got {self.num_proxy_tokens}"
            )
        if self.temporal_size < 1:
            raise ValueError(f"temporal_size must be >= 1, got {self.temporal_size}")


@strict
class ClipVipConfig(PreTrainedConfig):
    r"""CLIP-ViP: a ``CLIPTextConfig`` text side, a :class:`ClipVipVisionConfig` video side, CLIP's projection and
    logit scale (ViP-B/16: vision 768 wide, patch 16, 224 px, 4 proxies, 12 temporal rows; logit scale 4.60)."""

    model_type = "clip_vip"
    sub_configs = {"text_config": CLIPTextConfig, "vision_config": ClipVipVisionConfig}

    text_config: dict | CLIPTextConfig | None = None
    vision_config: dict | ClipVipVisionConfig | None = None
    projection_dim: int | None = 512
    logit_scale_init_value: float | int | None = 4.60
    initializer_factor: float | None = 1.0

    def __post_init__(self, **kwargs):
        text = self.text_config
        vision = self.vision_config
        if isinstance(text, CLIPTextConfig):
            text = text.to_dict()
        if isinstance(vision, CLIPVisionConfig):
            vision = vision.to_dict()
        self.text_config = CLIPTextConfig(**(text or {}))
        self.vision_config = ClipVipVisionConfig(**{k: v for k, v in (vision or {}).items() if k != "model_type"})
        super().__post_init__(**kwargs)

    # duck-typed conveniences (not serialised: they read the vision sub-config)
    @property
    def num_proxy_tokens(self) -> int:
        return self.vision_config.num_proxy_tokens

    @property
    def patches_per_frame(self) -> int:
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    def num_video_tokens(self, num_frames: int | None = None) -> int:
        r"""``M + T * P``: 4 + 12 * 196 = 2356 for ViP-B/16 at 224 px and 12 frames (``T`` defaults to
        ``temporal_size``)."""
        frames = self.vision_config.temporal_size if num_frames is None else num_frames
        return self.num_proxy_tokens + frames * self.patches_per_frame


def proxy_guided_mask(num_proxies: int, num_frames: int, patches_per_frame: int) -> torch.Tensor:
    r"""``(S, S)`` bool, ``True`` = query row may attend to key column, ``S = M + T * P``: proxies see everything;
    a patch of frame ``t`` sees the proxies and the patches of frame ``t``. (Dense reference for tests; the model
    computes the same attention block-wise in :func:`proxy_guided_attention`.)"""
    m, p = num_proxies, patches_per_frame
    frame = torch.cat([torch.full((m,), -1), torch.arange(num_frames).repeat_interleave(p)])
    allowed = (frame[:, None] == frame[None, :]) | (frame[None, :] == -1) | (frame[:, None] == -1)
    return allowed


def proxy_guided_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    num_proxies: int,
    num_frames: int,
    dropout: float = 0.0,
) -> torch.Tensor:
    r"""Scaled dot-product attention under the proxy-guided mask, computed block-wise (``O(T P (M + P))`` for the
    patches instead of ``O((T P)^2)``).

    Args:
        query, key, value: ``(B, H, M + T * P, d)``.
        num_proxies: ``M``; num_frames: ``T``.

    Returns:
        ``(B, H, M + T * P, d)``.
    """
    b, h, s, d = query.shape
    m = num_proxies
    p = (s - m) // num_frames
    if m + num_frames * p != s:
        raise ValueError(f"sequence of {s} tokens is not {m} proxies + {num_frames} frames of equal patch count")
    proxies = F.scaled_dot_product_attention(query[:, :, :m], key, value, dropout_p=dropout)
    t = num_frames

    def with_proxies(
        x: torch.Tensor,
    ) -> torch.Tensor:  # (B, H, S, d) -> (B, H * T, M + P, d), 4-D for the fast kernels
        own = x[:, :, m:].reshape(b, h, t, p, d)
        return torch.cat([x[:, :, None, :m].expand(b, h, t, m, d), own], dim=3).reshape(b, h * t, m + p, d)

    frame_q = query[:, :, m:].reshape(b, h * t, p, d)
    frames = F.scaled_dot_product_attention(frame_q, with_proxies(key), with_proxies(value), dropout_p=dropout)
    return torch.cat([proxies, frames.reshape(b, h, num_frames * p, d)], dim=2)


class ClipVipVisionEmbeddings(nn.Module):
    def __init__(self, config: ClipVipVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_proxies = config.num_proxy_tokens
        self.patch_embedding = nn.Conv2d(
            config.num_channels, self.embed_dim, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        self.num_patches = (config.image_size // config.patch_size) ** 2
        self.position_embedding = nn.Embedding(self.num_patches + 1, self.embed_dim)
        self.proxy_embedding = nn.Parameter(torch.zeros(self.num_proxies, self.embed_dim))
        self.temporal_embedding = (
            nn.Parameter(torch.zeros(config.temporal_size, self.embed_dim)) if config.use_temporal_embedding else None
        )

    def temporal(self, num_frames: int) -> torch.Tensor:
        r"""``(T, D)`` temporal rows, linearly interpolated (``align_corners=False``) when ``T != temporal_size``."""
        rows = self.temporal_embedding
        if rows.size(0) == num_frames:
            return rows
        return F.interpolate(rows.t()[None], size=num_frames, mode="linear")[0].t()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        r"""``(B, T, C, H, W)`` -> ``(B, M + T * P, D)``."""
        b, t = pixel_values.shape[:2]
        weight = self.patch_embedding.weight
        patches = self.patch_embedding(pixel_values.flatten(0, 1).to(weight.dtype))  # (B*T, D, h, w)
        patches = patches.flatten(2).transpose(1, 2).reshape(b, t, self.num_patches, self.embed_dim)
        patches = patches + self.position_embedding.weight[1:][None, None]
        if self.temporal_embedding is not None:
            patches = patches + self.temporal(t)[None, :, None]
        proxies = (self.proxy_embedding + self.position_embedding.weight[0])[None].expand(b, -1, -1)
        return torch.cat([proxies, patches.reshape(b, t * self.num_patches, self.embed_dim)], dim=1)


class ClipVipAttention(nn.Module):
    r"""CLIP's multi-head attention projections (``q_proj`` / ``k_proj`` / ``v_proj`` / ``out_proj``) under the
    proxy-guided mask."""

    def __init__(self, config: ClipVipVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = config.attention_dropout
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        b, s, _ = hidden_states.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)

        out = proxy_guided_attention(
            heads(self.q_proj(hidden_states)),
            heads(self.k_proj(hidden_states)),
            heads(self.v_proj(hidden_states)),
            self.config.num_proxy_tokens,
            num_frames,
            dropout=self.dropout if self.training else 0.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, s, self.embed_dim))


class ClipVipEncoderLayer(nn.Module):
    def __init__(self, config: ClipVipVisionConfig) -> None:
        super().__init__()
        self.self_attn = ClipVipAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        hidden_states = hidden_states + self.self_attn(self.layer_norm1(hidden_states), num_frames)
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class ClipVipEncoder(nn.Module):
    def __init__(self, config: ClipVipVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ClipVipEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False


class ClipVipVisionTransformer(nn.Module):
    r"""Video tower: embeddings -> ``pre_layrnorm`` -> proxy-guided layers; ``pooler_output`` =
    ``post_layernorm`` of the first proxy; ``last_hidden_state`` is the raw last layer (as CLIP's)."""

    def __init__(self, config: ClipVipVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = ClipVipVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = ClipVipEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool = False, **_: Any
    ) -> BaseModelOutputWithPooling:
        if pixel_values.dim() != 5:
            raise ValueError(f"CLIP-ViP takes clips (B, T, C, H, W), got pixel_values {tuple(pixel_values.shape)}")
        num_frames = pixel_values.size(1)
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        states = [hidden] if output_hidden_states else None
        for layer in self.encoder.layers:
            if self.encoder.gradient_checkpointing and self.training:
                hidden = torch.utils.checkpoint.checkpoint(layer, hidden, num_frames, use_reentrant=False)
            else:
                hidden = layer(hidden, num_frames)
            if states is not None:
                states.append(hidden)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.post_layernorm(hidden[:, 0]),
            hidden_states=tuple(states) if states is not None else None,
        )


@dataclass
class ClipVipOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits_per_video: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None


class ClipVipPreTrainedModel(CLIPPreTrainedModel):
    config: ClipVipConfig
    config_class = ClipVipConfig
    base_model_prefix = "clip_vip"
    input_modalities = ("video", "text")
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "ClipVipEncoderLayer", "ClipVipVisionEmbeddings"]
    _supports_flash_attn = False
    _supports_flex_attn = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # CLIP's init for the text side, CLIPMLP, LayerNorm and Linear biases
        factor = self.config.initializer_factor
        if isinstance(module, ClipVipVisionEmbeddings):
            init.normal_(module.proxy_embedding, mean=0.0, std=module.embed_dim**-0.5 * factor)
            init.normal_(module.patch_embedding.weight, std=module.config.initializer_range * factor)
            init.normal_(module.position_embedding.weight, std=module.config.initializer_range * factor)
            if module.temporal_embedding is not None:
                init.zeros_(module.temporal_embedding)
        elif isinstance(module, ClipVipAttention):
            in_std = (module.embed_dim**-0.5) * ((2 * module.config.num_hidden_layers) ** -0.5) * factor
            for proj in (module.q_proj, module.k_proj, module.v_proj):
                init.normal_(proj.weight, std=in_std)
            init.normal_(module.out_proj.weight, std=(module.embed_dim**-0.5) * factor)
        elif isinstance(module, ClipVipModel):
            init.normal_(module.text_projection.weight, std=module.text_embed_dim**-0.5 * factor)
            init.normal_(module.visual_projection.weight, std=module.vision_embed_dim**-0.5 * factor)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)


class ClipVipModel(ClipVipPreTrainedModel):
    r"""CLIP-ViP dual encoder: ``text_model`` (CLIP's), ``vision_model`` (:class:`ClipVipVisionTransformer`),
    ``text_projection``, ``visual_projection``, ``logit_scale``."""

    main_input_name = "input_ids"

    def __init__(self, config: ClipVipConfig) -> None:
        super().__init__(config)
        self.projection_dim = config.projection_dim
        self.text_embed_dim = config.text_config.hidden_size
        self.vision_embed_dim = config.vision_config.hidden_size
        self.text_model = CLIPTextModel._from_config(config.text_config)
        self.vision_model = ClipVipVisionTransformer(config.vision_config)
        self.visual_projection = nn.Linear(self.vision_embed_dim, self.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.embeddings.token_embedding = value

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        r"""``(B, L)`` -> ``(B, projection_dim)`` (not normalised)."""
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.text_projection(out.pooler_output)

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        r"""``(B, T, C, H, W)`` -> ``(B, projection_dim)``: the projected, post-layer-normed first proxy (the global
        loss's video embedding; not normalised)."""
        return self.visual_projection(self.vision_model(pixel_values).pooler_output)

    def get_video_patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        r"""``(B, T, C, H, W)`` -> ``(B, M + T * P, D)``: the vision tower's last hidden states, the ``M`` proxy
        tokens first, then every frame's ``P`` patches in frame order (2356 x 768 for ViP-B/16, 12 frames)."""
        return self.vision_model(pixel_values).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        **_: Any,
    ) -> ClipVipOutput:
        text = self.get_text_features(input_ids, attention_mask) if input_ids is not None else None
        video = self.get_video_features(pixel_values) if pixel_values is not None else None
        out = ClipVipOutput(text_embeds=text, video_embeds=video)
        if text is not None and video is not None:
            text_n, video_n = F.normalize(text, dim=-1), F.normalize(video, dim=-1)
            out.logits_per_text = self.logit_scale.exp() * text_n @ video_n.t()
            out.logits_per_video = out.logits_per_text.t()
            if return_loss:
                target = torch.arange(text.size(0), device=text.device)
                out.loss = 0.5 * (
                    F.cross_entropy(out.logits_per_text, target) + F.cross_entropy(out.logits_per_video, target)
                )
        return out
