"""Verdict tables: a family of paired comparisons as one narrow table in plain words, with the glue its prose cites.

Chapters 2, 4 and 5 show every paired comparison the same way (:func:`verdict_table`): one row per
comparison, its IPC and protocol, the difference in points of accuracy, its 95 % interval and a verdict
read from the interval ("BPS ahead", "random ahead", "no detectable difference"; "not run" where a
comparison of the family has no result, never an empty cell). Record labels ("bps / kd", "kd@50",
"bps (centre share 0)") become readable names through one table, :data:`DISPLAY_NAMES`, and
:func:`display_name`'s rules for the names it does not hold. The families themselves are picked by
:mod:`ddlib.results.selection_verdicts` and :mod:`ddlib.results.synthesis_verdicts`; the statistics are
:func:`ddlib.metrics.paired_difference`'s.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ddlib.metrics import RULES
from ddlib.results.records import CLAIM_SEEDS, _is_number, dataset_label
from ddlib.utils import ParamError

__all__ = ["DISPLAY_NAMES", "MINUS", "VERDICT_COLUMNS", "bound", "comparison_name", "display_name", "headline", "phrase",
           "points", "slug", "split_columns", "verdict_table"]

MINUS = "\u2212"  # the minus sign of the tables and sentences (a hyphen reads as a dash)
#: the columns of a verdict table in its long form; the third is named by the family ("protocol", "evaluation")
VERDICT_COLUMNS = ["comparison", "IPC", "protocol", "difference", "95 % interval", "verdict"]
#: record labels -> what a reader sees; a label not here is read by :func:`display_name`'s rules
DISPLAY_NAMES = {
    # coreset selectors (ddlib.baselines.SELECTORS) and BPS
    "bps": "BPS", "random": "random", "herding": "herding", "kcenter": "k-center", "forgetting": "forgetting",
    "centroids": "class centroids", "el2n": "EL2N", "toneva": "Toneva",
    # how a run's peak memory was measured (ddlib.utils.PeakMemory.kind)
    "CPU peak RSS increase (sampled)": "on a CPU, the sampled rise of the process's resident memory",
    "cuda max_memory_allocated": "on the GPU, the most memory allocated",
    "bps (coarser patterns)": "BPS on coarser patterns",
    # synthetic and real sets (sfm_vs_lgm's set names, chapters 4 and 5's)
    "sfm": "SFM", "lgm": "LGM", "random-real": "random real images", "random real": "random real images",
    "centroid-real": "centre-nearest real images", "centroid real": "centre-nearest real images",
    "centroid-nearest real": "centre-nearest real images",
    # student protocols and evaluation modes
    "kd": "KD", "ce": "hard labels", "kd-weak-teacher": "KD, weak teacher", "probe": "probe", "ci": "CI",
    # backbones and students (ddlib.models.MODELS, ddlib.sfm.backbones.BACKBONES)
    "convnet": "ConvNet", "resnet18": "ResNet-18", "convnet-random": "random ConvNet", "inhouse": "in-house encoder",
    "inhouse (distillation)": "in-house encoder", "efficientnet-lite0": "EfficientNet-Lite0",
    "efficientnet-lite1": "EfficientNet-Lite1", "efficientnet-lite2": "EfficientNet-Lite2",
    # datasets (ddlib.data.DATASETS)
    "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
    "synthetic-patterns": "synthetic patterns",
    # how a student's accuracy is read (RULES)
    "final": "final epoch", "best_last": "best of the last epochs",
}
_RULES_OF_NAMES = (  # (pattern, how its parts read), tried in order on a label DISPLAY_NAMES lacks
    (re.compile(r"^(.+) \(centre share ([0-9.]+)\)$"), lambda m: display_name(m[1]) + (
        " with centres only" if float(m[2]) == 1 else " with margins only" if float(m[2]) == 0
        else f" with centre share {m[2]}")),
    (re.compile(r"^(.+?) / (.+)$"), lambda m: f"{display_name(m[1])} with {display_name(m[2])}"),
    (re.compile(r"^(.+?) - (.+)$"), lambda m: f"{display_name(m[1])} {MINUS} {display_name(m[2])}"),
    (re.compile(r"^(.+)@([0-9]+)$"), lambda m: f"{display_name(m[1])}, {m[2]} student epochs"),
    (re.compile(r"^(\S+) on (.+)$"), lambda m: f"{display_name(m[1])} on {display_name(m[2])}"),
    (re.compile(r"^timm:(.+)$"), lambda m: f"{m[1]} (timm)"),
    (re.compile(r"^(.+) \((.+)\)$"), lambda m: f"{display_name(m[1])} ({display_name(m[2])})"),
)
_WIDE = {"method": " ahead", "baseline": " behind", "none": "", "few": ""}  # a wide cell's verdict: the side named first
_VERDICT = {"none": "no detectable difference", "single": "one seed, no interval",
            "fixed": "the same at every seed, no interval", "few": "no verdict (too few seeds)"}


def display_name(label: Any) -> str:
    """What a reader sees for a record's label: :data:`DISPLAY_NAMES`, else the first of a few rules that
    fits ("bps / kd" -> "BPS with KD", "kd@50" -> "KD, 50 student epochs", "bps (centre share 1)" -> "BPS
    with centres only", "ci on efficientnet-lite2" -> "CI on EfficientNet-Lite2"), else the label with its
    underscores as spaces: a name a user brings reads as they wrote it."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return ""
    text = str(label).strip()
    if text in DISPLAY_NAMES:
        return DISPLAY_NAMES[text]
    for pattern, read in _RULES_OF_NAMES:
        m = pattern.match(text)
        if m:
            return read(m)
    return text.replace("_", " ")


def _split(label: str) -> tuple[str, str | None]:
    """``"bps / kd"`` -> (``"bps"``, ``"kd"``); a label without a protocol -> (label, None)."""
    head, sep, tail = str(label).partition(" / ")
    return (head, tail) if sep else (str(label), None)


def _sides(method: str, baseline: str) -> tuple[str, str]:
    """The two compared sides as a verdict names them: the protocols when one method is compared with itself."""
    (m, p), (b, q) = _split(method), _split(baseline)
    if p is not None and q is not None and m == b:
        return display_name(p), display_name(q)
    return display_name(method), display_name(baseline)


def comparison_name(method: str, baseline: str) -> str:
    """``"BPS − random"``; one method under two protocols reads ``"BPS: KD − hard labels"``."""
    m, p = _split(method)
    b, q = _split(baseline)
    if p is not None and q is not None and m == b:
        return f"{display_name(m)}: {display_name(p)} {MINUS} {display_name(q)}"
    return f"{display_name(method)} {MINUS} {display_name(baseline)}"


def points(value: float, signed: bool = True, digits: int = 1) -> str:
    """A difference in points as the tables print it: ``+1.2``, ``−0.6``, ``0.0`` (never ``−0.0``)."""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if float(text) == 0:
        return f"{0:.{digits}f}"
    return text.replace("-", MINUS)


def bound(value: float, digits: int = 1) -> str:
    """An interval's end as the tables print it: ``−3.3``, ``2.1``; an end that is not 0 but rounds to it keeps
    its sign with the digits it needs (``−0.02``), so that "[−3.3, −0.02], herding ahead" reads as the interval
    the verdict was read on, not as one that holds 0."""
    text = points(value, False, digits)
    while float(text.replace(MINUS, "-")) == 0 and value != 0 and digits < 4:
        digits += 1
        text = points(value, False, digits)
    return text


def slug(text: Any) -> str:
    """A glue-key part of a label: lower case, every run of other characters one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def _ipc(v: Any) -> Any:
    """An IPC as a table shows it: an int, or "n/a" for a comparison without one (never NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return int(v) if _is_number(v) and float(v).is_integer() else v


def _rows(rows: Any) -> list[dict[str, Any]]:
    if rows is None:
        return []
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def _state(row: Mapping[str, Any]) -> str:
    """``method`` / ``baseline`` (that side ahead: the interval excludes 0, on at least :data:`CLAIM_SEEDS` paired
    seeds), ``few`` (an interval clear of 0 on fewer seeds: no verdict), ``none``, ``single`` (one seed, no
    interval) or ``fixed`` (every seed gave the same difference: the seed changes nothing, so no interval)."""
    ci = row.get("ci95")
    lo, hi = list(ci) if hasattr(ci, "__len__") and not isinstance(ci, str) and len(ci) == 2 else (None, None)
    if not (_is_number(lo) and _is_number(hi)):
        return "single"
    if lo == hi:  # several seeds, one value: a run the seed does not change (a deterministic head), no interval
        return "fixed"
    if lo <= 0 <= hi:
        return "none"
    n = row.get("n_seeds")
    if _is_number(n) and int(n) < CLAIM_SEEDS:  # an interval clear of 0 on too few seeds: no verdict either way
        return "few"
    return "method" if lo > 0 else "baseline"


def verdict_table(rows: Any, *, rule: str = "final", expected: Iterable[Any] | None = None, columns: str | None = None,
                  key: str = "verdicts", title: str | None = None, axis: str = "protocol", dataset: str | None = None,
                  unit: float = 100.0) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """One family of paired comparisons as a table in plain words, and the glue its prose cites.

    ``rows``: paired rows (a DataFrame or mappings) with ``method``, ``baseline``, ``ipc``, ``protocol``,
    ``n_seeds``, ``diff_mean`` and ``ci95`` (fractions; ``unit`` makes them points), and ``rule`` (rows
    without one count as ``rule``): :func:`~ddlib.results.paired_table`, :func:`~ddlib.results.versus_table`,
    :func:`~ddlib.results.synthesis_versus` or :func:`ddlib.bps.pipeline.grid_pairs` rows, of one dataset.
    ``rule``: which reading the table shows, ``"final"`` (the default) or ``"best_last"``; the glue holds
    every rule's numbers. ``expected``: the comparisons the family should hold, ``(method, baseline, ipc,
    protocol)`` tuples or mappings; one without a row reads "not run". Rows are grouped by comparison in the
    order given (``expected`` first, then ``rows``), then by IPC, then by protocol in the order given.
    ``columns``: ``None`` for the long form (:data:`VERDICT_COLUMNS`, the third column named ``axis``), or
    ``"protocol"``, ``"ipc"`` or ``"comparison"`` for a wide form with one column per value of that field
    (e.g. rows = methods, columns = student architectures) whose cells read ``"+1.2 [0.4, 2.0] ahead"``
    (``ahead``/``behind``: the side named first, where the interval excludes 0; no word: no detectable
    difference); :func:`split_columns` cuts a wide one to the column. ``title`` names the family in the
    caption and the sentences; ``dataset`` names its data when the rows do not.

    Returns ``(table, glue)``: ``table`` a :class:`ddlib.plots.WholeTable` (shown whole, no row numbers);
    ``glue`` (every key starts with ``key``): ``_caption``, ``_rule``, ``_verdict`` (one sentence for the
    shown rule) and ``_verdict_<rule>`` for the other rule when rows hold it; the counts ``_n_comparisons``, ``_n_run`` (those with a row),
    ``_n_method_ahead``, ``_n_baseline_ahead``, ``_n_no_difference``, ``_n_single_seed``, ``_n_same_every_seed``
    (several seeds, one difference: no interval), ``_n_not_run``,
    ``_n_seeds_min``, ``_n_seeds_max``; and per comparison and rule ``_<method>_vs_<baseline>_<protocol>_
    ipc<k>_<rule>`` + ``_diff``, ``_lo``, ``_hi`` (points) and ``_verdict`` (:func:`slug` of each label).
    """
    from ddlib.plots.tables import whole_table

    if rule not in RULES:
        raise ParamError(f"rule={rule!r}: choose one of {list(RULES)}")
    if columns not in (None, "protocol", "ipc", "comparison"):
        raise ParamError(f"columns={columns!r}: choose None (one row per comparison), 'protocol', 'ipc' or "
                         "'comparison'")
    rows = _rows(rows)
    datasets = sorted({dataset_label(r.get("dataset")) for r in rows} - {""}) or ([dataset_label(dataset)] if dataset
                                                                                  else [])
    if len(datasets) > 1:
        raise ParamError(f"the rows hold datasets {datasets}: a verdict table shows one family of one dataset; "
                         "pick the rows of one (rows[rows.dataset == ...])")
    ident = lambda r: (str(r["method"]), str(r["baseline"]), _ipc(r.get("ipc")), str(r.get("protocol")))  # noqa: E731
    wanted = []
    for e in expected or []:
        e = (e["method"], e["baseline"], e.get("ipc"), e.get("protocol")) if isinstance(e, Mapping) else tuple(e)
        wanted.append((str(e[0]), str(e[1]), _ipc(e[2]), str(e[3])))
    by_rule: dict[str, dict[tuple, dict]] = {}
    for r in rows:
        by_rule.setdefault(str(r.get("rule") or rule), {}).setdefault(ident(r), r)
    order = list(dict.fromkeys([*wanted, *(k for rs in by_rule.values() for k in rs)]))
    pairs = list(dict.fromkeys((k[0], k[1]) for k in order))
    protocols = list(dict.fromkeys(k[3] for k in order))  # in the order given: expected first, then the rows
    order.sort(key=lambda k: (pairs.index((k[0], k[1])), float(k[2]) if _is_number(k[2]) else math.inf,
                              protocols.index(k[3])))
    shown = by_rule.get(rule, {})
    seeds = [int(r["n_seeds"]) for r in shown.values() if _is_number(r.get("n_seeds"))]
    most = max(seeds, default=0)

    def cell(k: tuple, r: dict | None) -> dict[str, str]:
        if r is None or not _is_number(r.get("diff_mean")):
            return {"difference": "not run", "95 % interval": "not run", "verdict": "not run", "state": "missing",
                    "wide": "not run"}
        state, d = _state(r), unit * float(r["diff_mean"])
        a, b = _sides(k[0], k[1])
        n = int(r["n_seeds"]) if _is_number(r.get("n_seeds")) else None
        if state == "single":
            return {"difference": f"{points(d)} points", "95 % interval": "none (one seed)",
                    "verdict": _VERDICT["single"], "state": state, "wide": f"{points(d)} (one seed)"}
        if state == "fixed":
            return {"difference": f"{points(d)} points", "95 % interval": "none (the same at every seed)",
                    "verdict": _VERDICT["fixed"], "state": state, "wide": f"{points(d)} (same at every seed)"}
        lo, hi = (unit * float(x) for x in r["ci95"])
        brackets = f"[{bound(lo)}, {bound(hi)}]"
        words = {"method": f"{a} ahead", "baseline": f"{b} ahead", "none": _VERDICT["none"],
                 "few": f"no verdict ({n} seeds)"}[state]
        return {"difference": f"{points(d)} points", "95 % interval": brackets + (f", {n} seeds" if n and n < most
                                                                                  else ""),
                "verdict": words, "state": state,
                "wide": f"{points(d)} {brackets}{_WIDE[state]}" + (f" ({n} seeds, no verdict)" if state == "few"
                                                                    else "")}

    long = pd.DataFrame([{"comparison": comparison_name(k[0], k[1]), "IPC": k[2], axis: display_name(k[3]),
                          **cell(k, shown.get(k))} for k in order],
                        columns=["comparison", "IPC", axis, "difference", "95 % interval", "verdict", "state", "wide"])
    if columns is None:
        table = long.drop(columns=["state", "wide"])
    else:
        table = _wide(long, {"protocol": axis, "ipc": "IPC", "comparison": "comparison"}[columns], axis)
    glue = _glue(key, order, by_rule, rule, long, title, datasets, seeds, unit)
    return whole_table(table.reset_index(drop=True)), glue


def _wide(long: pd.DataFrame, column: str, axis: str) -> pd.DataFrame:
    """The long table with one column per value of ``column``; a row per remaining identity (the fields that
    vary, joined: "BPS − random, IPC 10"), missing cells "not run"."""
    rest = [c for c in ("comparison", "IPC", axis) if c != column and long[c].nunique() > 1]
    if not rest:
        rest = ["comparison" if column != "comparison" else axis]
    header = lambda c, v: f"IPC {v}" if c == "IPC" else str(v)  # noqa: E731
    cols = list(dict.fromkeys(header(column, v) for v in long[column]))
    out: dict[str, dict[str, str]] = {}
    for _, r in long.iterrows():
        label = ", ".join(header(c, r[c]) for c in rest)
        out.setdefault(label, dict.fromkeys(cols, "not run"))[header(column, r[column])] = r["wide"]
    label_column = ", ".join(rest)
    return pd.DataFrame([{label_column: k, **v} for k, v in out.items()], columns=[label_column, *cols])


def split_columns(table: pd.DataFrame, max_columns: int = 6) -> list[pd.DataFrame]:
    """A wide verdict table cut into tables of at most ``max_columns`` columns, each keeping the first (the
    row labels): what fits a book column (688 px) when a family has many architectures or protocols."""
    from ddlib.plots.tables import whole_table

    if max_columns < 2:
        raise ParamError(f"max_columns={max_columns}: a table needs its label column and one more")
    first, rest = table.columns[0], list(table.columns[1:])
    step = max_columns - 1
    return [whole_table(table[[first, *rest[i:i + step]]]) for i in range(0, max(len(rest), 1), step)]


def _glue(key: str, order: list[tuple], by_rule: dict[str, dict[tuple, dict]], rule: str, long: pd.DataFrame,
          title: str | None, datasets: list[str], seeds: list[int], unit: float) -> dict[str, str | float]:
    states = long["state"].tolist()
    pairs = {(k[0], k[1]) for k in order}
    name = title or (comparison_name(*next(iter(pairs))) if len(pairs) == 1 else "Paired comparisons")
    where = f", {display_name(datasets[0])}" if datasets else ""
    lo, hi = min(seeds, default=0), max(seeds, default=0)
    tail = ("none run yet" if not seeds else "from one seed (no interval)" if hi == 1
            else f"95 % intervals over {lo} paired seeds" if lo == hi
            else f"95 % intervals over {lo} to {hi} paired seeds")
    glue: dict[str, str | float] = {
        f"{key}_caption": f"{name}{where}: differences in points of test accuracy ({RULES[rule]}), {tail}",
        f"{key}_rule": RULES[rule],
        f"{key}_verdict": _sentence(name, order, by_rule.get(rule, {}), rule, unit),
    }
    for other in RULES:
        if other != rule and by_rule.get(other):
            glue[f"{key}_verdict_{other}"] = _sentence(name, order, by_rule[other], other, unit)
    glue.update({f"{key}_n_comparisons": len(order), f"{key}_n_run": len(order) - states.count("missing"),
                 f"{key}_n_method_ahead": states.count("method"),
                 f"{key}_n_baseline_ahead": states.count("baseline"), f"{key}_n_no_difference": states.count("none"),
                 f"{key}_n_single_seed": states.count("single"), f"{key}_n_same_every_seed": states.count("fixed"),
                 f"{key}_n_too_few_seeds": states.count("few"),
                 f"{key}_n_not_run": states.count("missing"),
                 f"{key}_n_seeds_min": min(seeds, default=0), f"{key}_n_seeds_max": max(seeds, default=0)})
    for r_name, found in by_rule.items():
        for k in order:
            r = found.get(k)
            if r is None or not _is_number(r.get("diff_mean")):
                continue
            stem = f"{key}_{slug(k[0])}_vs_{slug(k[1])}_{slug(k[3])}_ipc{slug(k[2])}_{r_name}"
            glue[f"{stem}_diff"] = round(unit * float(r["diff_mean"]), 4)
            state = _state(r)
            if state not in ("single", "fixed"):
                glue[f"{stem}_lo"], glue[f"{stem}_hi"] = (round(unit * float(x), 4) for x in r["ci95"])
            glue[f"{stem}_verdict"] = {"method": f"{_sides(k[0], k[1])[0]} ahead",
                                       "baseline": f"{_sides(k[0], k[1])[1]} ahead", **_VERDICT}[state]
            d = points(unit * float(r["diff_mean"]))
            n = int(r["n_seeds"]) if _is_number(r.get("n_seeds")) else 0
            glue[f"{stem}_phrase"] = (
                f"{d} points from one seed, no interval" if state == "single" else
                f"{d} points at every seed, no interval" if state == "fixed" else
                f"{d} points over {n} paired seeds (95 % interval {points(glue[f'{stem}_lo'], False)} to "
                f"{points(glue[f'{stem}_hi'], False)}), too few seeds for a verdict" if state == "few" else
                f"{glue[f'{stem}_verdict']} ({d} points, 95 % interval "
                f"{points(glue[f'{stem}_lo'], False)} to {points(glue[f'{stem}_hi'], False)})")
    return glue


def phrase(glue: Mapping[str, Any], key: str, method: str, baseline: str, protocol: str, ipc: Any,
           rule: str = "final", missing: str = "not recorded yet") -> str:
    """The phrase of one comparison from a :func:`verdict_table`'s glue (``key``): "no detectable difference
    (−0.6 points, 95 % interval −3.3 to 2.1)", or ``missing`` when the family has no such row, so that prose
    can cite a fixed glue name whatever was run."""
    stem = f"{key}_{slug(method)}_vs_{slug(baseline)}_{slug(protocol)}_ipc{slug(_ipc(ipc))}_{rule}"
    return str(glue.get(f"{stem}_phrase", missing))


def headline(glue: Mapping[str, Any], key: str, method: str, baseline: str, protocol: str, ipcs: Iterable[Any],
             rule: str = "final") -> str:
    """One plain sentence on ``method`` against ``baseline`` under ``protocol`` over ``ipcs``, read from a
    :func:`verdict_table`'s glue (``key``): "BPS and random cannot be told apart at IPC 10 and 50", "BPS ahead
    of random at IPC 50; no detectable difference at IPC 10" (a side ahead named first), "KD ahead of hard
    labels at IPC 10" (one method under two protocols), "BPS against random: not run"."""
    stem = lambda k: f"{key}_{slug(method)}_vs_{slug(baseline)}_{slug(protocol)}_ipc{slug(_ipc(k))}_{rule}"  # noqa: E731
    a, b = _sides(method, baseline)
    by: dict[str, list[str]] = {}
    for k in ipcs:
        v = glue.get(f"{stem(k)}_verdict")
        if v is not None:
            by.setdefault(str(v), []).append(str(_ipc(k)))
    if not by:
        return f"{a} against {b}: not run"

    def at(ks: list[str]) -> str:
        return "IPC " + (ks[0] if len(ks) == 1 else ", ".join(ks[:-1]) + " and " + ks[-1])

    parts = []  # a side ahead first, so that a sentence that starts with the headline has its subject
    for v, ks in sorted(by.items(), key=lambda vk: vk[0] == "no detectable difference"):
        if v == "no detectable difference":
            parts.append(f"{a} and {b} cannot be told apart at {at(ks)}" if len(by) == 1
                         else f"no detectable difference at {at(ks)}")
        elif v.endswith(" ahead"):
            parts.append(f"{v[:-6]} ahead of {b if v[:-6] == a else a} at {at(ks)}")
        else:
            parts.append(f"{a} against {b} at {at(ks)}: {v}" if len(by) == 1 else f"at {at(ks)}: {v}")
    return "; ".join(parts)


def _sentence(name: str, order: list[tuple], found: Mapping[tuple, dict], rule: str, unit: float) -> str:
    """One plain sentence for a family under one rule: the differences found (or their count), the rest."""
    run = [(k, found[k]) for k in order if k in found and _is_number(found[k].get("diff_mean"))]
    missing = len(order) - len(run)
    if not run:
        return f"{name} ({RULES[rule]}): not run."
    ahead = [(k, r) for k, r in run if _state(r) in ("method", "baseline")]
    single = sum(_state(r) == "single" for _, r in run)
    fixed = sum(_state(r) == "fixed" for _, r in run)
    unsure = sum(_state(r) == "few" for _, r in run)
    none = len(run) - len(ahead) - single - fixed - unsure
    parts = []
    if not ahead and none:
        parts.append("no detectable difference" + ("" if none == 1 else f" in any of the {none} comparisons")
                     + (" with an interval" if single else ""))
    elif len(ahead) <= 3:
        for k, r in ahead:
            a, b = _sides(k[0], k[1])
            lo, hi = (unit * float(x) for x in r["ci95"])
            d = unit * float(r["diff_mean"])
            if _state(r) == "baseline":
                a, b, d, lo, hi = b, a, -d, -hi, -lo
            (m, p), (n, q) = _split(k[0]), _split(k[1])
            where = f"for {display_name(m)}" if p is not None and q is not None and m == n else display_name(k[3])
            parts.append(f"{a} ahead of {b} by {points(d, False)} points ({bound(lo)} to "
                         f"{bound(hi)}) at IPC {k[2]}, {where}")
        if none:
            parts.append(f"no detectable difference in the other {none}" + (" with an interval" if single else ""))
    else:
        leaders: dict[str, int] = {}
        for k, r in ahead:
            side = _sides(k[0], k[1])[0 if _state(r) == "method" else 1]
            leaders[side] = leaders.get(side, 0) + 1
        if len(leaders) == 1 and len(ahead) == len(run):
            parts.append(f"{next(iter(leaders))} ahead in all {len(run)} comparisons")
        else:
            parts.append(f"a difference in {len(ahead)} of the {len(run)} comparisons (" +
                         ", ".join(f"{s} ahead in {n}" for s, n in leaders.items()) + ")")
    if single:
        parts.append(f"{single} from a single seed, without an interval" if single < len(run) else
                     f"{'the comparison rests' if single == 1 else f'all {single} comparisons rest'} on a single "
                     "seed: no interval, no verdict")
    if unsure:
        parts.append(f"{unsure} with an interval clear of 0 on too few seeds for a verdict")
    if fixed:
        parts.append(f"{'the comparison gives' if fixed == len(run) == 1 else f'{fixed} give'} the same difference "
                     "at every seed (the seed changes neither side): no interval, no verdict")
    few = sum(1 for _, r in run if _is_number(r.get("n_seeds")) and 2 <= int(r["n_seeds"]) < CLAIM_SEEDS
              and _state(r) != "fixed")
    if few:
        parts.append(f"all rest on fewer than the {CLAIM_SEEDS} paired seeds a claim needs: measurements, not "
                     "verdicts" if few == len(run) else
                     f"{few} rest on fewer than the {CLAIM_SEEDS} paired seeds a claim needs")
    if missing:
        parts.append(f"{missing} not run")
    return f"{name} ({RULES[rule]}): " + "; ".join(parts) + "."
