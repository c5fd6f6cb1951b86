"""Issue 9's protocol: a teacher on more data than the pool, scores mapped onto the pool, and students
paired over seeds (random drawn afresh per seed) with paired differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ddlib import data, metrics
from ddlib.baselines import ForgettingConfig
from ddlib.bps import pipeline as P
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig
from ddlib.utils import ParamError

ENC = EncoderConfig(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8, epochs=1,
                    batch_size=16, queue_size=32, warmup_epochs=0, clu_warmup_epochs=0, pattern=PatternConfig(k=5))
CFG = P.PipelineConfig(encoder=ENC, pattern=PatternConfig(k=5),
                       teacher=TeacherConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=32),
                       forgetting=ForgettingConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=32,
                                                   el2n_epoch=1))


@pytest.fixture(scope="module")
def full() -> data.Dataset:
    return data.load("fashion-mnist", per_class=40, test_per_class=5)


@pytest.fixture(scope="module")
def pool() -> data.Dataset:
    return data.load("fashion-mnist", per_class=12, test_per_class=5)


def test_positions_in_maps_a_subsample_into_the_full_set(full: data.Dataset, pool: data.Dataset) -> None:
    whole = data.load("fashion-mnist", test_per_class=1)
    for sub, big in ((pool, whole), (full, whole)):
        pos = data.positions_in(sub, big)
        assert torch.equal(big.train_x[pos], sub.train_x) and torch.equal(big.train_y[pos], sub.train_y)
    other = data.load("fashion-mnist", per_class=12, seed=5, test_per_class=5)
    with pytest.raises(ParamError, match="not in"):
        data.positions_in(other, pool)  # a different draw is not a subset of this one


def test_teacher_and_forgetting_learn_from_more_data_than_the_pool(full: data.Dataset, pool: data.Dataset) -> None:
    mod = P.modelling(pool, CFG, ["bps", "forgetting"], progress=False, teacher_ds=full)
    assert mod["info"]["pool_size"] == 120 and mod["info"]["teacher_train_size"] == 400
    inp = mod["inputs"]
    assert len(inp.entropies) == 120 and len(inp.scores["el2n"]) == 120
    alone = P.modelling(full, CFG, ["forgetting"], progress=False)["inputs"].scores
    pos = data.positions_in(pool, full).numpy()
    assert np.array_equal(inp.scores["el2n"], alone["el2n"][pos])  # the full run's scores, read for the pool
    assert np.array_equal(inp.scores["forgetting"], alone["forgetting"][pos])


def test_grid_pairs_seeds_and_draws_random_afresh(pool: data.Dataset) -> None:
    mod = P.modelling(pool, CFG, ["bps", "random", "herding"], progress=False)
    st = StudentConfig(model="convnet", width=8, depth=1, epochs=2, last_epochs=2)
    students = {"kd": st, "ce": StudentConfig(**{**st.__dict__, "loss": "ce"})}
    rows = P.evaluate_grid(pool, mod["inputs"], ["bps", "random", "herding"], [2], [0, 1, 2], students,
                           teacher=mod["teacher"], progress=False)
    assert len(rows) == 3 * 2 * 3 and {r["n_images"] for r in rows} == {20}
    sel = {s: P.select("random", mod["inputs"], 2, s)["indices"] for s in (0, 1, 2)}
    assert sel[0] != sel[1] and sel[1] != sel[2]  # a fresh random subset per seed
    assert P.select("herding", mod["inputs"], 2, 0)["indices"] == P.select("herding", mod["inputs"], 2, 1)["indices"]
    for r in rows:
        assert r["final"] == r["accs"][-1] and r["best_last"] == max(r["accs"])
    table = P.grid_pairs(rows)
    vs_random = [t for t in table if t["baseline"] == "random"]
    assert {(t["method"], t["protocol"], t["rule"]) for t in vs_random} == {
        (m, p, rule) for m in ("bps", "herding") for p in ("kd", "ce") for rule in P.RULES}
    t = next(t for t in vs_random if (t["method"], t["protocol"], t["rule"]) == ("bps", "kd", "final"))
    a = [r["final"] for r in sorted(rows, key=lambda r: r["seed"]) if (r["method"], r["student"]) == ("bps", "kd")]
    b = [r["final"] for r in sorted(rows, key=lambda r: r["seed"]) if (r["method"], r["student"]) == ("random", "kd")]
    d = metrics.paired_difference(a, b)
    assert t["diff_mean"] == pytest.approx(d["diff_mean"]) and t["ci95"] == pytest.approx(list(d["ci"]))
    assert t["n_seeds"] == 3 and isinstance(t["verdict"], str)
    kd_ce = [t for t in table if t["protocol"] == "kd - ce"]
    assert len(kd_ce) == 3 * 2  # per method, both rules
    summary = P.grid_accuracy(rows)
    assert len(summary) == 3 * 2 * 2 and all(len(s["per_seed"]) == 3 for s in summary)


def test_grid_pairs_initialisation_across_methods(pool: data.Dataset) -> None:
    """Two methods that pick the same images at a seed train the same student there (same init, same stream)."""
    mod = P.modelling(pool, CFG, ["herding"], progress=False)
    st = {"ce": StudentConfig(model="convnet", width=8, depth=1, epochs=2, last_epochs=1, loss="ce")}
    rows = P.evaluate_grid(pool, mod["inputs"], ["herding", "herding"], [2], [0, 1], st, progress=False)
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], []).append(r["final"])
    assert all(len(set(v)) == 1 for v in by_seed.values())


def test_grid_refuses_kd_without_a_teacher(pool: data.Dataset) -> None:
    mod = P.modelling(pool, CFG, ["random"], progress=False)
    with pytest.raises(ParamError, match="teacher"):
        P.evaluate_grid(pool, mod["inputs"], ["random"], [2], [0], {"kd": StudentConfig(model="convnet", width=8,
                                                                                       depth=1, epochs=1)})


def test_grid_students_are_cached_and_reused(pool: data.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = P.modelling(pool, CFG, ["random"], progress=False, teacher=True)
    st = {"kd": StudentConfig(model="convnet", width=8, depth=1, epochs=1, last_epochs=1)}
    first = P.evaluate_grid(pool, mod["inputs"], ["random"], [2], [0, 1], st, teacher=mod["teacher"], progress=False)
    assert [r["cached"] for r in first] == [False, False]
    import ddlib.bps.distill as D

    monkeypatch.setattr(D, "train_student", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    again = P.evaluate_grid(pool, mod["inputs"], ["random"], [2], [0, 1], st, teacher=mod["teacher"], progress=False)
    assert [r["cached"] for r in again] == [True, True]
    assert [r["accs"] for r in again] == [r["accs"] for r in first]
    rcfg = st["kd"].resolved(pool.name, 10, 2)
    keys = {P.student_key(pool, idx, rcfg, mod["teacher"], s) for idx, s in (([1, 2], 0), ([1, 3], 0), ([1, 2], 1))}
    assert len(keys) == 3  # the images and the seed each name another student


def test_grid_trains_through_the_stacked_students_as_one_by_one(pool: data.Dataset, tmp_path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate_grid's students on CPU go through ddlib.bps.grid (stacks of one) and are the one-by-one
    students bit for bit (one intra-op thread); both store the same fields under the same keys, so a
    cache written by either path is read by the other."""
    from ddlib import artifacts
    from ddlib.bps import grid

    mod = P.modelling(pool, CFG, ["random", "herding"], progress=False, teacher=True)
    st = StudentConfig(model="convnet", width=8, depth=1, epochs=2, last_epochs=2)
    students = {"kd": st, "ce": StudentConfig(**{**st.__dict__, "loss": "ce"})}
    stacked, real = [], grid.train_students
    monkeypatch.setattr(grid, "train_students", lambda *a, **k: stacked.append(len(a[1])) or real(*a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def run(cache: str) -> list[dict]:
            monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / cache))
            return P.evaluate_grid(pool, mod["inputs"], ["random", "herding"], [2], [0, 1], students,
                                   teacher=mod["teacher"], progress=False)

        by_grid = run("grid")
        assert stacked == [4, 4]  # per protocol, 2 methods x 2 seeds
        with monkeypatch.context() as mp:
            mp.setattr(grid, "supports", lambda cfg, device=None: False)
            alone = run("alone")
        assert stacked == [4, 4]
    finally:
        torch.set_num_threads(threads)
    fields = ("method", "ipc", "student", "seed", "best_last", "final", "accs", "n_images", "cached")
    assert [{k: r[k] for k in fields} for r in by_grid] == [{k: r[k] for k in fields} for r in alone]
    assert not any(r["cached"] for r in by_grid)
    stored = {}
    for cache in ("grid", "alone"):
        monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / cache))
        keys = sorted(p.stem for p in artifacts.cache_dir().rglob("student*") if p.suffix != ".json")
        stored[cache] = {k: artifacts.load(k) for k in keys}
    assert len(stored["grid"]) == 8 and stored["grid"].keys() == stored["alone"].keys()
    for k, r in stored["grid"].items():
        assert set(r) == set(P.STUDENT_FIELDS) and r["accs"] == stored["alone"][k]["accs"]
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "alone"))  # the one-by-one cache, read by the grid path
    again = P.evaluate_grid(pool, mod["inputs"], ["random", "herding"], [2], [0, 1], students,
                            teacher=mod["teacher"], progress=False)
    assert all(r["cached"] for r in again) and stacked == [4, 4]


