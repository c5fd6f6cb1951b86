"""The selection evidence as the book shows it: BPS's comparison families as verdict tables, and the views
chapters 2 and 5 compute from their own students (accuracy per IPC, gains over random, what it cost).

A *family* (:data:`SELECTION_FAMILIES`) picks its paired rows from an evidence record
(:func:`~ddlib.results.latest_evidence`) or from this build's students (the rows of
:func:`ddlib.bps.pipeline.evaluate_grid`), and names the comparisons it should hold, so that a comparison
without a result reads "not run". Chapter 2 ("Does distillation beat hard labels here?", "How long must
the students train?", "Does BPS beat random?") and chapter 5 ("The paired evidence") tell the story.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ddlib.results.evidence import paired_table, teacher_text, versus_table
from ddlib.metrics import RULES
from ddlib.results.records import Record, _is_number, dataset_label
from ddlib.results.verdicts import MINUS, bound, display_name, points, slug, verdict_table
from ddlib.utils import ParamError, check_choice

__all__ = ["COARSER", "SELECTION_FAMILIES", "selection_accuracy", "selection_balance", "selection_costs",
           "selection_gains", "selection_hlr", "selection_verdicts"]


@dataclass(frozen=True)
class _Grid:
    """What a record's (or a build's) students cover: every (method, IPC, protocol) trained, and the main
    grid's methods, IPCs and protocols in the order to show them."""

    ran: frozenset
    methods: tuple
    ipcs: tuple
    protocols: tuple

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]], method: str) -> _Grid:
        main = [r for r in rows if r.get("setting", "main") == "main"]
        methods = list(dict.fromkeys(r["method"] for r in main))
        protocols = list(dict.fromkeys(r["student"] for r in main))
        return cls(frozenset((r["method"], r["ipc"], r["student"]) for r in rows),
                   tuple(sorted(methods, key=lambda m: m != method)),  # the method under study first
                   tuple(sorted({r["ipc"] for r in main})), tuple(sorted(protocols, key=lambda p: p != "kd")))

    def has(self, method: str, protocol: str, ipc: Any = None) -> bool:
        return any(m == method and p == protocol and (ipc is None or k == ipc) for m, k, p in self.ran)


@dataclass(frozen=True)
class _Family:
    title: str  # "{m}" is the method under study, as shown
    pick: Callable[[pd.DataFrame, str], Any]  # (paired rows, method) -> the family's rows (a boolean mask)
    expected: Callable[[_Grid, str], list[tuple]]  # (students, method) -> (method, baseline, ipc, protocol)
    versus: bool = False  # its rows are method-vs-every-selector pairs (versus_table), not the record's own


def _versus_random(g: _Grid, m: str) -> list[tuple]:
    return [(x, "random", k, p) for x in g.methods if x != "random" for k in g.ipcs for p in g.protocols
            if g.has(x, p) and g.has("random", p, k)]


def _versus_selectors(g: _Grid, m: str) -> list[tuple]:
    return [(m, x, k, p) for x in g.methods if x not in (m, "random") for k in g.ipcs for p in g.protocols
            if g.has(x, p) and g.has(m, p, k)]


def _kd_ce(g: _Grid, m: str) -> list[tuple]:
    return [(f"{x} / kd", f"{x} / ce", k, "kd - ce") for x in g.methods for k in g.ipcs
            if g.has(x, "kd") and g.has(x, "ce") and any(g.has(y, "ce", k) for y in g.methods)]


def _shares(g: _Grid, m: str) -> list[str]:
    found = sorted({x for x, _, _ in g.ran if x.startswith(f"{m} (centre share ")})
    return found or [f"{m} (centre share {s:g})" for s in (0.0, 1.0)]  # the two ends of the split, when not run


def _curve(g: _Grid, m: str) -> list[tuple]:
    budgets = sorted({(k, p) for x, k, p in g.ran if x == m and str(p).startswith("kd@")},
                     key=lambda kp: (kp[0], int(str(kp[1])[3:])))
    return [(m, "random", k, p) for k, p in budgets]


#: the method label of BPS on the coarser partition (``bps_evidence.py --merged-patterns``)
COARSER = "bps (coarser patterns)"


