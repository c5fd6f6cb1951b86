"""Property-based tests (hypothesis), issue 14: whatever a user types into a numeric setting, ddlib
either accepts a value in range or raises a ParamError naming the setting, never another exception.
Issue 24: the same for what a sweep grid, a papermill parameter, a selection or images file, an output
path or a second run's settings can hold.

Over every numeric field of every config dataclass (found by introspection, tests/_configs.py) and
over :func:`ddlib.utils.validate_indices` (the selection JSON's index list). Derandomised, so a run
is repeatable; no example database is written.
"""
from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddlib import book, preflight
from ddlib.cli.bps import read_selection
from ddlib.sfm.sets import load_synthetic
from ddlib.sweep import check_names, parse_value, run_name
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


# ============================================================================= issue 24
# Whatever a sweep grid, a papermill -p, a selection file, an images file or an output path holds, ddlib either
# accepts it (and then it works) or stops with one ParamError naming the parameter, never another exception.
FEW = settings(SETTINGS, max_examples=60)
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
# text a grid value or file name may hold: separators, characters a file name cannot hold, long runs
TEXT = st.text(alphabet=string.ascii_letters[:6] + string.digits[:3] + "_=-./: \\é", max_size=70)
GRID_VALUE = st.one_of(TEXT, st.integers(-3, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                       st.none(), st.sampled_from(["1", "1.0", "True", "None", "a__b", "_a", "a_", "x" * 61, "x" * 60]))
POINT = st.dictionaries(NAME, GRID_VALUE, min_size=1, max_size=4)


def _identity(point: dict) -> str:
    return json.dumps([[k, type(v).__name__, repr(v)] for k, v in point.items()])


@SETTINGS
@given(st.sampled_from(["00_data", "tiny", "05_results"]), POINT, POINT)
def test_run_names_are_unique_and_safe(stem: str, a: dict, b: dict) -> None:
    """Issue 24: values differing only in characters a file name cannot hold, or after the 60 characters a run
    name kept, gave two runs one name (the second overwrote the first's notebook and record)."""
    na, nb = run_name(stem, a), run_name(stem, b)
    assert (na == nb) == (_identity(a) == _identity(b)), (a, b, na)
    for n in (na, nb):
        assert re.fullmatch(r"[A-Za-z0-9._=+-]+", n) and len(f"{n}.ipynb".encode()) <= 255, n


@SETTINGS
@given(st.sampled_from(["00_data", "tiny"]), st.lists(POINT, min_size=1, max_size=6))
def test_a_grid_that_would_share_a_name_is_refused(stem: str, points: list[dict]) -> None:
    try:
        names = check_names(stem, points)
    except ParamError as e:
        assert str(e).startswith("the grid gives two runs the name")
        assert len({_identity(p) for p in points}) < len(points)
        return
    assert len(set(names)) == len(points)


@SETTINGS
@given(st.one_of(TEXT, st.sampled_from(["1,10", "[1, 10]", "(1, 2)", "[1, 10", "[", "1,,2", ",", "bps, random",
                                         "{1: 2}", "[[1]]", "'x'"])))
def test_a_list_parameter_given_as_text_becomes_a_list_or_says_how(text: str) -> None:
    """Issue 24: -p ipcs "[1, 2]" was refused without saying that -y "ipcs: [1, 2]" works."""
    try:
        out = book.parse_list("ipcs", text)
    except ParamError as e:
        assert str(e).startswith("ipcs=") and '-p ipcs 1,10 or -p ipcs "[1, 10]"' in str(e) and "-y" in str(e)
        return
    assert isinstance(out, list) and out
    if "," in text and not text.strip().startswith(("[", "(")):
        assert out == [parse_value(v.strip()) for v in text.split(",") if v.strip()]


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.floats(allow_nan=False), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
SELECTION = st.one_of(JSON, st.fixed_dictionaries({"indices": JSON}, optional={
    k: JSON for k in ("dataset", "config", "teacher_dataset", "identity", "ipc", "method", "timings")}))


@SETTINGS
@given(st.one_of(SELECTION.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)))
def test_a_selection_file_is_read_or_named(tmp_path_factory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("sel") / "sel.json"
    path.write_bytes(blob)
    try:
        sel = read_selection(path)
    except ParamError as e:
        assert str(e).startswith(f"selection={str(path)!r}") and "\n" not in str(e)
        return
    assert isinstance(sel, dict) and isinstance(sel["indices"], list)


def _saved(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


TENSOR = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                   st.lists(st.integers(0, 3), max_size=5).map(tuple), st.sampled_from([torch.float32, torch.long]))
IMAGES_FILE = st.one_of(
    st.binary(max_size=60),
    st.builds(_saved, st.one_of(JSON, st.dictionaries(st.sampled_from(["images", "labels", "config"]),
                                                      st.one_of(TENSOR, JSON), max_size=3))),
    st.builds(lambda b, n: b[:n], st.builds(_saved, st.fixed_dictionaries({"images": TENSOR, "labels": TENSOR})),
              st.integers(0, 400)),
)


@FEW
@given(IMAGES_FILE)
def test_an_images_file_is_read_or_named(tmp_path_factory, blob: bytes) -> None:
    """Issue 24: a corrupt images.pt gave a raw UnpicklingError traceback."""
    path = tmp_path_factory.mktemp("syn") / "images.pt"
    path.write_bytes(blob)
    try:
        syn = load_synthetic(path)
    except ParamError as e:
        assert str(e).startswith(f"images={str(path)!r}: ") and "\n" not in str(e)
        return
    assert syn["images"].dim() == 4 and len(syn["images"]) == len(syn["labels"]) > 0


SEGMENT = st.sampled_from(["a", "b", "f", "new", "..", "."])


@FEW
@given(st.lists(SEGMENT, min_size=1, max_size=4), st.sampled_from(["folder", "file"]))
def test_an_output_path_is_usable_or_named(tmp_path_factory, parts: list[str], kind: str) -> None:
    """Accepted by the pre-flight means writable: the folder can be made and a file written into it."""
    root = tmp_path_factory.mktemp("tree")
    (root / "a" / "b").mkdir(parents=True)
    (root / "f").write_text("a file")
    (root / "a" / "f").write_text("a file")
    path = root.joinpath(*parts)
    check = preflight.check_folder if kind == "folder" else preflight.check_file
    try:
        p = check("out", path)
    except ParamError as e:
        assert str(e).startswith(f"out={str(path)!r} ") and "\n" not in str(e)
        return
    if kind == "folder":
        p.mkdir(parents=True, exist_ok=True)
        (p / "result.json").write_text("{}")
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")


SETTING = st.dictionaries(st.sampled_from(["per_class", "scale", "seeds", "dataset"]),
                          st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["test", "digits"])), max_size=3)


