"""The cross-architecture table every distillation paper has: does a selection made with one network still
help students of another? Read from ``benchmarks/cross_arch.py``'s records (``results/cross_arch_*.json``);
chapter 5 shows the table, chapters 2 and 4 cite its one sentence."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ddlib.metrics import RULES
from ddlib.results.evidence import _is_cross_arch
from ddlib.results.records import Record, _is_number, dataset_label
from ddlib.results.verdicts import MINUS, bound, display_name, points, verdict_table

__all__ = ["cross_arch_verdicts", "latest_cross_arch"]


def latest_cross_arch(dataset: str, records: Iterable[Record] | None = None) -> Record | None:
    """The newest cross-architecture record of ``dataset`` (``benchmarks/cross_arch.py``'s
    ``results/cross_arch_*.json``: paired rows whose students are architectures), or None when none is
    recorded."""
    from ddlib.results.records import load

    label = dataset_label(dataset)
    found = [r for r in (load() if records is None else list(records))
             if _is_cross_arch(r) and dataset_label(r.config.get("dataset")) == label]
    return max(found, key=lambda r: str(r.provenance.get("date", ""))) if found else None


def _arch_rows(record: Record | None, baseline: str, protocol: str) -> list[dict]:
    """A cross-architecture record's paired rows against ``baseline``, each with its architecture as
    ``protocol``: rows that name it (``arch``) keep only ``protocol``'s students; rows of
    ``benchmarks/cross_arch.py`` name it as their protocol (every student there is a KD student)."""
    out = []
    for p in (record.data.get("paired") or []) if record is not None else []:
        if not isinstance(p, dict) or p.get("baseline") != baseline:
            continue
        if p.get("arch"):
            if p.get("protocol") == protocol:
                out.append({**p, "protocol": str(p["arch"])})
        else:
            out.append(dict(p))
    return out


def cross_arch_verdicts(source: str | Record | None, records: Iterable[Record] | None = None, *,
                        methods: Sequence[str] | None = None, method: str = "bps", baseline: str = "random",
                        protocol: str = "kd", rule: str = "final", key: str = "cross_arch",
                        columns: str | None = "protocol", main: Record | None = None,
                        main_arch: str = "ConvNet") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each method against ``baseline`` for every student architecture of a cross-architecture record: chapter
    5's table (``columns="protocol"``: rows methods and IPCs, columns architectures, cells the difference with
    its 95 % interval and the side ahead) or the long form (``columns=None``, the architecture in the third
    column). ``source``: a dataset (its :func:`latest_cross_arch` among ``records``), a record, or None.
    ``methods``: the rows (default: every method of the record).

    Glue, beside :func:`verdict_table`'s under ``key``: ``<key>_sentence``, one sentence on ``method`` across
    the architectures (chapters 2 and 4 cite it; it says "not recorded yet" until a record exists),
    ``<key>_holds`` (whether ``method``'s verdict is the same on every architecture, with the numbers),
    ``<key>_archs`` and ``<key>_n_architectures``; ``<key>_second_estimate``: with ``main`` (the record whose
    students are ``main_arch``), one sentence that sets the ``main_arch`` column beside ``main``'s own row of the
    same comparison, a second estimate from separate students, and says whether the intervals overlap."""
    from ddlib.plots.tables import whole_table

    record = latest_cross_arch(source, records) if isinstance(source, str) else source
    label = dataset_label(source) if isinstance(source, str) else (
        dataset_label(record.config.get("dataset")) if record is not None else "")
    rows = [r for r in _arch_rows(record, baseline, protocol) if methods is None or r.get("method") in methods]
    if not rows:
        none = f"no cross-architecture record of {display_name(label) or 'this dataset'}"
        return whole_table(pd.DataFrame(columns=["cross-architecture record"])), {
            f"{key}_sentence": f"Whether this holds for other student architectures has not been recorded yet ({none}).",
            f"{key}_holds": f"not recorded yet ({none}; benchmarks/cross_arch.py makes one)",
            f"{key}_archs": "none", f"{key}_n_architectures": 0, f"{key}_second_estimate": ""}
    table, glue = verdict_table(rows, rule=rule, columns=columns, key=key, axis="student", dataset=label or None,
                                title=f"Each method {MINUS} {display_name(baseline)} by student architecture "
                                      f"({display_name(protocol)})")
    mine = [r for r in rows if r.get("method") == method and (r.get("rule") or rule) == rule
            and _is_number(r.get("diff_mean")) and r.get("ci95") is not None]
    archs = list(dict.fromkeys(r["protocol"] for r in rows))
    # "; " between them: an architecture's name may hold commas ("EfficientNet-Lite0, frozen, 64 px")
    glue[f"{key}_archs"], glue[f"{key}_n_architectures"] = "; ".join(archs), len(archs)
    a, b = display_name(method), display_name(baseline)
    ahead = sum(r["ci95"][0] > 0 for r in mine)
    behind = sum(r["ci95"][1] < 0 for r in mine)
    n = len(mine)
    words = (f"{a} ahead in all {n}" if n and ahead == n else f"{b} ahead in all {n}" if n and behind == n else
             f"no detectable difference in any of the {n}" if ahead == behind == 0 else
             f"{a} ahead in {ahead}, {b} in {behind}, neither in {n - ahead - behind} of the {n}")
    glue[f"{key}_sentence"] = (f"Across {len(archs)} student architectures ({'; '.join(archs)}), {a} {MINUS} {b} "
                               f"under {display_name(protocol)} shows {words} comparisons by architecture and IPC "
                               f"({RULES[rule]}, 95 % intervals over paired seeds).")
    sides = {"ahead" if r["ci95"][0] > 0 else "behind" if r["ci95"][1] < 0 else "level" for r in mine}
    glue[f"{key}_holds"] = (
        f"{a} against {b} is {'the same' if len(sides) == 1 else 'not the same'} on every student architecture: "
        + "; ".join(f"{r['protocol']} at IPC {r['ipc']}: {points(100 * r['diff_mean'])} points "
                    f"[{bound(100 * r['ci95'][0])}, {bound(100 * r['ci95'][1])}]"
                    for r in sorted(mine, key=lambda r: (r["ipc"], r["protocol"]))))
    glue[f"{key}_second_estimate"] = _second_estimate(record, main, mine, method, baseline, protocol, rule,
                                                      main_arch)
    return table, glue


