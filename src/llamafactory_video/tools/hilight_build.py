r"""``llamafactory-video hilight-build``: assemble a HiLight model directory from a video tower, a frame tower and
an LLM.

The output is a normal Hugging Face directory (``config.json`` with ``model_type: hilight``, safetensors, the
processor with both towers' image processors, the LLM's tokenizer with the video placeholder token added, its chat
template, the generation config) that ``llamafactory-cli train / chat / export`` load with ``template: hilight``
(Gemma turns, the seed's LLM) or ``hilight_qwen`` (ChatML). TokenMining starts random (seeded); train it with
stage 1 (docs/models/hilight.md).

Towers: a Hugging Face CLIP / SigLIP directory (a full dual encoder or a vision model), a ``sparc_align`` output
directory (LoRA adapters merged into their base), or any ``AutoModel`` whose model has ``get_video_patch_features``
(CLIP-ViP; video tower only). The frame tower must give one pooled embedding per frame: a CLIP (``projection_dim``,
Long-CLIP is a CLIP) or SigLIP checkpoint. Every tower is probed once on ``num_frames`` blank frames: a directory
that does not load or shapes that do not line up fail here, naming the directory and the shapes.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

HELP = "assemble a HiLight video LLM (video tower + frame tower + TokenMining + LLM) into a model directory"


class TowerError(ValueError):
    pass


def _load_backbone(path: str, role: str) -> tuple[Any, str]:
    r"""The tower's full model (``sparc_align`` LoRA merged) and the directory holding its image processor."""
    from transformers import AutoModel

    if not os.path.isdir(path):
        raise TowerError(f"--{role}: {path} is not a directory")
    sparc = os.path.join(path, "sparc_align_config.json")
    try:
        if os.path.isfile(sparc):
            from ..model.dual_encoder import SparcModelConfig

            config = SparcModelConfig.load(path)
            if config.finetuning_type == "lora":
                from peft import PeftModel

                base = AutoModel.from_pretrained(config.base_model)
                model = PeftModel.from_pretrained(base, path).merge_and_unload()
                processor_dir = path if _has_image_processor(path) else config.base_model
                return model, processor_dir
        from ..host.hilight import register_optional_towers

        register_optional_towers()
        from transformers import AutoConfig

        if "CLIPVisionModelWithProjection" in (AutoConfig.from_pretrained(path).architectures or []):
            from transformers import CLIPVisionModelWithProjection

            return CLIPVisionModelWithProjection.from_pretrained(path), path
        return AutoModel.from_pretrained(path), path
    except TowerError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised naming the directory
        raise TowerError(f"--{role}: cannot load a model from {path}: {type(e).__name__}: {e}") from e


def _has_image_processor(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in ("preprocessor_config.json", "processor_config.json"))


def _vision_part(model: Any, role: str, path: str) -> tuple[Any, dict[str, Any]]:
    r"""``(vision config, state dict)`` of the tower HiLight builds for ``role`` (video tower: ``CLIPVisionModel`` /
    ``SiglipVisionModel`` / the model itself; frame tower: ``CLIPVisionModelWithProjection`` /
    ``SiglipVisionModel``)."""
    import copy

    model_type = getattr(model.config, "model_type", "")
    if role == "video-tower" and hasattr(model, "get_video_patch_features"):
        return copy.deepcopy(model.config), model.state_dict()
    with_projection = hasattr(model, "visual_projection")
    if model_type in ("clip", "siglip"):
        vision_config = copy.deepcopy(model.config.vision_config)
        tower_state = model.vision_model.state_dict()
    elif model_type in ("clip_vision_model", "siglip_vision_model"):
        vision_config = copy.deepcopy(model.config)
        inner = getattr(model, "vision_model", None)
        tower_state = (inner if inner is not None else model).state_dict()
    else:
        what = "CLIP / SigLIP or a model with get_video_patch_features" if role == "video-tower" else "CLIP / SigLIP"
        raise TowerError(f"--{role} {path}: model_type `{model_type}` is not a supported tower ({what})")
    if role == "video-tower" or model_type.startswith("siglip"):
        return vision_config, tower_state
    if not with_projection:
        raise TowerError(
            f"--frame-tower {path}: a CLIP vision model without `visual_projection` has no frame embedding; use "
            f"the full CLIP checkpoint (CLIPModel) or CLIPVisionModelWithProjection"
        )
    if model_type == "clip":
        vision_config.projection_dim = model.config.projection_dim
    state = {f"vision_model.{k}": v for k, v in tower_state.items()}
    state.update({f"visual_projection.{k}": v for k, v in model.visual_projection.state_dict().items()})
    return vision_config, state


