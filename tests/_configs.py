"""Every frozen config dataclass of ddlib, found by introspection, with its numeric fields.

Shared by tests/test_hostile.py (NaN/inf in every float field) and tests/test_properties.py
(hypothesis over every numeric field). A new config is covered without editing the tests.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from pathlib import Path

import ddlib

# modules that are no place for configs (the book helpers and the CLI import notebooks' machinery)
SKIP_MODULES = ("ddlib.book", "ddlib.bookbuild", "ddlib.cli", "ddlib.__main__")


def config_classes() -> list[type]:
    """Frozen dataclasses named ``*Config`` that validate themselves (``__post_init__``), in name order."""
    found = {}
    for mod in pkgutil.walk_packages(ddlib.__path__, "ddlib."):
        if mod.name.startswith(SKIP_MODULES):
            continue
        m = importlib.import_module(mod.name)
        for obj in vars(m).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__name__.endswith("Config")
                    and obj.__module__ == m.__name__ and obj.__dataclass_params__.frozen
                    and "__post_init__" in vars(obj)):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


def required_kwargs(cls: type, tmp: Path) -> dict:
    """Values for the fields a config has no default for."""
    if cls.__name__ == "SweepConfig":
        import nbformat

        nb = tmp / "n.ipynb"
        if not nb.exists():
            nbformat.write(nbformat.v4.new_notebook(), nb)
        return {"notebook": str(nb), "grid": {"a": [1]}}
    if cls.__name__ == "TrainConfig":
        return {"epochs": 1}
    return {}


def _kind(tp: object) -> str | None:
    """'float', 'int', 'floats' (a tuple of floats) or None for a field's type."""
    union = typing.get_origin(tp) in (typing.Union, _UnionType)
    args = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
    if len(args) != 1:
        return None
    a = args[0]
    if a is float:
        return "float"
    if a is int:
        return "int"
    if typing.get_origin(a) is tuple and typing.get_args(a) and all(x is float for x in typing.get_args(a)):
        return "floats"
    return None


_UnionType = type(int | None)


def numeric_fields(cls: type) -> dict[str, str]:
    """``{field: kind}`` for the float, int and tuple-of-float fields of ``cls`` (bools are not numbers here)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        kind = _kind(hints[f.name])
        if kind is not None:
            out[f.name] = kind
    return out


def default_value(cls: type, name: str, tmp: Path):
    """The default of field ``name`` (from an instance built with the required values)."""
    return getattr(cls(**required_kwargs(cls, tmp)), name)
