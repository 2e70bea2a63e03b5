"""Trainer of ``stage: sparc_align``: the losses of :class:`~llamafactory_video.model.dual_encoder.VideoTextModel`
logged under ``sparc/``, caption batching by video, retrieval evaluation, dual-encoder saving."""

from typing import Any

import numpy as np
import torch
from typing_extensions import override

from ..._logging import get_logger
from ...data.sparc import CaptionBatchSampler
from ...metrics.retrieval import retrieval_metrics, retrieval_ranks
from ..trainer_utils import VideoStageTrainer

logger = get_logger(__name__)

METRIC_PREFIX = "sparc"
LOGGED = ("loss_global", "loss_local", "temperature", "token_similarity", "patch_similarity")


class SparcAlignTrainer(VideoStageTrainer):
    metric_prefix = METRIC_PREFIX

    def __init__(self, finetuning_args: Any, processor: Any | None = None, **kwargs) -> None:
        super().__init__(finetuning_args=finetuning_args, processor=processor, **kwargs)
        self.sparc_processor = processor
        self.last_ranks: dict[str, tuple[dict[str, Any], tuple[int, int], np.ndarray]] = {}
        """metric prefix -> (per-direction ranks, (captions, videos), caption -> video) of the last evaluation."""

    @override
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            for key in LOGGED:
                if key in outputs:
                    self.record(key, outputs[key].detach().float().item())
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    @override
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        mode = self.finetuning_args.sparc_batch_grouping
        if mode == "random":
            return super()._get_train_sampler(dataset)
        return CaptionBatchSampler(
            dataset["video_key"], self.args.per_device_train_batch_size, mode, seed=self.args.seed
        )

    # ------------------------------------------------------------------ retrieval evaluation
    @torch.no_grad()
    def retrieval_scores(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        r"""``(similarity (captions, videos), caption_to_video)`` over ``dataset``: every caption against every
        distinct video (cosines from the model's :meth:`similarity`: pairwise through the model for X-CLIP)."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        collator = self.data_collator
        keys: dict[str, int] = {}
        paths: list[str] = []
        caption_to_video = []
        for key, videos in zip(dataset["video_key"], dataset["videos"]):
            if key not in keys:
                keys[key] = len(paths)
                paths.append(videos[0])
            caption_to_video.append(keys[key])
        device = self.args.device
        batch = max(1, self.args.per_device_eval_batch_size)
        video_emb, prompt_visual = [], []
        for start in range(0, len(paths), batch):
            clips = [collator.video_tensor(path) for path in paths[start : start + batch]]
            frames = max(c.size(0) for c in clips)
            pixels = torch.zeros((len(clips), frames, *clips[0].shape[1:]), dtype=clips[0].dtype)
            mask = torch.zeros((len(clips), frames), dtype=torch.bool)
            for j, c in enumerate(clips):
                pixels[j, : c.size(0)], mask[j, : c.size(0)] = c, True
            emb, _, visual = model.encode_video_features(pixels.to(device), mask.to(device))
            video_emb.append(emb)
            prompt_visual.append(visual)
        text_emb = []
        rows = list(range(len(dataset)))
        for start in range(0, len(rows), batch):
            features = [dataset[i] for i in rows[start : start + batch]]
            length = max(collator.pad_to_length, max(len(f["input_ids"]) for f in features))
            pad_id = collator.tokenizer.pad_token_id or 0
            ids = torch.full((len(features), length), pad_id, dtype=torch.long)
            att = torch.zeros_like(ids)
            for j, f in enumerate(features):
                ids[j, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
                att[j, : len(f["input_ids"])] = 1
            emb, _ = model.encode_text(ids.to(device), att.to(device))
            text_emb.append(emb)
        texts = torch.cat(text_emb)
        similarity = torch.cat(
            [model.similarity(texts, video, visual).float().cpu() for video, visual in zip(video_emb, prompt_visual)],
            dim=1,
        ).numpy()
        model.train(was_training)
        return similarity, np.asarray(caption_to_video)

    @override
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(dataset, dict):
            metrics: dict[str, float] = {}
            for name, split in dataset.items():
                metrics.update(self.evaluate(split, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        similarity, caption_to_video = self.retrieval_scores(dataset)
        metrics = {
            f"{metric_key_prefix}_{k}": round(v, 4) for k, v in retrieval_metrics(similarity, caption_to_video).items()
        }
        self.last_ranks[metric_key_prefix] = (
            retrieval_ranks(similarity, caption_to_video),
            similarity.shape,
            np.asarray(caption_to_video),
        )
        metrics[f"{metric_key_prefix}_num_videos"] = int(similarity.shape[1])
        metrics[f"{metric_key_prefix}_num_captions"] = int(similarity.shape[0])
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # ------------------------------------------------------------------ saving
    @override
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        model.save(output_dir, self.sparc_processor)
        logger.info_rank0(f"Saved the dual encoder to {output_dir}.")

    @override
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from ...model.dual_encoder import load_trainable_state

        load_trainable_state(self.accelerator.unwrap_model(model or self.model), resume_from_checkpoint)
        logger.info_rank0(f"Resumed the dual encoder weights from {resume_from_checkpoint}.")
