"""benchmarks/bps_evidence.py at scale test: the record issue 9 asks for, with its paired tables."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("bps_evidence", ROOT / "benchmarks" / "bps_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_evidence_record_at_scale_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a cache of its own: the counts of loaded students below must not depend on which tests ran before
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ev.json"
    argv = ["--scale", "test", "--set", "teacher_per_class=40", "--methods", "bps,random,herding", "--ipc", "2",
            "--seeds", "2", "--students", "kd,ce", "--centre-frac", "0", "--weak-teacher-per-class", "8",
            "--epoch-curve", "1,2", "--quiet", "--out", str(out)]
    assert _script().main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["teacher"]["train_size"] == 400 and rec["config"]["dataset"]["per_class"] == 24
    methods = {(r["method"], r["protocol"], r["rule"]) for r in rec["rows"]}
    assert ("bps", "kd", "final") in methods and ("random", "ce", "best_last") in methods
    assert ("bps (centre share 0)", "kd", "final") in methods and ("bps", "kd-weak-teacher", "final") in methods
    assert ("bps", "kd@1", "final") in methods and ("random", "kd@2", "best_last") in methods
    kinds = {(t["method"], t["baseline"], t["protocol"]) for t in rec["paired"]}
    assert ("bps", "random", "kd") in kinds and ("bps / kd", "bps / ce", "kd - ce") in kinds
    assert ("bps (centre share 0)", "bps", "kd") in kinds and ("bps (centre share 0)", "random", "kd") in kinds
    assert ("bps", "random", "kd-weak-teacher") in kinds and ("bps", "random", "kd@2") in kinds
    assert all(t["n_seeds"] == 2 and len(t["ci95"]) == 2 and t["verdict"] for t in rec["paired"])
    assert {h["method"] for h in rec["hlr"]} == {"bps", "random", "herding"}
    t = rec["timings"]
    assert t["students_trained"] + t["students_loaded"] == len(rec["grid"]) and t["cached"] is False
    assert t["students_loaded"] == 2 * 2  # the curve's 2-epoch KD students of bps and random are the grid's own
    # a second call loads every student from the cache and says so
    assert _script().main(argv) == 0
    again = json.loads(out.read_text())
    assert again["timings"]["students_loaded"] == len(again["grid"]) and again["timings"]["cached"] is True
    assert [r["mean"] for r in again["rows"]] == [r["mean"] for r in rec["rows"]]


def test_results_read_the_evidence_record(tmp_path: Path) -> None:
    from ddlib import results

    out = tmp_path / "ev.json"
    assert _script().main(["--scale", "test", "--methods", "bps,random", "--ipc", "2", "--seeds", "2",
                           "--students", "kd,ce", "--epoch-curve", "1,2", "--quiet", "--out", str(out)]) == 0
    recs = results.load([tmp_path])
    paired = results.paired_table(recs)
    assert {"verdict", "excludes_zero"} <= set(paired.columns) and (paired.dataset == "fashion-mnist").all()
    curve = results.epoch_curve(recs)
    assert set(curve.epochs) == {1, 2} and set(curve.method) == {"bps", "random"}
    assert all(len(c) == 2 for c in curve.ci95) and all(len(v) == 2 for v in curve.per_seed)
    hlr = results.hlr_table(recs)
    assert set(hlr.method) == {"bps", "random"} and len(hlr) == 2 * 2
    acc = results.accuracy_table(recs)
    assert set(acc.rule.dropna()) == {"best_last", "final"}
    assert results.latest_evidence("fashion-mnist", recs).source == recs[0].source
    assert results.latest_evidence("cifar10", recs) is None
    ev = results.evidence_summary(results.latest_evidence("fashion-mnist", recs))
    assert set(ev["ior"].method) == {"bps"} and set(ev["kd_ce"].protocol) == {"kd - ce"}
    assert len(ev["curve"]) == 2 * 2 and ev["teacher"]["train_size"] > 0 and len(ev["ablation"]) == 0
    assert ev["teacher_text"].endswith(f"on {ev['teacher']['train_size']:,} images")
    assert results.verdict_of(ev["ior"], "bps", 2, "final") == ev["ior"][ev["ior"].rule == "final"].verdict.iloc[0]
    assert results.verdict_of(ev["ior"], "kcenter", 2) == "not recorded yet"
    empty = results.evidence_summary(None)
    assert len(empty["ior"]) == 0 and empty["teacher"] == {} and empty["source"] is None


def test_versus_table_pairs_bps_with_every_other_selector_by_hand() -> None:
    """BPS against each other selector of the main grid, paired over the seeds they share (hand-computed)."""
    from ddlib import results

    def row(method: str, seed: int, final: float, setting: str = "main") -> dict:
        return {"method": method, "ipc": 10, "student": "kd", "seed": seed, "final": final, "best_last": final,
                "setting": setting}

    grid = [row("bps", 0, 0.50), row("bps", 1, 0.60), row("bps", 2, 0.70),
            row("herding", 0, 0.40), row("herding", 1, 0.52), row("herding", 2, 0.58),
            row("random", 0, 0.50), row("random", 1, 0.60),  # seed 2 missing: paired over seeds 0 and 1
            row("bps (centre share 0)", 0, 0.1, "centre share 0")]  # an ablation row is not a selector
    rec = results.Record("fake.json", {"grid": grid})
    t = results.versus_table(rec, "bps")
    t = t[t.rule == "final"].set_index("baseline")
    assert sorted(t.index) == ["herding", "random"]
    # bps - herding = 0.10, 0.08, 0.12: mean 0.10, sd 0.02, t(0.975, 2) = 4.303 -> half-width 0.0497
    assert t.loc["herding", "diff_mean"] == pytest.approx(0.10) and t.loc["herding", "n_seeds"] == 3
    lo, hi = t.loc["herding", "ci95"]
    assert (hi - lo) / 2 == pytest.approx(4.3027 * 0.02 / 3 ** 0.5, rel=1e-3)
    assert t.loc["herding", "verdict"].startswith("bps beats herding by 10.0")
    assert t.loc["random", "n_seeds"] == 2 and t.loc["random", "diff_mean"] == pytest.approx(0.0)
    assert len(results.versus_table(None)) == 0


def test_latest_evidence_joins_the_ipcs_of_one_run_split_over_invocations() -> None:
    """A run split by IPC over sessions reads as one record; a record of another modelling is never mixed in."""
    from ddlib import results

    def rec(source: str, date: str, ipcs: list[int], key: str = "m1", teacher: float = 0.9) -> results.Record:
        grid = [{"method": m, "ipc": k, "student": "kd", "seed": s, "final": 0.5, "best_last": 0.5,
                 "setting": "main"}
                for k in ipcs for m in ("bps", "random") for s in (0, 1)]
        paired = [{"method": "bps", "baseline": "random", "ipc": k, "protocol": "kd", "rule": "final", "n_seeds": 2,
                   "diff_mean": 0.0, "ci95": [-0.1, 0.1], "excludes_zero": False, "verdict": f"v{k}"} for k in ipcs]
        return results.Record(source, {
            "what": "w", "provenance": {"command": "c", "commit": source, "device": "cpu", "date": date},
            "config": {"dataset": {"name": "fashion-mnist"}, "overrides": {"ipcs": ipcs},
                       "pipeline": {"teacher": {"epochs": 12}, "select": {"ipc": ipcs[0]}}, "seeds": [0, 1]},
            "rows": [{"method": "bps", "ipc": k, "protocol": "kd", "mean": 0.5} for k in ipcs], "timings": {"wall_s": 1},
            "grid": grid, "paired": paired, "hlr": [{"method": "bps", "ipc": k} for k in ipcs],
            "teacher": {"test_acc": teacher}, "modelling": {"modelling_key": key}})

    ipc10 = rec("results/a.json", "2026-12-01 10:00", [10], teacher=0.91)
    ipc50 = rec("results/b.json", "2026-12-02 10:00", [50], teacher=0.92)
    other = rec("results/c.json", "2026-11-30 10:00", [100], key="m2")
    both = results.latest_evidence("fashion-mnist", [ipc10, other, ipc50])
    assert both.source == "results/b.json + results/a.json"
    assert sorted({g["ipc"] for g in both.data["grid"]}) == [10, 50]  # not 100: another modelling
    assert [p["verdict"] for p in both.data["paired"]] == ["v50", "v10"] and len(both.data["hlr"]) == 2
    assert [(m["source"], m["ipcs"], m["teacher_acc"]) for m in both.data["merged_from"]] == [
        ("results/b.json", [50], 0.92), ("results/a.json", [10], 0.91)]
    assert both.data["teacher"]["test_acc"] == 0.92  # the newest record's
    assert results.teacher_text(both, ipc=10) == "91.0 %" and results.teacher_text(both, ipc=50) == "92.0 %"
    summary = results.evidence_summary(both)
    assert set(summary["ior"].ipc) == {10, 50} and set(results.versus_table(both).ipc) == {10, 50}
    # an IPC the newer record has is never taken from the older one; a lone record is returned as it is
    again = rec("results/d.json", "2026-12-03 10:00", [10, 50])
    assert results.latest_evidence("fashion-mnist", [ipc10, ipc50, again]) is again
    assert results.latest_evidence("fashion-mnist", [ipc10]) is ipc10
    # a side study (bps_evidence.py --study) is read by its name only, and never lends the main run its IPCs
    study = rec("results/e.json", "2026-12-04 10:00", [100])
    study.config["study"] = "slots"
    assert results.latest_evidence("fashion-mnist", [ipc10, study]) is ipc10
    assert results.latest_evidence("fashion-mnist", [ipc10, study], study="slots") is study
    assert results.latest_evidence("fashion-mnist", [ipc10], study="slots") is None



def test_latest_evidence_names_the_forgetting_rule_of_each_part() -> None:
    """The forgetting baseline's settings are the selector's, not the modelling's: an older part whose forgetting
    config predates the ``never_learned`` setting (Toneva's rule: never-learned images forgotten infinitely
    often) joins a newer DeepCore-rule part with its forgetting rows named ``forgetting (toneva)``."""
    from ddlib import results

    def rec(source: str, date: str, ipc: int, forgetting: dict) -> results.Record:
        grid = [{"method": m, "ipc": ipc, "student": "kd", "seed": 0, "final": 0.5, "setting": "main"}
                for m in ("bps", "random", "forgetting")]
        paired = [{"method": "forgetting", "baseline": "random", "ipc": ipc, "protocol": "kd", "rule": "final"},
                  {"method": "forgetting / kd", "baseline": "forgetting / ce", "ipc": ipc, "protocol": "kd-vs-ce"}]
        return results.Record(source, {
            "what": "w", "provenance": {"command": "c", "commit": source, "device": "cpu", "date": date},
            "config": {"dataset": {"name": "fashion-mnist"}, "seeds": [0],
                       "pipeline": {"teacher": {"epochs": 12}, "forgetting": forgetting}},
            "rows": [], "timings": {"wall_s": 1}, "grid": grid, "paired": paired, "hlr": [],
            "teacher": {"test_acc": 0.9}, "modelling": {"modelling_key": "m"}})

    old = rec("results/a.json", "2026-12-01", 10, {"epochs": 12})
    new = rec("results/b.json", "2026-12-07", 50, {"epochs": 12, "never_learned": "deepcore"})
    both = results.latest_evidence("fashion-mnist", [old, new])
    assert both.source == "results/b.json + results/a.json"
    assert {(g["method"], g["ipc"]) for g in both.data["grid"] if "forgetting" in g["method"]} == {
        ("forgetting", 50), ("forgetting (toneva)", 10)}
    assert {(p["method"], p["baseline"]) for p in both.data["paired"] if p["ipc"] == 10} == {
        ("forgetting (toneva)", "random"), ("forgetting (toneva) / kd", "forgetting (toneva) / ce")}
    assert both.data["merged_from"][1]["forgetting_rows"] == "forgetting (toneva)"
    same = rec("results/c.json", "2026-12-02", 100, {"epochs": 12, "never_learned": "deepcore"})
    assert {g["method"] for g in results.latest_evidence("fashion-mnist", [same, new]).data["grid"]} == {
        "bps", "random", "forgetting"}
    assert results.latest_evidence("fashion-mnist", [new]) is new
    alone = results.latest_evidence("fashion-mnist", [old])  # a lone Toneva-rule record: named, not hidden
    assert alone.source == "results/a.json" and alone.data["merged_from"][0]["forgetting_rows"] == "forgetting (toneva)"
    assert {g["method"] for g in alone.data["grid"]} == {"bps", "random", "forgetting (toneva)"}

def test_epoch_curve_orders_budgets_by_number() -> None:
    """Budgets 50 < 100 < 400, not as strings ("100" < "400" < "50"): a line drawn in row order must not turn back."""
    from ddlib import results

    grid = [{"method": "bps", "ipc": 10, "epochs": e, "seed": s, "final": e / 1000 + s / 100, "setting": "epoch curve"}
            for e in (400, 50, 100) for s in (0, 1)]
    rec = results.Record("r.json", {"what": "w", "provenance": {"command": "c", "commit": "x", "device": "cpu",
                                                                  "date": "d"},
                                    "config": {"dataset": {"name": "fashion-mnist"}}, "rows": [],
                                    "timings": {"wall_s": 1}, "grid": grid})
    curve = results.epoch_curve([rec])
    assert list(curve.epochs) == [50, 100, 400]
    assert curve.accuracy_mean.tolist() == pytest.approx([0.055, 0.105, 0.405])


def test_teacher_text_names_each_sessions_teacher() -> None:
    from ddlib import results

    one = results.Record("a.json", {"teacher": {"test_acc": 0.9066, "train_size": 60000}})
    assert results.teacher_text(one) == "90.7 % on 60,000 images"
    both = results.Record("b + a", {"teacher": {"test_acc": 0.9042, "train_size": 60000}, "merged_from": [
        {"source": "b", "ipcs": [50], "teacher_acc": 0.9042}, {"source": "a", "ipcs": [10], "teacher_acc": 0.9066}]})
    assert results.teacher_text(both) == ("90.4 % for IPC 50 and 90.7 % for IPC 10, on 60,000 images, trained in "
                                          "2 sessions with the same settings")
    assert results.teacher_text(None) == "not recorded yet"


def test_join_rerecords_forgetting_only_after_reproducing_the_record(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: the forgetting rows of a record re-recorded under DeepCore's rule, the rest reused only once
    this machine has reproduced the record's teacher, patterns and one of its students; the record's own
    forgetting rows (Toneva's rule) stay as a named row."""
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache"))
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    base = ["--scale", "test", "--ipc", "2", "--seeds", "2", "--students", "kd,ce", "--quiet"]
    assert _script().main([*base, "--methods", "bps,random,forgetting", "--set", "never_learned=toneva",
                           "--centre-frac", "0", "--out", str(old)]) == 0
    rec_old = json.loads(old.read_text())
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "fresh"))  # nothing cached: everything trained again
    assert _script().main([*base, "--methods", "forgetting", "--join", str(old), "--out", str(new)]) == 0
    rec = json.loads(new.read_text())
    assert rec["joined"]["record"] == "old.json" and rec["joined"]["verified"]["student"]["accs_equal"]
    by = lambda r: {(g["method"], g["student"], g["seed"], g.get("setting")): g["accs"] for g in r["grid"]}  # noqa: E731
    o, n = by(rec_old), by(rec)
    for k, accs in o.items():  # bps, random and the ablation: the record's rows; forgetting kept under its rule
        key = (("forgetting (toneva)",) + k[1:]) if k[0] == "forgetting" else k
        assert n[key] == accs
    assert {k[0] for k in n} == {"bps", "random", "forgetting", "forgetting (toneva)", "bps (centre share 0)"}
    assert rec["config"]["pipeline"]["forgetting"]["never_learned"] == "deepcore"
    assert rec["config"]["forgetting_rules"] == ["toneva"] and rec["config"]["centre_frac_ablation"] == [0.0]
    kinds = {(t["method"], t["baseline"], t["protocol"]) for t in rec["paired"]}
    assert ("forgetting", "random", "kd") in kinds and ("forgetting (toneva)", "random", "ce") in kinds
    assert ("bps (centre share 0)", "bps", "kd") in kinds
    t = rec["timings"]
    assert t["students_joined"] == len(rec_old["grid"]) and t["students_trained"] == 2 * 2
    # a record this machine does not reproduce is refused, naming what differs, with nothing written
    rec_old["teacher"]["test_acc"] = 0.5
    old.write_text(json.dumps(rec_old))
    bad = tmp_path / "bad.json"
    from ddlib.utils import ParamError

    with pytest.raises(ParamError, match="does not reproduce the record.*teacher test accuracy"):
        _script().main([*base, "--methods", "forgetting", "--join", str(old), "--out", str(bad)])
    assert not bad.exists()


