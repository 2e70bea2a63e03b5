r"""The ``fastslow_ar`` reconstruction head as a submodule of the model the Trainer wraps, and its files.

Saved beside the adapter (or the full model) as ``fastslow_head.safetensors`` (tensors only) and
``fastslow_head_config.json``; the head is training-only: inference needs neither file (the pooling it was trained
with travels separately in ``video_pooling.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .fastslow import ReconstructionHead


HEAD_MODULE_NAME = "fastslow_head"
HEAD_WEIGHTS_NAME = "fastslow_head.safetensors"
HEAD_CONFIG_NAME = "fastslow_head_config.json"


@dataclass
class FastslowHeadConfig:
    hidden_size: int
    feature_dim: int
    mlp_hidden_size: int
    loss: str = "cosine"
    summary_size: int = 1

    def build(self) -> ReconstructionHead:
        return ReconstructionHead(self.hidden_size, self.feature_dim, self.mlp_hidden_size)


def attach_head(model: nn.Module, head: ReconstructionHead) -> ReconstructionHead:
    model.add_module(HEAD_MODULE_NAME, head)
    return head


def get_head(model: nn.Module) -> ReconstructionHead:
    r"""The head of a (possibly DDP/DeepSpeed/PEFT-wrapped) model."""
    while not hasattr(model, HEAD_MODULE_NAME) and hasattr(model, "module"):
        model = model.module
    return getattr(model, HEAD_MODULE_NAME)


def split_head_state(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    r"""``(model_state_without_head, head_state)`` from a full state dict (keys ``...fastslow_head.<name>``)."""
    model_state, head_state = {}, {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if HEAD_MODULE_NAME in parts:
            head_state[".".join(parts[parts.index(HEAD_MODULE_NAME) + 1 :])] = value
        else:
            model_state[key] = value
    return model_state, head_state


def save_head(directory: str, config: FastslowHeadConfig, state_dict: dict[str, torch.Tensor]) -> None:
    os.makedirs(directory, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, os.path.join(directory, HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
    with open(os.path.join(directory, HEAD_CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(asdict(config), f, indent=2)


def find_head_file(path: str) -> str:
    r"""``fastslow_head.safetensors`` given a directory (a run's output_dir or checkpoint) or the file itself."""
    candidate = os.path.join(path, HEAD_WEIGHTS_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise FileNotFoundError(
            f"No {HEAD_WEIGHTS_NAME} at {path}: point `fastslow_head_path` to a fastslow_ar run's output_dir, one of "
            f"its checkpoint-N folders, or the .safetensors file itself."
        )
    return candidate


def load_head_state(path: str) -> dict[str, torch.Tensor]:
    return load_file(find_head_file(path))
