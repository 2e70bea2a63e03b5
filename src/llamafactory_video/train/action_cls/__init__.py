from .workflow import run_action_cls


__all__ = ["run_action_cls"]