def test_cross_architecture_record_reuses_the_convnet_students_it_reproduces(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25: the same selections train KD students of several architectures from one shared teacher; the
    ConvNet column comes from an evidence record once this machine reproduces its teacher, patterns and a student;
    chapter 5's table has methods as rows and architectures as columns."""
    from ddlib import results

    spec = importlib.util.spec_from_file_location("cross_arch", ROOT / "benchmarks" / "cross_arch.py")
    xa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xa)
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache"))
    ev, out = tmp_path / "ev.json", tmp_path / "cross_arch.json"
    assert _script().main(["--scale", "test", "--methods", "bps,random,herding,centroids", "--ipc", "2", "--seeds",
                           "2", "--students", "kd", "--quiet", "--out", str(ev)]) == 0
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "fresh"))
    assert xa.main(["--scale", "test", "--ipc", "2", "--seeds", "2", "--students", "convnet,resnet18:8", "--reuse",
                    str(ev), "--quiet", "--out", str(out)]) == 0
    rec = results.load_file(out)[0]
    archs = {r["student"] for r in rec.data["grid"]}
    assert archs == {"ConvNet", "ResNet-18 (width 8)"}
    t = rec.timings
    assert t["students_joined"] == 4 * 2 and t["students_trained"] == 4 * 2  # the ConvNet column reused
    conv = {(r["method"], r["seed"]): r["accs"] for r in rec.data["grid"] if r["student"] == "ConvNet"}
    old = {(r["method"], r["seed"]): r["accs"] for r in json.loads(ev.read_text())["grid"] if r["student"] == "kd"}
    assert conv == old
    table, glue = results.cross_arch_verdicts(rec)
    assert list(table.columns)[-2:] == ["ConvNet", "ResNet-18 (width 8)"] or set(table.columns) >= {"ConvNet"}
    assert glue["cross_arch_n_architectures"] == 2 and "BPS against random" in glue["cross_arch_holds"]
    assert results.latest_cross_arch("fashion-mnist", [rec]) is rec
    # newer than the evidence and shaped like it (paired, grid), it never stands in for the main evidence
    evidence = results.load_file(ev)[0]
    label = rec.config["dataset"]
    assert rec.provenance["date"] >= evidence.provenance["date"]
    assert results.latest_evidence(label, [evidence, rec]).source == evidence.source
    assert results.latest_evidence(label, [rec]) is None
    with pytest.raises(Exception, match="students"):
        xa.parse_students("")
