"""``llamafactory-video convert-clip-vip``: the official CLIP-ViP checkpoint -> our ``model_type: clip_vip`` directory.

The official file (``pretrain_clipvip_base_16.pt``, microsoft/XPretrain) is ``torch.save`` of the ``VidCLIP`` module's
``state_dict()``: keys under ``clipmodel.`` (optionally ``module.`` in front, or the dict nested under ``model`` /
``state_dict`` / ``model_state_dict``), old transformers' CLIP names for both towers, plus

- ``vision_model.embeddings.class_embedding`` ``(D,)`` and ``vision_model.embeddings.added_cls`` ``(M - 1, D)``: the
  proxies; ours is one ``proxy_embedding`` ``(M, D)``, the class embedding first;
- ``vision_model.embeddings.temporal_embedding`` ``(1, T, D)``: ours is ``(T, D)``;
- ``*.position_ids`` buffers: dropped (ours are implicit).

It is read with ``torch.load(weights_only=True)`` (tensors only, never arbitrary pickled objects). Sizes come from the
tensor shapes; head counts, activation and layer-norm epsilon from the ``config.json`` of ``--clip-dir`` (the CLIP the
model was initialised from, e.g. ``openai/clip-vit-base-patch16``), which also supplies the ``CLIPProcessor``
(tokenizer + image processor) written next to the weights, since nothing is downloaded here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

HELP = "convert the official CLIP-ViP checkpoint (pretrain_clipvip_base_16.pt) into a clip_vip model directory"

_NESTED = ("model", "state_dict", "model_state_dict")
_PREFIXES = ("module.", "clipmodel.")
_PROXY_KEYS = ("vision_model.embeddings.class_embedding", "vision_model.embeddings.added_cls")


class ClipVipConversionError(ValueError):
    pass


def load_official_state_dict(path: str) -> dict[str, Any]:
    r"""The checkpoint's tensors with ``module.`` / ``clipmodel.`` prefixes stripped (``weights_only`` load)."""
    import torch

    if not os.path.isfile(path):
        raise ClipVipConversionError(f"--checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the message names the file and the cause
        raise ClipVipConversionError(
            f"--checkpoint {path}: cannot be read as a tensors-only checkpoint (weights_only=True): {err}"
        ) from err
    for key in _NESTED:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ClipVipConversionError(f"--checkpoint {path}: expected a state dict, got {type(state).__name__}")
    out = {}
    for name, value in state.items():
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        out[name] = value
    missing = [k for k in _PROXY_KEYS if k not in out]
    if missing:
        raise ClipVipConversionError(
            f"--checkpoint {path}: no {' / '.join(missing)}; this is not a CLIP-ViP (ViP) checkpoint "
            f"(first keys: {sorted(out)[:5]})"
        )
    return out


def _count_layers(state: dict[str, Any], tower: str) -> int:
    pattern = re.compile(rf"^{tower}\.encoder\.layers\.(\d+)\.")
    indices = {int(m.group(1)) for m in map(pattern.match, state) if m}
    return max(indices) + 1 if indices else 0


def infer_sizes(state: dict[str, Any]) -> dict[str, Any]:
    r"""Tower sizes from the official tensors' shapes."""
    v = "vision_model"
    patch = state[f"{v}.embeddings.patch_embedding.weight"]
    positions = state[f"{v}.embeddings.position_embedding.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise ClipVipConversionError(f"{v}.embeddings.position_embedding has {positions} rows, not 1 + a square")
    temporal = state.get(f"{v}.embeddings.temporal_embedding")
    return {
        "vision": dict(
            hidden_size=patch.shape[0],
            num_channels=patch.shape[1],
            patch_size=patch.shape[-1],
            image_size=grid * patch.shape[-1],
            intermediate_size=state[f"{v}.encoder.layers.0.mlp.fc1.weight"].shape[0],
            num_hidden_layers=_count_layers(state, v),
            num_proxy_tokens=1 + state[f"{v}.embeddings.added_cls"].shape[0],
            temporal_size=temporal.shape[-2] if temporal is not None else 12,
            use_temporal_embedding=temporal is not None,
        ),
        "text": dict(
            vocab_size=state["text_model.embeddings.token_embedding.weight"].shape[0],
            hidden_size=state["text_model.embeddings.token_embedding.weight"].shape[1],
            max_position_embeddings=state["text_model.embeddings.position_embedding.weight"].shape[0],
            intermediate_size=state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            num_hidden_layers=_count_layers(state, "text_model"),
        ),
        "projection_dim": state["visual_projection.weight"].shape[0],
    }


def official_to_ours(state: dict[str, Any]) -> dict[str, Any]:
    r"""Rename / reshape the official tensors into our ``ClipVipModel`` layout."""
    import torch

    out = {k: v for k, v in state.items() if not k.endswith("position_ids") and k not in _PROXY_KEYS}
    e = "vision_model.embeddings"
    out[f"{e}.proxy_embedding"] = torch.cat([state[f"{e}.class_embedding"][None], state[f"{e}.added_cls"]], dim=0)
    if f"{e}.temporal_embedding" in state:
        out[f"{e}.temporal_embedding"] = state[f"{e}.temporal_embedding"].reshape(
            -1, state[f"{e}.temporal_embedding"].shape[-1]
        )
    if "logit_scale" in out:
        out["logit_scale"] = out["logit_scale"].reshape(())
    return out


def _clip_settings(clip_dir: str) -> dict[str, dict[str, Any]]:
    path = os.path.join(clip_dir, "config.json")
    if not os.path.isfile(path):
        return {"text": {}, "vision": {}}
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    keep = ("num_attention_heads", "hidden_act", "layer_norm_eps", "hidden_size")
    return {
        tower: {k: v for k, v in (config.get(f"{tower}_config") or {}).items() if k in keep}
        for tower in ("text", "vision")
    }


def convert_clip_vip(
    checkpoint: str,
    output_dir: str,
    clip_dir: str,
    text_heads: int | None = None,
    vision_heads: int | None = None,
    dtype: str = "float32",
) -> dict[str, Any]:
    r"""Write ``output_dir`` (config, safetensors, the ``--clip-dir`` processor); returns a summary dict."""
    import torch
    from transformers import AutoProcessor

    from ..host.clip_vip import register_clip_vip
    from ..model.clip_vip import ClipVipConfig, ClipVipModel

    register_clip_vip()
    if not os.path.isdir(clip_dir):
        raise ClipVipConversionError(f"--clip-dir {clip_dir}: no such directory (a CLIP with its tokenizer/processor)")
    state = load_official_state_dict(checkpoint)
    try:
        sizes = infer_sizes(state)
    except KeyError as err:
        raise ClipVipConversionError(f"--checkpoint {checkpoint}: no tensor {err}; not the official layout") from err
    clip = _clip_settings(clip_dir)
    for tower in ("text", "vision"):
        width = clip[tower].pop("hidden_size", None)
        if width is not None and width != sizes[tower]["hidden_size"]:
            raise ClipVipConversionError(
                f"--clip-dir {clip_dir}: its {tower} tower is {width} wide but the checkpoint's is "
                f"{sizes[tower]['hidden_size']}; point --clip-dir at the CLIP this CLIP-ViP was initialised from"
            )
    for tower, heads in (("text", text_heads), ("vision", vision_heads)):
        if heads:
            clip[tower]["num_attention_heads"] = heads
        clip[tower].setdefault("num_attention_heads", max(sizes[tower]["hidden_size"] // 64, 1))
    processor = AutoProcessor.from_pretrained(clip_dir)
    tokenizer = processor.tokenizer
    if len(tokenizer) > sizes["text"]["vocab_size"]:
        raise ClipVipConversionError(
            f"--clip-dir {clip_dir}: the tokenizer has {len(tokenizer)} tokens but the checkpoint's text embedding "
            f"only {sizes['text']['vocab_size']} rows"
        )
    crop = getattr(processor.image_processor, "crop_size", None) or {}
    if crop.get("height") not in (None, sizes["vision"]["image_size"]):
        raise ClipVipConversionError(
            f"--clip-dir {clip_dir}: its image processor crops to {crop['height']} px but the checkpoint's position "
            f"embedding is for {sizes['vision']['image_size']} px frames"
        )
    config = ClipVipConfig(
        text_config=dict(
            **sizes["text"],
            **clip["text"],
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(**sizes["vision"], **clip["vision"]),
        projection_dim=sizes["projection_dim"],
        logit_scale_init_value=float(state.get("logit_scale", torch.tensor(4.60))),
    )
    model = ClipVipModel(config)
    ours = {k: v.float() for k, v in official_to_ours(state).items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        raise ClipVipConversionError(
            f"--checkpoint {checkpoint}: layout mismatch; missing {missing[:8]} unexpected {unexpected[:8]}"
        )
    wrong = [(k, tuple(ours[k].shape), tuple(v.shape)) for k, v in expected.items() if ours[k].shape != v.shape]
    if wrong:
        raise ClipVipConversionError(
            f"--checkpoint {checkpoint}: shapes (name, checkpoint, model) differ: {wrong[:8]}"
        )
    model.load_state_dict(ours, strict=True)
    model.to(getattr(torch, dtype))
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    processor.save_pretrained(output_dir)
    return {
        "output_dir": output_dir,
        "tensors": len(ours),
        "num_proxy_tokens": config.num_proxy_tokens,
        "video_tokens": config.num_video_tokens(),
        "vision_layers": config.vision_config.num_hidden_layers,
        "text_layers": config.text_config.num_hidden_layers,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="official CLIP-ViP .pt (e.g. pretrain_clipvip_base_16.pt)")
    parser.add_argument("--output", required=True, help="directory to write (config, safetensors, processor)")
    parser.add_argument(
        "--clip-dir",
        required=True,
        help="the CLIP it was initialised from (e.g. a local openai/clip-vit-base-patch16): tokenizer, image "
        "processor, head counts",
    )
    parser.add_argument("--text-heads", type=int, default=None, help="text heads (default: --clip-dir's)")
    parser.add_argument("--vision-heads", type=int, default=None, help="vision heads (default: --clip-dir's)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="saved dtype")


def run(args: argparse.Namespace) -> int:
    try:
        summary = convert_clip_vip(
            args.checkpoint, args.output, args.clip_dir, args.text_heads, args.vision_heads, args.dtype
        )
    except ClipVipConversionError as err:
        print(f"error: {err}")
        return 2
    print(
        f"wrote {summary['output_dir']}: {summary['tensors']} tensors, {summary['vision_layers']}+"
        f"{summary['text_layers']} layers, {summary['num_proxy_tokens']} proxy tokens, "
        f"{summary['video_tokens']} video tokens per clip"
    )
    return 0


COMMAND = (HELP, add_arguments, run)
