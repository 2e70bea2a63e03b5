"""InternVL and LLaVA-NeXT-Video: the tiny builders (padded / exact embeddings) load with the stock LlamaFactory
loader and the family's template, and, through the host's plugin and collator on real encoded videos (two videos
of different lengths in one message, and one in the second user turn), each video's placeholders = its frames x
tokens per frame, and all placeholders = the visual features the model scatters (its forward would raise
otherwise)."""

import copy
import os

import numpy as np
import pytest
import torch

from llamafactory_video.model.families import FAMILIES, family_for, family_for_template
from llamafactory_video.testing.synthetic_videos import write_video
from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS


SHARED_VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "videos")
CASES = [(family, layout) for family in ("intern_vl", "llava_next_video") for layout in ("padded", "exact")]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    r"""The shared 9.7 s and 5.0 s mp4 files and a synthetic 1.5 s webm."""
    clip = np.random.default_rng(0).integers(0, 255, size=(6, 64, 96, 3), dtype=np.uint8)
    webm = str(tmp_path_factory.mktemp("beyond_videos") / "short.webm")
    write_video(clip, webm, fps=4)
    return [os.path.join(SHARED_VIDEOS, "1.mp4"), os.path.join(SHARED_VIDEOS, "4.mp4"), webm]


def _load(model_dir: str, template: str):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    model_args, data_args, _, finetuning_args, _ = get_train_args(
        {
            "stage": "sft",
            "model_name_or_path": model_dir,
            "do_train": True,
            "finetuning_type": "full",
            "template": template,
            "dataset": "unused",
            "output_dir": "/tmp/lfv-unused",
            "video_maxlen": 8,
            "video_fps": 1.0,
            "report_to": "none",
        }
    )
    module = load_tokenizer(model_args)
    template_obj = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    model = load_model(module["tokenizer"], model_args, finetuning_args, is_trainable=False)
    return module, template_obj, model


