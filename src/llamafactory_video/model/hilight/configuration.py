r"""``HiLightConfig`` (``model_type: hilight``): the video tower, the frame tower and the LLM as sub-configs, plus
the TokenMining keys.

* ``video_config``: a CLIP / SigLIP vision config (``clip_vision_model`` / ``siglip_vision_model``) or any config
  whose model has ``get_video_patch_features`` (CLIP-ViP, ``clip_vip``);
* ``frame_config``: a CLIP vision config with ``projection_dim`` (the frame embedding is ``image_embeds``) or a
  SigLIP vision config (the frame embedding is its pooled output);
* ``text_config``: any causal LM config ``AutoModelForCausalLM`` builds.
"""

from __future__ import annotations

from typing import Literal

from transformers import PretrainedConfig
from transformers.models.auto import CONFIG_MAPPING, AutoConfig

HILIGHT_MODEL_TYPE = "hilight"
HILIGHT_VIDEO_TOKEN = "<|hilight_video|>"


def _as_config(value, default_type: str):
    if isinstance(value, dict):
        model_type = value.get("model_type", default_type)
        if model_type not in CONFIG_MAPPING:
            _import_optional_towers()
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"HiLight sub-config model_type `{model_type}` is not registered with transformers")
        return CONFIG_MAPPING[model_type](**{k: v for k, v in value.items() if k != "model_type"})
    return value


def _import_optional_towers() -> None:
    r"""Towers of this package (CLIP-ViP) register with ``AutoConfig`` / ``AutoModel`` through ``host/``."""
    from ...host.hilight import register_optional_towers

    register_optional_towers()


class HiLightConfig(PretrainedConfig):
    r"""HiLight: video tower + frame tower -> TokenMining -> causal LM.

    Keys besides the sub-configs: ``token_mining`` (``a`` / ``b`` / ``c``, see ``token_mining.py``),
    ``token_mining_heads`` (cross-attention heads, must divide the frame width), ``num_frames`` (frames per video =
    visual tokens per video in the LLM), ``video_token`` / ``video_token_id`` (the placeholder the processor writes
    ``num_frames`` times per video and the model replaces with TokenMining's output).
    """

    model_type = HILIGHT_MODEL_TYPE
    sub_configs = {"video_config": AutoConfig, "frame_config": AutoConfig, "text_config": AutoConfig}
    video_config: dict | PretrainedConfig | None = None
    frame_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    token_mining: Literal["a", "b", "c"] = "b"
    token_mining_heads: int = 8
    num_frames: int = 12
    video_token: str = HILIGHT_VIDEO_TOKEN
    video_token_id: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.video_config = _as_config(self.video_config, "clip_vision_model")
        self.frame_config = _as_config(self.frame_config, "clip_vision_model")
        self.text_config = _as_config(self.text_config, "qwen2")
        if self.video_config is None:
            self.video_config = CONFIG_MAPPING["clip_vision_model"]()
        if self.frame_config is None:
            self.frame_config = CONFIG_MAPPING["clip_vision_model"]()
        if self.text_config is None:
            self.text_config = CONFIG_MAPPING["qwen2"]()
        if self.token_mining not in ("a", "b", "c"):
            raise ValueError(f"token_mining must be one of a, b, c, got {self.token_mining!r}")
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size
