"""Pieces every plugin stage's trainer and workflow share (no stage imports another stage; they all import this)."""

import os
import shutil
import tempfile
from collections import defaultdict
from typing import Any, Optional

import numpy as np
from llamafactory.extras.ploting import plot_loss
from llamafactory.train.callbacks import SaveProcessorCallback
from llamafactory.train.trainer_utils import create_custom_optimizer, create_custom_scheduler
from transformers import Trainer, TrainerCallback
from typing_extensions import override

from .. import artifacts
from .._logging import get_logger


logger = get_logger(__name__)
RUN_ATTR = "_lfv_artifact_run"


class StepMetricsMixin:
    r"""TRL-style per-step metrics for any HF Trainer subclass: ``self.record(name, value)`` during a training step;
    ``log()`` averages them over the logging window under ``<metric_prefix>/<name>``."""

    metric_prefix = "video"

    def record(self, name: str, value: float) -> None:
        if not hasattr(self, "_step_metrics"):
            self._step_metrics: dict[str, list[float]] = defaultdict(list)
        self._step_metrics[name].append(float(value))

    @override
    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        step_metrics = getattr(self, "_step_metrics", None)
        if "loss" in logs and step_metrics:
            for key, values in step_metrics.items():
                logs[f"{self.metric_prefix}/{key}"] = round(float(np.mean(values)), 4)
            step_metrics.clear()
        super().log(logs, *args, **kwargs)


class HeadCheckpointMixin:
    r"""For trainers whose model carries a head saved in its own file beside the adapter: restore it (with
    ``_load_head(checkpoint_dir)``, which the trainer defines) whenever the host Trainer restores the model from a
    checkpoint. DeepSpeed restores every module parameter itself."""

    def _load_head(self, checkpoint_dir: str) -> None:
        raise NotImplementedError

    def checkpoint_keys_saved_apart(self, model, keys: list[str]) -> list[str]:
        r"""Of the model keys missing from a checkpoint's model file, those this trainer keeps in its head file: every
        key under a module the plugin attached to the model root (``_save`` splits them off, ``_load_head`` restores
        them right after the model weights). Called by the host's checkpoint loading (``host/checkpoint.py``)."""
        ours = {
            name for name, child in model.named_children() if type(child).__module__.startswith("llamafactory_video.")
        }
        return [key for key in keys if key.split(".", 1)[0] in ours]

    @override
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        if not self.is_deepspeed_enabled:
            self._load_head(resume_from_checkpoint)

    @override
    def _load_best_model(self):
        super()._load_best_model()
        if not self.is_deepspeed_enabled and self.state.best_model_checkpoint:
            self._load_head(self.state.best_model_checkpoint)


class VideoStageTrainer(StepMetricsMixin, Trainer):
    r"""The host's trainer conventions (custom optimizers and schedulers, processor saved with checkpoints) plus
    the per-step metrics of :class:`StepMetricsMixin`."""

    def __init__(self, finetuning_args: Any, processor: Optional[Any] = None, **kwargs) -> None:
        kwargs["processing_class"] = kwargs.pop("tokenizer")
        super().__init__(**kwargs)
        self.model_accepts_loss_kwargs = False  # our losses are per-micro-batch means
        self.finetuning_args = finetuning_args
        if processor is not None:
            self.add_callback(SaveProcessorCallback(processor))

    @override
    def create_optimizer(self, *args, **kwargs):
        if self.optimizer is None:
            self.optimizer = create_custom_optimizer(self.model, self.args, self.finetuning_args)
        return super().create_optimizer(*args, **kwargs)

    @override
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        create_custom_scheduler(self.args, num_training_steps, optimizer)
        return super().create_scheduler(num_training_steps, optimizer)


def preflight_save(trainer: Trainer) -> None:
    r"""Before the first step, what the first checkpoint save needs: a writable ``output_dir`` and, for an adapter
    (small), a real save of the adapter and every head into a temporary folder there, removed again. A run must
    not train for hours and die at its first save over something visible at step 0 (a config attribute the save
    path reads, a head file name). Full models are too large to write twice; sharded engines save collectively."""
    if not trainer.is_world_process_zero():
        return
    output_dir = trainer.args.output_dir
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".save-check-", dir=output_dir)
    except OSError as err:
        raise ValueError(f"`output_dir` {output_dir} is not writable ({err}); choose another `output_dir`.") from err
    try:
        from peft import PeftModel

        if isinstance(trainer.model, PeftModel) and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
            try:
                trainer._save(probe)
            except Exception as err:
                raise RuntimeError(
                    f"A checkpoint of this run could not be saved ({type(err).__name__}: {err}); stopping before the "
                    "first step instead of at the first `save_steps`."
                ) from err
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class ArtifactManifestCallback(TrainerCallback):
    r"""After each checkpoint save (rank 0): stale files of earlier runs removed from the checkpoint folder, our
    JSON configs stamped, ``llamafactory_video_artifacts.json`` written (``artifacts.stamp_and_record``)."""

    def __init__(self, run: artifacts.Run) -> None:
        self.run = run

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            artifacts.stamp_and_record(checkpoint, self.run, logger)


def claim_output_dir(trainer: Trainer, training_args: Any, finetuning_args: Any) -> artifacts.Run:
    r"""Rank 0, before the first step: our files in ``output_dir`` left by another stage or run are removed
    (``overwrite_output_dir: true``) or refused; later saves record this run's files (``artifacts.py``)."""
    stage = str(finetuning_args.stage)
    if trainer.is_world_process_zero():
        run = artifacts.claim_output_dir(
            training_args.output_dir,
            stage,
            bool(getattr(training_args, "overwrite_output_dir", False)),
            training_args.resume_from_checkpoint,
            logger,
        )
    else:
        run = artifacts.new_run(stage, training_args.output_dir)  # only rank 0 writes the record
    setattr(trainer, RUN_ATTR, run)
    trainer.add_callback(ArtifactManifestCallback(run))
    return run


def record_outputs(trainer: Trainer, training_args: Any, finetuning_args: Any) -> None:
    r"""End of a workflow (rank 0): the manifest of ``output_dir`` lists what this invocation wrote there (eval and
    predict outputs included); files of earlier runs are left alone here."""
    if not trainer.is_world_process_zero() or not os.path.isdir(training_args.output_dir):
        return
    run = getattr(trainer, RUN_ATTR, None)
    if run is None:
        run = artifacts.new_run(str(finetuning_args.stage), training_args.output_dir, artifacts.PROCESS_START)
    if any(artifacts.artifact_stage(name) for name in os.listdir(training_args.output_dir)):
        artifacts.stamp_and_record(training_args.output_dir, run, logger, remove_stale=False)


def train_and_save(trainer: Trainer, training_args: Any, finetuning_args: Any, plot_keys: list[str]) -> None:
    r"""The host workflows' training block: claim ``output_dir`` (stale files of other runs), check the save path,
    train (resuming if asked), save, record what was saved, metrics, state, curves (``eval_*`` curves only when the
    run evaluates during training)."""
    if str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) == "no":
        plot_keys = [key for key in plot_keys if not key.startswith("eval_")]
    run = claim_output_dir(trainer, training_args, finetuning_args)
    preflight_save(trainer)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    if trainer.is_world_process_zero():
        artifacts.stamp_and_record(training_args.output_dir, run, logger)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero() and finetuning_args.plot_loss:
        plot_loss(training_args.output_dir, keys=["loss"] + plot_keys)
        artifacts.stamp_and_record(training_args.output_dir, run, logger)
