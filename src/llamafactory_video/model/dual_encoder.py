"""Video-text dual encoder of ``stage: sparc_align``: a CLIP / SigLIP checkpoint applied per frame, temporal
aggregation, SPARC local projection heads; training forward, saving, and :func:`load_dual_encoder` for inference.

Video path: frames ``(N, T, C, H, W)`` -> vision tower per frame -> the model's own pooled frame embedding
(CLIP: ``visual_projection`` of the CLS token; SigLIP: its attention-pooling head) -> temporal aggregation
(``mean`` over valid frames, or ``transformer``: one zero-initialised residual transformer layer over the frames
plus a mean, so training starts from the mean) -> video embedding. Text path: the model's own text embedding.
Local (SPARC) features are read at ``local_layer`` and mapped into a shared space by two linear heads initialised
from the model's projections (``sparc_local_heads``), so the global projector is trained by the global loss only.

X-CLIP (``model_type: xclip``) is a video model, not a per-frame dual encoder: its vision tower attends across
frames (it takes exactly ``vision_config.num_frames`` frames, so clips are resampled to that count), its own
multi-frame integration transformer (``mit``) aggregates frames, and its prompt generator adds a video-conditioned
residual to each caption embedding. Text and video therefore do not factor into independent embeddings: similarities
come from :meth:`VideoTextModel.similarity`, which composes ``XCLIPModel.forward`` from the model's own modules
(equal to its ``logits_per_text`` / ``exp(logit_scale)``), and there is no ``encode_texts`` for X-CLIP.

CLIP-ViP (``model_type: clip_vip``, :mod:`llamafactory_video.model.clip_vip`) is a video model too: its vision tower
reads the whole clip (``M`` proxy tokens + every frame's patches, proxy-guided attention), and the video embedding is
its own (the projected first proxy), so there is no per-frame aggregation; clips are resampled to its
``temporal_size`` frames as the official code feeds it a fixed frame count. Its local (SPARC) features are all
``M + T * P`` vision tokens, proxies included (4 + 12 x 196 = 2356 for ViP-B/16: the seed's patch count).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.sparc import (
    collapse_penalties,
    contrastive_loss_from_logits,
    global_contrastive_loss,
    layer_weights,
    sparc_local_loss,
)

CONFIG_NAME = "sparc_align_config.json"
HEADS_NAME = "sparc_align_heads.safetensors"
SUPPORTED_MODEL_TYPES = ("clip", "siglip", "xclip", "clip_vip")
VIDEO_MODEL_TYPES = ("xclip", "clip_vip")  # the vision tower reads whole clips of a fixed frame count
PROJECTED_MODEL_TYPES = ("clip", "xclip", "clip_vip")  # CLIP-style text / visual projections
NO_TEXT_EMBEDDING = (
    "X-CLIP has no video-independent caption embedding: its prompt generator conditions every caption embedding on "
    "the video it is compared with. Score (video, captions) pairs with DualEncoder.score / `llamafactory-video score`."
)


@dataclass
class SparcModelConfig:
    r"""Everything besides the checkpoint that rebuilds the encoder; saved as ``sparc_align_config.json``."""

    model_type: str = "clip"
    base_model: str = ""
    finetuning_type: str = "full"
    aggregation: str = "mean"
    max_frames: int = 64
    local_layer: str = "before_projector"
    local_dim: int = 0
    video_fps: float = 2.0
    video_maxlen: int = 8
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    text_max_length: int = 77
    pad_to_max_length: bool = False
    stage_keys: dict[str, Any] = field(default_factory=dict)

    def save(self, output_dir: str) -> None:
        with open(os.path.join(output_dir, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)

    @classmethod
    def load(cls, model_dir: str) -> "SparcModelConfig":
        from ..artifacts import strip_written_by

        with open(os.path.join(model_dir, CONFIG_NAME), encoding="utf-8") as f:
            return cls(**strip_written_by(json.load(f)))


class TemporalTransformer(nn.Module):
    r"""``(N, T, D)`` frame embeddings -> ``(N, D)``: ``mean_t(x_t + W_o h_t)`` with ``h`` one transformer layer over
    ``x + position``; ``W_o`` starts at zero, so the module starts as the plain mean."""

    def __init__(self, dim: int, max_frames: int = 64, num_heads: int = 4) -> None:
        super().__init__()
        while dim % num_heads:
            num_heads -= 1
        self.position = nn.Parameter(torch.zeros(max_frames, dim))
        self.layer = nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        t = frames.size(1)
        if t > self.position.size(0):
            raise ValueError(f"{t} frames but the temporal transformer holds {self.position.size(0)} positions")
        h = self.layer(frames + self.position[:t], src_key_padding_mask=~frame_mask)
        return masked_mean(frames + self.out(h), frame_mask)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""``(N, T, D)``, ``(N, T)`` bool -> ``(N, D)`` mean over the valid steps."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def unwrap(model: nn.Module) -> nn.Module:
    r"""The transformers model under a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def tower_linear_names(hf_model: nn.Module, towers: tuple[str, ...]) -> list[str]:
    r"""Leaf names of every ``nn.Linear`` inside the given towers (``text_model`` / ``vision_model``)."""
    names = set()
    for tower in towers:
        for name, module in getattr(hf_model, tower).named_modules():
            if isinstance(module, nn.Linear):
                names.add(name.split(".")[-1])
    return sorted(names)


