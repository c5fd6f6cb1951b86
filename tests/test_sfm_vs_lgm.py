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


def test_unfinished_record_continues_on_a_machine_without_the_cache(script, tmp_path: Path,  # noqa: ANN001
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A new checkout has no cache: an unfinished record at --out (same config) is continued, its finished runs
    and scored sets taken from it, not redone; a record for another config is not."""
    out = tmp_path / "partial.json"
    args = ["--size", "tiny", "--threads", "1", "--ipcs", "1", "--out", str(out)]
    real = script.synth.distill_cached
    calls: list[tuple[str, int]] = []

    def counting(bb, ds, cfg, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append((cfg.method, cfg.seed))
        if len(calls) == 3 and stop:
            raise KeyboardInterrupt  # the third run of the plan: the session ends
        return real(bb, ds, cfg, *a, **k)

    with monkeypatch.context() as mp:
        mp.setenv("DDLIB_CACHE", str(tmp_path / "cache-a"))
        mp.setattr(script.synth, "distill_cached", counting)
        stop = True
        with pytest.raises(KeyboardInterrupt):
            script.main(args)
        first = json.loads(out.read_text())
        assert first["complete"] is False and sorted(first["runs"]) == ["lgm-ipc1-seed0", "sfm-ipc1-seed0"]

        mp.setenv("DDLIB_CACHE", str(tmp_path / "cache-b"))  # another machine: nothing cached
        calls.clear()
        stop = False
        assert script.main(args) == 0
    assert calls == [("sfm", 1), ("lgm", 1)]  # only the runs the record lacked
    rec = json.loads(out.read_text())
    assert rec["complete"] is True and len(rec["runs"]) == 4
    commit = first["provenance"]["commit"]
    assert rec["runs"]["sfm-ipc1-seed0"]["recorded_by"]["commit"] == commit
    assert rec["runs"]["sfm-ipc1-seed0"]["wall_s"] == first["runs"]["sfm-ipc1-seed0"]["wall_s"]
    assert "recorded_by" not in rec["runs"]["sfm-ipc1-seed1"]
    assert [e["wall_s"] for e in rec["timings"]["earlier"]] == [first["timings"]["wall_s"]]
    old = {(r["method"], r["protocol"]): r["per_seed"][0] for r in first["rows"]}
    new = {(r["method"], r["protocol"]): r["per_seed"][0] for r in rec["rows"]}
    assert all(new[k] == v for k, v in old.items())  # seed 0's scores (and the real sets') carried over
    assert all(r["seeds"] == [0, 1] for r in rec["rows"] if r["steps"] is not None)

    # another config (other seeds): not continued, every run done afresh
    rec["complete"] = False
    out.write_text(json.dumps(rec))
    calls.clear()
    with monkeypatch.context() as mp:
        mp.setattr(script.synth, "distill_cached", counting)
        assert script.main([*args, "--seeds", "7"]) == 0
    assert calls == [("sfm", 7), ("lgm", 7)] and sorted(json.loads(out.read_text())["runs"]) == \
        ["lgm-ipc1-seed7", "sfm-ipc1-seed7"]


def test_isolated_run_lands_in_the_cache(script, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    """--isolate: the run in a fresh process (its own peak memory), the record from its cached result;
    --jobs 2: both runs at once, each recording that it shared the machine."""
    out = tmp_path / "iso.json"
    args = ["--size", "tiny", "--threads", "1", "--ipcs", "1", "--isolate", "--out", str(out)]
    assert script.main([*args, "--seeds", "5"]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert sorted(runs) == ["lgm-ipc1-seed5", "sfm-ipc1-seed5"] and not any(r["cached"] for r in runs.values())
    assert all(r["concurrent_runs"] == 1 for r in runs.values())

    assert script.main([*args, "--seeds", "6", "--jobs", "2", "--no-resume"]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert sorted(runs) == ["lgm-ipc1-seed6", "sfm-ipc1-seed6"] and not any(r["cached"] for r in runs.values())
    assert all(r["concurrent_runs"] == 2 and r["wall_s"] > 0 for r in runs.values())

    with pytest.raises(SystemExit):
        script.main([*args, "--jobs", "0"])
    assert "--jobs 0: must be 1 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([*args, "--real-seeds", "3,x"])
    assert "--real-seeds '3,x': give comma-separated integers" in capsys.readouterr().err


def test_more_real_draws_only(script, tmp_path: Path) -> None:  # noqa: ANN001
    """--seeds '' --real-seeds 3: no distillation, one more random real draw (and the centroid set) scored."""
    out = tmp_path / "real.json"
    assert script.main(["--size", "tiny", "--threads", "1", "--ipcs", "1", "--seeds", "", "--real-seeds", "3",
                        "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["complete"] and rec["runs"] == {} and rec["config"]["seeds"] == [] and rec["config"]["real_seeds"] == [3]
    assert {r["set"] for r in rec["rows"]} == {"random-real", "centroid-real"}
    assert all(r["seeds"] == [3] for r in rec["rows"] if r["set"] == "random-real")


def test_sfm_ci_cifar10_records_a_cache_hit_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache"))  # its own: the first call must train everything
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
    # the golden head too: trained by the first call, loaded by the second, each said so with its own time
    t1, t2 = (json.loads((tmp_path / f).read_text())["timings"] for f in ("a.json", "b.json"))
    assert "stages_cached" not in t1 and t2["stages_cached"] == [mod.GOLDEN] and t2["cached"] is True
    assert t2["original_stage_seconds"][mod.GOLDEN] > 0
    assert t2["stage_seconds"][mod.GOLDEN] < t1["stage_seconds"][mod.GOLDEN]


def test_one_method_scored_on_several_backbones(script, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    """--methods sfm --eval-backbones A,B: only SFM's runs, each final set (and every real set) scored by probe /
    CI / KD on both backbones; a backbone's scores are those a record of it alone gives (cached per backbone);
    the record names its methods and backbones, so it never joins the two-method Lite2 record."""
    args = ["--size", "tiny", "--threads", "1", "--ipcs", "1", "--seeds", "0", "--real-seeds", "0"]
    both = tmp_path / "both.json"
    assert script.main([*args, "--methods", "sfm", "--eval-backbones", "efficientnet-lite1,efficientnet-lite2",
                        "--out", str(both)]) == 0
    rec = json.loads(both.read_text())
    assert sorted(rec["runs"]) == ["sfm-ipc1-seed0"] and rec["config"]["methods"] == ["sfm"]
    assert rec["config"]["eval_backbone"] == "efficientnet-lite1,efficientnet-lite2"
    assert [b["name"] for b in rec["backbones"].values()] == ["efficientnet-lite0", "efficientnet-lite1",
                                                              "efficientnet-lite2"]
    final = {(r["set"], r["protocol"]): r["per_seed"] for r in rec["rows"] if r["steps"] in (None, 6)}
    for s in ("sfm", "random-real", "centroid-real"):
        assert {(s, f"{m} on efficientnet-lite{v}") for m in ("probe", "ci", "kd") for v in (1, 2)} <= set(final)
    one = tmp_path / "one.json"
    assert script.main([*args, "--methods", "sfm", "--out", str(one)]) == 0
    alone = {(r["set"], r["protocol"]): r["per_seed"] for r in json.loads(one.read_text())["rows"]
             if r["steps"] in (None, 6)}
    assert all(final[k] == v for k, v in alone.items())
    for bad, word in [(["--methods", "gan"], "--methods 'gan'"), (["--eval-backbones", ""], "--eval-backbones ''"),
                      (["--eval-backbones", "efficientnet-lite0"], "other than efficientnet-lite0")]:
        with pytest.raises(SystemExit):
            script.main([*args, *bad, "--out", str(tmp_path / "bad.json")])
        assert word in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
