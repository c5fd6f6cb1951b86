"""This build's one-seed run beside the five-seed record: where they agree, where they do not, and which to trust.

A chapter that trains one student per selection reads a ranking that can change with the seed; the record
pairs five seeds and gives each difference a 95 % interval. :func:`live_versus_record` puts the two side
by side for every comparison with random that both hold, and says in words where this run's reading is not
what the record found. Chapter 5 ("This run against the record") uses it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ddlib.results.evidence import paired_table
from ddlib.metrics import RULES
from ddlib.results.records import Record, _is_number
from ddlib.results.verdicts import MINUS, bound, display_name, points, slug
from ddlib.utils import ParamError

__all__ = ["AGREEMENT", "live_versus_record"]

#: the words of the last column, by case: the record finds a side ahead (its interval excludes 0) and this
#: run's difference has that sign, or not; the record finds no difference and this run's lies inside its
#: interval, or outside it (a one-seed gain the record does not find); "within" is not agreement with a gain:
#: the record finds none, and this run's one-seed difference is within what its seeds spread over
AGREEMENT = {"same": "agrees", "opposite": "disagrees: trust the record", "inside": "within the record's interval",
             "outside": "outside the record's interval", "missed": "no difference here; the record finds one"}


def _live_means(rows: Sequence[Mapping[str, Any]], protocol: str, rule: str) -> tuple[dict[tuple, float], int]:
    """Mean accuracy (points) per (method, IPC) of a build's main students under ``protocol``; seeds used."""
    main = [r for r in rows if r.get("setting", "main") == "main" and r.get("student") == protocol
            and _is_number(r.get(rule))]
    if not main:
        return {}, 0
    t = pd.DataFrame(main).groupby(["method", "ipc"])[rule].mean()
    return {(m, int(k)): 100 * float(v) for (m, k), v in t.items()}, len({r.get("seed") for r in main})