class VideoTextModel(nn.Module):
    r"""The module the Trainer wraps: backbone (full or peft-wrapped), temporal aggregator, local heads."""

    def __init__(self, backbone: nn.Module, config: SparcModelConfig, loss_args: Any | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.sparc_config = config
        self.loss_args = loss_args
        hf = unwrap(backbone)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"model type {config.model_type} is not supported (use {SUPPORTED_MODEL_TYPES})")
        if config.model_type == "xclip" and config.aggregation != "mean":
            raise ValueError(
                f"`sparc_aggregation: {config.aggregation}` does not apply to X-CLIP: X-CLIP aggregates frames with "
                "its own multi-frame integration transformer (`mit`). Leave `sparc_aggregation` at `mean`."
            )
        if config.model_type == "clip_vip" and config.aggregation != "mean":
            raise ValueError(
                f"`sparc_aggregation: {config.aggregation}` does not apply to CLIP-ViP: its video embedding is its "
                "own first proxy token, which attends to every frame. Leave `sparc_aggregation` at `mean`."
            )
        text_hidden = hf.config.text_config.hidden_size
        vision_hidden = hf.config.vision_config.hidden_size
        embed_dim = self._global_dim(hf)
        config.local_dim = config.local_dim or embed_dim
        self.local_text = nn.Linear(text_hidden, config.local_dim, bias=False)
        self.local_vision = nn.Linear(vision_hidden, config.local_dim, bias=False)
        self._init_local_heads(hf)
        self.temporal = (
            TemporalTransformer(embed_dim, config.max_frames) if config.aggregation == "transformer" else None
        )

    # ------------------------------------------------------------------ model-family specifics
    def _global_dim(self, hf: nn.Module) -> int:
        if self.sparc_config.model_type in PROJECTED_MODEL_TYPES:
            return hf.config.projection_dim
        return hf.config.vision_config.hidden_size  # SigLIP: pooled heads keep the hidden size

    def _init_local_heads(self, hf: nn.Module) -> None:
        with torch.no_grad():
            if self.sparc_config.model_type in ("clip", "clip_vip"):
                sources = ((self.local_text, hf.text_projection), (self.local_vision, hf.visual_projection))
            elif self.sparc_config.model_type == "xclip":  # X-CLIP's own patch projection (prompt generator input)
                sources = (
                    (self.local_text, hf.text_projection),
                    (self.local_vision, hf.prompts_visual_projection.t()),
                )
            else:
                sources = ((self.local_text, hf.text_model.head), (self.local_vision, None))
            for head, source in sources:
                weight = getattr(source, "weight", source)
                if weight is not None and weight.shape == head.weight.shape:
                    head.weight.copy_(weight)
                elif head.weight.shape[0] == head.weight.shape[1]:
                    head.weight.copy_(torch.eye(head.weight.shape[0]))

    @property
    def hf(self) -> nn.Module:
        return unwrap(self.backbone)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.hf.logit_scale

    def text_tower(self) -> list[nn.Module]:
        hf = self.hf
        return [hf.text_model] + ([hf.text_projection] if hasattr(hf, "text_projection") else [])

    def vision_tower(self) -> list[nn.Module]:
        hf = self.hf
        return [hf.vision_model] + ([hf.visual_projection] if hasattr(hf, "visual_projection") else [])

    # ------------------------------------------------------------------ encoders
    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_tokens: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        r"""``(B, D)`` text embeddings and, with ``with_tokens``, the local token features ``[(B, L, D_local)]``
        (one entry per layer of ``local_layer``)."""
        hf = self.hf
        need_layers = with_tokens and self.sparc_config.local_layer != "before_projector"
        out = hf.text_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=need_layers)
        pooled = out.pooler_output
        embeds = hf.text_projection(pooled) if self.sparc_config.model_type in PROJECTED_MODEL_TYPES else pooled
        if not with_tokens:
            return embeds, None
        if self.sparc_config.local_layer == "before_projector":
            states = [out.last_hidden_state]
        else:
            states = self._pick_layers(out.hidden_states, "text")
        return embeds, [self.local_text(s) for s in states]

    def fixed_frame_count(self) -> int | None:
        r"""Frames a video model reads per clip (X-CLIP: ``num_frames``, CLIP-ViP: ``temporal_size``), else None."""
        vc = self.hf.config.vision_config
        return {"xclip": getattr(vc, "num_frames", None), "clip_vip": getattr(vc, "temporal_size", None)}.get(
            self.sparc_config.model_type
        )

    def num_proxy_tokens(self) -> int:
        r"""Vision tokens in front of the patches that the local loss uses (CLIP-ViP's ``M`` proxies; else 0)."""
        if self.sparc_config.model_type != "clip_vip":
            return 0
        return self.hf.config.vision_config.num_proxy_tokens

    def patch_mask(self, frame_mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
        r"""``(N, T)`` frame mask -> ``(N, num_tokens)`` mask of the local vision features (proxies always valid)."""
        m = self.num_proxy_tokens()
        p = (num_tokens - m) // frame_mask.size(1)
        mask = frame_mask.repeat_interleave(p, dim=1)
        if m:
            mask = torch.cat([mask.new_ones(mask.size(0), m), mask], dim=1)
        return mask

    def fit_frames(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""X-CLIP / CLIP-ViP take a fixed frame count (:meth:`fixed_frame_count`): each clip's valid frames are
        resampled uniformly to that count (repeated when shorter, subsampled when longer). Other models: unchanged."""
        target = self.fixed_frame_count()
        if target is None:
            return pixel_values, frame_mask
        if pixel_values.size(1) == target and bool(frame_mask.all()):
            return pixel_values, frame_mask
        counts = frame_mask.sum(1).clamp(min=1)
        index = (torch.arange(target, device=counts.device)[None] * counts[:, None]) // target  # (N, target)
        fitted = pixel_values[torch.arange(pixel_values.size(0), device=counts.device)[:, None], index]
        return fitted, torch.ones(fitted.shape[:2], dtype=torch.bool, device=frame_mask.device)

    def encode_frames(
        self, pixel_values: torch.Tensor, frame_mask: torch.Tensor, with_patches: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        r"""``(N, T, C, H, W)`` frames -> ``(N, D)`` video embeddings and, with ``with_patches``, the local patch
        features ``[(N, T * p, D_local)]`` (one entry per layer of ``local_layer``; X-CLIP: ``T`` = its
        ``num_frames``, see :meth:`fit_frames`)."""
        video, patches, _ = self.encode_video_features(pixel_values, frame_mask, with_patches)
        return video, patches

    def encode_video_features(
        self, pixel_values: torch.Tensor, frame_mask: torch.Tensor, with_patches: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor | None]:
        r""":meth:`encode_frames` plus, for X-CLIP, the ``(N, P, D)`` frame-averaged projected patch features its
        prompt generator attends to (``None`` for the other models)."""
        hf = self.hf
        kind = self.sparc_config.model_type
        pixel_values, frame_mask = self.fit_frames(pixel_values, frame_mask)
        n, t = pixel_values.shape[:2]
        need_layers = with_patches and self.sparc_config.local_layer != "before_projector"
        prompt_visual = None
        if kind == "clip_vip":  # the whole clip at once; the video embedding is the projected first proxy
            out = hf.vision_model(pixel_values=pixel_values, output_hidden_states=need_layers)
            video = hf.visual_projection(out.pooler_output)
        else:
            out = hf.vision_model(pixel_values=pixel_values.flatten(0, 1), output_hidden_states=need_layers)
        if kind == "xclip":
            frame_emb = hf.visual_projection(out.pooler_output).view(n, t, -1)
            video = hf.mit(frame_emb).pooler_output
            normed = hf.prompts_visual_layernorm(out.last_hidden_state[:, 1:])
            prompt_visual = (normed @ hf.prompts_visual_projection).view(n, t, -1, video.size(-1)).mean(1)
        elif kind != "clip_vip":
            frame_emb = hf.visual_projection(out.pooler_output) if kind == "clip" else out.pooler_output
            frame_emb = frame_emb.view(n, t, -1)
            video = (
                self.temporal(frame_emb, frame_mask)
                if self.temporal is not None
                else masked_mean(frame_emb, frame_mask)
            )
        if not with_patches:
            return video, None, prompt_visual
        if self.sparc_config.local_layer == "before_projector":
            last = out.last_hidden_state
            if kind in ("clip", "clip_vip"):
                states = [hf.vision_model.post_layernorm(last)]
            elif kind == "xclip":
                states = [torch.cat([last[:, :1], hf.prompts_visual_layernorm(last[:, 1:])], dim=1)]
            else:
                states = [last]
        else:
            states = self._pick_layers(out.hidden_states, "vision")
        skip = 1 if kind in ("clip", "xclip") else 0  # CLIP's CLS token is no patch; CLIP-ViP keeps its proxies
        patches = [self.local_vision(s[:, skip:]).reshape(n, -1, self.sparc_config.local_dim) for s in states]
        return video, patches, prompt_visual

    def similarity(
        self, text_emb: torch.Tensor, video_emb: torch.Tensor, prompt_visual: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""``(B, N)`` cosine similarity of every caption with every video (multiply by ``exp(logit_scale)`` for the
        model's logits).

        CLIP / SigLIP: cosine of the independent embeddings. X-CLIP: ``XCLIPModel.forward``'s own composition: each
        caption embedding plus the prompt generator's residual computed against each video's patch features
        (``prompt_visual`` from :meth:`encode_video_features`), then the cosine with that video's embedding.
        """
        if self.sparc_config.model_type != "xclip":
            return F.normalize(text_emb, dim=-1) @ F.normalize(video_emb, dim=-1).t()
        if prompt_visual is None:
            raise ValueError("X-CLIP similarity needs the videos' prompt features (encode_video_features)")
        text = text_emb.unsqueeze(0).expand(video_emb.size(0), -1, -1)  # (N, B, D)
        text = F.normalize(text + self.hf.prompts_generator(text, prompt_visual), dim=-1)
        return torch.einsum("nd,nbd->bn", F.normalize(video_emb, dim=-1), text)

    def _pick_layers(self, hidden_states: tuple[torch.Tensor, ...], tower: str) -> list[torch.Tensor]:
        r"""``after_embedding``: the embedding output; ``all_layers``: K = min(text, vision layers) layers, layer
        ``k`` of the tower taken at depth ``ceil(k * layers / K)``."""
        if self.sparc_config.local_layer == "after_embedding":
            return [hidden_states[0]]
        hf = self.hf
        k = min(hf.config.text_config.num_hidden_layers, hf.config.vision_config.num_hidden_layers)
        n = len(hidden_states) - 1
        return [hidden_states[-(-(i * n) // k)] for i in range(1, k + 1)]

    def patches_per_frame(self) -> int:
        vc = self.hf.config.vision_config
        return (vc.image_size // vc.patch_size) ** 2

    # ------------------------------------------------------------------ training forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        frame_mask: torch.Tensor,
        video_index: torch.Tensor,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        r"""Losses of one micro-batch of ``B`` captions over its ``N`` distinct videos.

        Args:
            input_ids, attention_mask: ``(B, L)`` captions.
            token_mask: ``(B, L)`` bool, tokens the local loss uses (real, non-special, visual content).
            pixel_values: ``(N, T, C, H, W)``; frame_mask: ``(N, T)`` bool (videos shorter than ``T`` are padded).
            video_index: ``(B,)`` index of each caption's video in ``pixel_values``.
        """
        args = self.loss_args
        use_local = args.sparc_local_weight > 0
        need_features = use_local or args.sparc_token_collapse_weight > 0 or args.sparc_patch_collapse_weight > 0
        pixel_values, frame_mask = self.fit_frames(pixel_values, frame_mask)
        text_emb, tokens = self.encode_text(input_ids, attention_mask, with_tokens=need_features)
        video_emb, patches, prompt_visual = self.encode_video_features(
            pixel_values, frame_mask, with_patches=need_features
        )
        scale = self.logit_scale
        if args.sparc_max_logit_scale is not None:
            scale = scale.clamp(max=args.sparc_max_logit_scale)
        groups = video_index if args.sparc_global_loss == "multi_positive" else None
        if self.sparc_config.model_type == "xclip":  # pairwise logits: caption i vs the video of caption j
            logits = scale.exp() * self.similarity(text_emb, video_emb, prompt_visual)[:, video_index]
            loss_global = contrastive_loss_from_logits(logits, groups)
        else:
            loss_global = global_contrastive_loss(text_emb, video_emb[video_index], scale, groups)
        out = {"loss_global": loss_global, "temperature": (-scale).exp().detach()}
        loss = args.sparc_global_weight * loss_global
        if need_features:
            patch_mask = self.patch_mask(frame_mask, patches[0].size(1))
            temperature = args.sparc_local_temperature
            if temperature is None:
                temperature = (-scale).exp()
            local = torch.zeros((), device=loss.device)
            weights = layer_weights(len(tokens))
            for w, tok, pat in zip(weights, tokens, patches):
                layer_loss, _ = sparc_local_loss(
                    tok,
                    pat[video_index],
                    token_mask.bool(),
                    patch_mask[video_index],
                    temperature,
                    threshold=args.sparc_sparsity_threshold,
                    keep_patches=args.sparc_keep_patches,
                )
                local = local + w * layer_loss
            local = local / sum(weights)
            out["loss_local"] = local
            if use_local:
                loss = loss + args.sparc_local_weight * local
            token_pen, patch_pen = collapse_penalties(tokens[-1], token_mask.bool(), patches[-1], patch_mask)
            out["token_similarity"], out["patch_similarity"] = token_pen, patch_pen
            loss = loss + args.sparc_token_collapse_weight * token_pen + args.sparc_patch_collapse_weight * patch_pen
        out["loss"] = loss
        return out

    # ------------------------------------------------------------------ persistence
    def extra_state_dict(self) -> dict[str, torch.Tensor]:
        r"""Parameters outside the saved backbone: local heads, temporal aggregator, and (LoRA) the logit scale."""
        state = {f"local_text.{k}": v for k, v in self.local_text.state_dict().items()}
        state.update({f"local_vision.{k}": v for k, v in self.local_vision.state_dict().items()})
        if self.temporal is not None:
            state.update({f"temporal.{k}": v for k, v in self.temporal.state_dict().items()})
        state["logit_scale"] = self.logit_scale.detach().reshape(1)
        return {k: v.detach().contiguous().cpu() for k, v in state.items()}

    def load_extra_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, module in (("local_text.", self.local_text), ("local_vision.", self.local_vision)):
            module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        if self.temporal is not None:
            self.temporal.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("temporal.")})
        if "logit_scale" in state:
            with torch.no_grad():
                self.logit_scale.copy_(state["logit_scale"].reshape(self.logit_scale.shape).to(self.logit_scale))

    def save(self, output_dir: str, processor: Any | None = None) -> None:
        from safetensors.torch import save_file

        os.makedirs(output_dir, exist_ok=True)
        self.backbone.save_pretrained(output_dir, safe_serialization=True)
        save_file(self.extra_state_dict(), os.path.join(output_dir, HEADS_NAME))
        self.sparc_config.save(output_dir)
        if processor is not None:
            processor.save_pretrained(output_dir)


def load_trainable_state(model: "VideoTextModel", checkpoint_dir: str) -> None:
    r"""Load a checkpoint written by :meth:`VideoTextModel.save` into ``model`` in place (resume)."""
    from safetensors.torch import load_file

    if hasattr(model.backbone, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model.backbone, load_file(os.path.join(checkpoint_dir, "adapter_model.safetensors")))
    else:
        from ..host.checkpoint import load_model_checkpoint

        # save_pretrained wrote it with the weight conversions reverted; every backbone weight must come back
        load_model_checkpoint(model.backbone, checkpoint_dir)
    model.load_extra_state_dict(load_file(os.path.join(checkpoint_dir, HEADS_NAME)))


def lora_target_modules(hf_model: nn.Module, lora_target: list[str], towers: tuple[str, ...]) -> str:
    r"""A peft ``target_modules`` regex: ``all`` -> every linear layer of the trainable towers; otherwise the given
    leaf names, restricted to those towers."""
    names = tower_linear_names(hf_model, towers) if lora_target in (["all"], "all") else list(lora_target)
    return r"^({})\..*\.({})$".format("|".join(towers), "|".join(names))


def load_backbone(model_dir: str, **kwargs: Any) -> nn.Module:
    from transformers import AutoModel

    from ..host.clip_vip import register_clip_vip

    register_clip_vip()  # CLIP-ViP directories also load outside llamafactory-cli (score, attention-map, tools)

    return AutoModel.from_pretrained(model_dir, **kwargs)


def model_type_of(hf_model: nn.Module) -> str:
    model_type = getattr(hf_model.config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"`stage: sparc_align` needs a CLIP, SigLIP, X-CLIP or CLIP-ViP model (model_type clip / siglip / xclip / "
            f"clip_vip), got "
            f"model_type `{model_type}`. Point `model_name_or_path` at e.g. openai/clip-vit-base-patch16."
        )
    return model_type


class DualEncoder:
    r"""Inference view of a saved ``sparc_align`` model (see :func:`load_dual_encoder`)."""

    def __init__(self, model: VideoTextModel, processor: Any, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.image_processor = getattr(processor, "image_processor", None)
        self.device = device
        self.config = model.sparc_config

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        padding = "max_length" if self.config.pad_to_max_length else True
        enc = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.config.text_max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def frames(self, path: str) -> list[Any]:
        r"""The frames the model sees (X-CLIP: resampled to its ``num_frames``, :meth:`VideoTextModel.fit_frames`)."""
        from ..data.frames import load_video_frames

        c = self.config
        frames = load_video_frames(path, c.video_fps, c.video_maxlen, c.video_max_pixels, c.video_min_pixels)
        target = self.model.fixed_frame_count()
        if target is not None:
            frames = [frames[i * len(frames) // target] for i in range(target)]
        return frames

    def pixel_values(self, frames: list[Any]) -> torch.Tensor:
        return self.image_processor(images=frames, return_tensors="pt")["pixel_values"].to(self.device)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        r"""``(N, D)`` L2-normalised caption embeddings (CLIP / SigLIP; X-CLIP has none, use :meth:`score`)."""
        if self.config.model_type == "xclip":
            raise ValueError(NO_TEXT_EMBEDDING)
        emb, _ = self.model.encode_text(**self.tokenize(texts))
        return F.normalize(emb.float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_video(self, path: str) -> torch.Tensor:
        r"""``(D,)`` L2-normalised embedding of the video at ``path`` (X-CLIP: the ``mit`` output, which it compares
        with video-conditioned caption embeddings only, see :meth:`score`)."""
        pixels = self.pixel_values(self.frames(path))[None]
        mask = torch.ones(pixels.shape[:2], dtype=torch.bool, device=self.device)
        emb, _ = self.model.encode_frames(pixels, mask)
        return F.normalize(emb.float(), dim=-1)[0].cpu()

    @torch.no_grad()
    def score(self, path: str, texts: list[str]) -> list[tuple[str, float, float]]:
        r"""``[(caption, cosine, logit)]`` ranked best first; logit = ``exp(logit_scale) * cosine``. Works for every
        model type (X-CLIP: each caption conditioned on this video, :meth:`VideoTextModel.similarity`)."""
        pixels = self.pixel_values(self.frames(path))[None]
        mask = torch.ones(pixels.shape[:2], dtype=torch.bool, device=self.device)
        video, _, prompt_visual = self.model.encode_video_features(pixels, mask)
        text, _ = self.model.encode_text(**self.tokenize(texts))
        cosine = self.model.similarity(text, video, prompt_visual)[:, 0].float().cpu()
        scale = float(self.model.logit_scale.exp())
        rows = [(text, float(c), float(c) * scale) for text, c in zip(texts, cosine)]
        return sorted(rows, key=lambda row: -row[1])

    @torch.no_grad()
    def token_patch_weights(self, path: str, text: str) -> dict[str, Any]:
        r"""SPARC alignment weights of each caption token over each frame's patches.

        Returns:
            ``tokens`` (list of str), ``token_mask`` (list of bool: tokens the local loss uses), ``frames``
            (PIL frames), ``weights`` ``(L, T, h, w)`` tensor (each token's weights sum to 1 over all frames).
        """
        from ..data.sparc import load_stop_words, visual_token_mask
        from ..losses.sparc import sparc_alignment_weights

        frames = self.frames(path)
        pixels = self.pixel_values(frames)[None]
        frame_mask = torch.ones(pixels.shape[:2], dtype=torch.bool, device=self.device)
        enc = self.tokenize([text])
        _, tokens = self.model.encode_text(**enc, with_tokens=True)
        _, patches = self.model.encode_frames(pixels, frame_mask, with_patches=True)
        keys = self.config.stage_keys
        sim = torch.einsum("bld,bpd->blp", tokens[-1], patches[-1])
        weights = sparc_alignment_weights(
            sim,
            self.model.patch_mask(frame_mask, sim.size(-1)),
            keys.get("sparc_sparsity_threshold"),
            keys.get("sparc_keep_patches"),
        )[0]
        weights = weights[:, self.model.num_proxy_tokens() :]  # CLIP-ViP: the map shows frame patches only
        p = weights.size(-1) // pixels.size(1)
        side = int(round(p**0.5))
        ids = enc["input_ids"][0].tolist()
        token_strings = self.tokenizer.convert_ids_to_tokens(ids)
        offsets = self.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=len(ids))[
            "offset_mapping"
        ]
        stop_words = (
            load_stop_words(keys.get("sparc_stop_words")) if keys.get("sparc_language_mask", True) else frozenset()
        )
        mask = visual_token_mask(text, offsets, stop_words) + [0] * (len(ids) - len(offsets))
        return {
            "tokens": token_strings,
            "token_mask": [bool(m) for m in mask],
            "frames": frames,
            "weights": weights.reshape(len(ids), pixels.size(1), side, side).float().cpu(),
        }


def load_dual_encoder(model_dir: str, device: str = "cpu") -> DualEncoder:
    r"""Load a ``sparc_align`` output directory (full fine-tune or LoRA adapter + base model) for inference."""
    from safetensors.torch import load_file
    from transformers import AutoProcessor

    config = SparcModelConfig.load(model_dir)
    if config.finetuning_type == "lora":
        from peft import PeftModel

        backbone = PeftModel.from_pretrained(load_backbone(config.base_model), model_dir).merge_and_unload()
    else:
        backbone = load_backbone(model_dir)
    model = VideoTextModel(backbone, config)
    heads = os.path.join(model_dir, HEADS_NAME)
    if os.path.isfile(heads):
        model.load_extra_state_dict(load_file(heads))
    return DualEncoder(model, AutoProcessor.from_pretrained(model_dir), device=device)