@pytest.mark.parametrize("family_name,layout", CASES, ids=[f"{f}-{v}" for f, v in CASES])
def test_loads_and_placeholders_equal_features(family_name, layout, videos, tmp_path) -> None:
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    family = FAMILIES[family_name]
    model_dir = FAMILY_BUILDERS[family.tiny_builder](str(tmp_path / family_name), vocab_layout=layout)
    module, template, model = _load(model_dir, family.templates[0])
    tokenizer, processor = module["tokenizer"], module["processor"]
    assert family_for(model) is family and family_for_template(family.templates[0]) is family
    rows = model.get_input_embeddings().weight.shape[0]
    assert (rows == len(tokenizer)) if layout == "exact" else (rows >= len(tokenizer) + 64)

    messages = [
        {"role": "user", "content": "<video><video>What changes?"},
        {"role": "assistant", "content": "The man plays."},
        {"role": "user", "content": "And here <video>?"},
        {"role": "assistant", "content": "A square moves."},
    ]
    expanded = template.mm_plugin.process_messages(messages, [], videos, [], processor)
    pairs = template.encode_multiturn(tokenizer, expanded)
    ids, labels = [], []
    for prompt, answer in pairs:
        ids += prompt + answer
        labels += [-100] * len(prompt) + answer
    feature = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels, "images": [], "videos": videos,
               "audios": []}
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, processor=processor,
                                                  tokenizer=tokenizer)
    batch = collator([feature])

    config = model.config
    token_id = family.video_token_id(config)
    frames = [len(v) for v in template.mm_plugin._regularize_videos(
        videos, image_max_pixels=processor.video_max_pixels, image_min_pixels=processor.video_min_pixels,
        video_fps=processor.video_fps, video_maxlen=processor.video_maxlen)["videos"]]
    assert len(set(frames)) == 3  # three different lengths
    if family_name == "intern_vl":
        per_frame = int(config.image_seq_length)
        texts = [m["content"] for m in expanded if m["role"] == "user"]
        assert sum(t.count("<img>") for t in texts) == sum(frames)  # one <img>...</img> run per frame
        with torch.no_grad():
            features = model.model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
        n_features = features.shape[0] * features.shape[1]  # (frames, tokens per frame, D)
    else:
        per_frame = family.tokens_per_frame(config)
        with torch.no_grad():
            features = model.model.get_video_features(pixel_values=batch["pixel_values_videos"]).pooler_output
        n_features = sum(f.flatten(0, 1).shape[0] for f in features)
    counts = [m["content"].count(tokenizer.convert_ids_to_tokens(token_id)) for m in expanded]
    assert sum(counts) == per_frame * sum(frames)  # placeholders = frames x tokens per frame, per video
    assert counts[0] == per_frame * (frames[0] + frames[1]) and counts[2] == per_frame * frames[2]
    assert int((batch["input_ids"] == token_id).sum()) == n_features == per_frame * sum(frames)
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("family_name", ["intern_vl", "llava_next_video"])
def test_repeated_prompts_see_their_own_frames(family_name, videos, tmp_path) -> None:
    r"""``scst``'s K samples per prompt: after :meth:`repeat_visual_inputs` (+ rows repeated), row ``b * K + k``
    of a batch of two samples with videos of different lengths gives the logits of sample ``b`` run alone."""
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    family = FAMILIES[family_name]
    model_dir = FAMILY_BUILDERS[family.tiny_builder](str(tmp_path / family_name))
    module, template, model = _load(model_dir, family.templates[0])
    tokenizer, processor = module["tokenizer"], module["processor"]
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, processor=processor,
                                                  tokenizer=tokenizer)
    features = []
    for video in (videos[0], videos[2]):  # 8 and 6 frames
        messages = [{"role": "user", "content": "<video>Describe."}, {"role": "assistant", "content": "A square."}]
        expanded = template.mm_plugin.process_messages(messages, [], [video], [], processor)
        prompt, answer = template.encode_oneturn(tokenizer, expanded)
        ids = prompt + answer
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(ids),
                         "images": [], "videos": [video], "audios": []})
    singles = [collator([copy.deepcopy(f)]) for f in features]  # the collator pops the media keys
    batch = collator(copy.deepcopy(features))
    k = 3
    repeated = {key: v.repeat_interleave(k, dim=0) for key, v in batch.items()
                if key in ("input_ids", "attention_mask")}
    repeated.update(family.repeat_visual_inputs(batch, k, model.config))
    with torch.no_grad():
        logits = model(**repeated).logits
        for b, single in enumerate(singles):
            inputs = {key: v for key, v in single.items() if isinstance(v, torch.Tensor) and key != "labels"}
            alone = model(**inputs).logits[0]
            n = alone.shape[0]
            for j in range(k):
                torch.testing.assert_close(logits[b * k + j, :n], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family_name", ["intern_vl", "llava_next_video"])
def test_pooling_and_fastslow_refused_before_the_model_loads(family_name, tmp_path) -> None:
    r"""``video_token_pool_stride`` stops in ``load_tokenizer`` (no model loaded yet) and ``fastslow_ar`` at its
    template, both naming the family and the families that do serve them."""
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    from llamafactory_video.model.families import FamilyNotSupported, require, supported_families

    family = FAMILIES[family_name]
    model_dir = FAMILY_BUILDERS[family.tiny_builder](str(tmp_path / family_name))
    model_args, *_ = get_train_args(
        {"stage": "sft", "model_name_or_path": model_dir, "do_train": True, "finetuning_type": "lora",
         "template": family.templates[0], "dataset": "unused", "output_dir": str(tmp_path / "out"),
         "report_to": "none", "video_token_pool_stride": 2}
    )
    with pytest.raises(FamilyNotSupported) as err:
        load_tokenizer(model_args)
    assert family_name in str(err.value)
    assert all(name in str(err.value) for name in supported_families("video_token_pool_stride"))
    for template in family.templates:
        with pytest.raises(FamilyNotSupported, match=family_name):
            require("fastslow_ar", template)


@pytest.mark.parametrize("family_name", ["intern_vl", "llava_next_video"])
def test_scst_beam_search_refused_before_anything_loads(family_name, tmp_path) -> None:
    r"""transformers' beam expansion would give the beams other samples' frames on these families."""
    from llamafactory.hparams import get_train_args

    from llamafactory_video.train.scst.workflow import run_scst

    family = FAMILIES[family_name]
    args = get_train_args(
        {"stage": "scst", "model_name_or_path": str(tmp_path / "never-loaded"), "do_train": True,
         "finetuning_type": "lora", "template": family.templates[0], "dataset": "unused",
         "output_dir": str(tmp_path / "out"), "report_to": "none", "scst_baseline": "beam", "scst_beam_width": 3}
    )
    with pytest.raises(ValueError, match=f"{family_name}.*beam search"):
        run_scst(*args)