def _slots(g: _Grid, m: str) -> list[tuple]:
    """The study's comparisons; without a record, the ones it is meant to hold (IPC 10, 50, 100; the coarser
    partition at 10 and 50), each "not run"."""
    coarse = sorted({k for x, k, p in g.ran if x == COARSER and p == "kd"}) if g.ran else [10, 50]
    ipcs = [k for k in g.ipcs if g.has(m, "kd", k) and g.has("random", "kd", k)] if g.ran else [10, 50, 100]
    return [(m, "random", k, "kd") for k in ipcs] + [(COARSER, b, k, "kd") for b in ("random", m) for k in coarse]


#: the comparison families of the selection evidence, by name (a chapter passes the name)
SELECTION_FAMILIES: dict[str, _Family] = {
    "versus_random": _Family(
        "Every selector against random selection",
        lambda t, m: (t.baseline == "random") & ~t.method.str.contains(r" \(centre share | / ", regex=True)
        & ~t.protocol.str.contains("@|weak| - ", regex=True), _versus_random),
    "versus_selectors": _Family(
        "{m} against every other selector", lambda t, m: (t.method == m) & (t.baseline != "random"),
        _versus_selectors, versus=True),
    "kd_versus_hard_labels": _Family(
        "Distillation (KD) against hard labels", lambda t, m: t.protocol == "kd - ce", _kd_ce),
    "centre_share": _Family(
        "{m}'s split ablated: centres only and margins only",
        lambda t, m: t.method.str.startswith(f"{m} (centre share "),
        lambda g, m: [(s, b, k, "kd") for s in _shares(g, m) for b in (m, "random") for k in g.ipcs]),
    "weak_teacher": _Family(
        "{m} against random under a weak teacher", lambda t, m: (t.method == m) & (t.protocol == "kd-weak-teacher"),
        lambda g, m: [(m, "random", k, "kd-weak-teacher") for k in g.ipcs]),
    "slots": _Family(
        "{m} where its patterns get a centre and a margin",
        lambda t, m: (t.protocol == "kd") & (((t.method == m) & (t.baseline == "random"))
                                             | ((t.method == COARSER) & t.baseline.isin(["random", m]))), _slots),
    "epoch_curve": _Family(
        "{m} against random per student budget",
        lambda t, m: (t.method == m) & (t.baseline == "random") & t.protocol.str.startswith("kd@"), _curve),
}


def _paired(source: Record | Sequence[Mapping[str, Any]], method: str, versus: bool) -> pd.DataFrame:
    """Paired rows of an evidence record (its own table, or ``method`` against every selector), or computed
    here from a build's students (:func:`ddlib.bps.pipeline.grid_pairs`)."""
    from ddlib.bps.pipeline import grid_pairs as pairs

    if isinstance(source, Record):
        return versus_table(source, method) if versus else paired_table([source])
    rows = list(source)
    if versus:
        return versus_table(Record("this build", {"grid": rows}), method)
    ablated = [p for p in pairs(rows, baseline=method) if " (centre share " in str(p["method"])]
    return pd.DataFrame([*pairs(rows), *ablated])


