"""One package per plugin stage: ``trainer.py`` + ``workflow.py``, like LlamaFactory's own ``train/<stage>``."""
