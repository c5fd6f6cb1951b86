"""What chapters 3 and 4 read from their records (ddlib.results.sfm_findings), on hand-made records whose
numbers are computed by hand, and on the repository's own records."""
from __future__ import annotations

import math

import pytest

from ddlib import metrics, results
from ddlib.results import Record

PROV = {"date": "2026-12-07T00:00:00", "commit": "abc", "device": "CPU", "command": "python x.py"}
T975_2 = 4.302652729911275  # Student t, 97.5 %, 2 degrees of freedom


def _narrow(table) -> None:  # noqa: ANN001
    assert table.shape[1] <= 6, list(table.columns)
    cells = [str(c) for c in table.columns] + [str(v) for v in table.to_numpy().ravel()]
    assert max(map(len, cells)) <= 40, max(cells, key=len)
    assert "nan" not in " ".join(cells).lower()


def _record(**data: object) -> Record:
    return Record("results/x.json", {"what": "x", "provenance": PROV, "timings": {}, **data})


def test_flow_cosine_findings_reads_the_recorded_differences() -> None:
    """Two seeds: SFM's one-view cosines 0.40, 0.50 (mean 0.450), LGM's 0.30, 0.36; the record's difference
    LGM − SFM is −0.120 with interval [−0.200, −0.040] (excludes 0: "SFM higher"); chunked − SFM's interval
    holds 0."""
    rows = [{"method": m, "seed": s, "per_view_mean": v, "history_last_tenth_std": 0.1 * (s + 1)}
            for m, vals in (("SFM", (0.40, 0.50)), ("SFM (chunked)", (0.41, 0.49)), ("LGM", (0.30, 0.36)))
            for s, v in enumerate(vals)]
    diffs = [{"method": "SFM (chunked)", "baseline": "SFM", "metric": "per_view_mean", "diff_mean": 0.0,
              "ci95": [-0.01, 0.01]},
             {"method": "LGM", "baseline": "SFM", "metric": "per_view_mean", "diff_mean": -0.12,
              "ci95": [-0.2, -0.04]}]
    rec = _record(config={"seeds": [0, 1], "eval_views": 8, "synth": {"steps": 150}}, rows=rows,
                  cosine_differences=diffs)
    table, g = results.flow_cosine_findings(rec)
    _narrow(table)
    assert (g["flowrec_n_seeds"], g["flowrec_views"], g["flowrec_steps"]) == (2, 8, 150)
    assert g["flowrec_sfm_per_view_mean"] == "0.450" and g["flowrec_lgm_per_view_mean"] == "0.330"
    assert g["flowrec_sfm_step_sd"] == "0.150"  # (0.1 + 0.2) / 2
    assert g["flowrec_lgm_per_view_mean_diff"] == "−0.120"
    assert g["flowrec_lgm_per_view_mean_diff_named"] == "LGM − SFM −0.120"  # the sign says which side: named
    assert g["flowrec_lgm_per_view_mean_interval"] == "−0.200 to −0.040"
    assert g["flowrec_lgm_per_view_mean_verdict"] == "SFM higher" and g["flowrec_lgm_per_view_mean_higher"] == "SFM"
    assert g["flowrec_sfm_chunked_per_view_mean_higher"] == "neither"
    assert g["flowrec_sfm_chunked_per_view_mean_verdict"] == "no detectable difference"
    assert g["flowrec_sfm_chunked_per_view_mean_diff"] == "0.000"  # never "−0.000"
    assert list(table["verdict"]) == ["no detectable difference", "SFM higher"]
    assert g["flowrec_sfm_chunked_summary"] == "cannot be told apart on any of the 1 cosines"
    assert g["flowrec_lgm_summary"] == "differ on 1 of the 1 cosines (one view per image: SFM higher)"
    assert results.flow_cosine_findings(records=[])[1]["flowrec_n_seeds"] == "not recorded yet"