def selection_verdicts(source: Record | Sequence[Mapping[str, Any]] | None, family: str, *, method: str = "bps",
                       rule: str = "final", key: str | None = None, dataset: str | None = None,
                       columns: str | None = None) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """One comparison family of the selection evidence as a verdict table
    (:func:`~ddlib.results.verdicts.verdict_table`), with its glue.

    ``source``: an evidence record (:func:`~ddlib.results.latest_evidence`), this build's students (the rows
    of :func:`ddlib.bps.pipeline.evaluate_grid`), or None (every expected comparison "not run", none here).
    ``family``: a name of :data:`SELECTION_FAMILIES`: ``versus_random`` (every selector against random, KD
    and hard labels: DD-Ranking's improvement over random), ``versus_selectors`` (``method`` against every
    other selector), ``kd_versus_hard_labels`` (each method's KD students against their hard-label twins),
    ``centre_share`` (``method``'s centres only and margins only against ``method`` and random),
    ``weak_teacher`` (``method`` against random under a teacher that learned from a subsample),
    ``epoch_curve`` (``method`` against random per student budget), ``slots`` (a side study,
    ``latest_evidence(dataset, study="slots")``: ``method`` against random at IPCs where its patterns get a
    centre and a margin, and ``method`` on the coarser partition of :func:`ddlib.bps.slots.merge_patterns`
    against ``method`` and random). ``rule``: the reading shown (the glue
    holds both). ``key``: the glue's prefix (default ``family``); ``dataset`` names a build's data.

    Returns ``(table, glue)``: the verdict table and its glue, plus ``<key>_source`` (the record's files or
    "this build's run"), ``<key>_teacher`` (:func:`~ddlib.results.teacher_text`, records only);
    ``weak_teacher`` adds ``<key>_weak_teacher`` (its accuracy and data size); ``epoch_curve`` adds
    ``<key>_budgets`` ("50, 100, 200"), ``<key>_longest_epochs`` and ``<key>_sign`` (whether the sign of the
    difference is the same at every budget). Chapter 2 uses ``versus_random``, ``versus_selectors``,
    ``kd_versus_hard_labels`` and ``epoch_curve``; chapter 5 every family, per dataset.
    """
    if family not in SELECTION_FAMILIES:
        raise ParamError(f"family={family!r}: choose one of {sorted(SELECTION_FAMILIES)}")
    fam, key = SELECTION_FAMILIES[family], key or family
    record = source if isinstance(source, Record) else None
    grid = (record.data.get("grid") or []) if record is not None else list(source or [])
    paired = _paired(source, method, fam.versus) if source is not None else pd.DataFrame()
    rows = paired[fam.pick(paired.astype({c: str for c in ("method", "baseline", "protocol")}), method)
                  ] if len(paired) else paired
    label = dataset_label(record.config.get("dataset")) if record is not None else (dataset or "")
    table, glue = verdict_table(rows, rule=rule, columns=columns, expected=fam.expected(_Grid.of(grid, method), method),
                                key=key, title=fam.title.format(m=display_name(method)), dataset=label)
    glue[f"{key}_source"] = record.source if record is not None else ("this build's run" if grid else "none yet")
    if record is not None:
        glue[f"{key}_teacher"] = teacher_text(record)
    if family == "weak_teacher":
        w = (record.data.get("weak_teacher") or {}) if record is not None else {}
        glue[f"{key}_weak_teacher"] = (f"{100 * w['test_acc']:.1f} % on {int(w['train_size']):,} images"
                                       if _is_number(w.get("test_acc")) and _is_number(w.get("train_size"))
                                       else "not recorded")
    if family == "epoch_curve":
        curve = rows[(rows.rule == rule) & rows.diff_mean.map(_is_number)] if len(rows) else rows
        budgets = sorted({int(str(p)[3:]) for p in curve.protocol}) if len(curve) else []
        glue[f"{key}_budgets"] = ", ".join(map(str, budgets)) or "none recorded"
        glue[f"{key}_longest_epochs"] = max(budgets, default=0)
        same = [len({d > 0 for d in g.diff_mean}) == 1 for _, g in curve.groupby("ipc")] if len(curve) else []
        glue[f"{key}_sign"] = ("not recorded" if not same else "the same at every budget" if all(same)
                               else "not the same at every budget")
    return table, glue


def _means(rows: Sequence[Mapping[str, Any]], rule: str) -> pd.DataFrame:
    """Mean accuracy (fraction) and seeds per (method, ipc, student) of a build's main students."""
    if rule not in RULES:
        raise ParamError(f"rule={rule!r}: choose one of {list(RULES)}")
    main = pd.DataFrame([r for r in rows if r.get("setting", "main") == "main"])
    if not len(main):
        return pd.DataFrame(columns=["method", "ipc", "student", "acc", "seeds"])
    return main.groupby(["method", "ipc", "student"], sort=False).agg(acc=(rule, "mean"), seeds=("seed", "nunique")
                                                                      ).reset_index()


def _pct(v: Any, signed: bool = False) -> str:
    return points(float(v), signed) if _is_number(v) else "not run"


