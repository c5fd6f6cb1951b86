"""benchmarks/sfm_vs_lgm_cifar10.py at its tiny size: the record issue 10 asks for, read back, and resumed;
benchmarks/sfm_ci_cifar10.py records a loaded synthetic set with its own time."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ddlib import results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("sfm_vs_lgm", ROOT / "benchmarks" / "sfm_vs_lgm_cifar10.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_tiny_record_reads_back_and_resumes(script, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "sfm_vs_lgm.json"
    assert script.main(["--size", "tiny", "--threads", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    size = script.SIZES["tiny"]
    assert rec["complete"] is True and rec["config"]["checkpoints"] == list(size["checkpoints"])
    assert any("augs_per_batch" in d for d in rec["config"]["departures"])
    runs = rec["runs"]
    assert sorted(runs) == sorted(f"{m}-ipc{i}-seed{s}" for m in ("sfm", "lgm") for i in size["ipcs"]
                                  for s in size["seeds"])
    for name, r in runs.items():
        assert r["cached"] is False and r["wall_s"] > 0 and r["peak_mem_bytes"] >= 0
        assert r["config"]["augs_per_batch"] == (size["lgm_augs"][r["ipc"]] if r["method"] == "lgm" else 1)
        loop = [r["loop_s_at"][str(s)] for s in size["checkpoints"]]
        assert loop == sorted(loop) and loop[-1] <= r["wall_s"]

    df = results.synthesis_cost_curve(results.load_file(out))
    syn = df[df.steps.notna()]
    assert set(syn["set"]) == {"sfm", "lgm"} and set(df["set"]) == {"sfm", "lgm", "random-real", "centroid-real"}
    probe = syn[syn.protocol == "probe on efficientnet-lite0"]
    # accuracy against steps: every checkpoint of every (method, IPC), over the seeds, with its cost
    assert len(probe) == 2 * len(size["ipcs"]) * len(size["checkpoints"])
    assert (probe.n_seeds == len(size["seeds"])).all() and (probe.seconds >= probe.loop_s).all()
    assert (syn[syn["set"] == "lgm"].setup_s == 0).all() and (syn[syn["set"] == "sfm"].setup_s > 0).all()
    final = syn[syn.steps == size["steps"]]
    assert {"probe on efficientnet-lite2", "ci on efficientnet-lite2", "kd on efficientnet-lite2"} <= set(final.protocol)
    real = df[df.steps.isna()]
    assert real.seconds.isna().all() and (real[real["set"] == "random-real"].n_seeds == len(size["real_seeds"])).all()

    # resumed: every run and evaluation is loaded; a loaded run records this call's time and its own as original
    again = tmp_path / "again.json"
    assert script.main(["--size", "tiny", "--threads", "1", "--out", str(again)]) == 0
    rec2 = json.loads(again.read_text())
    for name, r in rec2["runs"].items():
        assert r["cached"] is True and r["original_wall_s"] == pytest.approx(runs[name]["wall_s"])
        assert r["wall_s"] < r["original_wall_s"] and r["loop_s_at"] == runs[name]["loop_s_at"]
    assert [row["mean"] for row in rec2["rows"]] == [row["mean"] for row in rec["rows"]]
    assert rec2["timings"]["sfm_statistics"]["cached"] is True


def test_isolated_run_lands_in_the_cache(script, tmp_path: Path) -> None:  # noqa: ANN001
    """--isolate: the run in a fresh process (its own peak memory), the record from its cached result."""
    out = tmp_path / "iso.json"
    assert script.main(["--size", "tiny", "--threads", "1", "--ipcs", "1", "--seeds", "5", "--isolate",
                        "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert sorted(runs) == ["lgm-ipc1-seed5", "sfm-ipc1-seed5"] and not any(r["cached"] for r in runs.values())


def test_sfm_ci_cifar10_records_a_cache_hit_as_such(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("sfm_ci", ROOT / "benchmarks" / "sfm_ci_cifar10.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    args = ["--scale", "test", "--dataset", "digits", "--other", "convnet-random"]
    assert mod.main([*args, "--out", str(tmp_path / "a.json")]) == 0
    assert mod.main([*args, "--out", str(tmp_path / "b.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())["synthetic"]["sfm-ipc1"]
    second = json.loads((tmp_path / "b.json").read_text())["synthetic"]["sfm-ipc1"]
    assert first["cached"] is False and first["wall_s"] > 0 and "original_wall_s" not in first
    assert second["cached"] is True and second["original_wall_s"] == pytest.approx(first["wall_s"])
    assert second["wall_s"] < first["wall_s"]