@FEW
@given(SETTING, SETTING, st.booleans())
def test_a_result_of_other_settings_is_never_replaced_silently(tmp_path_factory, first: dict, second: dict,
                                                               overwrite: bool) -> None:
    out = preflight.Output("out", "file")
    path = tmp_path_factory.mktemp("out") / "r.json"
    with preflight.claim(out, path, first):
        path.write_text(json.dumps({"settings": first}))
    try:
        with preflight.claim(out, path, second, overwrite=overwrite):
            path.write_text(json.dumps({"settings": second}))
    except ParamError as e:
        assert first != second and not overwrite and "holds a result of other settings" in str(e)
        assert json.loads(path.read_text())["settings"] == first
        return
    assert first == second or overwrite
    assert not list(path.parent.glob(".*.lock"))


@FEW
@given(st.lists(NAME, min_size=1, max_size=4, unique=True), st.lists(NAME, max_size=3, unique=True))
def test_an_injected_parameter_is_one_of_the_chapter_or_named(own: list[str], injected: list[str]) -> None:
    """Issue 24: an unknown papermill parameter (-p ipcc 3) drew a warning and the chapter ran on its defaults."""
    history = ["", "\n".join(f"{n} = None" for n in own), "# Parameters\n" + "\n".join(f"{n} = 1" for n in injected),
               "book.check_parameters(globals())"]
    namespace = {"In": history, **{n: None for n in own}, **{n: 1 for n in injected}}
    try:
        book.check_parameters(namespace)
    except ParamError as e:
        unknown = [n for n in injected if n not in own]
        assert unknown and str(e).startswith(repr(unknown[0])) and f"accepted: {sorted(own)}" in str(e)
        return
    assert set(injected) <= set(own)
