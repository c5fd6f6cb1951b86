"""Verdict tables and the chapters' views of the records (ddlib.results.verdicts, selection_verdicts,
synthesis_verdicts, costs.cost_appendix, records.records_overview): hand-computed cases, the repository's
records, and the package's shape (one home per public name, imports pointing down)."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import pandas as pd
import pytest

from ddlib import metrics, results
from ddlib.plots import WholeTable
from ddlib.utils import ParamError

PKG = Path(__file__).resolve().parents[1] / "ddlib" / "results"
T975_2 = 4.302652729911275  # Student t, 97.5 %, 2 degrees of freedom


def _row(method: str, baseline: str, ipc: int, protocol: str, a: list[float], b: list[float],
         rule: str = "final") -> dict:
    return {"method": method, "baseline": baseline, "ipc": ipc, "protocol": protocol, "rule": rule,
            **metrics.paired_stats(a, b, method, baseline)}


def _narrow(table: pd.DataFrame) -> None:
    """What a 688-px book column holds: at most 6 columns, no cell or header over 40 characters, no NaN."""
    assert table.shape[1] <= 6, list(table.columns)
    assert not table.isna().any().any()
    cells = [str(c) for c in table.columns] + [str(v) for v in table.to_numpy().ravel()]
    assert max(map(len, cells), default=0) <= 40, max(cells, key=len)
    assert "nan" not in repr(table).lower().replace("nan ", "")


# ----------------------------------------------------------------------------- the verdict table, by hand
def test_a_paired_difference_and_its_t_interval_in_words() -> None:
    """BPS − random = 0.02, 0.03, 0.04: mean 3.0 points, sd 1.0, half-width t(0.975, 2) · 1.0 / sqrt(3) = 2.484:
    [0.5, 5.5], clear of 0: "BPS ahead", on 3 seeds, fewer than a claim needs (5), which the cell says. The
    reverse reads "random ahead"; a difference whose interval holds 0 (0.02, 0.05, 0.01 -> [−2.5, 7.8]) reads
    "no detectable difference"."""
    half = T975_2 * 1.0 / math.sqrt(3)
    assert half == pytest.approx(2.4841, abs=1e-4)
    rows = [_row("bps", "random", 10, "kd", [0.52, 0.53, 0.54], [0.50, 0.50, 0.50]),
            _row("bps", "random", 50, "kd", [0.50, 0.50, 0.50], [0.52, 0.53, 0.54]),
            _row("bps", "random", 10, "ce", [0.52, 0.55, 0.51], [0.50, 0.50, 0.50])]
    table, glue = results.verdict_table(rows, key="t")
    assert isinstance(table, WholeTable) and list(table.columns) == results.VERDICT_COLUMNS
    assert table.to_dict("records") == [  # by comparison, IPC, then protocol in the order given
        {"comparison": "BPS − random", "IPC": 10, "protocol": "KD", "difference": "+3.0 points",
         "95 % interval": "[0.5, 5.5]", "verdict": "no verdict (3 seeds)"},
        {"comparison": "BPS − random", "IPC": 10, "protocol": "hard labels", "difference": "+2.7 points",
         "95 % interval": "[−2.5, 7.8]", "verdict": "no detectable difference"},
        {"comparison": "BPS − random", "IPC": 50, "protocol": "KD", "difference": "−3.0 points",
         "95 % interval": "[−5.5, −0.5]", "verdict": "no verdict (3 seeds)"}]
    assert glue["t_bps_vs_random_kd_ipc10_final_diff"] == pytest.approx(3.0)
    assert glue["t_bps_vs_random_kd_ipc10_final_lo"] == pytest.approx(3.0 - half, abs=1e-4)
    assert glue["t_bps_vs_random_kd_ipc10_final_hi"] == pytest.approx(3.0 + half, abs=1e-4)
    assert glue["t_bps_vs_random_kd_ipc50_final_verdict"] == "no verdict (too few seeds)"
    assert (glue["t_n_comparisons"], glue["t_n_method_ahead"], glue["t_n_baseline_ahead"],
            glue["t_n_no_difference"], glue["t_n_too_few_seeds"], glue["t_n_not_run"]) == (3, 0, 0, 1, 2, 0)
    assert glue["t_verdict"] == (
        "BPS − random (final epoch): no detectable difference; 2 with an interval clear of 0 on too few seeds "
        "for a verdict; all rest on fewer than the 5 paired seeds a claim needs: measurements, not verdicts.")
    assert glue["t_caption"] == ("BPS − random: differences in points of test accuracy (final epoch), 95 % "
                                 "intervals over 3 paired seeds")
    assert all(isinstance(v, (str, int, float)) for v in glue.values())
    _narrow(table)


def test_a_missing_comparison_reads_not_run_and_a_single_seed_has_no_verdict() -> None:
    rows = [_row("bps", "random", 10, "kd", [0.52, 0.53, 0.54], [0.50, 0.50, 0.50]),
            {**_row("herding", "random", 10, "kd", [0.6], [0.5])}]
    table, glue = results.verdict_table(rows, expected=[("bps", "random", 10, "kd"), ("el2n", "random", 10, "kd"),
                                                        {"method": "bps", "baseline": "random", "ipc": 50,
                                                         "protocol": "kd"}], key="m")
    by = table.set_index(["comparison", "IPC"])
    assert by.loc[("EL2N − random", 10)].tolist() == ["KD", "not run", "not run", "not run"]
    assert by.loc[("BPS − random", 50), "verdict"] == "not run"
    single = by.loc[("herding − random", 10)]
    assert (single["difference"], single["95 % interval"], single["verdict"]) == (
        "+10.0 points", "none (one seed)", "one seed, no interval")
    assert glue["m_n_not_run"] == 2 and glue["m_n_single_seed"] == 1
    assert "2 not run" in glue["m_verdict"] and "1 from a single seed" in glue["m_verdict"]
    assert "m_herding_vs_random_kd_ipc10_final_lo" not in glue  # no interval, none invented
    _narrow(table)
    frame = pd.DataFrame([{"method": "bps", "baseline": "random", "ipc": 10, "protocol": "kd", "n_seeds": None,
                           "diff_mean": float("nan"), "ci95": float("nan")}])  # a row a reader left empty
    assert results.verdict_table(frame)[0]["verdict"].tolist() == ["not run"]
    empty, g = results.verdict_table([], expected=[("bps", "random", 10, "kd")], key="e")
    assert empty["verdict"].tolist() == ["not run"] and g["e_verdict"].endswith("not run.")


def test_a_difference_the_same_at_every_seed_has_no_interval_and_no_verdict() -> None:
    """A KD head trained without randomness on seed-independent sets (chapter 4's, at every seed): 5 seeds,
    one difference, −4.7 points. Its t interval is [−4.7, −4.7], which would read "behind" with certainty
    the seeds cannot give: the table says the seed changes nothing and gives no verdict."""
    fixed = _row("ci", "probe", 1, "lite2", [0.40] * 5, [0.447] * 5)
    varied = _row("sfm", "real", 1, "lite2", [0.52, 0.53, 0.54, 0.52, 0.53], [0.50] * 5)
    table, glue = results.verdict_table([fixed, varied], key="d", columns=None)
    row = table.set_index("comparison").loc["CI − probe"]
    assert (row["difference"], row["95 % interval"], row["verdict"]) == (
        "−4.7 points", "none (the same at every seed)", "the same at every seed, no interval")
    assert glue["d_n_same_every_seed"] == 1 and glue["d_n_baseline_ahead"] == 0
    assert "d_ci_vs_probe_lite2_ipc1_final_lo" not in glue
    assert glue["d_ci_vs_probe_lite2_ipc1_final_phrase"] == "−4.7 points at every seed, no interval"
    assert "1 give the same difference at every seed" in glue["d_verdict"]
    assert results.headline(glue, "d", "ci", "probe", "lite2", [1]) == (
        "CI against probe at IPC 1: the same at every seed, no interval")
    wide, _ = results.verdict_table([fixed], key="w", columns="protocol")
    assert wide.iloc[0, 1] == "−4.7 (same at every seed)"
    _narrow(table)


def test_both_rules_the_final_epoch_shown_by_default() -> None:
    final = _row("bps", "random", 10, "kd", [0.52, 0.53, 0.54], [0.50, 0.50, 0.50])
    best = _row("bps", "random", 10, "kd", [0.50, 0.51, 0.49], [0.50, 0.50, 0.50], rule="best_last")
    shown, glue = results.verdict_table([best, final], key="r")
    assert shown["verdict"].tolist() == ["no verdict (3 seeds)"] and glue["r_rule"] == "final epoch"
    assert "no detectable difference" in glue["r_verdict_best_last"] and "r_verdict_final" not in glue
    assert glue["r_bps_vs_random_kd_ipc10_best_last_diff"] == pytest.approx(0.0)
    other, glue = results.verdict_table([best, final], rule="best_last", key="r")
    assert other["verdict"].tolist() == ["no detectable difference"] and "r_verdict_final" in glue
    with pytest.raises(ParamError, match="rule"):
        results.verdict_table([final], rule="best")


def test_display_names_and_a_readable_fallback() -> None:
    name = results.display_name
    assert name("bps / kd") == "BPS with KD" and name("kd@50") == "KD, 50 student epochs"
    assert name("kd-weak-teacher") == "KD, weak teacher" and name("kd - ce") == "KD − hard labels"
    # no comma inside a name: "BPS with centres only and BPS cannot be told apart" reads as one subject
    assert name("bps (centre share 0)") == "BPS with margins only" and name("bps (centre share 1)") == \
        "BPS with centres only"
    assert name("bps (centre share 0.25)") == "BPS with centre share 0.25"
    assert name("bps (coarser patterns)") == "BPS on coarser patterns"
    assert name("ci on efficientnet-lite2") == "CI on EfficientNet-Lite2"
    assert name("random-real") == "random real images"
    assert name("forgetting (toneva)") == "forgetting (Toneva)" and name("fashion-mnist") == "Fashion-MNIST"
    assert name("my_new_selector") == "my new selector" and name("timm:vit_small") == "vit_small (timm)"
    assert name(None) == "" and name(float("nan")) == ""
    assert results.comparison_name("bps / kd", "bps / ce") == "BPS: KD − hard labels"
    assert results.comparison_name("bps (centre share 1)", "random") == "BPS with centres only − random"
    assert results.points(-0.04) == "0.0" and results.points(-1.25) == "−1.2" and results.points(2, False) == "2.0"
    # an interval's end that rounds to 0 keeps its sign: the verdict "herding ahead" was read on it
    assert results.bound(-0.02) == "−0.02" and results.bound(0.004) == "0.004" and results.bound(0.0) == "0.0"
    assert results.bound(-3.31) == "−3.3" and results.bound(2.05) == "2.0" or results.bound(2.05) == "2.1"
    # a family of labels a user brings: every internal label reads as a name
    rows = [_row("my_selector", "random", 5, "kd@7", [0.6, 0.7], [0.5, 0.55])]
    table, _ = results.verdict_table(rows)
    assert table.iloc[0][["comparison", "protocol"]].tolist() == ["my selector − random", "KD, 7 student epochs"]


def test_a_wide_family_methods_by_architecture_and_its_split() -> None:
    """The cross-architecture family: rows = methods, columns = student architectures, a cell the difference to
    random with its interval; cut to the column with split_columns."""
    archs = ["convnet", "resnet18", "vit_tiny", "timm:mixer", "efficientnet-lite0", "convnet-random"]
    rows = [_row(m, "random", 10, f"kd on {a}", [0.52 + d, 0.53 + d, 0.54 + d, 0.53 + d, 0.53 + d], [0.50] * 5)
            for m, d in (("bps", 0.0), ("herding", -0.03)) for a in archs[:-1]]
    table, glue = results.verdict_table(rows, columns="protocol", key="x")
    assert list(table.columns) == ["comparison", *(f"KD on {n}" for n in ("ConvNet", "ResNet-18", "vit tiny",
                                                                            "mixer (timm)", "EfficientNet-Lite0"))]
    assert table.iloc[0].tolist()[:2] == ["BPS − random", "+3.0 [2.1, 3.9] ahead"]
    assert table.iloc[1, 1] == "0.0 [−0.9, 0.9]"  # herding: no detectable difference, no word
    _narrow(table)
    assert glue["x_n_comparisons"] == 10 and glue["x_n_method_ahead"] == 5
    parts = results.split_columns(table, max_columns=3)
    assert [p.shape[1] for p in parts] == [3, 3, 2] and all(list(p.columns)[0] == "comparison" for p in parts)
    by_ipc, _ = results.verdict_table(rows[:1], columns="ipc")
    assert list(by_ipc.columns) == ["comparison", "IPC 10"]
    with pytest.raises(ParamError, match="columns"):
        results.verdict_table(rows, columns="rule")


def test_one_dataset_per_table_and_seventy_three_rows_shown_whole() -> None:
    row = _row("bps", "random", 10, "kd", [0.52, 0.53, 0.54, 0.53, 0.53], [0.50] * 5)
    with pytest.raises(ParamError, match="datasets"):
        results.verdict_table([{**row, "dataset": "cifar10"}, {**row, "ipc": 50, "dataset": "fashion-mnist"}])
    many = [{**row, "ipc": k} for k in range(1, 74)]
    table, glue = results.verdict_table(many)
    assert len(table) == 73 and glue["verdicts_n_comparisons"] == 73
    with pd.option_context("display.max_rows", 10):
        assert table._repr_html_().count("<tr") == 74 and len(repr(table).splitlines()) == 74
    assert "a difference in 73 of the 73" not in glue["verdicts_verdict"]  # one side only: said in one phrase
    assert glue["verdicts_verdict"].startswith("BPS − random (final epoch): BPS ahead in all 73 comparisons")


# ----------------------------------------------------------------------------- the chapters' functions
def _grid() -> list[dict]:
    """A build's students by hand: BPS 2 points above random under KD on average over the seeds, herding 1
    below; hard-label twins 5 points lower for BPS and random at IPC 10."""
    out = []
    for m, a in (("bps", 0.60), ("random", 0.58), ("herding", 0.57)):
        for k in (1, 10):
            for s in range(5):
                for student, off in (("kd", 0.0), ("ce", -0.05)):
                    if student == "ce" and (k == 1 or m == "herding"):
                        continue
                    # a jitter of mean 0 over the seeds, per method and student: differences vary by seed
                    jitter = 0.002 * (s - 2) * {"bps": 1, "random": 0, "herding": -1}[m] + 0.003 * (s - 2) * (
                        student == "ce")
                    v = a + 0.01 * (s - 1) + off + jitter
                    out.append({"method": m, "ipc": k, "student": student, "seed": s, "final": v,
                                "best_last": v + 0.005, "selection_seconds": 0.1, "student_seconds": 2.0})
    return out


def test_selection_views_of_a_builds_students() -> None:
    rows = _grid()
    t, g = results.selection_verdicts(rows, "kd_versus_hard_labels", dataset="digits", key="k")
    assert t["comparison"].tolist() == ["BPS: KD − hard labels", "random: KD − hard labels"]
    assert t["difference"].tolist() == ["+5.0 points"] * 2 and g["k_n_method_ahead"] == 2
    assert "for BPS" in g["k_verdict"] and g["k_source"] == "this build's run" and "digits" in g["k_caption"]
    t, g = results.selection_verdicts(rows, "versus_random", key="v")
    assert t["comparison"].tolist()[:3] == ["BPS − random"] * 3
    assert t["verdict"].tolist()[0] == "BPS ahead"
    assert g["v_bps_vs_random_kd_ipc1_final_diff"] == pytest.approx(2.0)
    t, g = results.selection_verdicts(rows, "centre_share", key="c")
    assert set(t["verdict"]) == {"not run"} and len(t) == 8  # both ends of the split, against BPS and random
    with pytest.raises(ParamError, match="family"):
        results.selection_verdicts(rows, "versus_everything")
    acc, g = results.selection_accuracy(rows)
    assert acc.to_dict("list") == {"method": ["BPS", "random", "herding"], "IPC 1 (%)": ["61.0", "59.0", "58.0"],
                                   "IPC 10 (%)": ["61.0", "59.0", "58.0"]}
    assert (g["accuracy_top_method"], g["accuracy_bps_rank"], g["accuracy_max_ipc"]) == ("BPS", 1, 10)
    assert g["accuracy_bps_place"] == "1st of 3"
    tied = [{**r, "final": r["final"] - 0.02} if r["method"] == "bps" else r for r in rows]  # BPS prints 59.0
    assert results.selection_accuracy(tied)[1]["accuracy_bps_place"] == "1st of 3, tied with random"
    low = [{**r, "final": r["final"] - 0.05} if r["method"] == "bps" else r for r in rows]
    assert results.selection_accuracy(low)[1]["accuracy_bps_place"] == "3rd of 3"
    gains, g = results.selection_gains(rows)
    _narrow(gains)
    bps10 = gains.set_index("method, IPC").loc["BPS, IPC 10"]
    assert bps10.tolist() == ["61.0", "56.0", "+2.0", "+2.0", "+5.0"]
    assert gains.set_index("method, IPC").loc["herding, IPC 10", "hard labels (%)"] == "not run"
    assert gains.set_index("method, IPC").loc["random, IPC 10", "KD: gain over random"] == "baseline"
    assert g["gains_best_gain_kd"] == pytest.approx(2.0) and g["gains_best_gain_kd_method"] == "BPS"
    assert g["gains_herding_gain_kd"] == pytest.approx(-1.0) and g["gains_kd_minus_ce_mean"] == pytest.approx(5.0)
    kd, g_kd = results.selection_gains(rows, protocol="kd")  # one protocol per table: no "not run" cell
    ce, _ = results.selection_gains(rows, protocol="ce")
    assert list(kd.columns) == ["method, IPC", "KD (%)", "KD: gain over random"]
    assert kd["method, IPC"].tolist() == ["BPS, IPC 1", "BPS, IPC 10", "herding, IPC 1", "herding, IPC 10",
                                          "random, IPC 1", "random, IPC 10"]  # BPS first, random last, by method
    assert ce.to_dict("list") == {"method, IPC": ["BPS, IPC 10", "random, IPC 10"], "hard labels (%)": ["56.0", "54.0"],
                                  "hard labels: gain over random": ["+2.0", "baseline"],
                                  "KD − hard labels": ["+5.0", "+5.0"]}
    assert "not run" not in [*kd.to_numpy().ravel(), *ce.to_numpy().ravel()] and g_kd == g
    with pytest.raises(ParamError, match="protocol"):
        results.selection_gains(rows, protocol="hard")
    costs, g = results.selection_costs(rows, {"encoder": 1.0, "teacher": 2.5})
    assert costs.set_index("method").loc["BPS"].tolist() == ["1.000", "20.0", "10.0"]  # 10 picks, each once
    assert {k: g[k] for k in ("costs_shared_s", "costs_selection_s", "costs_students_s", "costs_n_cached")} == \
        {"costs_shared_s": 3.5, "costs_selection_s": pytest.approx(3.0), "costs_students_s": 80.0, "costs_n_cached": 0}
    assert g["costs_sentence"].endswith(f"and its {len(rows)} students 80.0 s.")
    _, g = results.selection_costs([{**r, "cached": True} for r in rows], {"encoder": 1.0})
    assert "came from the cache: training them had taken 80.0 s in the run that cached them" in g["costs_sentence"]


def _evaluations() -> dict:
    """Chapter 4's results by hand: per (set, backbone, mode) the accuracy of each run."""
    accs = {("SFM", "efficientnet-lite0", "probe"): [0.50, 0.52, 0.54],
            ("SFM", "efficientnet-lite2", "probe"): [0.40, 0.41, 0.42],
            ("SFM", "efficientnet-lite2", "ci"): [0.45, 0.47, 0.49],
            ("SFM", "efficientnet-lite2", "kd"): [0.41, 0.41, 0.41],
            ("random real", "efficientnet-lite2", "probe"): [0.30, 0.31, 0.32],
            ("random real", "efficientnet-lite2", "ci"): [0.33, 0.33, 0.33]}
    return {k: {"accs": v, "acc": sum(v) / len(v)} for k, v in accs.items()}


def test_inheritance_views_by_hand() -> None:
    t, g = results.inheritance_verdicts(_evaluations(), ipc=1, family="modes")
    assert t.columns[2] == "backbone" and t["comparison"].tolist() == ["SFM: CI − probe", "SFM: KD − probe"]
    lite2 = t[t.backbone == "EfficientNet-Lite2"].set_index("comparison")
    assert lite2.loc["SFM: CI − probe", "difference"] == "+6.0 points"  # 0.05, 0.06, 0.07
    assert lite2.loc["SFM: CI − probe", "verdict"] == "no verdict (3 seeds)"
    assert lite2.loc["SFM: KD − probe", "verdict"] == "no detectable difference"  # 0.01, 0.0, -0.01
    t, g = results.inheritance_verdicts(_evaluations(), ipc=1, family="sets", key="s")
    assert set(t.comparison) == {"SFM − random real images"} and len(t) == 4  # SFM's four evaluations
    assert g["s_n_not_run"] == 2  # random real images not probed on Lite0 nor distilled (KD) on Lite2
    _narrow(t)
    with pytest.raises(ParamError, match="family"):
        results.inheritance_verdicts(_evaluations(), ipc=1, family="both")
    table, g = results.inheritance_summary(_evaluations(), distill_backbone="efficientnet-lite0")
    _narrow(table)
    by = table.set_index(["set", "backbone"])
    assert by.loc[("SFM", "EfficientNet-Lite2")].tolist() == ["41.0", "47.0", "41.0", "+6.0"]
    assert by.loc[("random real images", "EfficientNet-Lite2"), "KD (%)"] == "not run"
    assert g["ci_best_other"] == "EfficientNet-Lite2" and g["ci_ci_gain_mean"] == pytest.approx(6.0)
    assert g["ci_sfm_ci_best_other"] == pytest.approx(47.0)
    assert g["ci_random_real_ci_gain_best_other"] == pytest.approx(2.0)
    assert g["ci_distill_probe"] == pytest.approx(52.0) and g["ci_sfm_probe_mean"] == pytest.approx(46.5)


def test_synthesis_costs_of_a_build() -> None:
    run = lambda t, m: {"wall_time": t, "peak_mem": m, "stats_time": 0.0,  # noqa: E731
                        "history": {"loss": [1.0, 0.5], "flow_cos": [0.1, 0.9]}}
    table, g = results.synthesis_costs({"SFM": run(10.0, 2**20), "LGM": run(40.0, 8 * 2**20)})
    assert table.shape == (2, 5) and g == {"synthesis_costs_time_ratio": 4.0, "synthesis_costs_mem_ratio": 8.0}


# ----------------------------------------------------------------------------- on the repository's records
@pytest.fixture(scope="module")
def recs() -> list:
    return results.load()


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_every_selection_family_reads_the_records(recs: list, dataset: str) -> None:
    ev = results.latest_evidence(dataset, recs)
    assert ev is not None
    for family in results.SELECTION_FAMILIES:
        table, glue = results.selection_verdicts(ev, family, key="f")
        _narrow(table)
        assert glue["f_verdict"] and glue["f_source"] == ev.source and glue["f_teacher"]
        assert all(not (isinstance(v, float) and math.isnan(v)) for v in glue.values())
    table, glue = results.selection_verdicts(ev, "kd_versus_hard_labels", key="k")
    # distillation beats hard labels in every recorded case; a method not run at an IPC says so
    assert glue["k_n_method_ahead"] == len(table) - glue["k_n_not_run"] >= 6
    assert set(table.verdict) <= {"KD ahead", "not run"}
    if dataset == "cifar10":  # no ablation recorded for CIFAR-10: said, not hidden
        table, glue = results.selection_verdicts(ev, "centre_share", key="c")
        assert set(table.verdict) == {"not run"} and glue["c_verdict"].endswith("not run.")
    else:
        table, glue = results.selection_verdicts(ev, "epoch_curve", key="e")
        assert glue["e_budgets"] == "50, 100, 200, 400" and glue["e_longest_epochs"] == 400
        assert "KD, 400 student epochs" in set(table.protocol)


def test_synthesis_views_read_the_records(recs: list) -> None:
    for baseline in ("lgm", "random-real", "centroid-real"):
        table, glue = results.synthesis_verdicts(baseline=baseline, records=recs)
        _narrow(table)
        assert table.columns[2] == "evaluation" and glue[f"sfm_vs_{baseline.replace('-', '_')}_steps"] > 0
    table, glue = results.synthesis_verdicts(baseline="lgm", records=recs)
    assert set(table.IPC) == {1, 10} and glue["sfm_vs_lgm_n_seeds_min"] >= 5
    summary, glue = results.synthesis_cost_summary(records=recs)
    _narrow(summary)
    assert "after 1,000 steps SFM reaches" in glue["sfm_lgm_text"] and glue["sfm_lgm_steps"] == 1000
    steps, glue = results.synthesis_steps(recs)
    assert "SFM's probe reached" in glue["steps_text"] and steps.shape[1] >= 2
    appendix, glue = results.cost_appendix(recs)
    assert len(appendix) == glue["cost_n_rows"] == len(results.cost_table(recs)) and appendix.shape[1] == 6
    assert appendix["value"].iloc[0].endswith(" s") and not appendix.isna().any().any()
    overview, glue = results.records_overview(recs)
    assert len(overview) == glue["records_n"] == len(recs) and overview.shape[1] == 6
    assert results.synthesis_verdicts(baseline="lgm", records=[])[1]["sfm_vs_lgm_source"] == "none"


# ----------------------------------------------------------------------------- the package's shape
def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PKG.glob("*.py"))}


