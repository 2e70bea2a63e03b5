"""Offline test assets: tiny Qwen2-VL / Qwen2.5-VL checkpoints and synthetic action videos."""
