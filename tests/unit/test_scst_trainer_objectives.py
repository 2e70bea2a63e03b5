"""The scst trainer's objective pieces on a tiny Qwen2.5-VL: the KL reference (`base` = the LoRA model with its
adapter disabled, `frozen_copy` = the starting model, unchanged by later updates of the policy) and the rollout
reused by PPO-style updates of one batch."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch


def _args(reference, **overrides):
    return SimpleNamespace(**{**dict(
        scst_max_new_tokens=4,
        scst_temperature=1.0,
        scst_top_p=1.0,
        scst_top_k=0,
        scst_num_samples=2,
        scst_baseline="grpo",
        scst_beam_width=1,
        scst_kl_coef=0.1,
        scst_kl_reference=reference,
    ), **overrides})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from llamafactory_video.testing.tiny_model import build_tiny_model

    path = build_tiny_model(str(tmp_path_factory.mktemp("kl") / "model"), arch="qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 255, (2, 56, 56, 3), dtype=np.uint8) for _ in range(2)]
    prompts = [
        f"<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>{t}<|im_end|>\n<|im_start|>assistant\n"
        for t in ("describe the clip", "what happens here")
    ]
    batch = dict(processor(text=prompts, videos=videos, padding=True, return_tensors="pt", do_sample_frames=False))

    def load():
        return AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager").eval()

    return {"path": path, "processor": processor, "batch": batch, "load": load, "tmp": tmp_path_factory}


def _trainer(model, tiny, reference, reward_fn=None, **overrides):
    from transformers import TrainingArguments

    from llamafactory_video.train.scst.trainer import ScstTrainer

    tokenizer = tiny["processor"].tokenizer
    return ScstTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tiny["tmp"].mktemp("out")), use_cpu=True, report_to=[]),
        finetuning_args=_args(reference, **overrides),
        reward_fn=reward_fn,
        eval_gen_kwargs={"do_sample": False, "max_new_tokens": 4},
        eos_token_ids=[tokenizer.convert_tokens_to_ids("<|im_end|>")],
        tokenizer=tokenizer,
        processor=tiny["processor"],
    )


def _logprobs(model, forward, sampled):
    with torch.no_grad():
        logits = model(**forward, use_cache=False, logits_to_keep=sampled.shape[1] + 1).logits[:, :-1].float()
    return torch.gather(torch.log_softmax(logits, -1), 2, sampled.unsqueeze(-1)).squeeze(-1)


def _forward(trainer, tiny):
    prompt = trainer._model_inputs(dict(tiny["batch"]))
    sampled = torch.randint(10, 200, (4, 3), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 3)
    return trainer._teacher_forced_inputs(prompt, sampled, mask, 2), sampled


def test_base_reference_disables_the_lora_adapter(tiny):
    from peft import LoraConfig, get_peft_model

    base = tiny["load"]()
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # a non-zero adapter
    model = get_peft_model(tiny["load"](), config)
    trainer = _trainer(model, tiny, "auto")
    assert trainer.kl_reference == "base" and trainer.ref_model is None
    forward, sampled = _forward(trainer, tiny)
    ref = trainer._reference_logprobs(trainer.model, forward, sampled)
    assert torch.allclose(ref, _logprobs(base, forward, sampled), atol=1e-5)
    assert not torch.allclose(ref, _logprobs(model, forward, sampled), atol=1e-3)  # the adapter changes the policy


def test_frozen_copy_keeps_the_starting_policy(tiny):
    model = tiny["load"]()
    trainer = _trainer(model, tiny, "auto")
    assert trainer.kl_reference == "frozen_copy" and trainer.ref_model is not None
    forward, sampled = _forward(trainer, tiny)
    start = _logprobs(model, forward, sampled)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # an update of the policy
    ref = trainer._reference_logprobs(trainer.model, forward, sampled)
    assert torch.allclose(ref, start, atol=1e-5)
    assert not torch.allclose(ref, _logprobs(model, forward, sampled), atol=1e-3)
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    with pytest.raises(ValueError, match="no adapter"):
        _trainer(tiny["load"](), tiny, "base")


def test_ppo_updates_reuse_the_rollout_of_their_batch(tiny):
    from llamafactory_video.rewards.registry import build_reward_set

    model = tiny["load"]()
    rewards = build_reward_set([("length", 1.0)], length_target=2, length_slope=1.0)
    trainer = _trainer(
        model, tiny, "auto", rewards, scst_kl_coef=0.0, scst_objective="ppo_clip", scst_updates_per_batch=2
    )
    inputs = dict(tiny["batch"], references=[["a b"], ["c d"]], sample_keys=["d#0", "d#1"], categories=["", ""])
    model.train()
    torch.manual_seed(0)
    first = trainer.compute_loss(model, inputs)
    rollout = trainer.rollouts.store[("d#0", "d#1")]
    assert rollout.uses == 1 and rollout.old_logprobs is not None
    # at the sampling parameters the clipped loss is -mean(A); GRPO advantages have mean 0 per video
    assert first.item() == pytest.approx(-rollout.advantages.mean().item(), abs=1e-5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    second = trainer.compute_loss(model, inputs)  # the same samples, a new policy: no new rollout
    assert ("d#0", "d#1") not in trainer.rollouts.store and rollout.uses == 2
    assert torch.isfinite(second) and second.item() != first.item()
    assert {"rewards/length/mean", "clip_fraction", "ratio_mean"} <= set(trainer._step_metrics)
    ratios = trainer._step_metrics["ratio_mean"]
    assert ratios[0] == pytest.approx(1.0, abs=1e-5) and ratios[1] != pytest.approx(1.0, abs=1e-6)
