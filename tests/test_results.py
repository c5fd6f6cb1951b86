"""ddlib.results: every recorded schema into tidy tables; a malformed file fails loudly, naming itself."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddlib import results

PROV = {"command": "python x.py", "commit": "0123456789abcdef", "device": "CPU (2 threads)",
        "date": "2026-11-23 12:00:00 UTC"}


def _write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """One file per schema the project's writers produce, in results/ and benchmarks/results/."""
    _write(tmp_path / "results" / "bps_fashion-mnist_cpu.json", {
        "what": "BPS vs baselines", "dataset": {"name": "fashion-mnist", "per_class": 500},
        "rows": [{"method": "bps", "ipc": 10, "mean": 0.7, "std": 0.01, "per_seed": [0.69, 0.71],
                  "selection_seconds": 0.02, "student_seconds": [3.0, 4.0], "student_config": {"loss": "kd",
                                                                                               "model": "convnet"}},
                 {"method": "random", "ipc": 10, "mean": 0.6, "std": 0.02, "per_seed": [0.58, 0.62],
                  "selection_seconds": 0.001, "student_config": {"loss": "ce"}}],
        "pipeline_wall_seconds": 2000.0, "provenance": {**PROV, "wall_seconds": 120.5}})
    _write(tmp_path / "results" / "bps_ablation.json", {
        "dataset": {"name": "fashion-mnist"}, "budgets": {"centre_frac": 1.0},
        "rows": [{"method": "bps", "ipc": 10, "mean": 0.65, "std": 0.0, "per_seed": [0.65]}], "provenance": PROV})
    _write(tmp_path / "results" / "sfm_ci_cifar10_cpu.json", {
        "dataset": {"name": "cifar10:/data/x.tar.xz"},
        "synthetic": {"sfm-ipc1": {"wall_time": 12.0, "peak_mem": 2048, "config": {"steps": 100}}},
        "results": [{"ipc": 1, "set": "sfm", "eval_backbone": "inhouse", "mode": "ci", "acc": 0.3, "acc_std": 0.02,
                     "accs": [0.28, 0.3, 0.32], "bytes": {"images_uint8": 30720}}],
        "wall_s": 600.0, "provenance": PROV})
    _write(tmp_path / "benchmarks" / "results" / "bench_sfm_cpu.json", {
        "rows": [{"backbone": "efficientnet-lite0", "method": "lgm", "IPC": 1, "step_s": 2.5,
                  "peak_mem_bytes": 3_000_000, "status": "ok"}],
        "clu_step_s": {"full_queue_s": 1.5}, "epochs": {"epoch_seconds": [2.0, 4.0]},
        "provenance": {**PROV, "device": "NVIDIA H100"}})
    _write(tmp_path / "results" / "sub" / "evaluate.json", {
        "method": "herding", "ipc": 1, "dataset": {"name": "digits"}, "mean": 0.5, "std": 0.0, "per_seed": [0.5],
        "config": {"loss": "kd", "model": "convnet"}, "provenance": PROV})
    _write(tmp_path / "results" / "sweep.json", [{"run": "a", "status": "ok", "wall_s": 3.0, "provenance": PROV},
                                                 {"run": "b", "status": "ok", "wall_s": 4.0, "provenance": PROV}])
    return tmp_path


def _dirs(tree: Path) -> list[Path]:
    return [tree / "results", tree / "benchmarks" / "results"]


def test_accuracy_table_reads_every_schema(tree: Path) -> None:
    recs = results.load(_dirs(tree))
    assert len(recs) == 7  # the sweep list counts one record per element
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
    assert acc.loc[acc.method == "bps", "wall_s"].item() == 2000.0  # the whole pipeline, not the gathering script


