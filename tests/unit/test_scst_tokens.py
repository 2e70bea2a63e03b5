"""SCST on the Qwen2-VL family: ``mm_token_type_ids`` / M-RoPE positions of the prompt + caption pass, and the
special / placeholder tokens every generate call of the stage suppresses (tiny Qwen2-VL and Qwen2.5-VL)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llamafactory_video.testing.tiny_model import QWEN2_VL_SPECIAL_TOKENS
from llamafactory_video.train.scst.tokens import mm_token_type_ids, suppressed_token_ids


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def tiny(request, tmp_path_factory) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainingArguments

    from llamafactory_video.testing.tiny_model import build_tiny_model
    from llamafactory_video.train.scst.trainer import ScstTrainer

    path = build_tiny_model(str(tmp_path_factory.mktemp(request.param) / "model"), arch=request.param)
    processor = AutoProcessor.from_pretrained(path)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager").eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    finetuning_args = SimpleNamespace(
        scst_max_new_tokens=6,
        scst_temperature=1.0,
        scst_top_p=1.0,
        scst_top_k=0,
        scst_num_samples=3,
        scst_baseline="beam",
        scst_beam_width=2,
    )
    trainer = ScstTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path_factory.mktemp("out")), use_cpu=True, report_to=[]),
        finetuning_args=finetuning_args,
        reward_fn=None,
        eval_gen_kwargs={"do_sample": False, "num_beams": 1, "max_new_tokens": 6},
        eos_token_ids=eos,
        tokenizer=tokenizer,
        processor=processor,
    )
    return {
        "arch": request.param,
        "model": model,
        "processor": processor,
        "tokenizer": tokenizer,
        "eos": eos,
        "trainer": trainer,
    }


def _prompt_batch(processor, texts=("describe the clip", "what happens in this short video, in one sentence")):
    r"""Left-padded prompts of different lengths, each with its own video (different sizes and frame counts)."""
    rng = np.random.default_rng(0)
    videos = [
        rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8),
        rng.integers(0, 255, (2, 84, 56, 3), dtype=np.uint8),
    ]
    prompts = [
        f"<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>{t}<|im_end|>\n<|im_start|>assistant\n"
        for t in texts
    ]
    batch = processor(text=prompts, videos=videos, padding=True, return_tensors="pt", do_sample_frames=False)
    return dict(batch)


def _ids(tokenizer, tokens):
    return {tokenizer.convert_tokens_to_ids(t) for t in tokens}


# --------------------------------------------------------------------------------------------------- suppression
def test_suppression_covers_every_special_and_placeholder_token(tiny):
    tokenizer, processor, model = tiny["tokenizer"], tiny["processor"], tiny["model"]
    suppressed = set(tiny["trainer"].suppress_token_ids)
    specials = _ids(tokenizer, QWEN2_VL_SPECIAL_TOKENS) - set(tiny["eos"])
    assert specials <= suppressed
    cfg = model.config
    placeholders = {processor.image_token_id, processor.video_token_id, cfg.image_token_id, cfg.video_token_id}
    placeholders |= {cfg.vision_start_token_id, cfg.vision_end_token_id}
    assert placeholders <= suppressed
    assert set(tokenizer.all_special_ids) - set(tiny["eos"]) <= suppressed
    vocab = model.get_output_embeddings().weight.shape[0]
    assert set(range(len(tokenizer), vocab)) <= suppressed  # spare embedding rows: no token, decode to nothing
    assert not suppressed & set(tiny["eos"])  # the end token stays allowed
    assert all(i in suppressed for i in tokenizer.added_tokens_decoder if i not in tiny["eos"])
    ordinary = set(range(len(tokenizer))) - set(tokenizer.added_tokens_decoder)
    assert not suppressed & ordinary
    assert suppressed == set(suppressed_token_ids(tokenizer, tiny["eos"], processor, cfg, vocab))


def test_suppression_keeps_non_special_added_tokens_and_stop_words():
    class Tok:
        all_special_ids = [5, 6]
        added_tokens_decoder = {5: SimpleNamespace(special=True), 7: SimpleNamespace(special=False)}
        unk_token_id = None

        def __len__(self):
            return 8

        def convert_tokens_to_ids(self, token):
            return {"<v>": 4}.get(token)

    got = suppressed_token_ids(Tok(), keep_ids=[6], processor=SimpleNamespace(video_token="<v>"), vocab_size=10)
    assert got == [4, 5, 8, 9]


def test_biased_model_never_emits_placeholders_in_any_generate_call(tiny):
    trainer, model = tiny["trainer"], tiny["model"]
    video_pad = model.config.video_token_id
    suppressed = torch.tensor(trainer.suppress_token_ids)
    bias = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bias[suppressed] = 50.0
    bias[video_pad] = 100.0  # the model wants <|video_pad|> most, then every other special token
    handle = model.get_output_embeddings().register_forward_hook(lambda m, i, out: out + bias)
    try:
        prompt = trainer._model_inputs(_prompt_batch(tiny["processor"]))
        torch.manual_seed(0)
        unsuppressed = model.generate(**prompt, **{**trainer.sample_kwargs, "suppress_tokens": None})
        assert (unsuppressed[:, prompt["input_ids"].shape[1] :] == video_pad).all()  # the bias works
        calls = {
            "sample": trainer.sample_kwargs,
            "beam baseline": trainer.baseline_kwargs,
            "greedy baseline": dict(trainer.baseline_kwargs, num_beams=1),
            "eval / predict": dict(trainer.eval_gen_kwargs, eos_token_id=tiny["eos"], num_return_sequences=1),
        }
        for name, kwargs in calls.items():
            torch.manual_seed(0)
            tokens = trainer._generate(model, prompt, **kwargs)
            assert tokens.numel() > 0, name
            assert not torch.isin(tokens, suppressed).any(), (name, tokens)
        # the sampled captions go through the teacher-forced pass (it failed on a sampled <|video_pad|>)
        from llamafactory_video.losses.scst import first_eos_mask

        k = trainer.finetuning_args.scst_num_samples
        sampled = trainer._generate(model, prompt, **trainer.sample_kwargs)
        forward = trainer._teacher_forced_inputs(prompt, sampled, first_eos_mask(sampled, tiny["eos"]), k)
        with torch.no_grad():
            model(**forward, use_cache=False)
    finally:
        handle.remove()


# --------------------------------------------------------------------------------------------------- M-RoPE inputs
def test_mm_token_type_ids_match_processor(tiny):
    processor, trainer = tiny["processor"], tiny["trainer"]
    batch = _prompt_batch(processor)
    ids = batch["input_ids"]
    assert trainer.use_mm_token_types
    ours = trainer._model_inputs(batch)["mm_token_type_ids"]
    # the processor's own ids, per unpadded row
    for row, mask, types in zip(ids, batch["attention_mask"], ours):
        reference = processor.create_mm_token_type_ids([row[mask.bool()].tolist()])[0]
        assert types[mask.bool()].tolist() == list(reference)
    assert (
        ours == mm_token_type_ids(ids, tiny["model"].config.image_token_id, tiny["model"].config.video_token_id)
    ).all()
    assert set(ours.unique().tolist()) == {0, 2}


def test_teacher_forced_positions_and_logits_equal_generate(tiny):
    r"""Prompt + caption: the positions the model derives from our ``mm_token_type_ids`` equal the host collator's
    (``_compute_rope_position_ids``, what SFT trains with), and the teacher-forced logits of the caption tokens equal
    the logits ``generate`` produced them with (same M-RoPE positions, left padding included)."""
    from llamafactory.data.collator import MultiModalDataCollatorForSeq2Seq

    from llamafactory_video.losses.scst import first_eos_mask

    trainer, model, processor = tiny["trainer"], tiny["model"], tiny["processor"]
    prompt = trainer._model_inputs(_prompt_batch(processor))
    torch.manual_seed(0)
    out = model.generate(
        **prompt,
        **dict(trainer.baseline_kwargs, num_beams=1, suppress_tokens=trainer.suppress_token_ids, max_new_tokens=6),
        output_logits=True,
        return_dict_in_generate=True,
    )
    sampled = out.sequences[:, prompt["input_ids"].shape[1] :]
    mask = first_eos_mask(sampled, tiny["eos"])
    forward = trainer._teacher_forced_inputs(prompt, sampled, mask, 1)

    core = model.model
    extra = {"second_per_grid_ts": forward["second_per_grid_ts"]} if "second_per_grid_ts" in forward else {}
    positions = core.get_rope_index(
        forward["input_ids"],
        mm_token_type_ids=forward["mm_token_type_ids"],
        video_grid_thw=forward["video_grid_thw"],
        attention_mask=forward["attention_mask"],
        **extra,
    )[0]
    host = SimpleNamespace(get_rope_func=core.get_rope_index, model=model, processor=processor)
    features = {"input_ids": forward["input_ids"], "attention_mask": forward["attention_mask"]}
    mm_inputs = {"video_grid_thw": forward["video_grid_thw"], **extra}
    MultiModalDataCollatorForSeq2Seq._compute_rope_position_ids(host, features, mm_inputs)
    keep = forward["attention_mask"].bool()
    assert torch.equal(positions[:, keep], features["position_ids"][:, keep])
    # caption tokens continue from the prompt's largest position, one step each
    n_prompt = prompt["input_ids"].shape[1]
    for row in range(sampled.shape[0]):
        start = positions[:, row, :n_prompt][:, prompt["attention_mask"][row].bool()].max() + 1
        n = int(mask[row].sum())
        expected = torch.arange(start, start + n).expand(3, n)
        assert torch.equal(positions[:, row, n_prompt : n_prompt + n], expected)

    with torch.no_grad():
        logits = model(**forward, use_cache=False, logits_to_keep=sampled.shape[1] + 1).logits[:, :-1]
    generated = torch.stack(out.logits, dim=1)
    valid = mask.bool()
    torch.testing.assert_close(logits[valid], generated[valid], atol=1e-4, rtol=1e-4)