def selection_accuracy(rows: Sequence[Mapping[str, Any]], *, protocol: str = "kd", rule: str = "final",
                       method: str = "bps", key: str = "accuracy") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """This build's students under one protocol: a table of methods by IPC (test accuracy in %, mean over
    seeds, ``rule``'s reading; "not run" where a method has no students at an IPC), and its glue.

    ``rows``: :func:`ddlib.bps.pipeline.evaluate_grid`'s. Glue: ``<key>_max_ipc``, ``<key>_n_methods``,
    ``<key>_n_seeds``, ``<key>_top_method`` and ``<key>_top_acc`` (the best at the largest IPC),
    ``<key>_<method>_rank`` (``method``'s place there, 0 when absent), and every mean as
    ``<key>_<method>_ipc<k>`` (%). Chapter 2 ("Students trained on each selection") and chapter 5 use it.
    """
    means = _means(rows, rule)
    means = means[means.student == protocol]
    ipcs = sorted(means.ipc.unique())
    methods = sorted(means.method.unique(), key=lambda m: (m != method, list(means.method).index(m)))
    acc = {(m, k): 100 * a for m, k, a in zip(means.method, means.ipc, means.acc, strict=True)}
    table = pd.DataFrame([{"method": display_name(m), **{f"IPC {k} (%)": _pct(acc.get((m, k)), False) for k in ipcs}}
                          for m in methods], columns=["method", *(f"IPC {k} (%)" for k in ipcs)])
    top_k = max(ipcs, default=0)
    ranked = sorted((m for m in methods if (m, top_k) in acc), key=lambda m: -acc[(m, top_k)])
    glue: dict[str, str | float] = {
        f"{key}_max_ipc": int(top_k), f"{key}_n_methods": len(ranked),
        f"{key}_n_seeds": int(means.seeds.max()) if len(means) else 0,
        f"{key}_top_method": display_name(ranked[0]) if ranked else "none",
        f"{key}_top_acc": float(acc[(ranked[0], top_k)]) if ranked else 0.0,
        f"{key}_{slug(method)}_rank": ranked.index(method) + 1 if method in ranked else 0,
        f"{key}_{slug(method)}_place": _place(method, ranked, {m: acc[(m, top_k)] for m in ranked}),
        **{f"{key}_{slug(m)}_ipc{k}": float(a) for (m, k), a in acc.items()}}
    from ddlib.plots.tables import whole_table

    return whole_table(table), glue


def _place(method: str, ranked: Sequence[str], acc: Mapping[str, float]) -> str:
    """``method``'s place among ``ranked`` by accuracy as the tables print it (one decimal): "5th of 6", or
    "5th of 6, tied with random" when another method prints the same accuracy; "not run"."""
    if method not in ranked:
        return "not run"
    shown = {m: round(a, 1) for m, a in acc.items()}
    place = 1 + sum(v > shown[method] for v in shown.values())
    ties = [display_name(m) for m in ranked if m != method and shown[m] == shown[method]]
    nth = f"{place}{'th' if 10 <= place % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(place % 10, 'th')}"
    return f"{nth} of {len(ranked)}" + (f", tied with {' and '.join(ties)}" if ties else "")


