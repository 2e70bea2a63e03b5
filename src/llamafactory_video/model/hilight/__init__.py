r"""HiLight (seed 002, sections 4-7): a dual-tower video LLM. ``HiLightConfig`` / ``HiLightForConditionalGeneration``
/ ``HiLightProcessor``; registered with transformers' auto classes and LlamaFactory by ``host/hilight.py``."""

from .configuration import HILIGHT_MODEL_TYPE, HILIGHT_VIDEO_TOKEN, HiLightConfig
from .modeling import HiLightForConditionalGeneration, merge_video_tokens
from .processing import HiLightProcessor, resample_frame_indices
from .token_mining import TOKEN_MINING_VARIANTS, TokenMining, multi_head_cross_attention

__all__ = [
    "HILIGHT_MODEL_TYPE",
    "HILIGHT_VIDEO_TOKEN",
    "HiLightConfig",
    "HiLightForConditionalGeneration",
    "HiLightProcessor",
    "TOKEN_MINING_VARIANTS",
    "TokenMining",
    "merge_video_tokens",
    "multi_head_cross_attention",
    "resample_frame_indices",
]