def test_regime_findings_picks_the_best_noise_regime_and_the_chosen_one() -> None:
    """Noise at 64 px: 0.30 after 200 steps, 0.48 after 1,000; noise at 28 px: 0.50 after 1,000 (the best
    from noise); the chosen real start: 0.53, 0.55; random real images 0.52."""
    regimes = {"a": {"synth": {"init": "noise", "image_size": 64, "lr": 0.05}},
               "b": {"synth": {"init": "noise", "image_size": 28, "lr": 0.05}},
               "init-real": {"synth": {"init": "real", "image_size": 64, "lr": 0.01}}}
    p = "probe on efficientnet-lite2 [val]"
    rows = [{"method": "sfm", "regime": r, "steps": s, "protocol": p, "mean": m, "seeds": [0, 1]}
            for r, s, m in (("a", 200, 0.30), ("a", 1000, 0.48), ("b", 1000, 0.50), ("init-real", 200, 0.53),
                            ("init-real", 1000, 0.55))]
    rows += [{"method": "random-real", "regime": "a", "steps": None, "protocol": p, "mean": 0.52, "seeds": [0, 1]},
             {"method": "sfm", "regime": "a", "steps": 200, "protocol": "ci on efficientnet-lite2 [val]",
              "mean": 0.9, "seeds": [0, 1]}]
    diffs = [{"regime": "init-real", "steps": 200, "protocol": "probe on efficientnet-lite2", "n_seeds": 2,
              "diff_mean": 0.01, "ci95": [-0.05, 0.07]}]
    rec = _record(config={"regimes": regimes, "validation_per_class": 100}, rows=rows, differences=diffs)
    assert results.regime_findings(rec, steps=200)[1]["regime_chosen_vs_random"] == (
        "+1.0 points over 2 paired draws (too few for an interval: a measurement, not a verdict)")
    diffs[0]["n_seeds"] = 5
    assert results.regime_findings(rec, steps=200)[1]["regime_chosen_vs_random"] == (
        "+1.0 points, 95 % interval \u22125.0 to 7.0, 5 paired draws")
    table, g = results.regime_findings(rec)
    assert g["regime_chosen_at"] == "55.0" and g["regime_chosen_vs_random"] == "not recorded"
    _narrow(table)
    assert g["regime_random"] == "52.0" and g["regime_n_seeds"] == 2 and g["regime_val_per_class"] == 100
    assert (g["regime_noise_best"], g["regime_noise_steps"]) == ("50.0", "1,000")
    assert g["regime_noise_label"] == "from noise, 28 px, lr 0.05"
    assert (g["regime_chosen_first"], g["regime_chosen_first_steps"]) == ("53.0", 200)
    assert (g["regime_chosen_last"], g["regime_chosen_last_steps"]) == ("55.0", 1000)
    assert table.iloc[1]["200 steps (%)"] == "not run" and table.iloc[-1]["regime"] == "random real images"
    assert g["regime_other_rates"] == ""  # no other rate from real images in this record


def test_regime_findings_says_whether_another_rate_beats_the_spread_between_draws() -> None:
    """From real images at 1,000 steps: lr 0.01 scores 0.55 (sd 0.005), lr 0.03 0.57 (sd 0.010): +2.0 points,
    beyond the 1.0-point spread; lr 0.1 0.555 (sd 0.01): +0.5, inside it; a noise start at lr 0.03 is not
    the same start and is left out."""
    regimes = {"init-real": {"synth": {"init": "real", "image_size": 64, "lr": 0.01}},
               "fast": {"synth": {"init": "real", "image_size": 64, "lr": 0.03}},
               "faster": {"synth": {"init": "real", "image_size": 64, "lr": 0.1}},
               "noise": {"synth": {"init": "noise", "image_size": 64, "lr": 0.03}},
               "cifar-record": {"synth": {"init": "noise", "image_size": 64, "lr": 0.01}}}
    p = "probe on efficientnet-lite2 [val]"
    rows = [{"method": "sfm", "regime": r, "steps": 1000, "protocol": p, "mean": m, "std": sd, "seeds": [0, 1]}
            for r, m, sd in (("init-real", 0.55, 0.005), ("fast", 0.57, 0.01), ("faster", 0.555, 0.01),
                             ("noise", 0.9, 0.0), ("cifar-record", 0.4, 0.0))]
    g = results.regime_findings(_record(config={"regimes": regimes}, rows=rows), steps=1000)[1]
    assert g["regime_other_rates"] == (
        "Started the same way, a rate of 0.03 scored higher than 0.01 at 1 of the 1 budgets (by 2.0 points); at "
        "1,000 steps the gap, +2.0 points, is beyond the 1.0-point spread between the 2 draws; a rate of 0.1 scored "
        "higher than 0.01 at 1 of the 1 budgets (by 0.5 points); at 1,000 steps the gap, +0.5 points, is inside "
        "the 1.0-point spread between the 2 draws. Too few draws for a verdict: the chapter keeps the rate of "
        "0.01, the CIFAR-10 record's rate.")


