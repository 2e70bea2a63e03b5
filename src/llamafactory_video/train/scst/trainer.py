"""Trainer of the ``scst`` stage (seed 000, stage 2): self-critical sequence training of a video captioner.

Each step, for B videos: K captions are sampled (no gradient, eval mode, the stage's own sampling settings
passed explicitly so the checkpoint's generation_config cannot override them), a baseline is decoded
(greedy / beam) or taken as the mean reward of the other samples, every caption is rewarded against ALL the
video's references, and the policy gradient ``-(r - b) * mean_t log p`` is taken through one teacher-forced
forward over the sampled captions (vocabulary logits for the caption positions only).
"""

import contextlib
import json
import os
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from transformers.integrations import is_deepspeed_zero3_enabled
from typing_extensions import override

from ..._logging import get_logger
from ...losses.scst import first_eos_mask, scst_loss
from ...losses.scst_objectives import clipped_policy_loss, kl_to_reference
from ...metrics.captions import caption_metrics, tokenize
from ...model.families import family_for
from ..trainer_utils import VideoStageTrainer
from .samples import ScstSampleMonitor
from .objectives import (
    RepeatedChunkSampler,
    Rollout,
    RolloutCache,
    advantages_for,
    frozen_copy,
    resolve_kl_reference,
)
from .tokens import mm_token_type_ids, rope_needs_mm_token_types, suppressed_token_ids
from .vision_pass import VisionPass, trainable_embeddings


logger = get_logger(__name__)

METRIC_PREFIX = "scst"
PER_SAMPLE_KEYS = ("second_per_grid_ts",)  # per-sample lists the collator leaves as lists; generate wants tensors
REWARD_COLUMNS = ("answer",)  # QA columns the collator carries to the rewards when a dataset has them


def expand_visual_inputs(inputs: dict[str, Any], repeats: int, family: Any, config: Any = None) -> dict[str, Any]:
    r"""Repeat each sample's visual inputs ``repeats`` times (sample-major, like ``num_return_sequences``), as the
    model's family says (:meth:`~llamafactory_video.model.families.base.VideoFamily.repeat_visual_inputs`;
    ``config``: the model's, for families that split a batch's frames by placeholder counts)."""
    return family.repeat_visual_inputs(inputs, repeats, config=config)


