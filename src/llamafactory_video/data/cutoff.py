"""Samples whose video tokens ``cutoff_len`` would cut, found before training (stages on the host's ``sft`` data).

The host's supervised processor truncates every sample to ``cutoff_len`` silently; a prompt cut inside (or before)
its video tokens leaves ``video_grid_thw`` rows without their tokens, which ``fastslow_ar`` only notices in the first
step (``video_grid_thw has 2 rows but input_ids hold 0 video runs``). :func:`guard_video_truncation` wraps a host
processor so that every such sample is listed, with its file, index and the cutoff_len it needs, before training.
"""

from typing import Any

MAX_LISTED = 20


def guard_video_truncation(processor: Any, stage: str) -> Any:
    r"""Wrap ``processor.preprocess_dataset`` (a host ``DatasetProcessor``) with the check; returns ``processor``."""
    original = processor.preprocess_dataset
    plugin = processor.template.mm_plugin
    video_token = getattr(plugin, "video_token", None)
    if video_token is None:
        return processor
    video_id = processor.tokenizer.convert_tokens_to_ids(video_token)

    def preprocess_dataset(examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if "_sample_index" not in examples:
            return original(examples)
        merged: dict[str, list[Any]] = {}
        problems = []
        for i in range(len(examples["_prompt"])):
            one = {key: values[i : i + 1] for key, values in examples.items()}
            out = original(one)
            for key, values in out.items():
                merged.setdefault(key, []).extend(values)
            videos = examples["_videos"][i] or []
            if not videos or not out.get("input_ids"):
                continue
            messages = plugin.process_messages(
                examples["_prompt"][i] + examples["_response"][i],
                examples["_images"][i] or [],
                videos,
                examples["_audios"][i] or [],
                processor.processor,
            )
            expected = sum(m["content"].count(video_token) for m in messages)
            kept = out["input_ids"][-1].count(video_id)
            if kept < expected:
                pairs = processor.template.encode_multiturn(
                    processor.tokenizer, messages, examples["_system"][i], examples["_tools"][i]
                )
                needed = sum(len(s) + len(t) for s, t in pairs)
                problems.append(
                    f"  - dataset `{examples['_dataset_name'][i]}` sample {examples['_sample_index'][i]}: "
                    f"{needed} tokens ({expected} of them video tokens) but cutoff_len is "
                    f"{processor.data_args.cutoff_len}: truncation keeps {kept} video tokens. "
                    f"Raise cutoff_len to at least {needed}, or lower video_max_pixels / video_maxlen"
                )
        if problems:
            more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
            raise ValueError(
                f"{len(problems)} sample(s) cannot train with `stage: {stage}`: cutoff_len would cut their video "
                "tokens (checked before training):\n" + "\n".join(problems[:MAX_LISTED]) + more
            )
        return merged

    processor.preprocess_dataset = preprocess_dataset
    return processor
