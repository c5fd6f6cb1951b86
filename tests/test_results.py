"""ddlib.results: one writer, one schema, the tables the book shows; a malformed file fails loudly, naming itself."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ddlib import results

PROV = {"command": "python x.py", "commit": "0123456789abcdef", "device": "CPU (2 threads)",
        "date": "2026-11-23 12:00:00 UTC"}


def _write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def _rec(what: str = "a run", config: dict | None = None, rows: list | None = None, wall_s: float | None = 1.0,
         prov: dict | None = None, **extra: object) -> dict:
    timings = extra.pop("timings", {"wall_s": wall_s})
    return {"what": what, "provenance": prov or PROV, "config": config or {}, "rows": rows or [], "timings": timings,
            **extra}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Records of every kind the project writes, in results/ and benchmarks/results/."""
    _write(tmp_path / "results" / "bps_fashion-mnist_cpu.json", _rec(
        "BPS vs baselines", config={"dataset": {"name": "fashion-mnist", "per_class": 500}},
        rows=[{"method": "bps", "dataset": "fashion-mnist", "ipc": 10, "protocol": "kd student (convnet)", "mean": 0.7,
               "std": 0.01, "per_seed": [0.69, 0.71], "seeds": [0, 1], "selection_seconds": 0.02,
               "student_seconds": [3.0, 4.0]},
              {"method": "random", "dataset": "fashion-mnist", "ipc": 10, "protocol": "ce student", "mean": 0.6,
               "std": 0.02, "per_seed": [0.58, 0.62], "selection_seconds": 0.001}],
        # gathered from earlier select/evaluate runs: their time is the original, this one's is new
        timings={"wall_s": 120.5, "cached": True, "original_wall_s": 2000.0}))
    _write(tmp_path / "results" / "bps_ablation.json", _rec(
        config={"dataset": {"name": "fashion-mnist"}, "centre_frac": 1.0},
        rows=[{"method": "bps", "dataset": "fashion-mnist", "ipc": 10, "protocol": "kd student", "mean": 0.65,
               "std": 0.0, "per_seed": [0.65]}]))
    _write(tmp_path / "results" / "sfm_ci_cifar10_cpu.json", _rec(
        config={"dataset": {"name": "cifar10:/data/x.tar.xz"}, "steps": 100, "distill_backbone": "efficientnet-lite0"},
        synthetic={"sfm-ipc1": {"wall_time": 12.0, "peak_mem": 2048, "config": {"steps": 100}}},
        rows=[{"method": "sfm", "dataset": "cifar10", "ipc": 1, "protocol": "ci on inhouse", "mode": "ci",
               "eval_backbone": "inhouse", "mean": 0.3, "std": 0.02, "per_seed": [0.28, 0.3, 0.32],
               "bytes": {"images_uint8": 30720}}], wall_s=600.0))
    _write(tmp_path / "benchmarks" / "results" / "bench_sfm_cpu.json", _rec(
        rows=[{"backbone": "efficientnet-lite0", "method": "lgm", "IPC": 1, "step_s": 2.5,
               "peak_mem_bytes": 3_000_000, "status": "ok"}],
        clu_step_s={"full_queue_s": 1.5}, epochs={"epoch_seconds": [2.0, 4.0]}, wall_s=None,
        prov={**PROV, "device": "NVIDIA H100"}))
    _write(tmp_path / "results" / "sub" / "evaluate.json", _rec(
        config={"student": {"loss": "kd", "model": "convnet"}},
        rows=[{"method": "herding", "dataset": "digits", "ipc": 1, "protocol": "kd student (convnet)", "mean": 0.5,
               "std": 0.0, "per_seed": [0.5], "seeds": [0]}]))
    _write(tmp_path / "results" / "sweep.json", [_rec("run a", wall_s=3.0), _rec("run b", wall_s=4.0)])
    return tmp_path


def _dirs(tree: Path) -> list[Path]:
    return [tree / "results", tree / "benchmarks" / "results"]