class ScstTrainer(VideoStageTrainer):
    metric_prefix = METRIC_PREFIX

    def __init__(
        self,
        finetuning_args: Any,
        reward_fn: Any,
        eval_gen_kwargs: dict[str, Any],
        eos_token_ids: list[int],
        processor: Optional[Any] = None,
        **kwargs,
    ) -> None:
        super().__init__(finetuning_args, processor=processor, **kwargs)
        self.reward_fn = reward_fn
        self.eos_token_ids = eos_token_ids
        self.eval_gen_kwargs = dict(eval_gen_kwargs)
        config = getattr(self.model, "config", None)
        self.family = family_for(self.model)
        self.image_token_id = getattr(config, "image_token_id", None)
        self.video_token_id = getattr(config, "video_token_id", None)
        # Qwen2-VL / Qwen2.5-VL (transformers 5.6) derive M-RoPE positions from mm_token_type_ids only
        self.use_mm_token_types = rope_needs_mm_token_types(self.model) and (
            self.image_token_id is not None or self.video_token_id is not None
        )
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        # never sampled, in any generate call of the stage: placeholders, special tokens (end tokens excepted)
        self.suppress_token_ids = suppressed_token_ids(
            self.processing_class, eos_token_ids, processor, config, getattr(text_config, "vocab_size", None)
        )
        pad = self.processing_class.pad_token_id
        common = dict(
            eos_token_id=eos_token_ids,
            pad_token_id=pad,
            use_cache=True,
            max_new_tokens=finetuning_args.scst_max_new_tokens,
            synced_gpus=is_deepspeed_zero3_enabled(),
        )  # ZeRO-3 ranks must step generate together
        for key in ("repetition_penalty", "no_repeat_ngram_size", "min_new_tokens"):
            if key in eval_gen_kwargs:
                common[key] = eval_gen_kwargs[key]
        # explicit kwargs: a checkpoint's generation_config (Qwen ships top_k 1, top_p 0.001) cannot override them
        self.sample_kwargs = dict(
            common,
            do_sample=True,
            temperature=finetuning_args.scst_temperature,
            top_p=finetuning_args.scst_top_p,
            top_k=finetuning_args.scst_top_k,
            num_return_sequences=finetuning_args.scst_num_samples,
        )
        beams = finetuning_args.scst_beam_width if finetuning_args.scst_baseline == "beam" else 1
        self.baseline_kwargs = dict(common, do_sample=False, num_beams=beams, num_return_sequences=1)
        # scst_samples.jsonl, the reporter's sample table and the degeneration watch (train/scst/samples.py)
        self.sample_monitor = ScstSampleMonitor(self, finetuning_args)
        self.add_callback(self.sample_monitor)
        # objective (train/scst/objectives.py): rollouts kept for PPO-style updates, the KL reference model
        # (getattr: tools and tests build the trainer from a namespace of the older keys)
        self.objective = getattr(finetuning_args, "scst_objective", "reinforce")
        self.clip_epsilon = getattr(finetuning_args, "scst_clip_epsilon", 0.2)
        self.updates_per_batch = getattr(finetuning_args, "scst_updates_per_batch", 1)
        self.kl_coef = getattr(finetuning_args, "scst_kl_coef", 0.0)
        self.rollouts = RolloutCache(self.updates_per_batch)
        # one vision pass per step (train/scst/vision_pass.py), for families with the hook
        self.vision_pass = getattr(finetuning_args, "scst_vision_pass", "once")
        if self.vision_pass == "once" and (self.family is None or not self.family.pixel_keys):
            self.vision_pass = "per_call"
        self.kl_reference, self.ref_model = None, None
        if self.kl_coef > 0:
            self.kl_reference = resolve_kl_reference(finetuning_args.scst_kl_reference, self.model)
            if self.kl_reference == "frozen_copy":
                if is_deepspeed_zero3_enabled():
                    raise ValueError(
                        "`scst_kl_reference: frozen_copy` cannot copy a ZeRO-3 sharded model: train with LoRA and "
                        "`scst_kl_reference: base`, or without ZeRO-3."
                    )
                self.ref_model = frozen_copy(self.accelerator.unwrap_model(self.model))
            logger.info_rank0(
                f"SCST KL term: beta {self.kl_coef}, reference = {self.kl_reference}."
            )

    def _get_train_sampler(self, train_dataset=None):
        updates = self.updates_per_batch
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if updates <= 1 or dataset is None:
            return super()._get_train_sampler(train_dataset)
        chunk = (
            self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps
        )
        return RepeatedChunkSampler(len(dataset), chunk, updates, self.args.seed)

    # ------------------------------------------------------------------------------------------------ generation
    def _generate(self, model, inputs: dict[str, Any], vision: Optional[VisionPass] = None, **gen_kwargs):
        r"""Generated tokens only, ``(B * num_return_sequences, G)``, in eval mode without gradient; the
        special / placeholder tokens of :attr:`suppress_token_ids` are never generated (added to any
        ``suppress_tokens`` of ``gen_kwargs`` or of the checkpoint's generation_config). With ``vision`` (the
        batch's features, computed once) the model takes precomputed embeddings and runs no vision pass."""
        unwrapped = self.accelerator.unwrap_model(model)
        repeats = int(gen_kwargs.get("num_return_sequences") or 1)
        if vision is not None and int(gen_kwargs.get("num_beams") or 1) > 1:
            # beam search: transformers' Qwen beam expansion counts each row's videos from its placeholder
            # embeddings, which the precomputed features replace; the beam baseline encodes the pixels itself
            vision = None
        if vision is not None:
            pass  # VisionPass.generate repeats the prompt rows itself
        elif repeats > 1 and self.family is not None and not self.family.generate_repeats_visual_inputs:
            inputs, gen_kwargs = self._repeat_prompt(inputs, repeats), dict(gen_kwargs, num_return_sequences=1)
        suppress = set(self.suppress_token_ids)
        suppress.update(gen_kwargs.get("suppress_tokens") or [])
        suppress.update(getattr(getattr(unwrapped, "generation_config", None), "suppress_tokens", None) or [])
        gen_kwargs = dict(gen_kwargs, suppress_tokens=sorted(suppress))
        was_training = unwrapped.training
        unwrapped.eval()
        try:
            with torch.no_grad():
                if vision is not None:
                    sequences = vision.generate(unwrapped, inputs, repeats, **gen_kwargs)
                else:
                    sequences = unwrapped.generate(**inputs, **gen_kwargs)
        finally:
            unwrapped.train(was_training)
        return sequences[:, inputs["input_ids"].shape[1] :]

    def _repeat_prompt(self, inputs: dict[str, Any], repeats: int) -> dict[str, Any]:
        r"""The prompt batch with each sample repeated ``repeats`` times, sample-major, as ``generate`` would for
        ``num_return_sequences``: visual inputs as the family says, every other ``(B, ...)`` tensor per row."""
        batch = inputs["input_ids"].shape[0]
        out = {
            key: value.repeat_interleave(repeats, dim=0)
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch
            else value
            for key, value in inputs.items()
        }
        out.update(expand_visual_inputs(inputs, repeats, self.family, getattr(self.model, "config", None)))
        return out

    def _decode(self, tokens: torch.Tensor) -> list[str]:
        return [text.strip() for text in self.processing_class.batch_decode(tokens, skip_special_tokens=True)]

    def _mm_token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.family is not None:  # the family says which extra inputs place its visual tokens
            extra = self.family.extra_forward_kwargs(self.model.config, input_ids)
            if "mm_token_type_ids" in extra:
                return extra["mm_token_type_ids"]
        return mm_token_type_ids(input_ids, self.image_token_id, self.video_token_id)

    def _model_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        r"""The prompt batch ``generate`` takes: no labels, no precomputed positions, per-sample lists as tensors
        (Qwen2.5-VL expands them per sample), and ``mm_token_type_ids`` for the Qwen2-VL family, from which the
        model derives the M-RoPE positions (with the attention mask, so left padding is skipped)."""
        drop = ("references", "categories", "sample_keys", "labels", "position_ids", "rope_deltas", *REWARD_COLUMNS)
        drop += self.family.processor_only_keys if self.family is not None else ()
        out = {k: v for k, v in inputs.items() if k not in drop}
        for key in PER_SAMPLE_KEYS:
            if isinstance(out.get(key), (list, tuple)):
                out[key] = torch.tensor(out[key], device=out["input_ids"].device)
        if self.use_mm_token_types:
            out["mm_token_type_ids"] = self._mm_token_types(out["input_ids"])
        else:
            out.pop("mm_token_type_ids", None)
        return out

    def _teacher_forced_inputs(
        self, prompt: dict[str, Any], sampled: torch.Tensor, mask: torch.Tensor, k: int,
        vision: Optional[VisionPass] = None,
    ):
        r"""Prompt (each repeated ``k`` times, sample-major) + sampled caption, attention over the caption up to
        its first end token, and ``mm_token_type_ids`` of the whole sequence: the model recomputes the M-RoPE
        positions, which for the caption tokens continue from the prompt's exactly as in ``generate``. With
        ``vision`` the pixels are left out (the features are precomputed) and only the grids are repeated."""
        if vision is not None:
            forward = {k_: v for k_, v in vision.repeat_rows(prompt, k).items()
                       if k_ not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        else:
            forward = dict(expand_visual_inputs(prompt, k, self.family, getattr(self.model, "config", None)))
        forward["input_ids"] = torch.cat([prompt["input_ids"].repeat_interleave(k, 0), sampled], dim=1)
        forward["attention_mask"] = torch.cat(
            [prompt["attention_mask"].repeat_interleave(k, 0), mask.to(prompt["attention_mask"].dtype)], dim=1
        )
        if self.use_mm_token_types:
            forward["mm_token_type_ids"] = self._mm_token_types(forward["input_ids"])
        return forward

    # ------------------------------------------------------------------------------------------------ the loss
    def _reward_columns(self, inputs: dict[str, Any], repeat: int) -> dict[str, list[Any]]:
        r"""The sample's other columns for the rewards (``category`` and any QA column the collator carried),
        each repeated per completion."""
        columns = {"category": inputs.get("categories")}
        for key in REWARD_COLUMNS:
            columns[key] = inputs.get(key)
        return {k: [v for v in values for _ in range(repeat)] for k, values in columns.items() if values is not None}

    def _rollout(self, model, prompt: dict[str, Any], inputs: dict[str, Any], vision=None) -> Rollout:
        r"""Sample K captions per video, reward them, take the baseline and the advantages (no gradient);
        ``vision``: the batch's features computed once (:class:`VisionPass`), or None for the per-call route."""
        references, keys = inputs["references"], inputs["sample_keys"]
        k = self.finetuning_args.scst_num_samples
        batch = prompt["input_ids"].shape[0]
        baseline_kind = self.finetuning_args.scst_baseline

        sampled = self._generate(model, prompt, vision, **self.sample_kwargs)  # (B*K, G), sample-major
        captions = self._decode(sampled)
        rep_keys = [key for key in keys for _ in range(k)]
        rep_refs = [refs for refs in references for _ in range(k)]
        rewards, parts = self.reward_fn(captions, rep_keys, rep_refs, self._reward_columns(inputs, k))
        self._check_finite(rewards, captions, rep_keys)
        rewards_t = torch.tensor(rewards, dtype=torch.float32).view(batch, k)

        base_rewards_t, base_captions, identical = None, None, float("nan")
        if baseline_kind in ("greedy", "beam"):
            base_captions = self._decode(self._generate(model, prompt, vision, **self.baseline_kwargs))
            base_rewards, _ = self.reward_fn(base_captions, keys, references, self._reward_columns(inputs, 1))
            self._check_finite(base_rewards, base_captions, keys)
            base_rewards_t = torch.tensor(base_rewards, dtype=torch.float32)
            identical = float(np.mean([c == base_captions[i // k] for i, c in enumerate(captions)]))
        advantages = advantages_for(baseline_kind, rewards_t, base_rewards_t).to(self.args.device)

        if model.training:  # samples file, reporter table, degeneration window (train/scst/samples.py)
            self.sample_monitor.observe(
                self.state.global_step + 1, keys, references, captions, rewards_t, advantages.view(batch, k).cpu(),
                parts, base_captions, base_rewards_t,
            )
        if model.training:
            self.record("reward_mean", rewards.mean())
            self.record("reward_std", rewards_t.std(dim=1, unbiased=False).mean())
            if base_rewards_t is not None:
                self.record("baseline_reward", base_rewards_t.mean())
            elif baseline_kind == "mean":
                self.record("baseline_reward", rewards_t.mean())  # the mean of the others averages to the mean
            self.record("advantage_mean", advantages.mean())
            self.record("advantage_std", advantages.std(unbiased=False))
            for name in ("cider_d", "bleu_4"):
                if name in parts:
                    self.record(name, parts[name].mean())
            for name in getattr(self.reward_fn, "names", ()):
                self.record(f"rewards/{name}/mean", parts[name].mean())
                self.record(f"rewards/{name}/std", parts[name].std())
            self.record("sample_length", np.mean([len(c.split()) for c in captions]))
            if identical == identical:  # not NaN
                self.record("frac_identical_to_baseline", identical)
        mask = first_eos_mask(sampled, self.eos_token_ids)
        return Rollout(sampled=sampled, mask=mask, advantages=advantages)

    def _reference_logprobs(self, model, forward: dict[str, Any], sampled: torch.Tensor) -> torch.Tensor:
        r"""``(B*K, G)`` log-probs of the sampled tokens under the KL reference model (no gradient)."""
        gen_len = sampled.shape[1]
        with torch.no_grad():
            if self.kl_reference == "base":
                unwrapped = self.accelerator.unwrap_model(model)
                with unwrapped.disable_adapter():
                    logits = model(**forward, use_cache=False, logits_to_keep=gen_len + 1).logits
            else:
                logits = self.ref_model(**forward, use_cache=False, logits_to_keep=gen_len + 1).logits
        logits = logits[:, :-1].float()
        return torch.gather(F.log_softmax(logits, dim=-1), 2, sampled.unsqueeze(-1)).squeeze(-1)

    def _vision_once(self, model, prompt: dict[str, Any]) -> Optional[VisionPass]:
        r"""The batch's visual features computed once (``scst_vision_pass: once``), with their graph when the model
        trains (it holds something only if the tower / projector has trainable parameters); None for the
        per-call route."""
        if self.vision_pass != "once":
            return None
        return VisionPass(self.family, self.accelerator.unwrap_model(model), prompt, with_grad=model.training)

    @override
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        prompt = self._model_inputs(inputs)
        k = self.finetuning_args.scst_num_samples
        vision = self._vision_once(model, prompt)
        rollout = self.rollouts.take(inputs["sample_keys"]) if model.training else None
        if rollout is None:  # a new batch (or eval): sample; a repeated batch (PPO updates) reuses its samples
            rollout = self._rollout(model, prompt, inputs, vision)
            if model.training:
                self.rollouts.put(inputs["sample_keys"], rollout)
        sampled, mask, advantages = rollout.sampled, rollout.mask, rollout.advantages

        # teacher-forced pass over prompt + sampled caption; logits only for the caption positions
        gen_len = sampled.shape[1]
        forward = self._teacher_forced_inputs(prompt, sampled, mask, k, vision)
        if vision is not None:
            call, context = vision.forward_inputs(forward, k)
        else:
            call, context = forward, contextlib.nullcontext
        with context():
            outputs = model(**call, use_cache=False, logits_to_keep=gen_len + 1)
        logits = outputs.logits[:, :-1].float()
        logprobs = torch.gather(F.log_softmax(logits, dim=-1), 2, sampled.unsqueeze(-1)).squeeze(-1)
        mask = mask.to(logprobs.device)
        if self.objective == "ppo_clip":
            if rollout.old_logprobs is None:  # the first update runs under the parameters that sampled
                rollout.old_logprobs = logprobs.detach()
            loss, clip_fraction = clipped_policy_loss(
                logprobs, rollout.old_logprobs, mask, advantages, self.clip_epsilon
            )
            if model.training:
                self.record("clip_fraction", clip_fraction)
                ratio = torch.exp(logprobs.detach() - rollout.old_logprobs)
                self.record("ratio_mean", ((ratio * mask).sum() / mask.sum().clamp(min=1.0)))
        else:
            loss = scst_loss(logprobs, mask, advantages)
        if self.kl_reference is not None:
            reference = call
            if vision is not None and (
                vision.has_graph or trainable_embeddings(self.accelerator.unwrap_model(model))
            ):  # the reference's embeddings may differ from the policy's: its own pass over the pixels
                reference, context = self._teacher_forced_inputs(prompt, sampled, mask, k), contextlib.nullcontext
            with context():
                reference_logprobs = self._reference_logprobs(model, reference, sampled)
            kl = kl_to_reference(logprobs, reference_logprobs, mask).mean()
            loss = loss + self.kl_coef * kl
            if model.training:
                self.record("kl", kl.detach())
        return (loss, outputs) if return_outputs else loss

    @override
    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        reason = None
        if "loss" in logs:  # a training log step: the degeneration window's metrics join it
            metrics, reason = self.sample_monitor.window_metrics()
            logs.update(metrics)
        super().log(logs, *args, **kwargs)
        if reason is not None:
            self.sample_monitor.stop(reason)

    @staticmethod
    def _check_finite(rewards: np.ndarray, captions: list[str], keys: list[Any]) -> None:
        bad = [i for i, r in enumerate(rewards) if not np.isfinite(r)]
        if bad:
            listed = "; ".join(f"{keys[i]}: {captions[i]!r} -> {rewards[i]}" for i in bad[:10])
            raise FloatingPointError(f"SCST reward is not finite for {len(bad)} caption(s), stopping: {listed}")

    # ------------------------------------------------------------------------------------------------ eval / predict
    def generate_captions(self, dataset: Any, description: str = "generating") -> list[dict[str, Any]]:
        r"""Captions of every sample with the shared generation settings, gathered across ranks (rank order kept)."""
        loader = self.get_eval_dataloader(dataset)
        model = self.model
        records: list[dict[str, Any]] = []
        gen_kwargs = dict(
            self.eval_gen_kwargs,
            eos_token_id=self.eos_token_ids,
            synced_gpus=is_deepspeed_zero3_enabled(),
            pad_token_id=self.processing_class.pad_token_id,
            num_return_sequences=1,
        )
        for batch in loader:
            batch = self._prepare_inputs(batch)
            captions = self._decode(self._generate(model, self._model_inputs(batch), **gen_kwargs))
            answers = batch.get("answer") or [""] * len(captions)
            for key, caption, refs, category, answer in zip(
                batch["sample_keys"], captions, batch["references"], batch["categories"], answers
            ):
                record = {"id": key, "caption": caption, "references": refs, "category": category}
                if answer:
                    record["answer"] = answer
                records.append(record)
        gathered = self.accelerator.gather_for_metrics(records, use_gather_object=True)
        seen, unique = set(), []
        for record in gathered:  # the last batch is padded with repeats under DDP
            if record["id"] not in seen:
                seen.add(record["id"])
                unique.append(record)
        return unique

    @staticmethod
    def caption_report(records: list[dict[str, Any]]) -> dict[str, Any]:
        r"""BLEU-1..4, ROUGE-L, CIDEr-D (pycocoevalcap's numbers) overall and per category (METEOR: use the
        ``llamafactory-video eval-captions`` tool on the written captions, it needs Java)."""

        def scores(subset: list[dict[str, Any]]) -> dict[str, float]:
            gts = {r["id"]: [tokenize(ref) for ref in r["references"]] for r in subset}
            res = {r["id"]: [tokenize(r["caption"])] for r in subset}
            return {k: v for k, v in caption_metrics(gts, res, with_meteor=False).items() if v is not None}

        report: dict[str, Any] = scores(records)
        categories = sorted({r["category"] for r in records if r["category"]})
        if categories:
            report["groups"] = {c: scores([r for r in records if r["category"] == c]) for c in categories}
        return report

    def reward_report(self, records: list[dict[str, Any]]) -> dict[str, float]:
        r"""The training reward on the (greedy) captions of ``records``: ``reward`` (weighted total) and
        ``reward_<name>`` for each reward of ``scst_rewards`` (e.g. held-out option accuracy on QA data)."""
        names = getattr(self.reward_fn, "names", None)
        if not records or names is None:
            return {}
        columns = {"category": [r["category"] for r in records]}
        if any(r.get("answer") for r in records):
            columns["answer"] = [r.get("answer", "") for r in records]
        total, parts = self.reward_fn(
            [r["caption"] for r in records], [r["id"] for r in records], [r["references"] for r in records], columns
        )
        report = {"reward": float(np.mean(total))}
        report.update({f"reward_{name}": float(np.mean(parts[name])) for name in names})
        return report

    @override
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(dataset, dict):
            dataset = next(iter(dataset.values()))
        records = self.generate_captions(dataset)
        report = self.caption_report(records)
        report.update(self.reward_report(records))
        metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))}
        self.log(metrics)
        self.last_eval = {"records": records, "report": report}
        return metrics


def write_captions(output_dir: str, prefix: str, records: list[dict[str, Any]], report: dict[str, Any]) -> list[str]:
    r"""``<prefix>_captions.jsonl`` (id, caption, references, category) and ``<prefix>_caption_metrics.json``."""
    os.makedirs(output_dir, exist_ok=True)
    captions = os.path.join(output_dir, f"{prefix}_captions.jsonl")
    with open(captions, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    metrics = os.path.join(output_dir, f"{prefix}_caption_metrics.json")
    with open(metrics, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    return [captions, metrics]