def selection_gains(rows: Sequence[Mapping[str, Any]], *, baseline: str = "random", rule: str = "final",
                    method: str = "bps", key: str = "gains",
                    protocol: str | None = None) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """What a selection contributes beyond the teacher's soft labels: per method and IPC, the accuracy under
    each protocol, its gain over ``baseline`` under the identical protocol, and KD minus hard labels (points,
    means over this build's seeds; "not run" where a side is missing), and its glue.

    ``protocol``: ``None`` for every protocol side by side; ``"kd"`` or ``"ce"`` for the rows trained under
    that one only (``"ce"`` adds KD minus hard labels where both ran): a build that trains hard-label twins
    for a few methods shows two tables without "not run" cells. The glue is the same either way.

    ``rows``: :func:`ddlib.bps.pipeline.evaluate_grid`'s (both protocols); ``baseline``'s own row reads
    "baseline" in the gain columns. Glue, at the largest IPC
    (``<key>_ipc``), per protocol ``p`` (``kd``, ``ce``): ``<key>_best_gain_<p>`` (points) and
    ``<key>_best_gain_<p>_method``, ``<key>_<method>_gain_<p>``; over every method and IPC
    ``<key>_kd_minus_ce_mean`` / ``_min`` / ``_max``. Chapter 5 ("What the selection contributes") uses it;
    the paired intervals of the same comparisons are :func:`selection_verdicts`'s ``versus_random``.
    """
    from ddlib.plots.tables import whole_table

    means = _means(rows, rule)
    acc = {(m, k, p): 100 * a for m, k, p, a in zip(means.method, means.ipc, means.student, means.acc, strict=True)}
    protocols = sorted(means.student.unique(), key=lambda p: p != "kd")
    cells = [(m, k) for m, k in dict.fromkeys(zip(means.method, means.ipc, strict=True))]
    order = list(dict.fromkeys(m for m, _ in cells))  # each method's rows together, its IPCs in order
    cells.sort(key=lambda mk: (mk[0] != method, mk[0] == baseline, order.index(mk[0]), mk[1]))

    def gain(m: str, k: Any, p: str) -> float | None:
        a, b = acc.get((m, k, p)), acc.get((baseline, k, p))
        return a - b if a is not None and b is not None else None

    both = {"kd", "ce"} <= set(protocols)
    if protocol is not None:
        check_choice("protocol", protocol, ("kd", "ce"))
    shown = protocols if protocol is None else [protocol]
    out = []
    for m, k in cells:
        if protocol is not None and (m, k, protocol) not in acc:
            continue
        row = {"method, IPC": f"{display_name(m)}, IPC {k}"}
        row.update({f"{display_name(p)} (%)": _pct(acc.get((m, k, p))) for p in shown})
        row.update({f"{display_name(p)}: gain over {display_name(baseline)}":
                    "baseline" if m == baseline else _pct(gain(m, k, p), True) for p in shown})
        if both and protocol != "kd":
            kd, ce = acc.get((m, k, "kd")), acc.get((m, k, "ce"))
            row[f"KD {MINUS} hard labels"] = _pct(kd - ce if kd is not None and ce is not None else None, True)
        out.append(row)
    table = pd.DataFrame(out).fillna("not run") if out else pd.DataFrame(columns=["method, IPC"])
    top = max((k for _, k in cells), default=0)
    glue: dict[str, str | float] = {f"{key}_ipc": int(top), f"{key}_baseline": display_name(baseline)}
    for p in protocols:
        g = {m: gain(m, top, p) for m, k in cells if k == top and m != baseline}
        g = {m: v for m, v in g.items() if v is not None}
        best = max(g, key=g.get) if g else None
        # unrounded, so that a sentence printing one with points() reads as the table's cell (0.5499 -> +0.5,
        # where a value rounded to 0.55 first would print +0.6)
        glue[f"{key}_best_gain_{slug(p)}"] = float(g[best]) if best else 0.0
        glue[f"{key}_best_gain_{slug(p)}_method"] = display_name(best) if best else "none"
        glue.update({f"{key}_{slug(m)}_gain_{slug(p)}": float(v) for m, v in g.items()})
    diffs = [acc[(m, k, "kd")] - acc[(m, k, "ce")] for m, k in cells if (m, k, "kd") in acc and (m, k, "ce") in acc]
    for name, f in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        glue[f"{key}_kd_minus_ce_{name}"] = float(f(diffs)) if diffs else 0.0
    return whole_table(table), glue


