"""Helpers for the chapters: parameter scales, validation and the closing environment report.

Every chapter's first cell is tagged ``parameters``; it sets ``scale`` and the chapter's
parameters, where ``None`` means "the value of this scale's preset". The second cell calls
:func:`resolve`, which fails at once with a :class:`~ddlib.utils.ParamError` naming the
parameter and the accepted values.

Scales: ``test`` (seconds; what the test-suite runs), ``cpu`` (the book's default: minutes
on 2 CPU cores), ``gpu`` (the full-scale runs, on a GPU).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ddlib.utils import ParamError, check_choice, environment_info, in_test

__all__ = ["SCALES", "resolve", "in_test", "environment_report"]

SCALES = ("test", "cpu", "gpu")


def resolve(scale: str, presets: dict[str, dict[str, Any]], **params: Any) -> SimpleNamespace:
    """The chapter's parameters: each ``None`` in ``params`` replaced by ``presets[scale]``'s value.

    Unknown keys in a preset are added too; every preset must name the same keys.
    """
    check_choice("scale", scale, SCALES)
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ParamError(f"presets lack the scales {missing}")
    merged = dict(presets[scale])
    for k, v in params.items():
        if v is not None or k not in merged:
            merged[k] = v
    return SimpleNamespace(scale=scale, **merged)


def environment_report() -> str:
    """One line per version and the device: printed at the end of every chapter."""
    return "\n".join(f"{k:>8}: {v}" for k, v in environment_info().items())
