"""The selection evidence: readers of BPS's paired evidence records (``benchmarks/bps_evidence.py``) and
of the centre/margin ablation records (``benchmarks/bps_results.py --centre-frac``).

Each paired difference is over seeds that share everything but the compared factor, with its 95 %
interval (:func:`ddlib.metrics.paired_difference`). Chapter 2 ("Does BPS beat random? The paired
evidence") and chapter 5 ("The paired evidence") tell the story; :mod:`ddlib.results.selection_verdicts`
turns these tables into the book's verdict tables.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ddlib.metrics import RULES
from ddlib.results.records import VERSUS_COLUMNS, Record, _is_number, _spread, dataset_label, load

__all__ = ["CROSS_ARCH_PREFIX", "PAIRED_COLUMNS", "bps_split_ablation", "epoch_curve", "evidence_summary", "hlr_table", "latest_evidence",
           "paired_table", "recorded_patterns", "regime_differences", "teacher_text", "verdict_of", "versus_table"]

PAIRED_COLUMNS = ["method", "baseline", "ipc", "protocol", "rule", "n_seeds", "diff_mean", "ci95", "excludes_zero",
                  "verdict", "dataset", "device", "date", "commit", "source"]


def _strip(config: Any, key: str) -> Any:
    if isinstance(config, dict):
        return {k: _strip(v, key) for k, v in config.items() if k != key}
    return config


def bps_split_ablation(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """BPS's centre/margin split ablated: per ablation record (config ``centre_frac`` set; written by
    ``bps_results.py --centre-frac``), its BPS rows beside BPS at the reference split and random selection
    from the newest record of the same run (the same config but for ``centre_frac``). Columns:
    ``selection``, ``centre_share`` (None for random), ``ipc``, accuracy mean/std, ``device``, ``source``.
    """
    records = load() if records is None else list(records)
    out = []
    for abl in records:
        frac = abl.config.get("centre_frac")
        if not _is_number(frac):
            continue
        same = _strip(abl.config, "centre_frac")
        refs = [r for r in records if r is not abl and not _is_number(r.config.get("centre_frac"))
                and _strip(r.config, "centre_frac") == same]
        picked = [(abl, row, float(frac)) for row in abl.rows if row.get("method") == "bps"]
        for ref in refs[-1:]:  # the newest file of that run, when several
            picked += [(ref, row, 0.5 if row["method"] == "bps" else None) for row in ref.rows
                       if row.get("method") in ("bps", "random")]
        for rec, row, share in picked:
            if not _is_number(row.get("mean")):
                continue
            out.append({"selection": "random" if share is None else f"bps, centre share {share:g}",
                        "centre_share": share, "ipc": row.get("ipc"), "accuracy_mean": float(row["mean"]),
                        "accuracy_std": _spread(row), "device": rec.device, "source": rec.source})
    cols = ["selection", "centre_share", "ipc", "accuracy_mean", "accuracy_std", "device", "source"]
    return pd.DataFrame(out, columns=cols).drop_duplicates(["selection", "ipc", "source"]).reset_index(drop=True)



def paired_table(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Every record's ``paired`` table (paired differences over seeds with their 95 % intervals), with the
    record's dataset, device, date, commit and source: columns :data:`PAIRED_COLUMNS`."""
    records = load() if records is None else list(records)
    out = []
    for rec in records:
        paired = rec.data.get("paired")
        if not isinstance(paired, list):
            continue
        ds = dataset_label(rec.config.get("dataset"))
        for p in paired:
            if isinstance(p, dict):
                out.append({"dataset": ds, **{k: p.get(k) for k in PAIRED_COLUMNS[:10]},
                            "device": rec.device, "date": rec.provenance["date"],
                            "commit": str(rec.provenance["commit"])[:10], "source": rec.source})
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def _modelling_of(rec: Record) -> Any:
    """What makes two evidence records' numbers comparable: the data, the modelling (Stage 1's key), the
    teacher's and the students' settings, and the seeds; everything but which IPCs were run."""
    c = rec.config
    pipeline = {k: v for k, v in (c.get("pipeline") or {}).items() if k not in ("select", "forgetting")}
    return json.dumps([c.get("dataset"), c.get("teacher_dataset"), pipeline, c.get("students"), c.get("seeds"),
                       (rec.data.get("modelling") or {}).get("modelling_key")], sort_keys=True)


