"""`scst_vision_pass: once` against `per_call` on tiny models of the families the stage serves: each video is
encoded once per step (a hook counts the vision tower's calls: 1 instead of samples + baseline + teacher-forced
pass), the K samples and the greedy baseline are the same tokens, and the loss and the gradients of every
parameter (vision tower and projector included: full fine-tuning) are the same within float tolerance."""

import copy

import numpy as np
import pytest
import torch

from llamafactory_video.model.families import FAMILIES
from llamafactory_video.testing.synthetic_videos import write_video
from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS


CASES = [("qwen2_vl", "qwen2_5_vl"), ("qwen3_vl", "qwen3_vl"), ("llava_next_video", "llava_next_video"),
         ("intern_vl", "intern_vl")]


def _load(model_dir: str, template: str):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_model, load_tokenizer

    model_args, data_args, _, finetuning_args, _ = get_train_args(
        {
            "stage": "sft", "model_name_or_path": model_dir, "do_train": True, "finetuning_type": "full",
            "template": template, "dataset": "unused", "output_dir": "/tmp/lfv-unused", "video_maxlen": 4,
            "video_fps": 2.0, "report_to": "none",
        }
    )
    module = load_tokenizer(model_args)
    template_obj = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    model = load_model(module["tokenizer"], model_args, finetuning_args, is_trainable=False)
    return module, template_obj, model


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    r"""Two synthetic clips of the same length (so the prompts need no padding), different content."""
    out = tmp_path_factory.mktemp("vision_pass_videos")
    paths = []
    for seed in (0, 1):
        clip = np.random.default_rng(seed).integers(0, 255, size=(8, 64, 64, 3), dtype=np.uint8)
        paths.append(str(out / f"clip{seed}.webm"))
        write_video(clip, paths[-1], fps=4)
    return paths


def _batch(module, template, model, videos):
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask

    tokenizer, processor = module["tokenizer"], module["processor"]
    features = []
    for video, text in zip(videos, ("Describe.", "What happens?")):
        messages = [{"role": "user", "content": f"<video>{text}"}, {"role": "assistant", "content": ""}]
        expanded = template.mm_plugin.process_messages(messages, [], [video], [], processor)
        prompt, _ = template.encode_oneturn(tokenizer, expanded)
        features.append({"input_ids": prompt, "attention_mask": [1] * len(prompt), "labels": [-100] * len(prompt),
                         "images": [], "videos": [video], "audios": []})
    tokenizer.padding_side = "left"
    collator = SFTDataCollatorWith4DAttentionMask(template=template, model=model, processor=processor,
                                                  tokenizer=tokenizer)
    batch = collator(copy.deepcopy(features))
    return dict(batch, references=[["a red ball"], ["two squares"]], sample_keys=["d#0", "d#1"],
                categories=["", ""])


def _trainer(model, module, tmp_path, route, baseline):
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from llamafactory_video.rewards.registry import build_reward_set
    from llamafactory_video.train.scst.trainer import ScstTrainer

    tokenizer = module["tokenizer"]
    args = SimpleNamespace(
        scst_max_new_tokens=5, scst_temperature=1.0, scst_top_p=1.0, scst_top_k=0, scst_num_samples=3,
        scst_baseline=baseline, scst_beam_width=1, scst_kl_coef=0.0, scst_kl_reference="auto",
        scst_vision_pass=route,
    )
    eos = [tokenizer.eos_token_id]
    return ScstTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / route), use_cpu=True, report_to=[]),
        finetuning_args=args,
        reward_fn=build_reward_set([("length", 1.0)], length_target=3, length_slope=1.0),
        eval_gen_kwargs={"do_sample": False, "max_new_tokens": 5},
        eos_token_ids=eos,
        tokenizer=tokenizer,
        processor=module["processor"],
    )


def _step(trainer, model, batch, family):
    r"""One ``compute_loss`` + backward; returns the loss, the rollout, every gradient and the tower's calls."""
    calls, rollouts = [], []
    handle = family.vision_tower(model).register_forward_hook(lambda *a: calls.append(1))
    rollout_of = trainer._rollout
    trainer._rollout = lambda *a, **k: rollouts.append(rollout_of(*a, **k)) or rollouts[-1]
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    try:
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
    finally:
        handle.remove()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), rollouts[0].sampled, grads, len(calls)


