from .workflow import run_scst


__all__ = ["run_scst"]