def _ci_record(diff: float) -> Record:
    """One cell (IPC 1 × 10 views, 100 pairs) and one fit; CI − probe per draw: d, d + 1, d + 2 points."""
    probe, ci = [0.40, 0.41, 0.42], [0.40 + diff / 100, 0.42 + diff / 100, 0.44 + diff / 100]
    d = metrics.paired_stats(ci, probe, "ci adam", "probe")
    rows = [{"ipc": 1, "views": 10, "pairs": 100, "protocol": "probe on efficientnet-lite2", "mean": 0.41,
             "val_mean": 0.5},
            *({"ipc": 1, "views": 10, "pairs": 100, "protocol": f"ci ridge α={a:g} (all views) on x", "mean": m,
               "val_mean": m} for a, m in ((1e-05, 0.3), (1.0, 0.6))),
            {"ipc": 1, "views": 10, "pairs": 100, "protocol": "ci adam on efficientnet-lite2",
             "mean": sum(ci) / 3, "val_mean": 0.5}]
    return _record(config={"fits": {"adam": {}}, "seeds": [0, 1, 2], "dataset": {"name": "fashion-mnist"}},
                   rows=rows, golden_acc={"test": 0.8, "val": 0.81},
                   differences=[{"ipc": 1, "views": 10, "pairs": 100, "fit": "ci adam", "split": "test", **d}])


@pytest.mark.parametrize("diff, pays", [(-10.0, False), (5.0, True)])
def test_ci_projector_findings_says_where_ci_pays(diff: float, pays: bool) -> None:
    """Differences d, d + 1, d + 2: mean d + 1, sd 1, half-width t(0.975, 2) / sqrt(3) = 2.484 points."""
    table, g = results.ci_projector_findings(_ci_record(diff))
    _narrow(table)
    half = T975_2 / math.sqrt(3)
    lo, hi = diff + 1 - half, diff + 1 + half
    cell = table.iloc[0]["IPC 1 × 10 views"]
    assert cell == f"{diff + 1:+.1f} [{lo:.1f}, {hi:.1f}]".replace("-", "\u2212")
    assert table.iloc[1]["IPC 1 × 10 views"] == "41.0" and g["ciproj_golden"] == "80.0"
    assert g["ciproj_best_first"] == f"{diff + 1:+.1f}".replace("-", "\u2212")
    assert g["ciproj_adam_first"] == g["ciproj_adam_last"] == g["ciproj_best_first"]  # one fit, one cell
    assert (g["ciproj_unpenalised_alpha"], g["ciproj_unpenalised"]) == ("1e-05", "30.0")
    assert g["ciproj_n_pays"] == int(pays) and g["ciproj_dataset"] == "Fashion-MNIST"
    assert g["ciproj_pays"] == ("against the probe, fit by Adam (the reference's fit), CI is "
                                + ("ahead at IPC 1" if pays else "behind at IPC 1"))
    none = results.ci_projector_findings(records=[])[1]  # before the study: every name, none a number
    assert set(g) - {"ciproj_ridge_first", "ciproj_ridge_last"} <= set(none)  # no ridge fit in this record
    assert set(none.values()) == {"not recorded yet"}


def test_ci_versus_probe_pairs_ci_with_the_probe_of_the_same_seed() -> None:
    """SFM at IPC 1, five paired seeds: CI 0.30, 0.32, 0.34, 0.31, 0.33 against the probe 0.40, 0.41, 0.42, 0.41,
    0.41: −10, −9, −8, −10, −8 points (mean −9.0)."""
    seeds = [0, 1, 2, 3, 4]
    rows = [{"set": "sfm", "ipc": 1, "steps": 100, "protocol": f"{m} on efficientnet-lite2", "seeds": seeds,
             "per_seed": v} for m, v in (("ci", [0.30, 0.32, 0.34, 0.31, 0.33]),
                                         ("probe", [0.40, 0.41, 0.42, 0.41, 0.41]))]
    rows.append({"set": "sfm", "ipc": 1, "steps": 50, "protocol": "ci on efficientnet-lite2", "seeds": seeds,
                 "per_seed": [0.9] * 5})  # an earlier checkpoint: not read
    rec = _record(config={"dataset": "fashion-mnist"}, rows=rows)
    table, g = results.ci_versus_probe(rec, sets=["sfm"])
    _narrow(table)
    stem = "ci_rec_sfm_ci_vs_sfm_probe_efficientnet_lite2_ipc1_final"
    assert g[f"{stem}_diff"] == pytest.approx(-9.0) and g[f"{stem}_verdict"] == "probe ahead"
    assert (g["ci_rec_sfm_ci_ipc1"], g["ci_rec_sfm_probe_ipc1"]) == (32.0, 41.0)