def test_forgetting_from_the_teachers_run(full: data.Dataset, pool: data.Dataset) -> None:
    import dataclasses

    cfg = dataclasses.replace(CFG, forgetting=dataclasses.replace(CFG.forgetting, source="teacher"))
    mod = P.modelling(pool, cfg, ["forgetting"], progress=False, teacher_ds=full)
    teacher = mod["teacher"]  # trained because the scores come from its run
    assert teacher.scores is not None and len(teacher.scores["el2n"]) == 400
    pos = data.positions_in(pool, full).numpy()
    assert np.array_equal(mod["inputs"].scores["el2n"], teacher.scores["el2n"][pos])
    # EL2N is read at the run's own el2n_epoch (1 here), not the class default capped by the teacher's epochs
    assert teacher.scores["events"] >= 0 and teacher.scores["el2n_epoch"] == cfg.forgetting.el2n_epoch == 1
    later = dataclasses.replace(cfg, forgetting=dataclasses.replace(cfg.forgetting, el2n_epoch=2))
    assert P.modelling(pool, later, ["forgetting"], progress=False, teacher_ds=full)["teacher"].scores["el2n_epoch"] == 2
    assert mod["inputs"].scores["never_learned"] == "deepcore"
    with pytest.raises(ParamError, match="source"):
        ForgettingConfig(source="elsewhere")


