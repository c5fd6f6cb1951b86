"""Helpers for the chapters: the closing environment report.

Every chapter's first cell is tagged ``parameters``; it sets ``scale`` and the chapter's parameters,
where ``None`` means "the value of this scale's preset". The second cell builds the chapter's preset
with one call of :mod:`ddlib.presets`, which fails at once with a :class:`~ddlib.utils.ParamError`
naming the parameter and the accepted values.

Scales (:data:`ddlib.presets.SCALES`): ``test`` (seconds; what the test-suite runs), ``cpu`` (the
book's default: minutes on 2 CPU cores), ``gpu`` (the full-scale runs, on a GPU). Whether the test
suite runs is :func:`ddlib.utils.in_test` (re-exported here for the chapters).
"""
from __future__ import annotations

from ddlib.utils import environment_info, in_test

__all__ = ["in_test", "environment_report"]


def environment_report() -> str:
    """One line per version and the device: printed at the end of every chapter."""
    info = environment_info()
    width = max(map(len, info))
    return "\n".join(f"{k:>{width}}: {v}" for k, v in info.items())
