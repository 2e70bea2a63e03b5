"""The ``action_cls`` head: an ActionDecoder on the ``<ACTION>`` hidden state and the token's own embedding.

The head is attached as the submodule ``action_head`` of the model LlamaFactory loads (a ``PeftModel``
under LoRA/DoRA, the bare model under full fine-tuning), so the module the Trainer wraps contains it
and DDP, FSDP and DeepSpeed ZeRO-3 synchronise, shard and save it like any other parameter.

Saved beside the adapter as ``action_decoder.safetensors`` (tensors) and ``action_decoder_config.json``
(decoder type, sizes, number of classes, id2label). No pickle anywhere.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn


HEAD_WEIGHTS_NAME = "action_decoder.safetensors"
HEAD_CONFIG_NAME = "action_decoder_config.json"
HEAD_MODULE_NAME = "action_head"


@dataclass
class ActionHeadConfig:
    hidden_size: int
    num_classes: int
    decoder_type: str = "linear"
    decoder_hidden_size: Optional[int] = None
    dropout: float = 0.0
    action_token: str = "<ACTION>"
    id2label: dict[int, str] = field(default_factory=dict)

    def to_json_dict(self) -> dict:
        data = asdict(self)
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return data

    @classmethod
    def from_json_dict(cls, data: dict) -> "ActionHeadConfig":
        data = {k: v for k, v in data.items() if k != "written_by"}  # ownership record (artifacts.py)
        data["id2label"] = {int(k): v for k, v in data.get("id2label", {}).items()}
        return cls(**data)


class ActionDecoder(nn.Module):
    r"""Maps hidden states ``(B, H)`` to class logits ``(B, C)``.

    ``linear``: ``H -> C``. ``mlp``: ``H -> decoder_hidden_size -> GELU -> C``.
    """

    def __init__(
        self,
        hidden_size: int,
        num_classes: int,
        decoder_type: str = "linear",
        decoder_hidden_size: Optional[int] = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        if decoder_type == "linear":
            self.net = nn.Linear(hidden_size, num_classes)
        elif decoder_type == "mlp":
            inner = decoder_hidden_size or hidden_size
            self.net = nn.Sequential(nn.Linear(hidden_size, inner), nn.GELU(), nn.Linear(inner, num_classes))
        else:
            raise ValueError(f"Unknown action_decoder_type `{decoder_type}`: use `linear` or `mlp`.")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(self.dropout(hidden))


class ActionTokenEmbedding(nn.Module):
    r"""The trainable embedding ``(H,)`` of the ``<ACTION>`` token, written over the frozen matrix's row.

    Called from a forward hook on the input embedding layer (a module call, so ZeRO-3 gathers the
    parameter): ``inputs_embeds (B, T, H)``, ``input_ids (B, T)`` -> ``(B, T, H)``.
    """

    def __init__(self, init: torch.Tensor, token_id: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(init.detach().clone().float())
        self.token_id = token_id

    def forward(self, inputs_embeds: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids == self.token_id).unsqueeze(-1)
        return torch.where(mask, self.weight.to(inputs_embeds.dtype), inputs_embeds)


class ActionHead(nn.Module):
    def __init__(self, config: ActionHeadConfig, token_id: int, init_embedding: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.decoder = ActionDecoder(
            config.hidden_size, config.num_classes, config.decoder_type, config.decoder_hidden_size, config.dropout
        )
        self.token_embedding = ActionTokenEmbedding(init_embedding, token_id)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        r"""``hidden (B, H)`` -> logits ``(B, C)``, computed in the head's own dtype."""
        return self.decoder(hidden.to(next(self.decoder.parameters()).dtype))


def attach_action_head(model: nn.Module, head: ActionHead) -> ActionHead:
    r"""Register ``head`` as ``model.action_head`` and route the ``<ACTION>`` embedding through it.

    The head saves the ``<ACTION>`` row itself, so the model is marked for the host's adapter save: a LoRA adapter
    never carries the (resized) embedding matrix because of our token."""
    from ..host.peft_save import ROWS_SAVED_APART_ATTR

    model.add_module(HEAD_MODULE_NAME, head)
    setattr(model, ROWS_SAVED_APART_ATTR, True)
    embedding_layer = model.get_input_embeddings()

    def _replace_action_row(module, args, output):
        input_ids = args[0] if args else None
        if input_ids is None or not torch.is_tensor(input_ids):
            return output
        return head.token_embedding(output, input_ids)

    head._embedding_hook = embedding_layer.register_forward_hook(_replace_action_row)
    return head


def get_action_head(model: nn.Module) -> ActionHead:
    r"""The head of a (possibly DDP/DeepSpeed/PEFT-wrapped) model."""
    while not hasattr(model, HEAD_MODULE_NAME) and hasattr(model, "module"):
        model = model.module
    return getattr(model, HEAD_MODULE_NAME)


def head_state_dict_from(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""Keys of a whole-model state dict that belong to the head, with the head prefix removed."""
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if HEAD_MODULE_NAME in parts:
            out[".".join(parts[parts.index(HEAD_MODULE_NAME) + 1 :])] = value
    return out


def save_action_head(directory: str, config: ActionHeadConfig, state_dict: dict[str, torch.Tensor]) -> None:
    r"""Write ``action_decoder.safetensors`` and ``action_decoder_config.json`` into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    save_file(tensors, os.path.join(directory, HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
    with open(os.path.join(directory, HEAD_CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(config.to_json_dict(), f, indent=2, ensure_ascii=False)


def find_head_files(path: str) -> tuple[str, Optional[str]]:
    r"""Locate ``action_decoder.safetensors`` (and its config) given a directory or the file itself."""
    weights = path if os.path.isfile(path) else os.path.join(path, HEAD_WEIGHTS_NAME)
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"No {HEAD_WEIGHTS_NAME} found at `{path}`. Point `action_decoder_path` to a directory written by an "
            "action_cls run (its output_dir or a checkpoint-N folder) or to the .safetensors file itself."
        )
    config = os.path.join(os.path.dirname(weights), HEAD_CONFIG_NAME)
    return weights, (config if os.path.isfile(config) else None)


def load_action_head_files(path: str) -> tuple[Optional[ActionHeadConfig], dict[str, torch.Tensor]]:
    weights, config_path = find_head_files(path)
    config = None
    if config_path is not None:
        with open(config_path, encoding="utf-8") as f:
            config = ActionHeadConfig.from_json_dict(json.load(f))
    return config, load_file(weights)
