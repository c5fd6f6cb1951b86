"""Helpers for the chapters: the pre-flight of a chapter's parameters and the closing environment report.

Every chapter's first cell is tagged ``parameters``; it sets ``scale`` and the chapter's parameters,
where ``None`` means "the value of this scale's preset". The second cell calls :func:`check_parameters`
and builds the chapter's preset with one call of :mod:`ddlib.presets`, which fails at once with a
:class:`~ddlib.utils.ParamError` naming the parameter and the accepted values.

Scales (:data:`ddlib.presets.SCALES`): ``test`` (seconds; what the test-suite runs), ``cpu`` (the
book's default: minutes on 2 CPU cores), ``gpu`` (the full-scale runs, on a GPU). Whether the test
suite runs is :func:`ddlib.utils.in_test` (re-exported here for the chapters).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from ddlib.utils import ParamError, environment_info, in_test

__all__ = ["in_test", "check_parameters", "class_index", "list_parameters", "parse_list", "environment_report"]

#: how papermill's injected cell begins (its ``PythonTranslator`` comments it so)
INJECTED = "# Parameters"


def list_parameters() -> frozenset[str]:
    """The chapters' parameters that take a list: those a scale of :data:`ddlib.presets.VALUES` sets to a list
    (``ipcs``, ``eval_backbones`` ...) or to :data:`ddlib.presets.ALL_METHODS` (``methods``: "all" stands for
    the list of every registered selector), also with chapter 5's ``sfm_`` prefix, and chapter 5's
    ``synthesis`` (:data:`ddlib.presets.LIVE_SYNTHESIS`, a list that its own table holds)."""
    from ddlib import presets

    names = {n for workflow in presets.VALUES.values() for values in workflow.values()
             for n, v in values.items() if isinstance(v, (list, tuple)) or v == presets.ALL_METHODS}
    return frozenset(names | {f"sfm_{n}" for n in names} | {"synthesis"})


def parse_list(name: str, value: Any) -> Any:
    """A list-valued parameter given as text, as papermill's ``-p`` passes it, as a list: ``"1,10"`` and
    ``"[1, 10]"`` give ``[1, 10]``, ``"bps"`` gives ``["bps"]``; anything but text is returned as it is.

    Text that is neither (``"[1, 10"``) raises a :class:`ParamError` saying how to pass a list.
    """
    from ddlib.sweep import parse_value

    if not isinstance(value, str):
        return value
    text = value.strip()
    how = (f"pass a list as -p {name} 1,10 or -p {name} \"[1, 10]\" (or papermill's -y \"{name}: [1, 10]\"; "
           "from Python, a list)")
    if text and text[0] in "[(":
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ParamError(f"{name}={value!r} is not a list; {how}") from None
        if not isinstance(parsed, (list, tuple)):
            raise ParamError(f"{name}={value!r} is not a list; {how}")
        return list(parsed)
    items = [v for v in text.split(",") if v.strip()]
    if not items:
        raise ParamError(f"{name}={value!r} names no value; {how}")
    return [parse_value(v.strip()) for v in items]


def _assigned(source: str) -> list[str]:
    """The names a cell assigns at its top level (``name = value``), in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        out += [t.id for t in targets if isinstance(t, ast.Name)]
    return out


def _injected(history: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """From a kernel's input history (``In``): the names papermill injected, and those of the cell run just
    before its injected cell (the chapter's ``parameters`` cell; None when there was none)."""
    for i in range(len(history) - 1, -1, -1):
        if isinstance(history[i], str) and history[i].lstrip().startswith(INJECTED):
            before = history[i - 1] if i > 1 and isinstance(history[i - 1], str) else None
            return _assigned(history[i]), None if before is None else _assigned(before)
    return [], None


def check_parameters(namespace: MutableMapping[str, Any], accepted: Iterable[str] | None = None) -> None:
    """A chapter's pre-flight, called with ``globals()`` in its setup cell before any work.

    1. Every parameter papermill injected (``-p NAME VALUE``, ``-y``, a sweep's ``-p``) must be one of the
       chapter's: ``accepted``, or by default the names its ``parameters`` cell assigns (read from the kernel's
       input history, where papermill's injected cell follows that cell). An unknown name (``-p ipcc 3``)
       raises a :class:`ParamError` listing the accepted names, instead of papermill's warning and a run on
       the defaults. Without injected parameters (Jupyter, the book build) there is nothing to check.
    2. List-valued parameters (:func:`list_parameters`) given as text become lists (:func:`parse_list`):
       ``-p ipcs 1,10`` and ``-p ipcs "[1, 10]"`` both work.
    3. The artifact cache (``$DDLIB_CACHE``) must be a folder this user can write
       (:func:`ddlib.preflight.check_cache`).
    """
    from ddlib import preflight

    history = namespace.get("In") or namespace.get("_ih") or []
    injected, own = _injected(list(history))
    names = set(accepted) if accepted is not None else set(own or [])
    unknown = [n for n in injected if n not in names and not n.startswith("PAPERMILL_")]
    if unknown:
        where = "" if accepted is not None or own is not None else " (it has no cell tagged 'parameters')"
        verb = "is not a parameter" if len(unknown) == 1 else "are not parameters"
        raise ParamError(f"{', '.join(map(repr, unknown))} {verb} of this chapter{where}; accepted: {sorted(names)}")
    for name in list_parameters():
        if name in namespace and (accepted is None or name in names):
            namespace[name] = parse_list(name, namespace[name])
    preflight.check_cache()


def class_index(name: str, value: Any, classes: Sequence[str]) -> int:
    """A class a chapter's parameter names, by index or by name (``show_class=6`` or ``"Shirt"``), as its
    index; anything else raises a :class:`ParamError` naming the parameter and the accepted values."""
    from ddlib.utils import check_choice, check_int

    if isinstance(value, str):
        return list(classes).index(check_choice(name, value, list(classes)))
    return check_int(name, value, 0, len(classes) - 1)


def environment_report() -> str:
    """One line per version and the device: printed at the end of every chapter."""
    info = environment_info()
    width = max(map(len, info))
    return "\n".join(f"{k:>{width}}: {v}" for k, v in info.items())