def _defined(tree: ast.Module) -> set[str]:
    """Public names a module defines at its top level (functions, classes, assigned names)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return {n for n in names if not n.startswith("_")}


def test_no_public_name_is_defined_in_two_modules_of_the_package() -> None:
    seen: dict[str, str] = {}
    for mod, tree in _modules().items():
        for name in _defined(tree):
            assert name not in seen, f"{name} is defined in ddlib/results/{seen[name]}.py and {mod}.py"
            seen[name] = mod
    assert {"write", "verdict_table", "selection_verdicts", "cost_appendix"} <= set(seen)


def test_every_module_says_what_it_is_for_and_exports_what_it_defines() -> None:
    trees = _modules()
    for mod, tree in trees.items():
        source = (PKG / f"{mod}.py").read_text()
        assert ast.get_docstring(tree), f"{mod}.py has no docstring"
        assert len(source.splitlines()) < 500, f"{mod}.py has {len(source.splitlines())} lines"
        exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, "id", None) == "__all__" for t in n.targets)), None)
        assert exported is not None, f"{mod}.py has no __all__"
        if mod != "__init__":
            assert set(exported) == _defined(tree) - {"__all__"}, mod
            assert set(exported) <= set(results.__all__), f"{mod}: not re-exported by ddlib.results"
            for name in exported:
                assert getattr(results, name) is getattr(__import__(f"ddlib.results.{mod}", fromlist=[name]), name)
    assert sorted(results.__all__) == sorted({n for m, t in trees.items() if m != "__init__" for n in _defined(t)}
                                             - {"__all__"})


def test_modules_import_only_downwards() -> None:
    """records <- evidence, synthesis, costs <- verdicts <- selection_verdicts, synthesis_verdicts, cross_arch,
    reconcile."""
    level = {"records": 0, "evidence": 1, "synthesis": 1, "costs": 1, "verdicts": 2, "selection_verdicts": 3,
             "synthesis_verdicts": 3, "sfm_findings": 3, "reconcile": 3, "cross_arch": 3}
    for mod, tree in _modules().items():
        if mod == "__init__":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddlib.results."):
                other = node.module.split(".")[-1]
                assert level[other] < level[mod], f"{mod} imports {other}: sideways or upwards"


# ----------------------------------------------------------------------------- chapters 0-2's readers
def _record(source: str, data: dict) -> results.Record:
    base = {"what": "w", "provenance": {"command": "c", "commit": "abc", "device": "CPU (2 threads)",
                                        "date": "2026-12-05 10:00:00 UTC"},
            "config": {"dataset": {"name": "fashion-mnist"}}, "rows": [], "timings": {"wall_s": 1.0}}
    return results.Record(source, {**base, **data})


def test_headline_and_phrase_read_a_familys_glue() -> None:
    rows = [_row("bps", "random", 10, "kd", [0.50, 0.52, 0.49, 0.51, 0.50], [0.50, 0.51, 0.50, 0.50, 0.51]),
            _row("bps", "random", 50, "kd", [0.60, 0.62, 0.61, 0.61, 0.60], [0.50, 0.51, 0.52, 0.51, 0.50])]
    _, g = results.verdict_table(rows, key="v")
    assert results.headline(g, "v", "bps", "random", "kd", [10, 50]) == (
        "BPS ahead of random at IPC 50; no detectable difference at IPC 10")  # the side ahead first
    assert results.headline(g, "v", "bps", "random", "kd", [10]) == "BPS and random cannot be told apart at IPC 10"
    assert results.headline(g, "v", "bps", "random", "kd", [100]) == "BPS against random: not run"
    assert results.phrase(g, "v", "bps", "random", "kd", 50).startswith("BPS ahead (+10.0 points, 95 % interval ")
    assert results.phrase(g, "v", "bps", "random", "kd", 100) == "not recorded yet"
    kd = [_row("bps / kd", "bps / ce", 10, "kd - ce", [0.6, 0.62, 0.61], [0.5, 0.5, 0.52])]
    _, g = results.verdict_table(kd, key="k")
    assert results.headline(g, "k", "bps / kd", "bps / ce", "kd - ce", [10]) == (
        "KD against hard labels at IPC 10: no verdict (too few seeds)")


def test_chapter_time_reads_the_newest_record_that_timed_the_chapter() -> None:
    build = _record("results/book.json", {"rows": [{"scale": results.BOOK_DEFAULT_SCALE,
                                                     "chapter_seconds": {"01_x": 258.2, "02_y": 30.0}}]})
    alone = _record("results/ch.json", {"rows": [{"chapter": "02_y", "wall_s": 4000.0, "status": "ok", "scale": "cpu",
                                                  "provenance": {"date": "2026-11-01 10:00:00 UTC"}}]})
    workshop = _record("results/ws.json", {"rows": [{"chapter": "01_x", "wall_s": 60.0, "status": "ok",
                                                     "scale": "workshop", "provenance": {"date": "2026-12-31"}}]})
    # a newer workshop-scale timing never stands for the book's default scale; asked for, it is read
    assert results.chapter_time("01_x", [build, workshop])["chapter_seconds"] == 258.2
    assert results.chapter_time("01_x", [build, workshop], scale="workshop")["chapter_seconds"] == 60.0
    g = results.chapter_time("01_x", [build, alone])
    assert (g["chapter_seconds"], g["chapter_time"]) == (258.2, "about 4 minutes")
    assert g["chapter_time_where"] == "on two CPU threads in the book build of 2026-12-05, from an empty cache"
    assert results.chapter_time("02_y", [build, alone])["chapter_seconds"] == 30.0  # the newer record
    assert results.chapter_time("02_y", [alone], key="c")["c_time"] == "about 67 minutes"  # under 90: minutes
    assert results.chapter_time("03_z", [build])["chapter_time"] == "not recorded yet"
    # a parallel build (python -m ddlib book --jobs 2) says how the chapters shared the machine
    par = _record("results/book.json", {"rows": [{"scale": results.BOOK_DEFAULT_SCALE, "jobs": 2,
                                                   "chapter_seconds": {"01_x": 448.0}}]})
    par.data["provenance"]["threads"] = 2
    assert results.chapter_time("01_x", [par])["chapter_time_where"] == (
        "on two CPU threads in the book build of 2026-12-05, from an empty cache, two chapters at a time "
        "(one thread each)")


def test_hlr_balance_and_recorded_patterns_by_hand() -> None:
    ev = _record("results/e.json", {
        "hlr": [{"method": "bps", "ipc": 10, "rule": "final", "n_seeds": 5, "hlr_mean": 0.255, "ci95": [0.237, 0.273]},
                {"method": "random", "ipc": 10, "rule": "final", "n_seeds": 5, "hlr_mean": 0.2, "ci95": [0.1, 0.3]}],
        "rows": [{"method": "bps", "ipc": 10, "protocol": "ce", "rule": "final", "mean": 0.652}],
        "teacher": {"test_acc": 0.904, "train_size": 60000},
        "modelling": {"num_patterns": {"0": 45, "1": 48}}})
    table, g = results.selection_hlr(ev)
    _narrow(table)
    assert table.iloc[0].tolist() == ["BPS", 10, "65.2", "25.5", "[23.7, 27.3]"]
    assert table.iloc[1]["hard-label students (%)"] == "not recorded"
    assert (g["hlr_best_method"], g["hlr_bps"], g["hlr_teacher"]) == ("random", "25.5 points at IPC 10",
                                                                      "90.4 % on 60,000 images")
    assert results.selection_hlr(None)[1]["hlr_n"] == 0
    rows = [{"method": m, "ipc": k, "centre_share": s, "own_centre_share": o} for m, k, s, o in
            [("bps", 10, 0.89, 0.8), ("random", 10, 0.5, None), ("herding", 10, 0.41, None), ("bps", 50, 0.8, 0.75),
             ("random", 50, 0.52, None), ("herding", 50, 0.53, None)]]
    table, g = results.selection_balance(rows, ipc=10, methods=["bps", "herding", "forgetting"])
    assert table["selection"].tolist() == ["BPS", "BPS, by its own roles", "herding", "random"]
    assert (g["balance_bps"], g["balance_bps_words"], g["balance_own"]) == ("89 %", "more centres than random",
                                                                            "80 %")
    assert (g["balance_herding_words"], g["balance_forgetting"]) == ("fewer centres than random", "not run")
    assert results.selection_balance(rows, ipc=50)[1]["balance_herding_words"] == "about as many centres as random"
    assert results.recorded_patterns("fashion-mnist", [ev]) == {
        "recorded_n": 1, "recorded_min": 45, "recorded_max": 48, "recorded_sources": "results/e.json"}
    assert results.recorded_patterns("cifar10", [ev])["recorded_n"] == 0


def test_cross_arch_verdicts_say_not_recorded_until_a_record_exists() -> None:
    table, g = results.cross_arch_verdicts("fashion-mnist", [])
    assert len(table) == 0 and g["cross_arch_sentence"].startswith("Whether this holds for other student "
                                                                   "architectures has not been recorded yet")
    paired = [{**_row("bps", "random", 10, "kd", a, b), "arch": arch} for arch, a, b in
              [("convnet-w32", [0.5, 0.52, 0.51], [0.5, 0.51, 0.52]), ("resnet18-w16", [0.6, 0.61, 0.62],
                                                                        [0.5, 0.5, 0.51])]]
    rec = _record("results/cross_arch_fashion-mnist_cpu.json", {"paired": paired})
    other = _record("results/bps_evidence_x.json", {"paired": paired})  # not a cross-architecture record
    table, g = results.cross_arch_verdicts("fashion-mnist", [rec, other], methods=["bps"], columns=None)
    _narrow(table)
    assert table["student"].tolist() == ["convnet-w32", "resnet18-w16"]
    assert g["cross_arch_sentence"] == (
        "Across 2 student architectures (convnet-w32; resnet18-w16), BPS − random under KD shows BPS ahead in 1, "
        "random in 0, neither in 1 of the 2 comparisons by architecture and IPC (final epoch, 95 % intervals over "
        "paired seeds).")


def test_cross_arch_second_estimate_sets_the_main_students_column_beside_the_main_record() -> None:
    """The cross-architecture run's ConvNet column, BPS − random at IPC 10, set beside the main record's own
    row: +1.0 [intervals overlapping] here; a main record 5 points ahead with a narrow interval does not overlap."""
    xa = _record("results/cross_arch_fashion-mnist_cpu.json", {"paired": [
        {**_row("bps", "random", 10, "kd", [0.50, 0.52, 0.51], [0.50, 0.50, 0.50]), "arch": "ConvNet"}]})
    main = _record("results/bps_evidence_fashion-mnist_cpu.json", {"paired": [
        _row("bps", "random", 10, "kd", [0.50, 0.53, 0.50], [0.50, 0.50, 0.50]),
        _row("bps", "random", 10, "ce", [0.9, 0.9, 0.9], [0.1, 0.1, 0.1])]})  # another protocol: not read
    g = results.cross_arch_verdicts(xa, main=main)[1]
    assert g["cross_arch_second_estimate"].startswith(
        "The ConvNet column is a run of its own (its own Stage 1 and teacher; its own students), not the main "
        "record's students: for BPS − random at IPC 10 it reads +1.0 points [")
    assert g["cross_arch_second_estimate"].endswith("; the two intervals overlap, as two runs of one comparison "
                                                    "should.")
    far = _record("results/bps_evidence_fashion-mnist_cpu.json", {"paired": [
        _row("bps", "random", 10, "kd", [0.60, 0.60, 0.601], [0.50, 0.50, 0.50])]})
    assert g["cross_arch_second_estimate"] != results.cross_arch_verdicts(xa, main=far)[1][
        "cross_arch_second_estimate"]
    assert results.cross_arch_verdicts(xa, main=far)[1]["cross_arch_second_estimate"].endswith(
        "do not overlap, so the two runs disagree.")
    assert results.cross_arch_verdicts(xa)[1]["cross_arch_second_estimate"] == ""  # no main record: nothing said


def test_a_side_ahead_on_five_seeds_is_a_claim_and_on_fewer_is_no_verdict() -> None:
    """The same +3.0-point difference on 5 paired seeds reads plainly "BPS ahead" (cell, phrase, headline); on 3
    its interval is clear of 0 too, but no verdict is given anywhere a reader meets it."""
    five = _row("bps", "random", 10, "kd", [0.52, 0.53, 0.54, 0.53, 0.53], [0.50] * 5)
    table, g = results.verdict_table([five], key="v")
    assert table["verdict"].tolist() == ["BPS ahead"] and g["v_n_method_ahead"] == 1
    assert g["v_bps_vs_random_kd_ipc10_final_phrase"].startswith("BPS ahead (+3.0 points, 95 % interval ")
    assert results.headline(g, "v", "bps", "random", "kd", [10]) == "BPS ahead of random at IPC 10"
    three = _row("bps", "random", 10, "kd", [0.52, 0.53, 0.54], [0.50] * 3)
    table, g = results.verdict_table([three], key="v")
    assert table["verdict"].tolist() == ["no verdict (3 seeds)"] and "ahead" not in str(table.to_dict())
    assert (g["v_n_method_ahead"], g["v_n_too_few_seeds"], g["v_n_no_difference"]) == (0, 1, 0)
    assert g["v_bps_vs_random_kd_ipc10_final_phrase"] == (
        "+3.0 points over 3 paired seeds (95 % interval 0.5 to 5.5), too few seeds for a verdict")
    assert results.headline(g, "v", "bps", "random", "kd", [10]) == (
        "BPS against random at IPC 10: no verdict (too few seeds)")
    assert "ahead" not in g["v_verdict"] and "too few seeds for a verdict" in g["v_verdict"]


def test_regime_differences_name_each_setting_the_build_changed() -> None:
    """A record made with a 12-epoch teacher against a build with 10: the difference by part, in words; a
    setting only one side holds is not compared; no record or no difference: ""."""
    rec = _record("results/e.json", {"config": {"pipeline": {
        "teacher": {"epochs": 12, "lr": 0.1}, "forgetting": {"el2n_epoch": 12}, "encoder": {"epochs": 10}}}})
    live = {"teacher": {"epochs": 10, "lr": 0.1, "new_field": 1}, "forgetting": {"el2n_epoch": 10},
            "encoder": {"epochs": 10}, "select": {"ipc": 10}}
    assert results.regime_differences(rec, live) == (
        "teacher: epochs 10 here, 12 in the record; forgetting scores: el2n epoch 10 here, 12 in the record")
    assert results.regime_differences(rec, live, limit=1) == (
        "teacher: epochs 10 here, 12 in the record; and 1 more setting")
    assert results.regime_differences(rec, {"encoder": {"epochs": 10}}) == ""
    assert results.regime_differences(None, live) == ""