def _forgetting_rule(rec: Record) -> str:
    """The rule a record's ``forgetting`` rows were read by: ``"deepcore"`` (never-learned images keep 0
    events) or ``"toneva"`` (they count as forgotten infinitely often: every record made before the rule
    became a setting, whose forgetting config has no ``never_learned``); a record without a forgetting
    config ran no forgetting to name."""
    forgetting = (rec.config.get("pipeline") or {}).get("forgetting")
    return "deepcore" if not forgetting else forgetting.get("never_learned") or "toneva"


def _rename_forgetting(row: dict, label: str) -> dict:
    """``row`` with its ``forgetting`` method (alone or as ``forgetting / <protocol>``) named ``label``."""
    out = dict(row)
    for k in ("method", "baseline"):
        v = out.get(k)
        if isinstance(v, str) and (v == "forgetting" or v.startswith("forgetting / ")):
            out[k] = label + v[len("forgetting"):]
    return out


#: where cross-architecture records live: ``results/cross_arch_<anything>.json``, each with ``paired`` rows
#: that name their student architecture (``arch``, or as their ``protocol``), beside the usual ``method``,
#: ``baseline``, ``ipc``, ``rule``, ``n_seeds``, ``diff_mean``, ``ci95``
CROSS_ARCH_PREFIX = "cross_arch_"


def _is_cross_arch(rec: Record) -> bool:
    """A cross-architecture record (``benchmarks/cross_arch.py``): it has ``paired`` and ``grid`` like an
    evidence record, but its columns are student architectures, so it is never the main evidence."""
    return Path(rec.source).name.startswith(CROSS_ARCH_PREFIX) or "cross-architecture" in str(rec.what)


def latest_evidence(dataset: str, records: Iterable[Record] | None = None, study: str | None = None) -> Record | None:
    """The newest record (by date) of a paired BPS evidence run (``bps_evidence.py``: it has ``paired``
    and ``grid``) on ``dataset`` (a name or its short label), or None when none is recorded.

    ``study``: None reads the main evidence (records without a ``study`` in their config); a name reads the
    side study of that name (``bps_evidence.py --study NAME``, e.g. ``"slots"``: BPS where its patterns get
    a centre and a margin), so that a study's few methods never stand in for the main grid's IPCs.

    A long run may be split by IPC over several invocations (sessions): the IPCs the newest record lacks
    are taken from older records of the same modelling, teacher, students and seeds (newest first), and
    the result is one :class:`Record` whose ``source`` names every file, joined by " + ", with
    ``merged_from`` (each file's source, commit, date, IPCs and teacher accuracy). Records of another
    modelling are never mixed in, nor a cross-architecture record (``results/cross_arch_*.json``: its
    columns are student architectures; :func:`~ddlib.results.latest_cross_arch` reads it). The forgetting baseline's settings are the selector's, not the
    modelling's: ``forgetting`` names DeepCore's rule only, and a part whose forgetting rows were read by
    Toneva's rule (:func:`_forgetting_rule`: every record made before the rule became a setting) has them
    named ``forgetting (toneva)`` (``forgetting_rows`` in its ``merged_from`` entry; a lone record of that
    kind comes back as a copy with ``merged_from``). The same settings are not the same bits: a modelling trained again in
    another session differs in its last digits (its teacher's accuracy is kept per part, and
    :func:`teacher_text` says so); every paired difference is still within one modelling, per IPC."""
    records = load() if records is None else list(records)
    label = dataset_label(dataset)
    found = sorted((r for r in records if isinstance(r.data.get("paired"), list)
                    and isinstance(r.data.get("grid"), list) and dataset_label(r.config.get("dataset")) == label
                    and r.config.get("study") == study and not _is_cross_arch(r)),
                   key=lambda r: str(r.provenance.get("date")), reverse=True)
    if not found:
        return None
    newest = found[0]

    def ipcs(rec: Record) -> set[int]:
        return {int(g["ipc"]) for g in rec.data["grid"] if isinstance(g, dict) and _is_number(g.get("ipc"))}

    def part(rec: Record, keep: set[int]) -> dict[str, Any]:
        return {"source": rec.source, "commit": rec.provenance["commit"], "date": rec.provenance["date"],
                "ipcs": sorted(keep), "teacher_acc": (rec.data.get("teacher") or {}).get("test_acc")}

    def label(rec: Record) -> str:
        rule = _forgetting_rule(rec)
        return "forgetting" if rule == "deepcore" else f"forgetting ({rule})"

    covered, parts, data = ipcs(newest), [part(newest, ipcs(newest))], dict(newest.data)
    if label(newest) != "forgetting":
        for key in ("grid", "paired", "hlr", "rows"):
            data[key] = [_rename_forgetting(r, label(newest)) if isinstance(r, dict) else r
                         for r in newest.data.get(key) or []]
        parts[0]["forgetting_rows"] = label(newest)
    for old in found[1:]:
        extra = ipcs(old) - covered
        if not extra or _modelling_of(old) != _modelling_of(newest):
            continue
        for key in ("grid", "paired", "hlr", "rows"):
            mine = [_rename_forgetting(r, label(old)) for r in old.data.get(key) or []
                    if isinstance(r, dict) and r.get("ipc") in extra]
            data[key] = [*(data.get(key) or []), *mine]
        covered |= extra
        parts.append({**part(old, extra), **({"forgetting_rows": label(old)} if label(old) != "forgetting" else {})})
    if len(parts) == 1 and label(newest) == "forgetting":
        return newest
    if len(parts) == 1:
        return Record(newest.source, {**data, "merged_from": parts})
    return Record(" + ".join(p["source"] for p in parts), {**data, "merged_from": parts})


