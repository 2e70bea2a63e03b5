"""Registers CLIP-ViP (``model_type: clip_vip``, :mod:`llamafactory_video.model.clip_vip`) with ``transformers``' auto
classes, so ``AutoConfig`` / ``AutoModel.from_pretrained`` load our converted and trained CLIP-ViP directories with no
``trust_remote_code``. Applied when ``llamafactory.model.loader`` loads (every ``llamafactory-cli`` run that loads a
model) and by :func:`llamafactory_video.model.dual_encoder.load_backbone` (tools outside the CLI). Idempotent.

The processor of a CLIP-ViP directory is a plain ``CLIPProcessor`` (its ``processor_config.json`` names the class),
which ``AutoProcessor`` resolves without any registration.
"""

from transformers import AutoConfig, AutoModel

_DONE = False


def register_clip_vip() -> None:
    global _DONE
    if _DONE:
        return
    from ..model.clip_vip import ClipVipConfig, ClipVipModel, ClipVipVisionConfig

    for config in (ClipVipConfig, ClipVipVisionConfig):
        AutoConfig.register(config.model_type, config, exist_ok=True)
    AutoModel.register(ClipVipConfig, ClipVipModel, exist_ok=True)
    _DONE = True