def _load_image_processor(path: str, role: str) -> Any:
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise TowerError(f"--{role} {path}: no image processor: {type(e).__name__}: {e}") from e


def _load_state(module: Any, state: dict[str, Any], role: str, path: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise TowerError(
            f"--{role} {path}: weights do not fit the tower: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}"
        )


def probe(model: Any, processor: Any, paths: dict[str, str]) -> dict[str, tuple[int, ...]]:
    r"""Run the towers and TokenMining on ``num_frames`` blank frames; check every width against the config."""
    import torch
    from PIL import Image

    from ..model.hilight.modeling import frame_embedding_width, video_token_width

    config = model.config
    frames = [Image.new("RGB", (64, 64), (40, 120, 40)) for _ in range(config.num_frames)]
    try:
        inputs = processor.video_inputs([frames])
    except Exception as e:  # noqa: BLE001
        raise TowerError(f"image processors of {paths['video-tower']} / {paths['frame-tower']} fail: {e}") from e
    with torch.no_grad():
        try:
            video = model.get_video_tokens(inputs["pixel_values_videos"])
        except Exception as e:  # noqa: BLE001
            raise TowerError(
                f"--video-tower {paths['video-tower']}: frames {tuple(inputs['pixel_values_videos'].shape)} from its "
                f"image processor fail in the tower: {e}"
            ) from e
        try:
            frame = model.get_frame_embeddings(inputs["frame_pixel_values"])
        except Exception as e:  # noqa: BLE001
            raise TowerError(
                f"--frame-tower {paths['frame-tower']}: frames {tuple(inputs['frame_pixel_values'].shape)} from its "
                f"image processor fail in the tower: {e}"
            ) from e
    expected_video = video_token_width(config.video_config)
    if video.dim() != 3 or video.shape[-1] != expected_video:
        raise TowerError(
            f"--video-tower {paths['video-tower']}: video tokens {tuple(video.shape)}, "
            f"expected (1, N, {expected_video})"
        )
    expected_frame = (1, config.num_frames, frame_embedding_width(config.frame_config))
    if tuple(frame.shape) != expected_frame:
        raise TowerError(
            f"--frame-tower {paths['frame-tower']}: frame embeddings {tuple(frame.shape)}, expected {expected_frame}"
        )
    with torch.no_grad():
        out = model.token_mining(video, frame)
    return {"video_tokens": tuple(video.shape), "frame_embeddings": tuple(frame.shape), "llm_tokens": tuple(out.shape)}


def build_hilight(
    video_tower: str,
    frame_tower: str,
    llm: str,
    output_dir: str,
    token_mining: str = "b",
    num_frames: int = 12,
    token_mining_heads: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Write the HiLight directory; returns the probe shapes (``video_tokens``, ``frame_embeddings``,
    ``llm_tokens``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from ..host.hilight import register_transformers
    from ..model.hilight import (
        HILIGHT_VIDEO_TOKEN,
        TOKEN_MINING_VARIANTS,
        HiLightConfig,
        HiLightForConditionalGeneration,
        HiLightProcessor,
    )
    from ..model.hilight.modeling import frame_embedding_width

    if token_mining not in TOKEN_MINING_VARIANTS:
        raise ValueError(f"--token-mining must be one of {TOKEN_MINING_VARIANTS}, got {token_mining!r}")
    if num_frames < 1:
        raise ValueError(f"--num-frames must be >= 1, got {num_frames}")
    register_transformers()
    paths = {"video-tower": video_tower, "frame-tower": frame_tower}
    video_model, video_proc_dir = _load_backbone(video_tower, "video-tower")
    frame_model, frame_proc_dir = _load_backbone(frame_tower, "frame-tower")
    video_config, video_state = _vision_part(video_model, "video-tower", video_tower)
    frame_config, frame_state = _vision_part(frame_model, "frame-tower", frame_tower)
    frame_width = frame_embedding_width(frame_config)
    if frame_width % token_mining_heads != 0:
        raise TowerError(
            f"--frame-tower {frame_tower}: frame embedding width {frame_width} is not divisible by "
            f"--token-mining-heads {token_mining_heads}"
        )

    if not os.path.isdir(llm):
        raise TowerError(f"--llm: {llm} is not a directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(llm)
        lm = AutoModelForCausalLM.from_pretrained(llm)
    except Exception as e:  # noqa: BLE001
        raise TowerError(f"--llm {llm}: cannot load a causal LM + tokenizer: {type(e).__name__}: {e}") from e
    tokenizer.add_special_tokens({"additional_special_tokens": [HILIGHT_VIDEO_TOKEN]})
    if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tokenizer))

    config = HiLightConfig(
        video_config=video_config.to_dict(),
        frame_config=frame_config.to_dict(),
        text_config=lm.config.to_dict(),
        token_mining=token_mining,
        token_mining_heads=token_mining_heads,
        num_frames=num_frames,
        video_token=HILIGHT_VIDEO_TOKEN,
        video_token_id=tokenizer.convert_tokens_to_ids(HILIGHT_VIDEO_TOKEN),
    )
    config.architectures = ["HiLightForConditionalGeneration"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HiLightForConditionalGeneration(config).eval()
    _load_state(model.video_tower, video_state, "video-tower", video_tower)
    _load_state(model.frame_tower, frame_state, "frame-tower", frame_tower)
    _load_state(model.language_model, lm.state_dict(), "llm", llm)
    if lm.generation_config is not None:
        model.generation_config = GenerationConfig.from_dict(lm.generation_config.to_dict())

    processor = HiLightProcessor(
        image_processor=_load_image_processor(video_proc_dir, "video-tower"),
        frame_image_processor=_load_image_processor(frame_proc_dir, "frame-tower"),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        num_frames=num_frames,
        video_token=HILIGHT_VIDEO_TOKEN,
    )
    shapes = probe(model, processor, paths)
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
    return shapes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--video-tower", required=True, help="CLIP / SigLIP dir, sparc_align output dir or CLIP-ViP dir"
    )
    parser.add_argument(
        "--frame-tower", required=True, help="CLIP (incl. Long-CLIP) / SigLIP dir: one embedding a frame"
    )
    parser.add_argument("--llm", required=True, help="causal LM dir (model + tokenizer)")
    parser.add_argument("--output", required=True, help="where to write the HiLight model directory")
    parser.add_argument("--token-mining", default="b", choices=["a", "b", "c"], help="TokenMining variant (seed 4.1)")
    parser.add_argument("--num-frames", type=int, default=12, help="frames per video = visual tokens per video")
    parser.add_argument("--token-mining-heads", type=int, default=8, help="cross-attention heads (divide frame width)")
    parser.add_argument("--seed", type=int, default=0, help="seed of TokenMining's initialisation")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    try:
        shapes = build_hilight(
            args.video_tower,
            args.frame_tower,
            args.llm,
            args.output,
            token_mining=args.token_mining,
            num_frames=args.num_frames,
            token_mining_heads=args.token_mining_heads,
            seed=args.seed,
        )
    except TowerError as e:
        print(f"hilight-build: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"output": args.output, **{k: list(v) for k, v in shapes.items()}}))
    return 0


COMMAND = (HELP, add_arguments, run)
