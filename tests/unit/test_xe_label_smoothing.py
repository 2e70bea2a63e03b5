"""Seed 000's XE label smoothing (0.1) with the host's sft trainer on a vision-language model: the smoothed loss is
the reference smoothed cross-entropy over the SHIFTED labels (-100 ignored), not the unshifted one transformers 5.6
computes for model classes outside its causal-LM list."""

import numpy as np
import pytest
import torch


def smoothed_ce(logits, labels, eps, shift=1):
    r"""Naive reference: mean over the predicted tokens t (labels[t+shift] != -100) of
    (1 - eps) * -log p(labels[t+shift]) + eps * mean_v -log p(v), from the logits at position t."""
    total, count = 0.0, 0
    logp = torch.log_softmax(logits.double(), dim=-1)
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - shift):
            target = int(labels[b, t + shift])
            if target == -100:
                continue
            total += (1 - eps) * -logp[b, t, target] + eps * -logp[b, t].mean()
            count += 1
    return total / count


@pytest.fixture(scope="module")
def vlm_batch(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from llamafactory_video.testing.tiny_model import build_tiny_model

    path = build_tiny_model(str(tmp_path_factory.mktemp("ls") / "model"), arch="qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():  # peaked distributions (a random model's are near uniform, where smoothing changes little)
        model.lm_head.weight.mul_(40.0)
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8) for _ in range(2)]
    texts = [
        "<|vision_start|><|video_pad|><|vision_end|>describe it<|im_end|>a red circle moves left<|im_end|>",
        "<|vision_start|><|video_pad|><|vision_end|>what happens<|im_end|>the blue square goes up<|im_end|>",
    ]
    processor.tokenizer.padding_side = "right"
    batch = dict(processor(text=texts, videos=videos, padding=True, return_tensors="pt"))
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100  # padding
    prompt_end = [int((row == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")).nonzero()[0]) for row in labels]
    for i, end in enumerate(prompt_end):
        labels[i, : end + 1] = -100  # prompt (video included)
    # caption labels = the model's own next-token argmax: confident targets, where smoothing moves the loss a lot
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)
    labels[:, 1:] = torch.where(labels[:, 1:] == -100, labels[:, 1:], predicted[:, :-1])
    batch["labels"] = labels
    return {"model": model, "processor": processor, "batch": batch, "path": path}


def host_trainer(model, processor, tmp_path, factor):
    from llamafactory.hparams import FinetuningArguments
    from llamafactory.hparams.training_args import TrainingArguments
    from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer

    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], label_smoothing_factor=factor
    )
    return CustomSeq2SeqTrainer(
        model=model, args=args, finetuning_args=FinetuningArguments(), processor=processor,
        tokenizer=processor.tokenizer,
    )


def test_label_smoothing_shifts_labels_on_a_vision_language_model(vlm_batch, tmp_path):
    model, processor, batch = vlm_batch["model"], vlm_batch["processor"], vlm_batch["batch"]
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    with torch.no_grad():
        plain = float(host_trainer(model, processor, tmp_path, 0.0).compute_loss(model, dict(batch)))
        smoothed = float(host_trainer(model, processor, tmp_path, 0.1).compute_loss(model, dict(batch)))
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    labels = batch["labels"]
    assert plain == pytest.approx(float(smoothed_ce(logits, labels, 0.0)), rel=1e-4)  # the model's own shifted CE
    assert smoothed == pytest.approx(float(smoothed_ce(logits, labels, 0.1)), rel=1e-4)
    assert smoothed > 2 * plain
    assert abs(smoothed - float(smoothed_ce(logits, labels, 0.1, shift=0))) > 0.05 * plain  # not logits t vs label t


def test_smoothing_ignores_minus_100_labels(vlm_batch, tmp_path):
    model, processor, batch = vlm_batch["model"], vlm_batch["processor"], vlm_batch["batch"]
    trainer = host_trainer(model, processor, tmp_path, 0.1)
    changed = dict(batch)
    labels = batch["labels"].clone()  # the last caption tokens of sample 0 ignored: they no longer count
    labels[0, -3:] = -100
    changed["labels"] = labels
    with torch.no_grad():
        loss = float(trainer.compute_loss(model, changed))
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert loss == pytest.approx(float(smoothed_ce(logits, labels, 0.1)), rel=1e-4)


def test_host_contract_of_the_label_shift_patch():
    r"""What host/label_smoothing.py assumes of transformers: compute_loss picks the label shift by looking the model's
    class name up in the module global it replaces; every image-text-to-text type it adds is decoder-only."""
    import inspect

    import transformers.trainer as trainer_module
    from transformers import CONFIG_MAPPING

    from llamafactory_video.host.label_smoothing import MAPPING_NAME, decoder_only_vlm_names

    source = inspect.getsource(trainer_module.Trainer.compute_loss)
    assert f"model_name in {MAPPING_NAME}.values()" in source and "shift_labels=True" in source
    names = set(getattr(trainer_module, MAPPING_NAME).values())
    assert {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration", "Qwen2ForCausalLM"} <= names
    for model_type in decoder_only_vlm_names():
        config = CONFIG_MAPPING[model_type]()
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        assert not getattr(config, "is_encoder_decoder", False), model_type
        assert not getattr(text, "is_encoder_decoder", False), model_type