def live_versus_record(rows: Sequence[Mapping[str, Any]], record: Record | None, *, protocol: str = "kd",
                       baseline: str = "random", rule: str = "final",
                       key: str = "agree") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Every selector minus ``baseline`` under ``protocol`` in this build's run (``rows``:
    :func:`ddlib.bps.pipeline.evaluate_grid`'s, means over its seeds) beside the same comparison in an evidence
    record (:func:`~ddlib.results.latest_evidence`: paired seeds, 95 % intervals), at every (method, IPC) both
    hold, with the words of :data:`AGREEMENT` (read on the numbers as the table prints them, to 0.1 point).

    Table columns: comparison, IPC, this run (points), the record (points and interval), and whether they
    agree. Glue: ``<key>_n`` (comparisons shared), ``<key>_n_agree``, ``<key>_n_disagree``,
    ``<key>_n_unconfirmed``, ``<key>_n_missed`` (no difference in this run, as printed, where the record's
    interval excludes 0), ``<key>_n_seeds`` (this run's), ``<key>_record_seeds`` (the most the record pairs
    under ``protocol``, shared or not), ``<key>_sentence`` (one
    sentence naming every disagreement), ``<key>_best`` (this run's largest gain at its largest shared IPC,
    with the record's reading of the same comparison) and ``<key>_ipcs`` ("10 and 50", or "none")."""
    from ddlib.plots.tables import whole_table

    if rule not in RULES:
        raise ParamError(f"rule={rule!r}: choose one of {list(RULES)}")
    live, n_live = _live_means(rows, protocol, rule)
    paired = paired_table([record]) if record is not None else pd.DataFrame()
    rec: dict[tuple, dict] = {}
    for r in paired.to_dict("records") if len(paired) else []:
        if (r["baseline"] == baseline and r["protocol"] == protocol and r["rule"] == rule
                and _is_number(r.get("diff_mean")) and hasattr(r.get("ci95"), "__len__")):
            rec.setdefault((str(r["method"]), int(r["ipc"])), r)
    shared = sorted((mk for mk in rec if mk in live and (baseline, mk[1]) in live), key=lambda mk: (mk[1], mk[0]))
    cols = ["comparison", "IPC", "this run", "the record", "reading"]
    out, cases = [], {}
    for m, k in shared:
        gain = live[(m, k)] - live[(baseline, k)]
        r = rec[(m, k)]
        d, (lo, hi) = 100 * float(r["diff_mean"]), (100 * float(x) for x in r["ci95"])
        shown = round(gain, 1)  # read as the table prints them, so that a reader can check every word
        if lo > 0 or hi < 0:
            case = "missed" if shown == 0 else "same" if (shown > 0) == (lo > 0) else "opposite"
        else:
            case = "inside" if round(lo, 1) <= shown <= round(hi, 1) else "outside"
        cases[(m, k)] = (case, gain, d, lo, hi)
        out.append({"comparison": f"{display_name(m)} {MINUS} {display_name(baseline)}", "IPC": k,
                    "this run": points(gain), "the record": f"{points(d)} [{bound(lo)}, {bound(hi)}]",
                    "reading": AGREEMENT[case]})
    n_rec = max((int(r["n_seeds"]) for r in rec.values() if _is_number(r.get("n_seeds"))), default=0)
    ipcs = sorted({k for _, k in shared})
    glue: dict[str, str | float] = {
        f"{key}_n": len(shared), f"{key}_n_seeds": n_live, f"{key}_record_seeds": n_rec,
        f"{key}_n_agree": sum(c[0] in ("same", "inside") for c in cases.values()),
        f"{key}_n_same": sum(c[0] == "same" for c in cases.values()),
        f"{key}_n_inside": sum(c[0] == "inside" for c in cases.values()),
        f"{key}_n_disagree": sum(c[0] == "opposite" for c in cases.values()),
        f"{key}_n_unconfirmed": sum(c[0] == "outside" for c in cases.values()),
        f"{key}_n_missed": sum(c[0] == "missed" for c in cases.values()),
        f"{key}_ipcs": (" and ".join(map(str, ipcs)) if len(ipcs) < 3 else ", ".join(map(str, ipcs))) or "none"}

    def reading(mk: tuple) -> str:
        case, gain, d, lo, hi = cases[mk]
        side = (f"{display_name(mk[0])} ahead" if lo > 0 else f"{display_name(baseline)} ahead" if hi < 0
                else "no detectable difference")
        return (f"{display_name(mk[0])} at IPC {mk[1]}, {points(gain)} points in this run; the record: {side} "
                f"({points(d)} points, 95 % interval {bound(lo)} to {bound(hi)})")

    if not shared:
        why = "no five-seed record of this dataset" if record is None else "no comparison in common with the record"
        glue[f"{key}_sentence"] = f"This run cannot be checked against a record here: {why}."
        glue[f"{key}_best"] = "not compared"
        return whole_table(pd.DataFrame(out, columns=cols)), glue
    off = [mk for mk in shared if cases[mk][0] == "opposite"]
    n_same, n_in = glue[f"{key}_n_same"], glue[f"{key}_n_inside"]
    n_un, n_miss = glue[f"{key}_n_unconfirmed"], glue[f"{key}_n_missed"]
    said = [(n_same, "agrees", "agree", "with a difference the record finds"),
            (n_in, "lies", "lie", "within the interval of a record that finds no difference"),
            (len(off), "puts", "put", "the other side ahead" + (" (" + "; ".join(reading(mk) for mk in off) + ")"
                                                                if off else "")),
            (n_un, "shows", "show", "a gain or loss outside the record's interval, which the record does not find"),
            (n_miss, "shows", "show", "no difference where the record finds one")]
    said = [s for s in said if s[0]]  # only what happened: no "0 put the other side ahead"
    head = f"Of the {len(shared)} comparisons with {display_name(baseline)} that this run shares with the record, "
    if len(said) == 1:
        n, _, plural, what = said[0]
        glue[f"{key}_sentence"] = head + (f"the one {said[0][1]} {what}." if n == 1 else
                                          f"{'both' if n == 2 else f'all {n}'} {plural} {what}.")
    else:
        parts = [f"{n} {one if n == 1 else many} {what}" for n, one, many, what in said]
        glue[f"{key}_sentence"] = head + ", ".join(parts[:-1]) + " and " + parts[-1] + "."
    top = max(ipcs)
    best = max((mk for mk in shared if mk[1] == top), key=lambda mk: cases[mk][1])
    glue[f"{key}_best"] = reading(best)
    glue[f"{key}_best_method"] = display_name(best[0])
    glue[f"{key}_best_reading"] = AGREEMENT[cases[best][0]]
    glue.update({f"{key}_{slug(m)}_ipc{k}": AGREEMENT[c[0]] for (m, k), c in cases.items()})
    return whole_table(pd.DataFrame(out, columns=cols)), glue
