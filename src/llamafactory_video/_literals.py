"""Parse-time check of every ``Literal``-typed argument field.

``HfArgumentParser`` turns a ``Literal`` into argparse ``choices`` on the command-line path only: YAML files,
``key=value`` overrides and LlamaBoard all go through ``parse_dict``, which builds the dataclass from the raw
values unchecked, so ``scst_baseline: best`` used to train with whatever branch the code fell into. Each of our
argument dataclasses calls :func:`check_literal_fields` from ``__post_init__``; it walks the fields' annotations,
so a new ``Literal`` key is checked without writing anything for it. Standard library only (tools use it too).
"""

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Optional, Union


def literal_choices(annotation: Any) -> Optional[tuple[Any, ...]]:
    r"""Allowed values of ``Literal[...]`` / ``Optional[Literal[...]]`` (``None`` included then); else ``None``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        choices: list[Any] = []
        found = False
        for arg in typing.get_args(annotation):
            if arg is type(None):
                choices.append(None)
                continue
            inner = literal_choices(arg)
            if inner is None:
                return None  # e.g. Union[Literal["a"], int]: not a fixed set of values
            found = True
            choices.extend(inner)
        return tuple(choices) if found else None
    return None


@functools.lru_cache(maxsize=None)
def _own_annotations(owner: type) -> dict[str, Any]:
    annotations = dict(owner.__dict__.get("__annotations__", {}))
    if any(isinstance(value, str) for value in annotations.values()):  # postponed annotations
        hints = typing.get_type_hints(owner)
        annotations = {name: hints[name] for name in annotations}
    return annotations


def literal_fields(owners: Iterable[type]) -> dict[str, tuple[Any, ...]]:
    r"""``field name -> allowed values`` of every ``Literal`` field the ``owners`` classes declare themselves
    (inherited fields of other classes are left to those classes)."""
    fields: dict[str, tuple[Any, ...]] = {}
    for owner in owners:
        for name, annotation in _own_annotations(owner).items():
            choices = literal_choices(annotation)
            if choices is not None:
                fields[name] = choices
    return fields


def _same(value: Any, choice: Any) -> bool:
    return type(value) is type(choice) and value == choice  # True is not 1, "1" is not 1


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def check_literal_fields(obj: Any, owners: Optional[Iterable[type]] = None, notes: Optional[dict] = None) -> None:
    r"""Raise ``ValueError`` naming the key, the bad value and the allowed values when a ``Literal`` field of
    ``obj`` (declared by ``owners``, default: every dataclass in ``type(obj)``'s MRO) holds another value.

    ``notes`` maps a field name to the text that lists its allowed values in place of the plain list.
    """
    if owners is None:
        owners = [cls for cls in type(obj).__mro__ if dataclasses.is_dataclass(cls)]
    for name, choices in literal_fields(tuple(owners)).items():
        value = getattr(obj, name)
        if any(_same(value, choice) for choice in choices):
            continue
        allowed = (notes or {}).get(name) or "allowed values: " + ", ".join(_show(choice) for choice in choices)
        raise ValueError(f"Invalid value `{_show(value)}` for `{name}`; {allowed}.")
