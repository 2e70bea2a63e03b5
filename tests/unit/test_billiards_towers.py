"""The hand-initialised colour towers of the HiLight billiards demo (``testing/billiards_towers.py``): the frame
tower loads as a plain CLIP checkpoint and its embeddings name the pocketed ball (the detector channel that drops
most between the first and the last frame)."""

import numpy as np
import torch


def test_frame_tower_sees_which_ball_disappears(tmp_path):
    from transformers import CLIPImageProcessor, CLIPModel

    from llamafactory_video.testing.billiards_towers import DETECTED_COLOURS, build_colour_tower
    from llamafactory_video.testing.synthetic_billiards import render_billiards_clip, sample_billiards_clip

    tower = build_colour_tower(tmp_path / "frame", "frame")
    model = CLIPModel.from_pretrained(tower).eval()
    processor = CLIPImageProcessor.from_pretrained(tower)
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

