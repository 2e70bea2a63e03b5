r"""``HiLightForConditionalGeneration``: video tower + frame tower -> TokenMining -> causal LM (seed 002, section 4).

Forward for one batch of ``V`` videos of ``T`` frames (seed numbers in brackets):

1. video tower -> ``(V, N, D_v)`` video tokens [2356 x 768]: a CLIP / SigLIP vision tower runs per frame and the
   patch tokens of all frames are concatenated (``N = T * P``, the CLS token dropped); a tower with
   ``get_video_patch_features((V, T, C, H, W)) -> (V, M + T * P, D_v)`` (CLIP-ViP: ``M`` proxy tokens) is called
   as it is;
2. frame tower -> ``(V, T, D_f)`` [12 x 512]: one pooled embedding per frame (CLIP ``image_embeds``, SigLIP pooled
   output);
3. TokenMining -> ``(V, T, H)`` [12 x 2048] (``token_mining.py``);
4. the ``V * T`` placeholder tokens ``video_token_id`` of ``input_ids`` (``T`` per video, in order) get those rows
   as input embeddings; the LLM runs on the embeddings (its own loss from ``labels``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel

from .configuration import HiLightConfig
from .token_mining import TokenMining


def frame_embedding_width(frame_config: Any) -> int:
    r"""Width of one frame embedding: CLIP's ``projection_dim`` (``image_embeds``), else ``hidden_size``."""
    if getattr(frame_config, "model_type", "") == "clip_vision_model":
        return int(frame_config.projection_dim)
    return int(frame_config.hidden_size)


def video_token_width(video_config: Any) -> int:
    r"""Width of one video token: the vision config's ``hidden_size`` (a dual-encoder config such as CLIP-ViP's
    ``clip_vip``: its ``vision_config``'s)."""
    return int(getattr(video_config, "vision_config", video_config).hidden_size)


def build_frame_tower(frame_config: Any) -> nn.Module:
    if getattr(frame_config, "model_type", "") == "clip_vision_model":
        from transformers import CLIPVisionModelWithProjection

        return CLIPVisionModelWithProjection(frame_config)
    return AutoModel.from_config(frame_config)


def merge_video_tokens(
    input_ids: torch.Tensor, inputs_embeds: torch.Tensor, video_features: torch.Tensor, video_token_id: int
) -> torch.Tensor:
    r"""Write ``video_features`` into the placeholder positions of ``inputs_embeds``.

    Args:
        input_ids: ``(B, L)``.
        inputs_embeds: ``(B, L, H)``.
        video_features: ``(V, T, H)``: the ``V`` videos of the batch in order (row-major over ``input_ids``).
        video_token_id: the placeholder id; exactly ``V * T`` of them must be in ``input_ids``.

    Returns:
        ``(B, L, H)``: a copy with the ``k``-th placeholder (row-major) replaced by ``video_features.view(-1, H)[k]``.
    """
    mask = input_ids == video_token_id
    features = video_features.reshape(-1, video_features.shape[-1]).to(inputs_embeds.dtype)
    found = int(mask.sum())
    if found != features.shape[0]:
        raise ValueError(
            f"HiLight: {found} video placeholder tokens (id {video_token_id}) in input_ids but "
            f"{video_features.shape[0]} video(s) x {video_features.shape[1]} frames = {features.shape[0]} visual "
            f"tokens; every <video> must expand to num_frames placeholders (template `hilight`)"
        )
    return inputs_embeds.masked_scatter(mask.unsqueeze(-1).expand_as(inputs_embeds), features)


class HiLightPreTrainedModel(PreTrainedModel):
    config_class = HiLightConfig
    config: HiLightConfig
    base_model_prefix = ""
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = "past_key_values"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        from transformers import initialization as init

        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)