def test_across_backbones_says_whether_the_sign_holds() -> None:
    res = {("SFM", "a", "probe"): {"accs": [0.5, 0.6]}, ("random real", "a", "probe"): {"accs": [0.4, 0.4]},
           ("SFM", "b", "probe"): {"accs": [0.3]}, ("random real", "b", "probe"): {"accs": [0.35]}}
    text = results.across_backbones(res)
    assert "+15.0 and \u22125.0 points" in text and "the sign changes with the backbone" in text
    res[("SFM", "b", "probe")] = {"accs": [0.45]}
    assert results.across_backbones(res).endswith("the same sign on every backbone")
    assert "not run" in results.across_backbones({})


def test_recorded_across_backbones_pairs_seeds_per_backbone() -> None:
    """SFM's sets and random real draws on two backbones, three paired seeds. Lite1 probe differences 0.1, 0.1,
    0.2 (mean +13.3, half-width t(0.975, 2) * 0.0577 / sqrt(3) = 14.3: the interval holds 0); Lite2 0.2, 0.2,
    0.2 (+20.0, zero spread: SFM ahead). The distillation backbone's probe is not an "other" backbone."""
    row = lambda s, proto, vals: {"method": s, "set": s, "steps": None if s != "sfm" else 6, "ipc": 1,  # noqa: E731
                                  "protocol": proto, "mean": sum(vals) / 3, "per_seed": vals, "seeds": [0, 1, 2]}
    rows = [row("sfm", "probe on efficientnet-lite1", [0.5, 0.5, 0.6]),
            row("random-real", "probe on efficientnet-lite1", [0.4, 0.4, 0.4]),
            row("sfm", "probe on efficientnet-lite2", [0.6, 0.6, 0.6]),
            row("random-real", "probe on efficientnet-lite2", [0.4, 0.4, 0.4]),
            row("sfm", "probe on efficientnet-lite0", [0.9, 0.9, 0.9]),
            row("random-real", "probe on efficientnet-lite0", [0.1, 0.1, 0.1])]
    rec = _record(config={"dataset": {"name": "cifar10"}, "checkpoints": [6], "ipcs": [1], "methods": ["sfm"],
                          "distill_backbone": "efficientnet-lite0"}, runs={}, rows=rows)
    table, g = results.recorded_across_backbones(rec)
    text = g["sfm_backbones_sentence"]
    assert text.startswith("on CIFAR-10, SFM − random real images by the probe reads at IPC 1 (3 paired seeds)")
    assert "+13.3 [−1.0, 27.7] on EfficientNet-Lite1 and +20.0 [20.0, 20.0] on EfficientNet-Lite2" in text
    assert text.endswith("the verdict changes with the backbone") and "Lite0" not in text
    _narrow(table)
    rows[0]["per_seed"] = [0.6, 0.6, 0.6]
    assert results.recorded_across_backbones(rec)[1]["sfm_backbones_sentence"].endswith("SFM ahead on both backbones tested")
    assert results.recorded_across_backbones(records=[])[1]["sfm_backbones_sentence"].startswith("not recorded yet")
    # a record being filled: IPC 10 holds one seed so far. Its differences are given without an interval (never
    # "[nan, nan]") and without a verdict; the verdict on every backbone is IPC 1's
    one = lambda s, proto, v: {**row(s, proto, [v]), "ipc": 10, "mean": v, "per_seed": [v], "seeds": [0]}  # noqa: E731
    rows += [one("sfm", "probe on efficientnet-lite1", 0.45), one("random-real", "probe on efficientnet-lite1", 0.44),
             one("sfm", "probe on efficientnet-lite2", 0.43), one("random-real", "probe on efficientnet-lite2", 0.44)]
    rec.config["ipcs"] = [1, 10]
    text = results.recorded_across_backbones(rec)[1]["sfm_backbones_sentence"]
    assert "nan" not in text
    assert "at IPC 10 (one seed so far, no interval) +1.0 on EfficientNet-Lite1 and −1.0 on EfficientNet-Lite2" in text
    assert text.endswith("SFM ahead on both backbones tested with an interval (IPC 10: one seed, no verdict yet)")


def test_the_repository_records_read() -> None:
    """The records chapters 3 and 4 cite exist and read without a NaN or an over-wide cell."""
    for table, g in (results.flow_cosine_findings(), results.regime_findings(), results.ci_versus_probe()):
        _narrow(table)
        assert not any(isinstance(v, float) and math.isnan(v) for v in g.values())
    _, g = results.flow_cosine_findings()
    assert g["flowrec_sfm_chunked_per_view_mean_verdict"] == "no detectable difference"