def teacher_text(record: Record | None, missing: str = "not recorded yet", ipc: int | None = None) -> str:
    """The teacher of an evidence record in words: "90.7 % on 60,000 images", or per IPC when the record
    joins invocations that each trained it (:func:`latest_evidence`): "90.4 % for IPC 50 and 90.7 % for IPC 10,
    on 60,000 images, trained in 2 sessions with the same settings" (no parentheses: chapters cite it inside
    theirs); ``ipc``: the teacher of the part that
    holds that IPC alone."""
    t = (record.data.get("teacher") or {}) if record is not None else {}
    if not _is_number(t.get("test_acc")):
        return missing
    size = f" on {int(t['train_size']):,} images" if _is_number(t.get("train_size")) else ""
    parts = [m for m in (record.data.get("merged_from") or []) if _is_number(m.get("teacher_acc"))]
    if ipc is not None:
        mine = [m for m in parts if ipc in (m.get("ipcs") or [])]
        return f"{100 * (mine[0]['teacher_acc'] if mine else t['test_acc']):.1f} %{size}"
    if len(parts) < 2:
        return f"{100 * t['test_acc']:.1f} %{size}"
    each = [f"{100 * m['teacher_acc']:.1f} % for IPC {', '.join(map(str, m['ipcs']))}" for m in parts]
    listed = ", ".join(each[:-1]) + " and " + each[-1]
    return f"{listed},{size}, trained in {len(parts)} sessions with the same settings"


#: how :func:`regime_differences` names a pipeline config's sections
_SECTIONS = {"encoder": "Stage-1 encoder", "pattern": "partition", "teacher": "teacher",
             "forgetting": "forgetting scores", "select": "selection"}


