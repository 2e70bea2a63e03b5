r"""The files our stages write beside a model / adapter, which stage writes which, and who wrote the ones on disk.

A stage owns what it writes. Stock LlamaFactory never deletes anything in ``output_dir`` (``overwrite_output_dir``
only turns off auto-resume), so a second run into a reused directory leaves the first run's files beside its own
weights: a ``video_pooling.json`` left by ``fastslow_ar`` would make every later ``chat`` / ``predict`` of an
``action_cls`` adapter pool its video tokens. The rules (docs/data.md, "What each stage writes"):

* :data:`ARTIFACTS` is the one table of our files (names or ``fnmatch`` patterns) and the stage that writes each.
* Every save of a plugin stage (each ``checkpoint-N`` and the final ``output_dir``) writes :data:`MANIFEST_NAME`,
  listing our files there with their stage and run, and stamps ``"written_by": {"stage", "run", "output_dir",
  "plugin_version"}`` into our JSON configs; ``video_pooling.json`` also records a fingerprint of the weights file
  beside it (:func:`weights_fingerprint`).
* At the start of training (:func:`claim_output_dir`), our files in ``output_dir`` that belong to another stage or
  another run are removed (``overwrite_output_dir: true``, each file logged) or refused (error naming the files and
  their stage). Resuming a checkpoint of the same stage continues that run and keeps its files.
* Resuming (explicitly or by LlamaFactory's auto-resume) a checkpoint written by another stage is refused
  (:func:`check_resume_checkpoint`, called from the host's argument parser for every stage, stock ones included).

Files written before this record existed ("legacy": no manifest, no ``written_by``) are attributed to a stage by
their name (:data:`ARTIFACTS`), to no run; see :func:`pooling_is_trusted` for legacy ``video_pooling.json``.

Standard library only: the host's argument parser calls into this module.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional


MANIFEST_NAME = "llamafactory_video_artifacts.json"
WRITTEN_BY = "written_by"
POOLING_FILE = "video_pooling.json"

# name or fnmatch pattern -> the stage that writes it. Stock LlamaFactory / transformers files (weights, adapter,
# tokenizer, trainer_state.json, all_results.json, training_loss.png, ...) are not ours and are not listed.
ARTIFACTS: dict[str, str] = {
    # action_cls: head beside the adapter / model; eval and predict outputs; its curves
    "action_decoder.safetensors": "action_cls",
    "action_decoder_config.json": "action_cls",
    "action_predictions.jsonl": "action_cls",
    "eval_report.json": "action_cls",
    "predict_report.json": "action_cls",
    "eval_confusion_matrix.png": "action_cls",
    "predict_confusion_matrix.png": "action_cls",
    "training_action_cls_*.png": "action_cls",
    "training_eval_accuracy.png": "action_cls",
    # fastslow_ar: reconstruction head (training only) and the pooling inference applies
    "fastslow_head.safetensors": "fastslow_ar",
    "fastslow_head_config.json": "fastslow_ar",
    POOLING_FILE: "fastslow_ar",
    "training_fastslow_*.png": "fastslow_ar",
    # sparc_align: dual-encoder config and heads; retrieval curves
    "sparc_align_config.json": "sparc_align",
    "sparc_align_heads.safetensors": "sparc_align",
    "eval_retrieval_curve.png": "sparc_align",
    "training_sparc_*.png": "sparc_align",
    "training_eval_t2v_r*.png": "sparc_align",
    "training_eval_v2t_r*.png": "sparc_align",
    # scst: generated captions and their metrics; its curves
    "eval_captions.jsonl": "scst",
    "eval_caption_metrics.json": "scst",
    "predict_captions.jsonl": "scst",
    "predict_caption_metrics.json": "scst",
    "scst_samples.jsonl": "scst",
    "training_scst_*.png": "scst",
    "training_eval_cider.png": "scst",
}

# JSON configs that carry a ``written_by`` record (readers drop it with :func:`strip_written_by`)
STAMPED_CONFIGS = (
    "action_decoder_config.json",
    "fastslow_head_config.json",
    POOLING_FILE,
    "sparc_align_config.json",
)

# files that identify the stage of a checkpoint written before manifests existed
SIGNATURE_FILES = {
    "action_decoder.safetensors": "action_cls",
    "fastslow_head.safetensors": "fastslow_ar",
    "sparc_align_heads.safetensors": "sparc_align",
}

# weights beside which a video_pooling.json sits, in the order the loader would use them
WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
SAMPLE_BYTES = 1 << 20


def plugin_version() -> str:
    from . import __version__

    return __version__


def artifact_stage(name: str) -> Optional[str]:
    r"""The stage that writes a file called ``name``, None when it is not one of ours."""
    if name in ARTIFACTS:
        return ARTIFACTS[name]
    for pattern, stage in ARTIFACTS.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(name, pattern):
            return stage
    return None


def strip_written_by(data: dict[str, Any]) -> dict[str, Any]:
    r"""A config dict without its ownership record (files written before the record existed have none)."""
    return {k: v for k, v in data.items() if k != WRITTEN_BY}


# ---------------------------------------------------------------------- runs
@dataclass
class Run:
    stage: str
    run_id: str
    output_dir: str
    started: float

    def record(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "run": self.run_id,
            "output_dir": os.path.abspath(self.output_dir),
            "plugin_version": plugin_version(),
        }


PROCESS_START = time.time()


def new_run(stage: str, output_dir: str, started: Optional[float] = None) -> Run:
    return Run(stage=stage, run_id=new_run_id(), output_dir=output_dir, started=started or time.time())


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------------- reading what is on disk
def read_manifest(directory: str) -> Optional[dict[str, Any]]:
    path = os.path.join(directory, MANIFEST_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Owned:
    name: str
    stage: str
    run: Optional[str]  # None: legacy (no record)


def owned_files(directory: str) -> list[Owned]:
    r"""Our files in ``directory`` (not recursive) with the stage and run that wrote them: from the manifest, else a
    stamped ``written_by``, else the stage from :data:`ARTIFACTS` and no run (legacy)."""
    if not os.path.isdir(directory):
        return []
    manifest = (read_manifest(directory) or {}).get("files", {})
    found = []
    for name in sorted(os.listdir(directory)):
        if not os.path.isfile(os.path.join(directory, name)):
            continue
        stage = artifact_stage(name)
        if stage is None:
            continue
        entry = manifest.get(name) if isinstance(manifest, dict) else None
        if not isinstance(entry, dict) and name in STAMPED_CONFIGS:
            entry = _read_written_by(os.path.join(directory, name))
        if isinstance(entry, dict) and entry.get("stage"):
            found.append(Owned(name, str(entry["stage"]), entry.get("run")))
        else:
            found.append(Owned(name, stage, None))
    return found


def _read_written_by(path: str) -> Optional[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    record = data.get(WRITTEN_BY) if isinstance(data, dict) else None
    return record if isinstance(record, dict) else None


def checkpoint_owner(checkpoint_dir: str) -> tuple[Optional[str], Optional[str], str]:
    r"""``(stage, run, how)`` of a checkpoint: from its manifest, else guessed from a head file only one stage
    writes (legacy), else ``(None, None, "unknown")`` (a stock stage's checkpoint, or a legacy scst one)."""
    manifest = read_manifest(checkpoint_dir)
    if manifest and manifest.get("stage"):
        return str(manifest["stage"]), manifest.get("run"), "manifest"
    for name, stage in SIGNATURE_FILES.items():
        if os.path.isfile(os.path.join(checkpoint_dir, name)):
            return stage, None, f"legacy, has {name}"
    return None, None, "unknown"


def check_resume_checkpoint(checkpoint_dir: str, stage: str, output_dir: str, overwrite_output_dir: bool) -> None:
    r"""Refuse to resume ``stage`` from a checkpoint another stage wrote (explicitly or by LlamaFactory's auto-resume,
    which picks the last ``checkpoint-N`` of ``output_dir`` when ``overwrite_output_dir`` is false). A checkpoint
    with no record and no stage head file is let through (stock stages write no manifest)."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return
    owner, _, how = checkpoint_owner(checkpoint_dir)
    if owner is None or owner == stage:
        return
    auto = os.path.dirname(os.path.abspath(checkpoint_dir)) == os.path.abspath(output_dir) and not overwrite_output_dir
    why = (
        " LlamaFactory resumes from the last checkpoint in `output_dir` by itself because `overwrite_output_dir` is "
        "false."
        if auto
        else ""
    )
    raise ValueError(
        f"Cannot resume `stage: {stage}` from {checkpoint_dir}: that checkpoint was written by `stage: {owner}` "
        f"({how}); its optimizer state, heads and files belong to that stage.{why} Use another `output_dir`, set "
        "`overwrite_output_dir: true` to start this stage afresh there, or point `resume_from_checkpoint` to a "
        f"checkpoint of a `{stage}` run (to start from that stage's weights, use `adapter_name_or_path` / "
        "`model_name_or_path` instead)."
    )


# ---------------------------------------------------------------------- weights fingerprint
def _file_digest(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(SAMPLE_BYTES))
        if size > 2 * SAMPLE_BYTES:
            f.seek(size - SAMPLE_BYTES)
        digest.update(f.read(SAMPLE_BYTES))
    return {"size": size, "sha256_head_tail": digest.hexdigest()}


def weights_fingerprint(directory: str) -> Optional[dict[str, Any]]:
    r"""Fingerprint of the adapter / model weights in ``directory``: file name, size and the SHA-256 of its size,
    first and last MiB (cheap on multi-GB models, survives copies, changes with any retraining); sharded models
    add each shard's. None when there are no weights."""
    for name in WEIGHT_FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        record = {"file": name, **_file_digest(path)}
        if name.endswith(".index.json"):
            try:
                with open(path, encoding="utf-8") as f:
                    shards = sorted(set(json.load(f)["weight_map"].values()))
                record["shards"] = {s: _file_digest(os.path.join(directory, s)) for s in shards}
            except (OSError, ValueError, KeyError):
                pass
        return record
    return None


def pooling_is_trusted(path: str) -> tuple[bool, str]:
    r"""Whether a ``video_pooling.json`` belongs to the weights beside it, and why (for the log).

    * With a ``written_by`` record: only when its ``weights`` fingerprint matches the weights there now.
    * Legacy (no record): trusted unless the weights there are newer than the file (a later run rewrote them;
      the pooled run writes its weights first and this file right after).
    """
    directory = os.path.dirname(os.path.abspath(path))
    record = _read_written_by(path)
    current = weights_fingerprint(directory)
    if record is None:
        weights = os.path.join(directory, current["file"]) if current else None
        if weights and os.path.getmtime(weights) > os.path.getmtime(path) + 2.0:
            return False, (
                f"it has no ownership record (written before llamafactory-video recorded one) and "
                f"{current['file']} beside it is newer, so a later run replaced the weights it was written for"
            )
        return True, "legacy file without an ownership record, weights not newer than it"
    saved = record.get("weights")
    if saved is None or current is None:
        return False, "it records no weights fingerprint" if saved is None else "there are no weights beside it"
    if saved != current:
        return False, (
            f"it was written by `stage: {record.get('stage')}` (run {record.get('run')}) for other weights: "
            f"{current['file']} there no longer matches the fingerprint it records"
        )
    return True, f"written by `stage: {record.get('stage')}` (run {record.get('run')}) for these weights"


# ---------------------------------------------------------------------- writing
def stamp_and_record(directory: str, run: Run, logger: Any = None, remove_stale: bool = True) -> Optional[str]:
    r"""After a save of ``run`` into ``directory`` (a checkpoint or the final output_dir): our files there that an
    earlier run left (modified before this run started) are removed (``remove_stale``; else they keep the entry
    they had), those of this run get ``written_by`` stamped into their JSON configs, and the manifest lists them.
    Returns the manifest path."""
    if not os.path.isdir(directory):
        return None
    previous = (read_manifest(directory) or {}).get("files", {})
    files: dict[str, Any] = {}
    record = run.record()
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        stage = artifact_stage(name)
        if stage is None or not os.path.isfile(path):
            continue
        if os.path.getmtime(path) < run.started - 1.0:
            entry = previous.get(name) if isinstance(previous, dict) else None
            if isinstance(entry, dict) and entry.get("run") == run.run_id:
                files[name] = entry  # written earlier by this same run (e.g. before a resume)
                continue
            if not remove_stale:
                if isinstance(entry, dict):
                    files[name] = entry
                continue
            os.remove(path)
            if logger is not None:
                logger.warning_rank0(f"Removed {path}: left by an earlier run, not written by this one.")
            continue
        if name in STAMPED_CONFIGS:
            _stamp(path, record, directory if name == POOLING_FILE else None)
        files[name] = {"stage": run.stage, "run": run.run_id}
    manifest_path = os.path.join(directory, MANIFEST_NAME)
    manifest = {"format": 1, **record, "files": files}
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return manifest_path


def _stamp(path: str, record: dict[str, Any], weights_dir: Optional[str]) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    stamped = dict(record)
    if weights_dir is not None:
        stamped["weights"] = weights_fingerprint(weights_dir)
    data[WRITTEN_BY] = stamped
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)


