"""Property-based tests (hypothesis), issue 14: whatever a user types into a numeric setting, ddlib
either accepts a value in range or raises a ParamError naming the setting, never another exception.

Over every numeric field of every config dataclass (found by introspection, tests/_configs.py) and
over :func:`ddlib.utils.validate_indices` (the selection JSON's index list). Derandomised, so a run
is repeatable; no example database is written.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddlib.utils import ParamError, validate_indices
from tests._configs import config_classes, numeric_fields, required_kwargs

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# what a hostile user (or a notebook's -p, or a JSON file) can put where a number belongs
SCALAR = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 1e-320, -0.0, 0.5, 2.0]),
    st.integers(min_value=-2**70, max_value=2**70),
    st.integers(min_value=-3, max_value=300),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["1", "0.1", "nan", "inf", "", "1e3"]),
    st.builds(np.float64, st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(np.int64, st.integers(min_value=-2**63, max_value=2**63 - 1)),
    st.builds(np.float32, st.floats(width=32, allow_nan=True, allow_infinity=True)),
)
# the values the issue names, drawn as often as all the rest together
HOSTILE = st.sampled_from([float("nan"), float("inf"), float("-inf"), np.float64("nan"), np.float32("inf"),
                           1e308, -1.0, 0, 0.0, -1, 2**70, True, None, "1", "nan", 1.7])
VALUE = st.one_of(HOSTILE, SCALAR, st.tuples(HOSTILE, HOSTILE), st.lists(SCALAR, max_size=5).map(tuple))

CONFIGS = [c for c in config_classes() if numeric_fields(c)]


def _accepted(kind: str, value: object) -> bool:
    """A value a numeric field may hold after construction succeeded."""
    def number(v: object, integer: bool) -> bool:
        if isinstance(v, bool):
            return False
        if integer:
            return isinstance(v, (int, np.integer))
        return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v)

    if value is None:  # an optional field's "not set" (a required one would have raised)
        return True
    if kind == "floats":
        return isinstance(value, (tuple, list)) and all(number(v, False) for v in value)
    return number(value, kind == "int")


@pytest.mark.parametrize("cls", CONFIGS, ids=[c.__name__ for c in CONFIGS])
def test_config_numeric_fields_accept_in_range_or_name_the_field(cls: type, tmp_path: Path) -> None:
    fields = numeric_fields(cls)
    base = required_kwargs(cls, tmp_path)

    @SETTINGS
    @given(st.dictionaries(st.sampled_from(sorted(fields)), VALUE, min_size=1, max_size=3))
    def check(overrides: dict) -> None:
        try:
            cfg = cls(**{**base, **overrides})
        except ParamError as e:
            assert any(name in str(e) for name in overrides), f"{cls.__name__}{overrides}: {e}"
            return
        for name in overrides:
            value = getattr(cfg, name)
            assert _accepted(fields[name], value), f"{cls.__name__}.{name}={value!r} was accepted"

    check()


INDEX = st.one_of(st.integers(min_value=-3, max_value=25), st.floats(allow_nan=True), st.booleans(), st.none(),
                  st.text(max_size=3), st.builds(np.int64, st.integers(min_value=-3, max_value=25)))


@SETTINGS
@given(st.one_of(st.lists(INDEX, max_size=12), st.lists(st.integers(min_value=0, max_value=19), max_size=12),
                 st.text(max_size=5), st.none(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
       st.integers(min_value=1, max_value=20))
def test_validate_indices_accepts_a_valid_list_or_names_the_problem(indices: object, n_train: int) -> None:
    try:
        out = validate_indices(indices, n_train)
    except ParamError as e:
        assert str(e).startswith("indices"), str(e)
        return
    assert isinstance(indices, list) and out == [int(i) for i in indices]
    assert out and len(set(out)) == len(out) and all(type(i) is int and 0 <= i < n_train for i in out)