def test_cost_table_long_form_with_units(tree: Path) -> None:
    cost = results.cost_table(results.load(_dirs(tree)))
    assert list(cost.columns) == results.COST_COLUMNS
    bench = cost[cost.source.str.endswith("bench_sfm_cpu.json")]
    step = bench[bench.metric == "step_s"].iloc[0]
    assert step["value"] == 2.5 and step["unit"] == "s" and "lgm" in step["case"] and step["device"] == "NVIDIA H100"
    assert bench[bench.metric == "peak_mem_bytes"]["unit"].item() == "bytes"
    assert bench[bench.metric == "epoch_seconds"]["value"].item() == 3.0  # repeated timings: their mean
    sfm = cost[cost.source.str.endswith("sfm_ci_cifar10_cpu.json")]
    assert set(sfm.metric) >= {"wall_s", "wall_time", "peak_mem"}
    assert "steps" not in set(sfm.metric)  # settings are not costs
    wall = sfm[sfm.metric == "wall_s"]
    assert wall["case"].item() == "(whole run)" and wall["value"].item() == 600.0


def test_records_table_has_provenance(tree: Path) -> None:
    t = results.records_table(results.load(_dirs(tree)))
    assert len(t) == 7 and t["commit"].str.len().max() == 10
    assert "results/sweep.json[1]" in set(t.source.str.replace(str(tree) + "/", ""))


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("[]", "empty list"),
    (json.dumps({"rows": []}), "provenance"),
    (json.dumps({"provenance": {"command": "x", "commit": "y"}}), "device"),
])
def test_malformed_file_fails_loudly(tree: Path, content: str, words: str) -> None:
    bad = _write(tree / "results" / "zz_bad.json", content)
    with pytest.raises(results.ResultsError) as err:
        results.load(_dirs(tree))
    assert "zz_bad.json" in str(err.value) and words in str(err.value)
    with pytest.raises(results.ResultsError):
        results.load_file(bad)


def test_repository_records_load() -> None:
    """The project's own recorded results are all well-formed (the results chapter reads them)."""
    recs = results.load()
    results.accuracy_table(recs)
    results.cost_table(recs)


def test_bps_split_ablation_pairs_each_ablation_with_its_own_run(tmp_path: Path) -> None:
    budgets = {"dataset": "cifar10", "per_class": 500, "ipc": "10", "seeds": 3, "student_epochs": 30,
               "centre_frac": None, "work": "a", "notes": ""}
    spec = {"name": "cifar10:x.tar.xz", "per_class": 500}

    def rec(name: str, rows: list[dict], **changes: object) -> None:
        _write(tmp_path / name, {"dataset": spec, "budgets": {**budgets, **changes}, "rows": rows, "provenance": PROV})

    row = lambda m, a: {"method": m, "ipc": 10, "mean": a, "std": 0.01, "per_seed": [a]}  # noqa: E731
    rec("full.json", [row("bps", 0.30), row("random", 0.33), row("herding", 0.31)])
    rec("larger.json", [row("bps", 0.50), row("random", 0.49)], per_class=1000)  # another run: never paired
    rec("centres.json", [row("bps", 0.34)], centre_frac=1.0, work="b", methods="bps")
    rec("margins.json", [row("bps", 0.28)], centre_frac=0.0, work="c", methods="bps")
    t = results.bps_split_ablation(results.load([tmp_path]))
    got = dict(zip(t.selection, t.accuracy_mean))
    assert got == {"bps, centre share 1": 0.34, "bps, centre share 0": 0.28, "bps, centre share 0.5": 0.30,
                   "random": 0.33}
    assert set(t.source) == {"centres.json", "margins.json", "full.json"} or \
        {s.split("/")[-1] for s in t.source} == {"centres.json", "margins.json", "full.json"}
    assert results.bps_split_ablation(results.load([tmp_path / "none"])).empty


def test_synthesis_by_steps_reads_the_step_budget(tree: Path) -> None:
    rec = json.loads((tree / "results" / "sfm_ci_cifar10_cpu.json").read_text())
    _write(tree / "results" / "sfm_long.json", {**rec, "settings": {"steps": 1000},
                                                "results": [{**rec["results"][0], "acc": 0.45}]})
    rec["settings"] = {"steps": 100}
    _write(tree / "results" / "sfm_ci_cifar10_cpu.json", rec)
    t = results.synthesis_by_steps(results.load(_dirs(tree)))
    assert sorted(zip(t.steps, t.accuracy_mean)) == [(100, 0.3), (1000, 0.45)]
    assert set(t["set"]) == {"sfm"} and set(t["mode"]) == {"ci"}