@pytest.mark.parametrize("through_grid", [True, False])
def test_an_interrupted_grid_keeps_every_student_it_finished(pool: data.Dataset, monkeypatch, tmp_path,
                                                             through_grid: bool) -> None:  # noqa: ANN001
    """A long grid stopped in its third student keeps the first two in the cache: the rerun trains only the rest."""
    from ddlib.bps import distill, grid

    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache"))  # a cache of its own: nothing trained before
    mod = P.modelling(pool, CFG, ["random"], progress=False)
    st = StudentConfig(model="convnet", width=8, depth=1, epochs=1, last_epochs=1, loss="ce")
    name, owner = ("_train_stack", grid) if through_grid else ("train_student", distill)
    real, calls = getattr(owner, name), {"n": 0}

    def stop_at_third(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(owner, name, stop_at_third)
        m.setattr(grid, "supports", lambda cfg, device=None: through_grid)
        m.setitem(grid.MAX_STACK, "cpu", 1)
        m.setattr(torch, "get_num_threads", lambda: 1)  # one worker: the stacks in order
        P.evaluate_grid(pool, mod["inputs"], ["random"], [2], [0, 1, 2, 3], {"ce": st}, progress=False)
    rows = P.evaluate_grid(pool, mod["inputs"], ["random"], [2], [0, 1, 2, 3], {"ce": st}, progress=False)
    assert sorted(r["seed"] for r in rows if r["cached"]) == [0, 1]


def test_same_picks_groups_methods_whose_selections_are_identical() -> None:
    from ddlib.bps.pipeline import same_picks

    sels = {"herding": {1: {"indices": [3, 7]}, 10: {"indices": [1, 2]}},
            "centroids": {1: {"indices": [7, 3]}, 10: {"indices": [1, 5]}},
            "random": {1: {"indices": [4, 9]}}, "kcenter": {1: {"indices": [9, 4]}}, "bps": {1: {"indices": [0, 1]}}}
    assert same_picks(sels, 1) == [["herding", "centroids"], ["random", "kcenter"]]  # order of picks ignored
    assert same_picks(sels, 10) == [] and same_picks(sels, 50) == []
