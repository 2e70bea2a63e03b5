"""Heads and hooks attached to models loaded by LlamaFactory."""
