"""The one registry of selection methods (BPS and the coreset baselines; book: chapter 2).

A selector is a function ``(inputs, ipc, seed=0, cap=False) -> {"indices", "pattern", "role", "config"}``
over the shared :class:`ddlib.baselines.SelectionInputs`, registered with what it needs:

- ``"features"``: the Stage-1 embeddings (every selector gets them; Stage 1 always runs);
- ``"patterns"``: the per-class Stage-1 partition;
- ``"teacher"``: the full-data teacher's softmax entropies (``inputs.entropies``);
- ``"forgetting"``: the forgetting and EL2N scores of a scoring run (``inputs.scores``).

:func:`ddlib.bps.pipeline.modelling` computes the union of what the chosen selectors need, so a new
selector is one decorated function (and its test)::

    @register("toy", needs=("features",), summary="the first ipc images of each class")
    def select_toy(inputs, ipc, seed=0, cap=False): ...

A selector with Stage-2 settings of its own (BPS) declares ``takes_config=True`` and is called with
``config=`` (a :class:`ddlib.bps.select.SelectConfig`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ddlib.utils import ParamError, check_choice

__all__ = ["NEEDS", "Selector", "SELECTORS", "register", "get", "names"]

#: What a selector may need from the shared modelling (see the module docstring).
NEEDS = ("features", "patterns", "teacher", "forgetting")


@dataclass(frozen=True)
class Selector:
    """A registered selection method: its function, what it needs, and a one-line summary (the book's table)."""

    name: str
    fn: Callable[..., dict]
    needs: frozenset[str]
    summary: str = ""
    takes_config: bool = False

    def __call__(self, inputs, ipc: int, seed: int = 0, cap: bool = False, config=None) -> dict:  # noqa: ANN001
        if self.takes_config and config is not None:
            return self.fn(inputs, ipc, seed, cap, config=config)
        return self.fn(inputs, ipc, seed, cap)


#: name -> :class:`Selector`, in the order the book lists them (BPS first).
SELECTORS: dict[str, Selector] = {}


def register(name: str, *, needs: tuple[str, ...] = ("features",), summary: str = "", takes_config: bool = False,
             first: bool = False) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator: register ``fn`` as the selector ``name`` (``first``: listed before the others). Registering a
    taken name is an error (a selector is defined once)."""
    if not isinstance(name, str) or not name or name.strip() != name or "," in name:
        raise ParamError(f"selector name={name!r} must be a non-empty word without commas or surrounding spaces")
    for need in needs:
        check_choice("needs", need, NEEDS)

    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in SELECTORS and SELECTORS[name].fn is not fn:
            raise ParamError(f"selector {name!r} is registered already ({SELECTORS[name].fn.__module__})")
        entry = Selector(name, fn, frozenset(needs) | {"features"}, summary, takes_config)
        items = [(k, v) for k, v in SELECTORS.items() if k != name]
        SELECTORS.clear()
        SELECTORS.update([(name, entry), *items] if first else [*items, (name, entry)])
        return fn

    return deco


def names() -> tuple[str, ...]:
    """The registered selectors' names, BPS first."""
    return tuple(SELECTORS)


def get(name: str) -> Selector:
    """The selector ``name``; a ParamError naming the registered ones otherwise."""
    check_choice("method", name, list(SELECTORS))
    return SELECTORS[name]