@pytest.fixture(scope="module", params=CASES, ids=[b for _, b in CASES])
def loaded(request, videos, tmp_path_factory):
    r"""One tiny model per family (full fine-tuning: every parameter trains) and a batch of two prompts."""
    family_name, builder = request.param
    family = FAMILIES[family_name]
    tmp = tmp_path_factory.mktemp(builder)
    module, template, model = _load(FAMILY_BUILDERS[builder](str(tmp / "model")), family.templates[0])
    for p in model.parameters():
        p.requires_grad_(True)  # the tower and the projector get gradients too
    return family, module, model, _batch(module, template, model, videos), tmp


def test_once_equals_per_call(loaded):
    family, module, model, batch, tmp_path = loaded
    model.train()
    results = {}
    for route in ("per_call", "once"):
        trainer = _trainer(model, module, tmp_path, route, "greedy")
        results[route] = _step(trainer, model, batch, family)
    (loss_a, sampled_a, grads_a, calls_a), (loss_b, sampled_b, grads_b, calls_b) = results["per_call"], results["once"]
    assert calls_a == 3 and calls_b == 1  # samples + baseline + teacher-forced pass -> one pass
    assert torch.equal(sampled_a, sampled_b)
    assert torch.isfinite(loss_a) and loss_a.item() != 0.0
    torch.testing.assert_close(loss_b, loss_a, atol=1e-5, rtol=1e-4)
    assert grads_a.keys() == grads_b.keys()
    tower = {n for n, _ in family.vision_tower(model).named_parameters()}
    assert any(name.endswith(t) for name in grads_a for t in tower)  # the tower has gradients
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, atol=1e-5, rtol=1e-3, msg=name)


def test_sampling_logprobs_equal_teacher_forced_logprobs(loaded):
    r"""What the stage's PPO ``old`` log-probs would be if taken from the sampling pass (``generate``'s raw
    ``output_logits``, from the features computed once, KV cache) equals the teacher-forced pass they are taken
    from (prompt + caption in one forward, same features) within float tolerance: the two routes of the new
    vision pass place positions and visual features alike."""
    from llamafactory_video.losses.scst import first_eos_mask

    family, module, model, batch, tmp_path = loaded
    trainer = _trainer(model, module, tmp_path, "once", "greedy")
    prompt = trainer._model_inputs(dict(batch))
    model.eval()
    k = 3
    with torch.no_grad():
        vision = trainer._vision_once(model, prompt)
        torch.manual_seed(0)
        kwargs = dict(trainer.sample_kwargs, suppress_tokens=trainer.suppress_token_ids, output_logits=True,
                      return_dict_in_generate=True)
        out = vision.generate(model, prompt, k, **kwargs)
        sampled = out.sequences[:, prompt["input_ids"].shape[1]:]
        raw = torch.stack(out.logits, dim=1).float()  # (B*K, G, V), before temperature / top-p / suppression
        from_sampling = torch.gather(torch.log_softmax(raw, -1), 2, sampled.unsqueeze(-1)).squeeze(-1)
        mask = first_eos_mask(sampled, trainer.eos_token_ids)
        forward = trainer._teacher_forced_inputs(prompt, sampled, mask, k, vision)
        call, context = vision.forward_inputs(forward, k)
        with context():
            logits = model(**call, use_cache=False, logits_to_keep=sampled.shape[1] + 1).logits[:, :-1].float()
        teacher_forced = torch.gather(torch.log_softmax(logits, -1), 2, sampled.unsqueeze(-1)).squeeze(-1)
    assert mask.sum() >= 2 * k
    valid = mask.bool()
    torch.testing.assert_close(from_sampling[valid], teacher_forced[valid], atol=2e-4, rtol=1e-4)


def test_beam_baseline_from_the_features_equals_per_call(loaded):
    r"""The ``beam`` baseline (Qwen families; the others refuse it before loading) under ``once`` decodes the same
    captions as under ``per_call`` (it encodes the pixels itself: transformers' beam expansion of Qwen inputs counts
    videos from the placeholder embeddings)."""
    family, module, model, batch, tmp_path = loaded
    if "scst" not in family.stages or family.name not in ("qwen2_vl", "qwen3_vl"):
        pytest.skip("scst refuses the beam baseline for this family")
    captions = {}
    for route in ("per_call", "once"):
        trainer = _trainer(model, module, tmp_path, route, "beam")
        trainer.baseline_kwargs["num_beams"] = 3
        prompt = trainer._model_inputs(dict(batch))
        vision = trainer._vision_once(model.eval(), prompt)
        captions[route] = trainer._generate(model, prompt, vision, **trainer.baseline_kwargs)
    assert captions["once"].shape[0] == 2
    assert torch.equal(captions["once"], captions["per_call"])
