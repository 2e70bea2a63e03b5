"""Pieces every plugin stage's trainer and workflow share (no stage imports another stage; they all import this)."""

import os
import shutil
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
import torch
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


def plugin_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    r"""``(name, module)`` of the outermost modules the plugin attached to ``model`` (heads: their class is defined
    under ``llamafactory_video.``); an FSDP1 wrapper around one counts as that module."""
    found, inside = [], []
    for name, module in model.named_modules():
        inner = getattr(module, "_fsdp_wrapped_module", module)
        # FSDP2 swaps the class for a subclass ``FSDP<Name>`` defined in torch: look past it
        cls = next((c for c in type(inner).__mro__ if not c.__module__.startswith("torch.distributed")), object)
        if cls.__module__.startswith("llamafactory_video.") and not any(
            name.startswith(prefix + ".") for prefix in inside
        ):
            found.append((name, module))
            inside.append(name)
    return found


def is_sharded(model: torch.nn.Module) -> bool:
    r"""Whether ``model`` (or a part of it) is sharded by FSDP1 (a ``FullyShardedDataParallel`` module) or FSDP2
    (``DTensor`` parameters)."""
    from torch.distributed.tensor import DTensor

    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover
        FullyShardedDataParallel = ()
    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules()) or any(
        isinstance(p, DTensor) for p in model.parameters()
    )


def _clean_fqn(name: str) -> str:
    for wrapper in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(wrapper, "")
    return name