def selection_costs(rows: Sequence[Mapping[str, Any]], modelling_seconds: Mapping[str, float], *,
                    key: str = "costs") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """What this build's selection part cost (wall seconds): per method, its selections (each counted once,
    however many protocols train on it) and its students per protocol; the shared modelling (Stage 1, the
    teacher, the forgetting run: ``modelling_seconds``, :func:`ddlib.bps.pipeline.run_selection`'s
    ``modelling["seconds"]``; ~0 when cached) is in the glue.

    Glue: ``<key>_shared_s`` (the modelling, all stages), ``<key>_selection_s``, ``<key>_students_s``,
    ``<key>_n_cached`` (students loaded from the cache, whose seconds are those of the run that trained
    them) and ``<key>_sentence`` (what the two times are, in words). Chapter 5 ("Cost: time and memory")
    uses it; its cell is left out of output comparisons (times vary).
    """
    from ddlib.plots.tables import whole_table

    main = [r for r in rows if r.get("setting", "main") == "main"]
    picks: dict[tuple, float] = {}
    for r in main:
        picks.setdefault((r["method"], r["ipc"], r["seed"]), float(r.get("selection_seconds") or 0.0))
    protocols = sorted({r["student"] for r in main}, key=lambda p: p != "kd")
    out = []
    for m in dict.fromkeys(r["method"] for r in main):
        row = {"method": display_name(m), "selection (s)": f"{sum(v for k, v in picks.items() if k[0] == m):.3f}"}
        for p in protocols:
            mine = [float(r.get("student_seconds") or 0.0) for r in main if r["method"] == m and r["student"] == p]
            row[f"{display_name(p)} students (s)"] = f"{sum(mine):.1f}" if mine else "not run"
        out.append(row)
    shared = sum(float(v) for v in modelling_seconds.values() if _is_number(v))
    students = sum(float(r.get("student_seconds") or 0.0) for r in main)
    n, cached = len(main), sum(bool(r.get("cached")) for r in main)
    sentence = f"The shared modelling took {shared:.1f} s in this build" + (
        f", and its {n} students came from the cache: training them had taken {students:.1f} s in the run that "
        "cached them." if n and cached == n else f"; of its {n} students, {cached} came from the cache, and all "
        f"took {students:.1f} s to train (the cached ones in the run that cached them)." if cached else
        f" and its {n} students {students:.1f} s.")
    glue = {f"{key}_shared_s": round(shared, 2), f"{key}_selection_s": round(sum(picks.values()), 3),
            f"{key}_students_s": round(students, 2), f"{key}_n_cached": cached, f"{key}_sentence": sentence}
    return whole_table(pd.DataFrame(out, columns=["method", "selection (s)",
                                                  *(f"{display_name(p)} students (s)" for p in protocols)])), glue


def selection_hlr(record: Record | None, *, rule: str = "final", method: str = "bps",
                  key: str = "hlr") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """DD-Ranking's hard-label recovery of an evidence record as a table: per method and IPC, the hard-label
    students' accuracy, the teacher's minus theirs (points: how much of what the teacher learned from all the
    data the selection recovers without soft labels; lower is better) and its 95 % interval over paired seeds.

    Glue: ``<key>_teacher`` (:func:`~ddlib.results.teacher_text`), ``<key>_<method>_ipc<k>`` (points) for every
    row, ``<key>_best`` / ``<key>_best_method`` / ``<key>_best_ipc`` (the lowest), ``<key>_<method>`` (a
    sentence on ``method``'s rows), ``<key>_n`` (rows). Chapter 2 shows it where it defines HLR."""
    from ddlib.plots.tables import whole_table
    from ddlib.results.evidence import hlr_table

    if rule not in RULES:
        raise ParamError(f"rule={rule!r}: choose one of {list(RULES)}")
    h = hlr_table([record]) if record is not None else hlr_table([])
    h = h[(h.rule == rule) & h.hlr_mean.map(_is_number)].copy() if len(h) else h
    acc = {(r.get("method"), r.get("ipc")): r.get("mean") for r in (record.rows if record is not None else [])
           if isinstance(r, dict) and r.get("protocol") == "ce" and r.get("rule") == rule}
    order = sorted(range(len(h)), key=lambda i: (h.method.iloc[i] != method, h.method.iloc[i] != "random",
                                                  str(h.method.iloc[i]), h.ipc.iloc[i]))
    out, glue = [], {f"{key}_teacher": teacher_text(record), f"{key}_n": len(h)}
    for i in order:
        r = h.iloc[i]
        lo, hi = (100 * float(x) for x in r.ci95) if hasattr(r.ci95, "__len__") and len(r.ci95) == 2 else (None, None)
        a = acc.get((r.method, r.ipc))
        out.append({"method": display_name(r.method), "IPC": int(r.ipc),
                    "hard-label students (%)": f"{100 * a:.1f}" if _is_number(a) else "not recorded",
                    "HLR (points)": points(100 * float(r.hlr_mean), False),
                    "95 % interval": f"[{bound(lo)}, {bound(hi)}]" if _is_number(lo) else "one seed"})
        glue[f"{key}_{slug(r.method)}_ipc{int(r.ipc)}"] = round(100 * float(r.hlr_mean), 4)
    if len(h):
        best = h.loc[h.hlr_mean.astype(float).idxmin()]
        glue.update({f"{key}_best": round(100 * float(best.hlr_mean), 4),
                     f"{key}_best_method": display_name(best.method), f"{key}_best_ipc": int(best.ipc)})
    else:
        glue.update({f"{key}_best": 0.0, f"{key}_best_method": "none", f"{key}_best_ipc": 0})
    mine = [o for o in out if o["method"] == display_name(method)]
    glue[f"{key}_{slug(method)}"] = ("; ".join(f"{o['HLR (points)']} points at IPC {o['IPC']}" for o in mine)
                                     if mine else "not recorded yet")
    cols = ["method", "IPC", "hard-label students (%)", "HLR (points)", "95 % interval"]
    return whole_table(pd.DataFrame(out, columns=cols)), glue


