r"""Batched generation with a host-loaded VLM, through the host's template and multimodal plugin.

The model, tokenizer, processor and template come from ``llamafactory.chat.ChatModel`` (so ``--adapter``,
``--template``, ``video_fps`` / ``video_maxlen`` / pixel limits, quantisation keys behave as in
``llamafactory-cli chat``). Prompts are built like the host's ``HuggingfaceEngine._process_args``
(``mm_plugin.process_messages`` -> ``template.encode_oneturn`` -> ``mm_plugin.process_token_ids``) for a
whole batch, left-padded, and the visual inputs come from ``mm_plugin.get_mm_inputs`` over the batch, as the
training collator does: the prompt format is the one the model was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

VIDEO_PLACEHOLDER = "<video>"


class HostVLM:
    r"""A VLM loaded by LlamaFactory's ChatModel; :meth:`generate` runs a batch of (prompt, videos) greedily."""

    def __init__(
        self,
        model: str,
        template: str = "qwen2_vl",
        adapter: str | None = None,
        video_fps: float = 2.0,
        video_maxlen: int = 128,
        max_new_tokens: int = 64,
        extra_args: dict[str, Any] | None = None,
    ) -> None:
        from llamafactory.chat import ChatModel

        args: dict[str, Any] = {
            "model_name_or_path": model,
            "template": template,
            "infer_backend": "huggingface",
            "video_fps": video_fps,
            "video_maxlen": video_maxlen,
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "trust_remote_code": True,
        }
        if adapter:
            args.update(adapter_name_or_path=adapter, finetuning_type="lora")
        args.update(extra_args or {})
        self.chat_model = ChatModel(args)
        engine = self.chat_model.engine
        self.model, self.tokenizer = engine.model, engine.tokenizer
        self.processor, self.template = engine.processor, engine.template
        self.max_new_tokens = max_new_tokens
        self.video_max_pixels = getattr(self.processor, "video_max_pixels", None)

    def _prompt_ids(self, prompt: str, videos: list[Any]) -> list[int]:
        content = prompt if VIDEO_PLACEHOLDER in prompt else VIDEO_PLACEHOLDER * len(videos) + prompt
        messages = [{"role": "user", "content": content}]
        plugin = self.template.mm_plugin
        messages = plugin.process_messages(messages, [], videos, [], self.processor)
        ids, _ = self.template.encode_oneturn(self.tokenizer, messages + [{"role": "assistant", "content": ""}])
        ids, _ = plugin.process_token_ids(ids, None, [], videos, [], self.tokenizer, self.processor)
        return ids

    def generate(self, prompts: Sequence[str], videos: Sequence[Sequence[list[Any]]]) -> list[str]:
        r"""Greedy answers for ``prompts[i]`` about ``videos[i]`` (each video a list of PIL frames)."""
        import torch
        from transformers import GenerationConfig

        batch_ids = [self._prompt_ids(p, list(v)) for p, v in zip(prompts, videos)]
        width = max(len(ids) for ids in batch_ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch_ids])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch_ids])
        flat_videos = [video for sample in videos for video in sample]
        mm_inputs = self.template.mm_plugin.get_mm_inputs(
            images=[],
            videos=flat_videos,
            audios=[],
            imglens=[0] * len(batch_ids),
            vidlens=[len(v) for v in videos],
            audlens=[0] * len(batch_ids),
            batch_ids=batch_ids,
            processor=self.processor,
        )
        device = self.model.device
        kwargs: dict[str, Any] = {}
        for key, value in mm_inputs.items():
            if key == "second_per_grid_ts":  # qwen2.5-vl: a list, as in the host engine
                kwargs[key] = value.tolist() if isinstance(value, torch.Tensor) else value
                continue
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            if torch.is_floating_point(value):
                value = value.to(self.model.dtype)
            kwargs[key] = value.to(device)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            eos_token_id=self.template.get_stop_token_ids(self.tokenizer),
            pad_token_id=pad,
        )
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=config, **kwargs
            )
        new_tokens = out[:, width:]
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