def _second_estimate(record: Record | None, main: Record | None, mine: list[dict], method: str, baseline: str,
                     protocol: str, rule: str, arch: str) -> str:
    """One sentence on the column of ``arch`` (the main record's student) beside ``main``'s own row: the
    cross-architecture run trains its own students, so its estimate of the same comparison differs; whether the
    two intervals overlap. "" without a main record or a shared IPC."""
    if main is None or record is None:
        return ""
    theirs = {(int(p["ipc"])): p for p in main.data.get("paired") or []
              if isinstance(p, dict) and p.get("method") == method and p.get("baseline") == baseline
              and p.get("protocol") == protocol and p.get("rule", rule) == rule and p.get("ci95") is not None
              and p.get("setting", "main") == "main"}
    said = []
    for r in (r for r in mine if r["protocol"] == arch and int(r["ipc"]) in theirs):
        o = theirs[int(r["ipc"])]
        overlap = r["ci95"][0] <= o["ci95"][1] and o["ci95"][0] <= r["ci95"][1]
        said.append(f"at IPC {r['ipc']} it reads {points(100 * r['diff_mean'])} points [{bound(100 * r['ci95'][0])}, "
                    f"{bound(100 * r['ci95'][1])}] where the main record reads {points(100 * o['diff_mean'])} "
                    f"[{bound(100 * o['ci95'][0])}, {bound(100 * o['ci95'][1])}]; the two intervals "
                    + ("overlap, as two runs of one comparison should" if overlap else
                       "do not overlap, so the two runs disagree"))
    if not said:
        return ""
    made = ("the Stage 1 and teacher of another record's run, reused" if _reuses(record)
            else "its own Stage 1 and teacher")
    return (f"The {arch} column is a run of its own ({made}; its own students), not the main record's students: "
            f"for {display_name(method)} {MINUS} {display_name(baseline)} " + "; ".join(said) + ".")


def _reuses(record: Record) -> bool:
    """Whether a run took another record's cached modelling and teacher (``--reuse`` in its command)."""
    return "--reuse" in str(record.provenance.get("command", "")).split()
