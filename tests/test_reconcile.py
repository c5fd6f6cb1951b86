"""This run beside the record (results.live_versus_record), checked on numbers worked out by hand."""
from __future__ import annotations

from ddlib import results
from ddlib.plots.tables import WholeTable


def _evidence(paired: list[dict]) -> results.Record:
    return results.Record("results/ev.json", {
        "what": "w", "provenance": {"command": "c", "commit": "abc", "device": "cpu", "date": "2026-12-01"},
        "config": {"dataset": {"name": "fashion-mnist"}}, "rows": [], "timings": {}, "grid": [], "paired": paired})


def _pair(method: str, ipc: int, diff: float, lo: float, hi: float) -> dict:
    return {"method": method, "baseline": "random", "ipc": ipc, "protocol": "kd", "rule": "final", "n_seeds": 5,
            "diff_mean": diff, "ci95": [lo, hi]}


def test_this_run_against_the_record_by_hand() -> None:
    """One seed at IPC 50: random 80.0 %, BPS 81.0, k-center 82.1, herding 79.7 -> gains +1.0, +2.1, −0.3.
    The record: k-center − random −1.4 [−2.6, −0.1] (random ahead): this run's +2.1 puts the other side ahead,
    "disagrees". BPS −0.1 [−1.1, 0.9] (no difference): +1.0 lies outside the interval. Herding −0.4
    [−1.0, 0.2]: −0.3 lies within it, which is not "agrees" (the record finds no difference, this run one
    within its spread). Centroids has no live students: not compared."""
    rows = [{"method": m, "ipc": 50, "student": "kd", "seed": 0, "final": a, "setting": "main"}
            for m, a in (("random", 0.800), ("bps", 0.810), ("kcenter", 0.821), ("herding", 0.797))]
    rows.append({"method": "bps", "ipc": 50, "student": "ce", "seed": 0, "final": 0.5})  # another protocol
    rec = _evidence([_pair("bps", 50, -0.001, -0.011, 0.009), _pair("kcenter", 50, -0.014, -0.026, -0.001),
                     _pair("herding", 50, -0.004, -0.010, 0.002), _pair("centroids", 50, 0.006, 0.0001, 0.012),
                     {**_pair("bps", 50, 0.03, 0.01, 0.05), "protocol": "ce"}])
    table, g = results.live_versus_record(rows, rec)
    assert isinstance(table, WholeTable)
    assert table.to_dict("records") == [
        {"comparison": "BPS − random", "IPC": 50, "this run": "+1.0", "the record": "−0.1 [−1.1, 0.9]",
         "reading": "outside the record's interval"},
        {"comparison": "herding − random", "IPC": 50, "this run": "−0.3", "the record": "−0.4 [−1.0, 0.2]",
         "reading": "within the record's interval"},
        {"comparison": "k-center − random", "IPC": 50, "this run": "+2.1", "the record": "−1.4 [−2.6, −0.1]",
         "reading": "disagrees: trust the record"}]
    assert (g["agree_n"], g["agree_n_agree"], g["agree_n_disagree"], g["agree_n_unconfirmed"]) == (3, 1, 1, 1)
    assert g["agree_n_seeds"] == 1 and g["agree_record_seeds"] == 5 and g["agree_ipcs"] == "50"
    assert g["agree_best"] == ("k-center at IPC 50, +2.1 points in this run; the record: random ahead "
                               "(−1.4 points, 95 % interval 2.6 to 0.1)").replace("2.6 to 0.1", "−2.6 to −0.1")
    assert g["agree_sentence"].startswith("Of the 3 comparisons with random that this run shares with the record, "
                                          "1 lies within the interval of a record that finds no difference, 1 puts "
                                          "the other side ahead (k-center at IPC 50")
    assert g["agree_sentence"].endswith("and 1 shows a gain or loss outside the record's interval, which the "
                                        "record does not find.")
    assert (g["agree_n_same"], g["agree_n_inside"]) == (0, 1)
    assert g["agree_kcenter_ipc50"] == "disagrees: trust the record"
    # this run shows no difference (0.0 as printed) where the record finds one: not "the other side ahead"
    level = [r if r["method"] != "kcenter" else {**r, "final": 0.8004} for r in rows]
    t2, g2 = results.live_versus_record(level, rec)
    assert t2.set_index("comparison").loc["k-center − random", "reading"] == "no difference here; the record finds one"
    assert g2["agree_n_disagree"] == 0 and g2["agree_n_missed"] == 1
    assert g2["agree_sentence"] == (  # only what happened: nothing about "0 put the other side ahead"
        "Of the 3 comparisons with random that this run shares with the record, 1 lies within the interval of a "
        "record that finds no difference, 1 shows a gain or loss outside the record's interval, which the record "
        "does not find and 1 shows no difference where the record finds one.")
    inside = [r if r["method"] != "bps" or r["student"] != "kd" else {**r, "final": 0.800} for r in rows
              if r["method"] in ("random", "bps", "herding")]
    assert results.live_versus_record(inside, rec)[1]["agree_sentence"] == (
        "Of the 2 comparisons with random that this run shares with the record, both lie within the interval of "
        "a record that finds no difference.")
    # no record, or nothing in common: said in words, no table rows
    # a gain that prints as the interval's end is inside it: 81.19 − 80.0 = +1.19 -> "+1.2" in [0.0, 1.2]
    edge = [r if r["method"] != "bps" or r["student"] != "kd" else {**r, "final": 0.8119} for r in rows]
    near = _evidence([_pair("bps", 50, 0.006, 0.0001, 0.01184)])
    assert results.live_versus_record(edge, near)[0]["reading"].tolist() == ["agrees"]
    empty, g0 = results.live_versus_record(rows, None)
    assert len(empty) == 0 and g0["agree_n"] == 0 and "no five-seed record" in g0["agree_sentence"]
    assert g0["agree_ipcs"] == "none" and g0["agree_record_seeds"] == 0
    apart, g1 = results.live_versus_record([{**r, "ipc": 1} for r in rows], rec)  # IPC 1 only: nothing shared
    assert len(apart) == 0 and g1["agree_record_seeds"] == 5 and "no comparison in common" in g1["agree_sentence"]
