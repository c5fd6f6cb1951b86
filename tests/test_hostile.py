"""Issue 14, bad input as a hostile user would give it: every case ends in a clear ParamError naming
the parameter (or an explicit, recorded recovery), never in nonsense that exits 0 or a traceback.

Data files and archives are in tests/test_data.py, the cache in tests/test_artifacts.py, sweeps in
tests/test_sweep.py; the property-based sweep over every numeric field is tests/test_properties.py.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ddlib import utils
from ddlib.baselines import BASELINES, SelectionInputs
from ddlib.selectors import SELECTORS
from ddlib.utils import ParamError, check_float, check_int, check_ipc, dumps_strict, get_device, validate_indices
from tests._configs import config_classes, default_value, numeric_fields, required_kwargs

NON_FINITE = [float("nan"), float("inf"), float("-inf"), np.float32("nan"), np.float64("-inf")]


# ----------------------------------------------------------------------------- finite numbers
@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_check_float_refuses_nan_and_inf(value) -> None:
    for lo, hi in ((None, None), (0.0, None), (None, 1.0), (-1.0, 1.0)):
        with pytest.raises(ParamError, match=r"^lr=.* is not a finite number"):
            check_float("lr", value, lo, hi)
    with pytest.raises(ParamError, match="finite"):
        check_float("lr", 10**400)  # an int beyond float's range
    assert check_float("lr", 1e308) == 1e308 and check_float("lr", np.float32(0.5)) == 0.5


def _float_cases() -> list[tuple[type, str, int | None]]:
    """(config class, float field, element index for a tuple of floats) for every config in ddlib."""
    cases = []
    for cls in config_classes():
        for name, kind in numeric_fields(cls).items():
            if kind == "float":
                cases.append((cls, name, None))
            elif kind == "floats":
                n = len(default_value(cls, name, Path("/tmp")) or (0.5, 1.0))
                cases += [(cls, name, i) for i in range(n)]
    return cases


FLOAT_CASES = _float_cases()


def test_the_configs_are_found() -> None:
    """The introspection sees the configs the issue names (a rename would otherwise empty the test)."""
    names = {c.__name__ for c in config_classes()}
    assert {"TeacherConfig", "PatternConfig", "SelectConfig", "StudentConfig", "SynthConfig", "ProbeConfig",
            "EncoderConfig", "TrainConfig", "AugmentConfig", "ForgettingConfig", "GoldenConfig"} <= names
    assert len(FLOAT_CASES) > 40


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cls, name, element", FLOAT_CASES,
                         ids=[f"{c.__name__}.{n}" + ("" if e is None else f"[{e}]") for c, n, e in FLOAT_CASES])
def test_every_float_field_refuses_non_finite(cls: type, name: str, element: int | None, bad: float,
                                              tmp_path: Path) -> None:
    """Issue 14: --teacher-lr nan, --min-sim nan, --k-ratio nan, --temperature nan, distill --lr inf, ..."""
    value = bad
    if element is not None:
        base = list(default_value(cls, name, tmp_path) or (0.5, 1.0))
        base[element] = bad
        value = tuple(base)
    with pytest.raises(ParamError, match=name):
        cls(**{**required_kwargs(cls, tmp_path), name: value})


# ----------------------------------------------------------------------------- strict JSON
def test_dumps_strict_writes_null_for_non_finite() -> None:
    obj = {"a": float("nan"), "b": [1.5, float("inf"), np.float32("-inf")], "c": np.array([1.0, np.nan]),
           "d": (np.int64(3), Path("/x"))}
    text = dumps_strict(obj)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "a": None, "b": [1.5, None, None], "c": [1.0, None], "d": [3, "/x"]}
    assert "NaN" not in text and "Infinity" not in text
    assert math.isnan(utils.json_safe({"a": float("nan")})["a"])  # the non-strict form keeps NaN
    with pytest.raises(TypeError):
        dumps_strict({"x": object()})  # not silently stringified
    assert json.loads(dumps_strict({"x": object()}, default=lambda o: "obj")) == {"x": "obj"}


# ----------------------------------------------------------------------------- device
@pytest.mark.parametrize("device", ["tpu", "", "gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", " cpu", 3, 1.5, True,
                                    torch.device("meta")])
def test_get_device_refuses_unknown_devices(device) -> None:
    with pytest.raises(ParamError, match=r"device=.*'cpu', 'cuda', 'cuda:N'.*None"):
        get_device(device)


def test_get_device_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for d in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ParamError, match="device=.*no CUDA device"):
            get_device(d)
    assert get_device("cpu") == torch.device("cpu") and get_device(None) == torch.device("cpu")


def test_get_device_with_too_few_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert get_device("cuda:1") == torch.device("cuda:1") and get_device("cuda") == torch.device("cuda")
    with pytest.raises(ParamError, match=r"device='cuda:7' asks for GPU 7, but this machine has 2 "
                                         r"\(cuda:0 … cuda:1\)"):
        get_device("cuda:7")


def test_get_device_checks_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DEVICE", "tpu")
    with pytest.raises(ParamError, match="DDLIB_DEVICE='tpu'"):
        get_device()
    assert get_device("cpu") == torch.device("cpu")  # an explicit device wins over the variable
    monkeypatch.setenv("DDLIB_DEVICE", "")
    assert get_device().type in ("cpu", "cuda")


# ----------------------------------------------------------------------------- selection indices
@pytest.mark.parametrize("indices, match", [
    ([], "indices is empty"),
    ([0, 1.7, 2], r"indices\[1\]=1.7 is not an integer"),
    ([0, 2.0], r"indices\[1\]=2.0 is not an integer"),
    ([0, "3"], r"indices\[1\]='3' is not an integer"),
    ([True, 1], r"indices\[0\]=True is not an integer"),
    ([0, None], r"indices\[1\]=None is not an integer"),
    ([0, -1, 3], r"indices\[1\]=-1 is negative; image indices count from 0 to 9"),
    ([0, 10], r"indices\[1\]=10 is out of range: the training set has 10 images \(indices 0 … 9\)"),
    ([3, 1, 3, 1, 1], r"indices lists 2 image\(s\) more than once \(e.g. 3 at positions \[0, 2\]\)"),
    ("0,1,2", "must be a list of image indices"),
    ({"0": 1}, "must be a list of image indices"),
    (np.array([0.5, 1.0]), r"indices\[0\]=0.5 is not an integer"),
])
def test_validate_indices_names_the_problem(indices, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        validate_indices(indices, 10)


def test_validate_indices_accepts_good_lists() -> None:
    assert validate_indices([3, 0, 9], 10) == [3, 0, 9]
    assert validate_indices(np.array([1, 2], dtype=np.int64), 10) == [1, 2]
    assert validate_indices(torch.tensor([4]), 10) == [4]
    assert all(type(i) is int for i in validate_indices(np.arange(5), 10))
    with pytest.raises(ParamError, match="n_train"):
        validate_indices([0], 0)


# ----------------------------------------------------------------------------- IPC and class counts
def _inputs(sizes: dict[int, int], classes: list[str] | None = None) -> SelectionInputs:
    y = np.concatenate([np.full(n, c) for c, n in sizes.items()])
    emb = np.random.default_rng(0).normal(size=(len(y), 4))
    return SelectionInputs(emb, y, classes=classes)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_ipc_above_a_class_is_an_error_naming_the_class(method: str) -> None:
    """Issue 14: ``--ipc 50`` on 12 images a class was capped silently while the output said ``"ipc": 50``."""
    inp = _inputs({0: 30, 1: 12, 2: 40}, classes=["T-shirt", "Trouser", "Bag"])
    inp.scores = {"forgetting": np.ones(82), "el2n": np.linspace(0, 1, 82)}
    with pytest.raises(ParamError, match=r"ipc=20 exceeds class 'Trouser' \(label 1\) \(12 images\); lower ipc to "
                                         r"at most 12.*cap=True"):
        SELECTORS[method](inp, 20, 0)
    sel = SELECTORS[method](inp, 20, 0, cap=True)
    assert sel["config"]["ipc"] == 20 and sel["config"]["capped"] == {"1": 12}
    assert np.bincount(inp.labels[sel["indices"]]).tolist() == [20, 12, 20]
    assert "cap" not in SELECTORS[method](inp, 12, 0)["config"]  # a class of exactly ipc images is fine


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_a_single_class_is_refused_by_every_selector(method: str) -> None:
    inp = _inputs({0: 30}, classes=["only"])
    inp.scores = {"forgetting": np.ones(30), "el2n": np.ones(30)}
    with pytest.raises(ParamError, match=r"one class \('only' \(label 0\)\); .* at least 2 classes"):
        SELECTORS[method](inp, 2, 0)


@pytest.mark.parametrize("ipc", [0, -1, 2.5, "3", None, True])
def test_check_ipc_refuses_a_bad_budget(ipc) -> None:
    with pytest.raises(ParamError, match="ipc"):
        check_ipc(ipc, [0, 0, 1, 1])


def test_check_ipc_names_several_small_classes() -> None:
    with pytest.raises(ParamError, match=r"exceeds class 2 \(1 images\) and 1 more class"):
        check_ipc(3, [0, 0, 0, 1, 1, 2])
    assert check_ipc(3, [0, 0, 0, 1, 1, 2], cap=True) == {1: 2, 2: 1}
    assert check_ipc(1, torch.tensor([0, 1])) == {}


# ----------------------------------------------------------------------------- integers stay integers
@pytest.mark.parametrize("value", [float("nan"), 2.5, 2.0, "3", True, None, [1]])
def test_check_int_refuses_non_integers(value) -> None:
    with pytest.raises(ParamError, match="^epochs="):
        check_int("epochs", value, 1)
    assert check_int("epochs", np.int32(3), 1) == 3 and math.isfinite(check_float("x", 3))


def test_configs_are_frozen_dataclasses_that_validate() -> None:
    """What the introspection relies on: each config found validates in ``__post_init__``."""
    for cls in config_classes():
        assert dataclasses.is_dataclass(cls) and "__post_init__" in vars(cls)