def test_accuracy_table_reads_every_record(tree: Path) -> None:
    recs = results.load(_dirs(tree))
    assert len(recs) == 7  # the list counts one record per element
    acc = results.accuracy_table(recs)
    assert list(acc.columns) == results.ACCURACY_COLUMNS
    by = acc.set_index(["method", "protocol"])
    assert by.loc[("bps", "kd student (convnet)"), "accuracy_mean"] == 0.7
    assert by.loc[("bps", "kd student (convnet)"), "seeds"] == 2
    assert by.loc[("random", "ce student"), "accuracy_std"] == 0.02
    assert by.loc[("bps (centre share 1)", "kd student"), "accuracy_mean"] == 0.65  # an ablation keeps its name
    sfm = by.loc[("sfm", "ci on inhouse")]
    assert sfm["dataset"] == "cifar10"
    assert sfm["seeds"] == 3 and sfm["wall_s"] == 600.0 and sfm["ipc"] == 1
    herd = by.loc[("herding", "kd student (convnet)")]
    assert herd["dataset"] == "digits" and herd["commit"] == "0123456789"
    assert set(acc["device"]) == {"CPU (2 threads)"}
    assert acc.loc[acc.method == "bps", "wall_s"].item() == 2000.0  # the original runs', not the gathering's


def test_cost_table_long_form_with_units(tree: Path) -> None:
    cost = results.cost_table(results.load(_dirs(tree)))
    assert list(cost.columns) == results.COST_COLUMNS
    bench = cost[cost.source.str.endswith("bench_sfm_cpu.json")]
    step = bench[bench.metric == "step_s"].iloc[0]
    assert step["value"] == 2.5 and step["unit"] == "s" and "lgm" in step["case"] and step["device"] == "NVIDIA H100"
    assert bench[bench.metric == "peak_mem_bytes"]["unit"].item() == "bytes"
    assert bench[bench.metric == "epoch_seconds"]["value"].item() == 3.0  # repeated timings: their mean
    assert "wall_s" not in set(bench.metric)  # no wall time recorded, none invented
    sfm = cost[cost.source.str.endswith("sfm_ci_cifar10_cpu.json")]
    assert set(sfm.metric) >= {"wall_s", "wall_time", "peak_mem"}
    assert "steps" not in set(sfm.metric)  # settings are not costs
    wall = sfm[sfm.metric == "wall_s"]
    assert wall["case"].item() == "(whole run)" and wall["value"].item() == 600.0


def test_records_table_has_provenance(tree: Path) -> None:
    t = results.records_table(results.load(_dirs(tree)))
    assert len(t) == 7 and t["commit"].str.len().max() == 10
    assert "results/sweep.json[1]" in set(t.source.str.replace(str(tree) + "/", ""))
    assert set(t.what) >= {"run a", "run b", "BPS vs baselines"}


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("[]", "empty list"),
    (json.dumps({"rows": []}), "provenance"),
    (json.dumps({"provenance": {"command": "x", "commit": "y"}}), "device"),
    (json.dumps({"provenance": PROV, "rows": []}), "timings"),
    (json.dumps({**_rec(), "timings": {}}), "wall_s"),
    (json.dumps({**_rec(), "rows": [1]}), "rows"),
    ('{"what": "x", "provenance": {}, "config": {}, "rows": [], "timings": {"wall_s": NaN}}', "NaN"),
])
def test_malformed_file_fails_loudly(tree: Path, content: str, words: str) -> None:
    bad = _write(tree / "results" / "zz_bad.json", content)
    with pytest.raises(results.ResultsError) as err:
        results.load(_dirs(tree))
    assert "zz_bad.json" in str(err.value) and words in str(err.value)
    with pytest.raises(results.ResultsError):
        results.load_file(bad)


def test_repository_records_load() -> None:
    """The project's own recorded results are all of the schema (the results chapter reads them)."""
    recs = results.load()
    assert recs
    results.accuracy_table(recs)
    results.cost_table(recs)


def test_bps_split_ablation_pairs_each_ablation_with_its_own_run(tmp_path: Path) -> None:
    config = {"dataset": {"name": "cifar10:x.tar.xz", "per_class": 500}, "per_class": 500, "seeds": 3,
              "student_epochs": 30, "centre_frac": None}

    def rec(name: str, rows: list[dict], work: str = "a", **changes: object) -> None:
        _write(tmp_path / name, _rec(config={**config, **changes}, rows=rows, run_options={"work": work}))

    row = lambda m, a: {"method": m, "ipc": 10, "protocol": "kd student", "mean": a, "std": 0.01, "per_seed": [a]}  # noqa: E731
    rec("full.json", [row("bps", 0.30), row("random", 0.33), row("herding", 0.31)])
    rec("larger.json", [row("bps", 0.50), row("random", 0.49)], per_class=1000)  # another run: never paired
    rec("centres.json", [row("bps", 0.34)], work="b", centre_frac=1.0)
    rec("margins.json", [row("bps", 0.28)], work="c", centre_frac=0.0)
    t = results.bps_split_ablation(results.load([tmp_path]))
    got = dict(zip(t.selection, t.accuracy_mean))
    assert got == {"bps, centre share 1": 0.34, "bps, centre share 0": 0.28, "bps, centre share 0.5": 0.30,
                   "random": 0.33}
    assert {s.split("/")[-1] for s in t.source} == {"centres.json", "margins.json", "full.json"}
    assert results.bps_split_ablation(results.load([tmp_path / "none"])).empty


