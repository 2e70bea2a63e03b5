r"""Tiny CLIP towers *built to see ball colours*, for the offline HiLight billiards demo (docs/models/hilight.md).

Random tiny ViTs mix a ball's colour away (a ball covers ~1 % of a frame) and the demo cannot download a real CLIP.
These towers are ordinary ``CLIPModel`` checkpoints, loaded by ``hilight-build`` like any other, whose weights are
set by hand instead of at random. Channels of the residual stream (width ``D``):

* ``0-2`` / ``3-5``: the patch's mean colour after the image processor and its negative (patch embedding), so the
  layer norms keep the colour's direction ``v / |v|``;
* ``6-13``: colour detectors, one per ball colour and the cue ball (:data:`DETECTED_COLOURS`): the first
  layer's MLP computes ``quick_gelu(k (cos(v, c) - tau))`` per patch (attention off); channel ``14`` is ``-1`` on the
  rail's ring of patches (from the positional embedding) and switches the detectors off there (the rail is nearly
  brown);
* video tower (1 layer): the remaining channels carry a sin / cos code of the patch's row and column (positional
  embedding), so its tokens are colour + detectors + position;
* frame tower (2 layers): the second layer's attention is uniform (zero query / key weights), reads only the detector
  channels (``layer_norm1`` weight zero elsewhere) and writes them unchanged into the CLS token: ``image_embeds`` is
  the layer-normed histogram of detected ball colours of the frame.

Nothing is learned here; the colour of a ball is simply not destroyed. A demo device, not a model.
"""

from __future__ import annotations

import math
import os

from .synthetic_billiards import BALL_COLOURS, CUE_RGB

#: (name, RGB) of the detected colours, channel ``6 + i``: the seven ball colours of ``synthetic_billiards`` and the
#: cue ball.
DETECTED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (*BALL_COLOURS, ("white", CUE_RGB))


def build_colour_tower(
    output_dir: str | os.PathLike[str],
    role: str,
    image_size: int = 64,
    patch_size: int = 4,
    sharpness: float = 20.0,
    threshold: float = 0.9,
) -> str:
    r"""Write a hand-initialised tiny CLIP to ``output_dir``; ``role`` is ``"video"`` (1 layer, width 24, patch
    tokens = colour + detectors + position) or ``"frame"`` (2 layers, width 16, ``image_embeds`` = detected-colour
    histogram). ``sharpness`` / ``threshold``: the detectors' ``k`` and ``tau``. Returns the directory."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    from .tiny_dual_encoder import build_tiny_dual_encoder

    if role not in ("video", "frame"):
        raise ValueError(f"role must be 'video' or 'frame', got {role!r}")
    hidden = 26 if role == "video" else 16
    layers = 1 if role == "video" else 2
    build_tiny_dual_encoder(
        output_dir,
        kind="clip",
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        projection_dim=hidden,
        num_layers=layers,
        num_heads=2,
        seed=0,
    )
    model = CLIPModel.from_pretrained(output_dir)
    processor = CLIPImageProcessor.from_pretrained(output_dir)
    mean = torch.tensor(processor.image_mean)
    std = torch.tensor(processor.image_std)
    colours = DETECTED_COLOURS
    vision = model.vision_model
    side = image_size // patch_size
    rail_patches = math.ceil(max(2.0, round(0.07 * image_size)) / patch_size)  # synthetic_billiards._geometry
    with torch.no_grad():
        for p in vision.parameters():
            p.zero_()
        for p in model.visual_projection.parameters():
            p.zero_()
        conv = vision.embeddings.patch_embedding.weight  # (D, 3, p, p)
        for c in range(3):
            conv[c, c] = 1.0 / patch_size**2
            conv[3 + c, c] = -1.0 / patch_size**2
        pos = vision.embeddings.position_embedding.weight  # (1 + P, D)
        for index in range(side * side):  # channel 14: -1 on the rail ring of patches (the rail is nearly brown)
            row, col = divmod(index, side)
            if min(row, col) < rail_patches or max(row, col) >= side - rail_patches:
                pos[1 + index, 14] = -1.0
        if role == "video":
            free = hidden - 15
            for index in range(side * side):
                row, col = divmod(index, side)
                for k in range(free):
                    coord = row if k % 2 == 0 else col
                    freq = (k // 4 + 1) * math.pi / side
                    wave = math.sin(freq * coord) if k % 4 < 2 else math.cos(freq * coord)
                    pos[1 + index, 15 + k] = 0.1 * wave
        for norm in [vision.pre_layrnorm, vision.post_layernorm]:
            norm.weight.fill_(1.0)
        for layer in vision.encoder.layers:
            layer.layer_norm1.weight.fill_(1.0)
            layer.layer_norm2.weight.fill_(1.0)
        first = vision.encoder.layers[0]
        # after a layer norm the colour channels hold sqrt(D/2) * v / |v|: the detector row is k * c_hat / sqrt(D/2)
        scale = math.sqrt(hidden / 2)
        for i, (_, rgb) in enumerate(colours):
            c = (torch.tensor(rgb, dtype=torch.float32) / 255.0 - mean) / std
            first.mlp.fc1.weight[i, :3] = sharpness * c / c.norm() / scale
            first.mlp.fc1.bias[i] = -sharpness * threshold
            first.mlp.fc1.weight[i, 14] = 5.0 * sharpness
            first.mlp.fc2.weight[6 + i, i] = 1.0
        if role == "frame":
            pool = vision.encoder.layers[1]
            pool.layer_norm1.weight.zero_()
            pool.layer_norm1.weight[6 : 6 + len(colours)] = 1.0
            pool.self_attn.v_proj.weight.copy_(torch.eye(hidden))
            pool.self_attn.out_proj.weight.copy_(torch.eye(hidden))
            model.visual_projection.weight.copy_(torch.eye(hidden))
    model.save_pretrained(output_dir, safe_serialization=True)
    return str(output_dir)