def regime_differences(record: Record | None, live: Mapping[str, Any], *, section: str = "pipeline",
                       limit: int = 4) -> str:
    """Where this build's settings (``live``: a config as :func:`ddlib.utils.config_dict` gives it, e.g. a
    pipeline's ``{"encoder": ..., "teacher": ...}``) differ from those the record was made with (its
    ``config[section]``), by part: "teacher: epochs 10 here, 12 in the record"; past ``limit`` settings, a count
    ("; and 7 more settings"). Only settings both hold are compared; "" when none differ or without a record."""
    theirs = ((record.config or {}).get(section) if record is not None else None) or {}
    by_part: dict[str, list[str]] = {}

    def walk(a: Any, b: Any, path: tuple[str, ...]) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in a:
                if k in b:
                    walk(a[k], b[k], (*path, str(k)))
        elif a != b and path:
            part = " ".join(_SECTIONS.get(p, p.replace("_", " ")) for p in path[:-1]) or "settings"
            by_part.setdefault(part, []).append(f"{path[-1].replace('_', ' ')} {a} here, {b} in the record")

    walk(dict(live), dict(theirs), ())
    shown, n = {}, 0
    for part, said in by_part.items():  # the first ``limit`` settings, then a count of the rest
        keep = said[:max(0, limit - n)]
        if keep:
            shown[part] = keep
        n += len(said)
    rest = n - sum(map(len, shown.values()))
    return "; ".join(f"{part}: {', '.join(said)}" for part, said in shown.items()) + (
        f"; and {rest} more setting{'s' if rest != 1 else ''}" if rest else "")


def evidence_summary(record: Record | None) -> dict[str, Any]:
    """The parts of one paired evidence record the chapters show, as tables (empty when ``record`` is None):

    ``ior`` (every method against random under KD: DD-Ranking's improvement over random), ``kd_ce`` (KD
    minus hard labels per method), ``ablation`` (BPS's centre share against BPS and random), ``weak`` (BPS
    against random under a teacher that learned from a subsample), ``curve`` (BPS against random per
    student budget), ``versus`` (BPS against every other selector, :func:`versus_table`), ``hlr``; each with
    ``ipc``, ``rule``, ``n_seeds``, ``diff_mean``, ``ci95``,
    ``excludes_zero``, ``verdict``; and ``teacher`` / ``weak_teacher`` (their accuracy and data size), with
    ``teacher_text`` (:func:`teacher_text`).
    """
    paired = paired_table([record]) if record is not None else paired_table([])
    proto = paired.protocol.astype(str)
    out = {
        "ior": paired[(paired.baseline == "random") & (proto == "kd") & ~paired.method.astype(str).str.contains("centre")],
        "kd_ce": paired[proto == "kd - ce"],
        "ablation": paired[paired.method.astype(str).str.startswith("bps (centre share")],
        "weak": paired[proto.str.startswith("kd-weak")],
        "curve": paired[proto.str.startswith("kd@")],
        "versus": versus_table(record, "bps"),
        "hlr": hlr_table([record]) if record is not None else hlr_table([]),
        "teacher": (record.data.get("teacher") or {}) if record is not None else {},
        "teacher_text": teacher_text(record),
        "weak_teacher": (record.data.get("weak_teacher") or {}) if record is not None else {},
        "source": record.source if record is not None else None,
    }
    return {k: (v.reset_index(drop=True) if isinstance(v, pd.DataFrame) else v) for k, v in out.items()}


def versus_table(record: Record | None, method: str = "bps") -> pd.DataFrame:
    """``method`` against every other selector of a paired evidence record's main grid, per IPC, student
    protocol and rule: paired differences over the seeds the two share, with 95 % intervals, computed here
    from the record's per-seed accuracies (the record's own ``paired`` table compares with random only).
    Columns: ``method``, ``baseline``, ``ipc``, ``protocol``, ``rule``, ``n_seeds``, ``diff_mean``, ``ci95``,
    ``excludes_zero``, ``verdict``."""
    from ddlib.bps.pipeline import grid_pairs as pairs

    grid = (record.data.get("grid") or []) if record is not None else []
    rows = [r for r in grid if isinstance(r, dict) and r.get("setting", "main") == "main"]
    out = []
    for other in sorted({r["method"] for r in rows} - {method}):
        out += [p for p in pairs(rows, baseline=other) if p["method"] == method and p["baseline"] == other]
    return pd.DataFrame(out, columns=VERSUS_COLUMNS)