def claim_output_dir(
    output_dir: str,
    stage: str,
    overwrite_output_dir: bool,
    resume_from_checkpoint: Optional[str],
    logger: Any = None,
) -> Run:
    r"""Start a training run of ``stage`` in ``output_dir`` (rank 0, before the first step): returns the run (the
    resumed checkpoint's run when resuming one of the same stage) after removing (``overwrite_output_dir``) or
    refusing our files in ``output_dir`` that another stage or another run wrote."""
    run_id = None
    if resume_from_checkpoint and os.path.isdir(resume_from_checkpoint):
        check_resume_checkpoint(resume_from_checkpoint, stage, output_dir, overwrite_output_dir)
        owner, owner_run, _ = checkpoint_owner(resume_from_checkpoint)
        if owner == stage and owner_run:
            run_id = owner_run
    run = Run(stage=stage, run_id=run_id or new_run_id(), output_dir=output_dir, started=time.time())

    # resuming a checkpoint of this stage continues that stage's work in output_dir: its files stay (the final save
    # rewrites them); other stages' files are stale either way
    resuming = bool(resume_from_checkpoint)
    stale = [item for item in owned_files(output_dir) if not (resuming and item.stage == stage)]
    if not stale:
        return run
    if not overwrite_output_dir:
        listing = "; ".join(f"{item.name} (stage {item.stage}, run {item.run or 'unrecorded'})" for item in stale)
        raise ValueError(
            f"`output_dir` {output_dir} holds files another run wrote beside the model: {listing}. A `{stage}` run "
            "there would leave them beside its own weights, where later inference reads them (a stale "
            f"{POOLING_FILE} pools every video). Set `overwrite_output_dir: true` to remove them, or use another "
            "`output_dir`."
        )
    for item in stale:
        path = os.path.join(output_dir, item.name)
        os.remove(path)
        if logger is not None:
            logger.warning_rank0(
                f"overwrite_output_dir: removed {path} "
                f"(written by stage {item.stage}, run {item.run or 'unrecorded'})."
            )
    manifest = os.path.join(output_dir, MANIFEST_NAME)
    if os.path.isfile(manifest):
        os.remove(manifest)
    return run