def load_module_state(root: torch.nn.Module, module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    r"""``module.load_state_dict(state)`` for a submodule of ``root`` whose parameters FSDP may have sharded: full
    tensors in ``state`` (every rank holds them) go into each rank's shard (FSDP2 ``DTensor``s, FSDP1 flat
    parameters) through ``torch.distributed.checkpoint``'s ``set_model_state_dict``. Collective under FSDP: every
    rank calls it."""
    if not is_sharded(root):
        device = next(module.parameters()).device
        module.load_state_dict({k: v.to(device) for k, v in state.items()})
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    prefix = next((_clean_fqn(name) for name, m in root.named_modules() if m is module), None)
    if prefix is None:
        raise ValueError(f"{type(module).__name__} is not a submodule of the model being trained.")
    expected = {_clean_fqn(name) for name, _ in module.named_parameters()} | {
        _clean_fqn(name) for name, _ in module.named_buffers()
    }
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if (missing or unexpected) and not any("flat_param" in name for name in expected):
        raise RuntimeError(
            f"Head state does not match {type(module).__name__}: missing {missing}, unexpected {unexpected}."
        )
    full = {f"{prefix}.{key}" if prefix else key: value.detach().cpu() for key, value in state.items()}
    set_model_state_dict(root, full, options=StateDictOptions(full_state_dict=True, strict=False))


@contextmanager
def sharded_head_loading(root: torch.nn.Module):
    r"""While open, ``load_state_dict`` of every plugin module of ``root`` (the heads) loads full tensors into FSDP
    shards (:func:`load_module_state`), so a trainer's ``_load_head`` works unchanged under FSDP."""
    patched = []
    for _, module in plugin_modules(root):
        module.load_state_dict = lambda state, strict=True, assign=False, _m=module: load_module_state(root, _m, state)
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.load_state_dict


def head_wrap_class_names(model: torch.nn.Module) -> list[str]:
    r"""Classes FSDP must wrap as units of their own: every plugin module and its direct children that own
    parameters. Heads run outside the backbone's forward (the classifier on a gathered hidden state) or inside a hook
    (the ``<ACTION>`` row), so their parameters must be gathered by a forward of their own; in the root unit they stay
    sharded there (FSDP2: "got mixed torch.Tensor and DTensor"; FSDP1: flat shards)."""
    names = []
    for _, module in plugin_modules(model):
        for m in [module, *module.children()]:
            if any(True for _ in m.parameters()) and type(m).__name__ not in names:
                names.append(type(m).__name__)
    return names


class HeadCheckpointMixin:
    r"""For trainers whose model carries a head saved in its own file beside the adapter: restore it (with
    ``_load_head(checkpoint_dir)``, which the trainer defines) whenever the host Trainer restores the model from a
    checkpoint. DeepSpeed restores every module parameter itself."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.is_fsdp_enabled:
            prepare_fsdp_for_heads(self)
        warn_if_fsdp_dropped(self)

    def _load_head(self, checkpoint_dir: str) -> None:
        raise NotImplementedError

    def _restore_head(self, checkpoint_dir: str) -> None:
        if self.is_deepspeed_enabled:  # DeepSpeed restores every module parameter itself
            return
        if self.is_fsdp_enabled:  # a PEFT FSDP checkpoint holds the adapter only ("adapter_only"): load the head file
            with sharded_head_loading(self.model_wrapped):
                self._load_head(checkpoint_dir)
        else:
            self._load_head(checkpoint_dir)

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
        self._restore_head(resume_from_checkpoint)

    @override
    def _load_best_model(self):
        super()._load_best_model()
        if self.state.best_model_checkpoint:
            self._restore_head(self.state.best_model_checkpoint)


def prepare_fsdp_for_heads(trainer: Trainer) -> None:
    r"""Before accelerate wraps the model: make each head (and its parameter-owning children) an FSDP unit of its own
    (see :func:`head_wrap_class_names`), and require full state dicts at save (the head file is cut from the full
    state dict ``Trainer.save_model`` gathers; a sharded state dict never reaches ``_save``)."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    plugin = trainer.accelerator.state.fsdp_plugin
    if "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        logger.warning_rank0(
            f"FSDP `state_dict_type` {plugin.state_dict_type} -> FULL_STATE_DICT: this stage writes its head to a "
            "file of its own, cut from the full state dict gathered at save (a sharded one never reaches `_save`). "
            "Set `fsdp_state_dict_type: FULL_STATE_DICT` (accelerate config) or FSDP_STATE_DICT_TYPE=FULL_STATE_DICT."
        )
        plugin.state_dict_config = plugin.optim_state_dict_config = None  # rebuilt for the full type
        plugin.set_state_dict_type("FULL_STATE_DICT")
    heads = head_wrap_class_names(trainer.model)
    if not heads:
        return
    policy = plugin.auto_wrap_policy
    policy = getattr(policy, "func", policy)
    if policy is None:  # no auto wrap: the backbone stays one unit, the heads get their own
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
        plugin.transformer_cls_names_to_wrap = list(heads)
    elif policy is transformer_auto_wrap_policy:
        names = plugin.transformer_cls_names_to_wrap
        if names is None:
            names = list(getattr(trainer.model, "_no_split_modules", None) or [])
            base = getattr(trainer.model, "get_base_model", lambda: trainer.model)()
            names = names or list(getattr(base, "_no_split_modules", None) or [])
        plugin.transformer_cls_names_to_wrap = list(names) + [name for name in heads if name not in names]
    else:
        raise ValueError(
            f"FSDP auto wrap policy {getattr(policy, '__name__', policy)}: this stage's heads ({', '.join(heads)}) "
            "run outside the backbone's forward and must be FSDP units of their own. Use "
            "`fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP` (or `fsdp: full_shard auto_wrap`)."
        )
    logger.info_rank0(
        f"FSDP: wrapping {', '.join(plugin.transformer_cls_names_to_wrap)} as units; heads saved from full state "
        "dicts."
    )


class VideoStageTrainer(StepMetricsMixin, Trainer):
    r"""The host's trainer conventions (custom optimizers and schedulers, processor saved with checkpoints) plus
    the per-step metrics of :class:`StepMetricsMixin`."""

    def __init__(self, finetuning_args: Any, processor: Optional[Any] = None, **kwargs) -> None:
        kwargs["processing_class"] = kwargs.pop("tokenizer")
        super().__init__(**kwargs)
        self.model_accepts_loss_kwargs = False  # our losses are per-micro-batch means
        warn_if_fsdp_dropped(self)
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


def warn_if_fsdp_dropped(trainer: Trainer) -> None:
    r"""accelerate (1.11, ``AcceleratorState.__init__``) enables FSDP only on accelerators: on CPU a requested
    ``fsdp`` is dropped without a word and the run is plain DDP. Say so."""
    if getattr(trainer.args, "fsdp", None) and not trainer.is_fsdp_enabled and not getattr(trainer, "_fsdp_warned", 0):
        trainer._fsdp_warned = True
        logger.warning_rank0(
            f"`fsdp: {' '.join(map(str, trainer.args.fsdp))}` was requested but accelerate did not enable FSDP "
            f"(distributed type {trainer.accelerator.distributed_type}; accelerate enables FSDP on GPU/XPU/NPU/HPU "
            "only): this run trains with plain data parallelism."
        )


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