def verdict_of(table: pd.DataFrame, method: str, ipc: int, rule: str = "final",
               missing: str = "not recorded yet") -> str:
    """The computed verdict of one row of a paired table (method, IPC, rule), or ``missing``."""
    if not len(table):
        return missing
    row = table[(table.method == method) & (table.ipc == ipc) & (table.rule == rule)]
    return str(row.verdict.iloc[0]) if len(row) else missing


def epoch_curve(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracy against student epochs, from every record with an epoch curve (``bps_evidence.py
    --epoch-curve``): one row per (dataset, method, IPC, epochs, rule) with the mean, the per-seed values
    and the 95 % interval of the mean (Student t), plus the record's device and source."""
    from ddlib.metrics import paired_difference

    records = load() if records is None else list(records)
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        grid = rec.data.get("grid")
        if not isinstance(grid, list):
            continue
        ds = dataset_label(rec.config.get("dataset"))
        for r in grid:
            if isinstance(r, dict) and r.get("setting") == "epoch curve" and _is_number(r.get("epochs")):
                for rule in RULES:
                    if _is_number(r.get(rule)):
                        groups.setdefault((ds, r["method"], r["ipc"], r["epochs"], rule, rec.source), []).append(r)
    out = []
    # budgets in numeric order (as strings 100 sorts before 50, and a line drawn in row order turns back)
    for (ds, m, k, e, rule, src), rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]),
                                                                               float(kv[0][2]), float(kv[0][3]),
                                                                               str(kv[0][4]), str(kv[0][5]))):
        rs = sorted(rs, key=lambda r: r["seed"])
        v = [r[rule] for r in rs]
        ci = paired_difference(v, [0.0] * len(v))["ci"]
        out.append({"dataset": ds, "method": m, "ipc": k, "epochs": int(e), "rule": rule,
                    "accuracy_mean": sum(v) / len(v), "ci95": list(ci), "per_seed": v, "source": src})
    return pd.DataFrame(out, columns=["dataset", "method", "ipc", "epochs", "rule", "accuracy_mean", "ci95",
                                      "per_seed", "source"])


def hlr_table(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """DD-Ranking's hard-label recovery of every record that has it (``bps_evidence.py``): the full-data
    teacher's accuracy minus each method's hard-label students', with the 95 % interval over seeds."""
    records = load() if records is None else list(records)
    out = []
    for rec in records:
        hlr = rec.data.get("hlr")
        if isinstance(hlr, list):
            ds = dataset_label(rec.config.get("dataset"))
            out += [{"dataset": ds, **h, "source": rec.source} for h in hlr if isinstance(h, dict)]
    return pd.DataFrame(out, columns=["dataset", "method", "ipc", "rule", "n_seeds", "hlr_mean", "ci95", "source"])


def recorded_patterns(dataset: str, records: Iterable[Record] | None = None, *,
                      key: str = "recorded") -> dict[str, str | float]:
    """The patterns per class of every recorded modelling of ``dataset`` (the evidence records keep
    ``modelling.num_patterns``), so a chapter can say whether its own partition is typical.

    Glue: ``<key>_n`` (distinct modellings, told apart by their counts: one recipe trained again in another
    session may split a class differently), ``<key>_min`` / ``<key>_max`` (patterns per class over all of
    them; 0 when none), ``<key>_sources`` (their files)."""
    records = load() if records is None else list(records)
    label = dataset_label(dataset)
    seen: dict[str, list[int]] = {}
    sources = []
    for rec in records:
        counts = (rec.data.get("modelling") or {}).get("num_patterns") if isinstance(rec.data.get("modelling"),
                                                                                   dict) else None
        if not isinstance(counts, dict) or dataset_label(rec.config.get("dataset")) != label:
            continue
        values = [int(v) for v in counts.values() if _is_number(v)]
        if values:
            seen.setdefault(json.dumps(sorted(counts.items())), values)
            sources.append(rec.source)
    every = [v for vs in seen.values() for v in vs]
    return {f"{key}_n": len(seen), f"{key}_min": min(every, default=0), f"{key}_max": max(every, default=0),
            f"{key}_sources": ", ".join(sources) or "none yet"}