def selection_balance(rows: Sequence[Mapping[str, Any]], *, ipc: int | None = None,
                      methods: Sequence[str] | None = None, method: str = "bps", reference: str = "random",
                      tolerance: float = 5.0, key: str = "balance") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """The centre share of this build's selections (:func:`ddlib.bps.pipeline.selection_table`'s rows): per
    method and IPC the share of its picks that the common rule calls centres (%), and ``method``'s own roles as
    a row of their own, with words for each method against ``reference`` at ``ipc`` (more or fewer centres
    than it, or about as many: within ``tolerance`` points).

    Glue, at ``ipc`` (default: the middle IPC of the rows), under fixed names so that prose can cite them
    whatever the IPCs: ``<key>_ipc``, ``<key>_<m>`` ("80 %", or "not run") and ``<key>_<m>_words`` ("more
    centres than random") for every ``m`` of ``methods`` (default: the rows'), and ``<key>_own`` (``method``'s
    own roles). Chapter 2 ("Balance: centres against margins")."""
    from ddlib.plots.tables import whole_table

    rows = [dict(r) for r in rows]
    ipcs = sorted({int(r["ipc"]) for r in rows})
    at = int(ipc) if ipc is not None else (ipcs[len(ipcs) // 2] if ipcs else 0)
    share = {(r["method"], int(r["ipc"])): 100 * float(r["centre_share"]) for r in rows
             if _is_number(r.get("centre_share"))}
    own = {int(r["ipc"]): 100 * float(r["own_centre_share"]) for r in rows
           if r["method"] == method and _is_number(r.get("own_centre_share"))}
    shown = sorted(dict.fromkeys(r["method"] for r in rows), key=lambda m: (m != method, m == reference))
    table = [{"selection": display_name(m), **{f"IPC {k}": f"{share[(m, k)]:.0f}" if (m, k) in share else "not run"
                                               for k in ipcs}} for m in shown]
    if own:
        table.insert(1, {"selection": f"{display_name(method)}, by its own roles",
                         **{f"IPC {k}": f"{own[k]:.0f}" if k in own else "not run" for k in ipcs}})
    glue: dict[str, str | float] = {f"{key}_ipc": at, f"{key}_own": f"{own[at]:.0f} %" if at in own else "not run"}
    ref = share.get((reference, at))
    for m in methods if methods is not None else shown:
        v = share.get((m, at))
        glue[f"{key}_{slug(m)}"] = f"{v:.0f} %" if v is not None else "not run"
        glue[f"{key}_{slug(m)}_words"] = (
            "not run" if v is None else "the reference" if m == reference else "not compared" if ref is None else
            f"about as many centres as {display_name(reference)}" if abs(v - ref) <= tolerance else
            f"{'more' if v > ref else 'fewer'} centres than {display_name(reference)}")
    cols = ["selection", *(f"IPC {k}" for k in ipcs)]
    return whole_table(pd.DataFrame(table, columns=cols)), glue
