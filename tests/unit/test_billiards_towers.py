"""The hand-initialised colour towers of the HiLight billiards demo (``testing/billiards_towers.py``): they load as
plain CLIP checkpoints and their frame embeddings name the pocketed ball (the detector channel that drops most
between the first and the last frame)."""

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    from llamafactory_video.testing.billiards_towers import build_colour_tower

    root = tmp_path_factory.mktemp("towers")
    return build_colour_tower(root / "video", "video"), build_colour_tower(root / "frame", "frame")


def test_frame_tower_sees_which_ball_disappears(towers):
    from transformers import CLIPImageProcessor, CLIPModel

    from llamafactory_video.testing.billiards_towers import DETECTED_COLOURS
    from llamafactory_video.testing.synthetic_billiards import render_billiards_clip, sample_billiards_clip

    model = CLIPModel.from_pretrained(towers[1]).eval()
    processor = CLIPImageProcessor.from_pretrained(towers[1])
    names = [name for name, _ in DETECTED_COLOURS]
    hits = 0
    for i in range(12):
        rng = np.random.default_rng([7, i])
        clip = sample_billiards_clip(rng, size=64)
        frames = render_billiards_clip(clip, rng)
        pixels = processor(images=[frames[0], frames[-1]], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            embeds = model.get_image_features(pixel_values=pixels)
        embeds = getattr(embeds, "pooler_output", embeds)
        drop = (embeds[0] - embeds[1])[6 : 6 + len(names)]
        hits += names[int(drop.argmax())] == clip.colours[clip.pocketed]
    assert hits >= 8, hits  # 11 of these 12 clips; chance 1/8


def test_video_tower_keeps_patch_tokens(towers):
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(towers[0])
    assert model.config.vision_config.num_hidden_layers == 1
    out = model.vision_model(pixel_values=torch.zeros(1, 3, 64, 64)).last_hidden_state
    assert out.shape == (1, 1 + 16 * 16, 26)
