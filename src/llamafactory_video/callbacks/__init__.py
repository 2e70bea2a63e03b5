"""Trainer callbacks usable by our stages and by stock LlamaFactory stages (installed through ``host/tuner.py``)."""