class HiLightForConditionalGeneration(HiLightPreTrainedModel, GenerationMixin):
    r"""HiLight as a ``PreTrainedModel``: ``video_tower``, ``frame_tower``, ``token_mining``, ``language_model``
    (LlamaFactory composite keys: projector ``token_mining``, vision ``video_tower`` + ``frame_tower``, language
    ``language_model``)."""

    def __init__(self, config: HiLightConfig) -> None:
        super().__init__(config)
        self.video_tower = AutoModel.from_config(config.video_config)
        self.frame_tower = build_frame_tower(config.frame_config)
        self.token_mining = TokenMining(
            video_dim=video_token_width(config.video_config),
            frame_dim=frame_embedding_width(config.frame_config),
            text_dim=config.text_config.hidden_size,
            variant=config.token_mining,
            num_heads=config.token_mining_heads,
        )
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # --- embeddings / LM plumbing -------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    # --- visual path --------------------------------------------------------------------------------------------
    def get_video_tokens(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        r"""``(V, T, C, H, W)`` -> ``(V, N, D_v)`` video tokens (module docstring, step 1)."""
        tower = self.video_tower
        pixels = pixel_values_videos.to(dtype=tower.dtype)
        if hasattr(tower, "get_video_patch_features"):
            return tower.get_video_patch_features(pixels)
        videos, frames = pixels.shape[:2]
        hidden = tower(pixel_values=pixels.flatten(0, 1)).last_hidden_state  # (V * T, S, D_v)
        vision = self.config.video_config
        patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
        if hidden.shape[1] == patches + 1:  # CLIP: drop the CLS token
            hidden = hidden[:, 1:]
        return hidden.reshape(videos, frames * hidden.shape[1], hidden.shape[-1])

    def get_frame_embeddings(self, frame_pixel_values: torch.Tensor) -> torch.Tensor:
        r"""``(V, T, C, H', W')`` -> ``(V, T, D_f)``: one pooled embedding per frame (module docstring, step 2)."""
        tower = self.frame_tower
        pixels = frame_pixel_values.to(dtype=tower.dtype)
        out = tower(pixel_values=pixels.flatten(0, 1))
        pooled = getattr(out, "image_embeds", None)
        if pooled is None:
            pooled = out.pooler_output
        return pooled.reshape(pixels.shape[0], pixels.shape[1], pooled.shape[-1])

    def get_video_features(self, pixel_values_videos: torch.Tensor, frame_pixel_values: torch.Tensor) -> torch.Tensor:
        r"""``(V, T, C, H, W)`` + ``(V, T, C, H', W')`` -> ``(V, T, H)`` LLM tokens."""
        if pixel_values_videos.dim() != 5 or frame_pixel_values.dim() != 5:
            raise ValueError(
                f"HiLight expects pixel_values_videos and frame_pixel_values as (videos, frames, C, H, W), got "
                f"{tuple(pixel_values_videos.shape)} and {tuple(frame_pixel_values.shape)}"
            )
        video_tokens = self.get_video_tokens(pixel_values_videos)
        frame_embeds = self.get_frame_embeddings(frame_pixel_values)
        dtype = self.token_mining.attention.query.weight.dtype
        return self.token_mining(video_tokens.to(dtype), frame_embeds.to(dtype))

    # --- forward / generation -----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        frame_pixel_values: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ):
        r"""``input_ids (B, L)`` with ``T`` placeholders per video, ``pixel_values_videos (V, T, C, H, W)``,
        ``frame_pixel_values (V, T, C, H', W')`` -> the LLM's ``CausalLMOutputWithPast``."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("HiLight: pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values_videos is not None:
            if input_ids is None or frame_pixel_values is None:
                raise ValueError("HiLight: videos need input_ids (placeholders) and frame_pixel_values")
            features = self.get_video_features(pixel_values_videos, frame_pixel_values)
            inputs_embeds = merge_video_tokens(input_ids, inputs_embeds, features, self.config.video_token_id)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def prepare_inputs_for_generation(
        self,
        input_ids,
        past_key_values=None,
        inputs_embeds=None,
        pixel_values_videos=None,
        frame_pixel_values=None,
        attention_mask=None,
        logits_to_keep=None,
        is_first_iteration=False,
        **kwargs,
    ):
        r"""As the LM's, plus the pixel inputs on the first iteration only (later steps read the cache)."""
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            logits_to_keep=logits_to_keep,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        if is_first_iteration or not kwargs.get("use_cache", True):
            model_inputs["pixel_values_videos"] = pixel_values_videos
            model_inputs["frame_pixel_values"] = frame_pixel_values
        return model_inputs
