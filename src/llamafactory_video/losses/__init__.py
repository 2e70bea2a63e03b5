"""Losses as small pure functions, each tested alone against a naive reference."""

from .classification import action_cls_loss, gather_token_hidden, scale_gradient


__all__ = ["action_cls_loss", "gather_token_hidden", "scale_gradient"]