def test_synthesis_by_steps_reads_the_step_budget(tree: Path) -> None:
    rec = json.loads((tree / "results" / "sfm_ci_cifar10_cpu.json").read_text())
    _write(tree / "results" / "sfm_long.json", {**rec, "config": {**rec["config"], "steps": 1000},
                                                "rows": [{**rec["rows"][0], "mean": 0.45}]})
    t = results.synthesis_by_steps(results.load(_dirs(tree)))
    assert sorted(zip(t.steps, t.accuracy_mean)) == [(100, 0.3), (1000, 0.45)]
    assert set(t.distill_backbone) == {"efficientnet-lite0"} and set(t.set) == {"sfm"}


# ----------------------------------------------------------------------------- the writer
def test_write_records_provenance_and_is_strict_json(tmp_path: Path) -> None:
    from ddlib.bps.select import SelectConfig

    out = tmp_path / "deep" / "r.json"
    rec = results.write(out, what="a test", config={"select": SelectConfig()}, command="python -m ddlib x",
                        rows=[{"method": "m", "mean": float("nan"), "per_seed": [0.5, float("inf")]}],
                        timings={"wall_s": 1.5, "cached": True, "original_wall_s": 9.0}, paired=[])
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == rec and back["rows"][0]["mean"] is None and back["rows"][0]["per_seed"] == [0.5, None]
    assert back["config"]["select"]["k_ratio"] == SelectConfig().k_ratio  # a dataclass config as a dict
    prov = back["provenance"]
    assert prov["command"] == "python -m ddlib x" and set(prov) >= {"commit", "device", "date", "threads",
                                                                    "load_average"}
    assert len(prov["load_average"]) == 3 and prov["threads"] >= 1
    import torch  # the machine, told apart from another: its CPU and the instruction set torch dispatches to
    assert prov["environment"]["cpu_kernels"] == str(torch.backends.cpu.get_cpu_capability())
    assert isinstance(prov["environment"]["cpu"], str)
    loaded = results.load_file(out)[0]
    assert loaded.wall_s == 9.0  # a cached record's time is the original run's, under its own key
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.parametrize("kwargs, word", [
    ({"timings": {}}, "wall_s"),
    ({"rows": {"a": 1}}, "rows"),
    ({"what": ""}, "what"),
])
def test_write_refuses_a_record_of_another_schema(tmp_path: Path, kwargs: dict, word: str) -> None:
    base = dict(what="x", config={}, rows=[], timings={"wall_s": 1.0})
    with pytest.raises(ValueError, match=word):
        results.write(tmp_path / "r.json", **{**base, **kwargs})
    assert not (tmp_path / "r.json").exists()


def test_dataset_label() -> None:
    assert results.dataset_label("cifar10:/a/b.tar.xz") == "cifar10"
    assert results.dataset_label({"name": "imagefolder:/x/y"}) == "imagefolder"
    assert results.dataset_label("fashion-mnist") == "fashion-mnist" and results.dataset_label(None) == ""


def test_paired_table_collects_every_records_paired_rows(tmp_path: Path) -> None:
    paired = [{"method": "bps", "baseline": "random", "ipc": 10, "protocol": "kd", "rule": "final epoch",
               "n_seeds": 5, "diff_mean": 0.012, "ci95": [-0.003, 0.027]}]
    results.write(tmp_path / "a.json", what="BPS", config={"dataset": {"name": "fashion-mnist"}}, rows=[],
                  timings={"wall_s": 1.0}, paired=paired)
    results.write(tmp_path / "b.json", what="no pairs", config={}, rows=[], timings={"wall_s": 1.0})
    t = results.paired_table(results.load([tmp_path]))
    assert list(t.columns) == results.PAIRED_COLUMNS and len(t) == 1
    r = t.iloc[0]
    assert (r.method, r.baseline, r.ipc, r.n_seeds, r.dataset) == ("bps", "random", 10, 5, "fashion-mnist")
    assert math.isclose(r.diff_mean, 0.012) and list(r.ci95) == [-0.003, 0.027]


