"""BPS Stage 3: the IPC table, teacher caching and the student protocol (tiny budgets; the KD loss: test_losses)."""
from __future__ import annotations

import pytest
import torch

from ddlib import artifacts, data
from ddlib.bps.distill import (StudentConfig, TeacherConfig, evaluate_selection, kd_setting, teacher_entropies,
                               teacher_key, train_teacher)
from ddlib.utils import ParamError

TINY_T = TeacherConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=64, lr=0.05)
TINY_S = dict(model="convnet", width=8, depth=1, epochs=4, last_epochs=2)


def test_kd_table_is_the_reference():
    assert kd_setting("cifar10", 10, 10) == (0.1, 16)
    assert kd_setting("cifar10:/x.tar.xz", 10, 50) == (0.2, 16)
    assert kd_setting("cifar100", 100, 10) == (0.2, 32)
    assert kd_setting("cifar10", 10, 1) == (0.2, 128)  # not listed: the reference's defaults
    assert kd_setting("fashion-mnist", 10, 10) == (0.1, 16)  # 10 classes: CIFAR-10's table
    assert kd_setting("imagefolder:/d", 7, 10) == (0.2, 128)
    r = StudentConfig().resolved("cifar10", 10, 50)
    assert (r.min_crop, r.batch_size) == (0.2, 16)
    assert StudentConfig(min_crop=0.5).resolved("cifar10", 10, 50).min_crop == 0.5


def test_config_validation():
    with pytest.raises(ParamError, match="loss"):
        StudentConfig(loss="mse")
    with pytest.raises(ParamError, match="model"):
        StudentConfig(model="vgg")
    with pytest.raises(ParamError, match="temperature"):
        StudentConfig(temperature=0)
    with pytest.raises(ParamError, match="teacher epochs"):
        TeacherConfig(epochs=0)


def test_teacher_cached_and_students_kd_and_ce():
    ds = data.load("digits", per_class=30, test_per_class=10)
    t = train_teacher(ds, TINY_T, progress=False)
    assert artifacts.exists(teacher_key(ds, TINY_T))
    assert not any(p.requires_grad for p in t.parameters())
    h = teacher_entropies(t, ds.train_x)
    assert h.shape == (300,) and (h >= 0).all()
    t2 = train_teacher(ds, TINY_T, progress=False)  # from the cache: identical weights
    assert all(torch.equal(a, b) for a, b in zip(t.state_dict().values(), t2.state_dict().values()))
    idx = torch.cat([torch.nonzero(ds.train_y == c).flatten()[:3] for c in range(10)])  # 3 per class
    r = evaluate_selection(ds, idx, StudentConfig(**TINY_S), seeds=2, teacher=t, progress=False)
    assert set(r) >= {"mean", "std", "per_seed", "config"}
    assert len(r["per_seed"]) == 2 and 0 <= r["mean"] <= 1 and r["ipc"] == 3
    assert r["config"]["batch_size"] == 128 and r["config"]["min_crop"] == 0.2
    r2 = evaluate_selection(ds, idx, StudentConfig(**TINY_S), seeds=2, teacher=t, progress=False)
    assert r2["per_seed"] == r["per_seed"]  # seeded
    ce = evaluate_selection(ds, idx, StudentConfig(**TINY_S, loss="ce"), seeds=1, progress=False)
    assert ce["teacher"] is None and 0 <= ce["mean"] <= 1
    with pytest.raises(ParamError, match="indices"):
        evaluate_selection(ds, [10_000], StudentConfig(**TINY_S), seeds=1, teacher=t)