def test_synthesis_cost_curve_pairs_accuracy_with_each_runs_cost(tmp_path: Path) -> None:
    """Accuracy against cost at equal steps: the mean over the seeds' runs of the loop time to the checkpoint,
    SFM's statistics pass added once (LGM has none), peak memory in MiB; real sets carry no cost."""
    run = lambda loop, mem: {"loop_s_at": {"100": loop, "200": 2 * loop}, "peak_mem_bytes": mem,  # noqa: E731
                             "peak_mem_kind": "CPU peak RSS increase (sampled)"}
    rec = _rec(config={"checkpoints": [100, 200]}, complete=False,
               timings={"wall_s": 5.0, "sfm_statistics": {"wall_s": 0.01, "cached": True, "original_wall_s": 30.0}},
               runs={"sfm-ipc1-seed0": run(10.0, 2**20), "sfm-ipc1-seed1": run(14.0, 3 * 2**20),
                     "lgm-ipc1-seed0": run(100.0, 8 * 2**20)},
               rows=[{"method": "sfm (200 steps)", "set": "sfm", "steps": 200, "ipc": 1, "protocol": "probe on a",
                      "mean": 0.5, "std": 0.1, "per_seed": [0.4, 0.6], "seeds": [0, 1]},
                     {"method": "lgm (100 steps)", "set": "lgm", "steps": 100, "ipc": 1, "protocol": "probe on a",
                      "mean": 0.45, "std": 0.0, "per_seed": [0.45], "seeds": [0]},
                     {"method": "random-real", "set": "random-real", "steps": None, "ipc": 1,
                      "protocol": "probe on a", "mean": 0.3, "std": 0.0, "per_seed": [0.3], "seeds": [0]}])
    _write(tmp_path / "results" / "sfm_vs_lgm.json", rec)
    _write(tmp_path / "results" / "other.json", _rec(rows=[{"method": "x", "protocol": "p", "mean": 0.1}]))
    df = results.synthesis_cost_curve(results.load([tmp_path / "results"]))
    assert list(df.columns) == results.COST_CURVE_COLUMNS and len(df) == 3
    sfm, lgm, real = (df[df["set"] == k].iloc[0] for k in ("sfm", "lgm", "random-real"))
    assert sfm.steps == 200 and sfm.loop_s == pytest.approx(24.0) and sfm.setup_s == 30.0
    assert sfm.seconds == pytest.approx(54.0) and sfm.peak_mem_mib == pytest.approx(2.0) and sfm.n_seeds == 2
    assert lgm.loop_s == 100.0 and lgm.setup_s == 0.0 and lgm.peak_mem_mib == 8.0
    assert math.isnan(real.seconds) and real.accuracy_mean == 0.3 and not bool(sfm.complete)


def test_synthesis_versus_pairs_seeds_at_the_last_step_budget(tmp_path: Path) -> None:
    """SFM against LGM at the record's last checkpoint and against random real images (draw s with seed s),
    hand-computed: differences 0.1, 0.1, 0.2 -> mean 0.1333, sd 0.0577, half-width t(0.975, 2) = 4.3027
    times sd / sqrt(3) = 0.1434; an earlier checkpoint and a seed only one side has are not paired."""
    row = lambda s, steps, seeds, vals: {"method": s, "set": s, "steps": steps, "ipc": 1,  # noqa: E731
                                         "protocol": "probe on a", "mean": sum(vals) / len(vals),
                                         "per_seed": vals, "seeds": seeds}
    rec = _rec(config={"checkpoints": [3, 6]}, runs={},
               rows=[row("sfm", 3, [0, 1, 2], [0.1, 0.1, 0.1]), row("sfm", 6, [0, 1, 2], [0.5, 0.6, 0.7]),
                     row("lgm", 3, [0, 1, 2], [0.9, 0.9, 0.9]), row("lgm", 6, [0, 1, 2, 3], [0.4, 0.5, 0.5, 0.9]),
                     row("random-real", None, [0, 1, 2], [0.3, 0.3, 0.4]), row("centroid-real", None, [0], [0.2])])
    path = _write(tmp_path / "results" / "sfm_vs_lgm.json", rec)
    df = results.synthesis_versus(results.load_file(path)[0])
    assert list(df.columns) == results.VERSUS_COLUMNS and list(df.baseline) == ["lgm", "random-real"]
    lgm, real = df.iloc[0], df.iloc[1]
    assert lgm.n_seeds == 3 and lgm.diff_mean == pytest.approx(0.4 / 3)
    assert lgm.ci95 == pytest.approx([0.4 / 3 - 0.14342, 0.4 / 3 + 0.14342], abs=1e-4) and not lgm.excludes_zero
    assert lgm.verdict == "sfm and lgm cannot be told apart (difference +13.3 ± 14.3 points)"
    assert real.diff_mean == pytest.approx(0.8 / 3) and real.excludes_zero  # 0.2, 0.3, 0.3
    assert real.verdict.startswith("sfm beats random-real by 26.7 ±")
    both = results.synthesis_versus(results.load_file(path)[0], baselines=("centroid-real",))
    assert both.n_seeds.tolist() == [1] and "single seed" in both.verdict.iloc[0]
    assert results.synthesis_versus(None).empty


def test_cpu_name_reads_the_first_model_name(tmp_path: Path) -> None:
    from ddlib.utils import cpu_name

    info = _write(tmp_path / "cpuinfo", "processor\t: 0\nmodel name\t: Some CPU 9000 @ 3 GHz\n\n"
                                         "processor\t: 1\nmodel name\t: Some CPU 9000 @ 3 GHz\n")
    assert cpu_name(str(info)) == "Some CPU 9000 @ 3 GHz"
    assert isinstance(cpu_name(str(tmp_path / "missing")), str)  # no /proc: platform's answer, maybe ""


def test_latest_synthesis_joins_the_seeds_run_later(tmp_path: Path) -> None:
    """Seeds 3 and 4 run later as a record of their own are joined to seeds 0-2 (same config but for IPCs and
    seeds): five paired seeds against LGM, the real draws (made by both) counted once; a record of another
    config is never mixed in."""
    row = lambda s, ipc, steps, seeds, vals: {"method": s, "set": s, "steps": steps, "ipc": ipc,  # noqa: E731
                                              "protocol": "probe on a", "mean": sum(vals) / len(vals),
                                              "per_seed": vals, "seeds": seeds}
    cfg = {"checkpoints": [3, 6], "steps": 6, "dataset": "d"}
    run = {"loop_s_at": {"3": 1.0, "6": 2.0}, "peak_mem_bytes": 2**20}
    first = _rec(config={**cfg, "ipcs": [1, 10], "seeds": [0, 1, 2]}, complete=True,
                 prov={**PROV, "date": "2026-12-01 10:00:00 UTC"},
                 runs={f"{m}-ipc10-seed{s}": run for m in ("sfm", "lgm") for s in range(3)},
                 rows=[row("sfm", 10, 6, [0, 1, 2], [0.5, 0.6, 0.7]), row("lgm", 10, 6, [0, 1, 2], [0.4, 0.5, 0.5]),
                       row("sfm", 1, 6, [0, 1, 2], [0.3, 0.3, 0.3]),
                       row("random-real", 10, None, [0, 1, 2], [0.45, 0.5, 0.55])])
    later = _rec(config={**cfg, "ipcs": [10], "seeds": [3, 4]}, complete=True,
                 prov={**PROV, "date": "2026-12-02 10:00:00 UTC"},
                 runs={f"{m}-ipc10-seed{s}": run for m in ("sfm", "lgm") for s in (3, 4)},
                 rows=[row("sfm", 10, 6, [3, 4], [0.6, 0.8]), row("lgm", 10, 6, [3, 4], [0.5, 0.6]),
                       row("random-real", 10, None, [0, 1, 2], [0.45, 0.5, 0.55])])
    other = _rec(config={**cfg, "steps": 7, "ipcs": [10], "seeds": [5]}, prov={**PROV, "date": "2026-11-01"},
                 runs={"sfm-ipc10-seed5": run}, rows=[row("sfm", 10, 6, [5], [0.0])])
    d = tmp_path / "results"
    for name, rec in (("a.json", first), ("b.json", later), ("c.json", other)):
        _write(d / name, rec)
    joined = results.latest_synthesis(results.load([d]))
    assert [Path(part).name for part in joined.source.split(" + ")] == ["b.json", "a.json"]  # newest first
    assert [m["seeds"] for m in joined.data["merged_from"]] == [[3, 4], [0, 1, 2]] and joined.data["complete"]
    assert joined.config["seeds"] == [0, 1, 2, 3, 4] and joined.config["ipcs"] == [1, 10]
    assert len(joined.data["runs"]) == 10
    rows = {(r["set"], r["ipc"]): r for r in joined.rows}
    sfm = rows[("sfm", 10)]
    assert sfm["seeds"] == [0, 1, 2, 3, 4] and sfm["per_seed"] == [0.5, 0.6, 0.7, 0.6, 0.8]
    assert sfm["mean"] == pytest.approx(0.64) and sfm["std"] == pytest.approx(math.sqrt(0.0104))  # population
    assert rows[("random-real", 10)]["per_seed"] == [0.45, 0.5, 0.55] and rows[("sfm", 1)]["seeds"] == [0, 1, 2]
    vs = results.synthesis_versus(joined).set_index("baseline")
    assert vs.loc["lgm", "n_seeds"] == 5 and vs.loc["lgm", "diff_mean"] == pytest.approx(0.14)  # .1 .1 .2 .1 .2
    assert vs.loc["random-real", "n_seeds"] == 3
    cost = results.synthesis_cost_curve([joined])
    assert (cost[(cost["set"] == "sfm") & (cost.ipc == 10)].n_seeds == 5).all()
    assert results.latest_synthesis([results.load_file(d / "c.json")[0]]).source.endswith("c.json")
    assert results.latest_synthesis([]) is None

    # more random real draws only (--seeds '' --real-seeds 3,4): SFM's five seeds now pair with five draws
    _write(d / "e.json", _rec(config={**cfg, "ipcs": [10], "seeds": [], "real_seeds": [3, 4]}, runs={},
                              prov={**PROV, "date": "2026-12-03 10:00:00 UTC"},
                              rows=[row("random-real", 10, None, [3, 4], [0.4, 0.6])]))
    joined = results.latest_synthesis(results.load([d]))
    assert len(joined.data["merged_from"]) == 3 and joined.config["real_seeds"] == [3, 4]
    assert joined.data["merged_from"][0]["real_seeds"] == [3, 4] and len(joined.data["runs"]) == 10
    real = next(r for r in joined.rows if r["set"] == "random-real")
    assert real["seeds"] == [0, 1, 2, 3, 4] and real["per_seed"] == [0.45, 0.5, 0.55, 0.4, 0.6]
    vs = results.synthesis_versus(joined).set_index("baseline")
    assert vs.loc["random-real", "n_seeds"] == 5 and vs.loc["random-real", "diff_mean"] == pytest.approx(0.14)

    # SFM's sets scored on other backbones (--methods sfm --eval-backbones ...), newest of all: a family of its
    # own, read with methods=("sfm",); the SFM-vs-LGM record stays the default's
    _write(d / "f.json", _rec(config={**cfg, "ipcs": [10], "seeds": [0], "methods": ["sfm"]}, runs={
        "sfm-ipc10-seed0": run}, prov={**PROV, "date": "2026-12-04 10:00:00 UTC"},
        rows=[row("sfm", 10, 6, [0], [0.9])]))
    assert len(results.latest_synthesis(results.load([d])).data["merged_from"]) == 3
    assert results.latest_synthesis(results.load([d]), methods=["sfm"]).source.endswith("f.json")
    assert results.latest_synthesis(results.load([d]), methods=["lgm"]) is None


def test_a_cpu_device_reads_in_words() -> None:
    from ddlib.utils import _cpu_threads

    assert (_cpu_threads(1), _cpu_threads(2)) == ("CPU (1 thread)", "CPU (2 threads)")


@pytest.mark.parametrize("recorded, label, words", [
    ("CPU (1 threads)", "CPU (1 thread)", "one CPU thread"),  # records written before the label was fixed
    ("CPU (1 thread)", "CPU (1 thread)", "one CPU thread"),
    ("CPU (2 threads)", "CPU (2 threads)", "two CPU threads"),
    ("CPU (12 threads)", "CPU (12 threads)", "12 CPU threads"),
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"),
])
def test_a_records_device_as_label_and_in_words(recorded: str, label: str, words: str) -> None:
    rec = results.Record("r.json", {"provenance": {"device": recorded}})
    assert (rec.device, results.device_words(rec)) == (label, words)
