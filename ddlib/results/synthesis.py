"""The synthesis readers: records of SFM, LGM and real-image sets evaluated by probe, CI and KD
(``benchmarks/sfm_ci_cifar10.py``, ``benchmarks/sfm_vs_lgm_cifar10.py``).

Accuracy per step budget, accuracy against cost at equal step budgets, the newest SFM-vs-LGM record
joined with the seeds run later, and SFM's paired differences to LGM and to random real images.
Chapter 5 ("SFM against LGM at equal steps") tells the story; :mod:`ddlib.results.synthesis_verdicts`
turns these tables into the book's verdict tables.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ddlib.results.records import VERSUS_COLUMNS, Record, _is_number, _n_seeds, _spread, load

__all__ = ["COST_CURVE_COLUMNS", "latest_synthesis", "synthesis_by_steps", "synthesis_cost_curve",
           "synthesis_versus"]

def synthesis_by_steps(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracy of synthetic and real sets per recorded synthesis run with its step budget.

    One row per accuracy row (with a ``mode``) of every record whose config sets ``steps`` (written by
    ``benchmarks/sfm_ci_cifar10.py``): ``steps`` (the distillation steps of that run's synthetic sets;
    the real sets do not depend on them), ``set``, ``ipc``, ``distill_backbone``, the record's ``image_size``
    and ``per_class`` (its training images per class; None: all), ``eval_backbone``,
    ``mode``, accuracy mean/std, ``device``, ``source``.
    """
    records = load() if records is None else list(records)
    out = []
    for rec in records:
        steps = rec.config.get("steps")
        if not _is_number(steps):
            continue
        for r in rec.rows:
            if "mode" in r and _is_number(r.get("mean")):
                out.append({"steps": steps, "set": r.get("method"), "ipc": r.get("ipc"),
                            "distill_backbone": rec.config.get("distill_backbone"),
                            "image_size": rec.config.get("image_size"), "per_class": rec.config.get("per_class"),
                            "eval_backbone": r.get("eval_backbone"), "mode": r["mode"],
                            "accuracy_mean": float(r["mean"]), "accuracy_std": _spread(r),
                            "device": rec.device, "source": rec.source})
    cols = ["steps", "set", "ipc", "distill_backbone", "image_size", "per_class", "eval_backbone", "mode",
            "accuracy_mean", "accuracy_std", "device", "source"]
    return pd.DataFrame(out, columns=cols)


COST_CURVE_COLUMNS = ["set", "ipc", "steps", "protocol", "accuracy_mean", "accuracy_std", "n_seeds", "loop_s",
                      "setup_s", "seconds", "peak_mem_mib", "peak_mem_kind", "complete", "device", "source"]


def synthesis_cost_curve(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracy against cost of synthesis runs checkpointed at equal step budgets (records with ``runs`` and a
    ``checkpoints`` config, written by ``benchmarks/sfm_vs_lgm_cifar10.py``).

    One row per accuracy row: ``set`` (sfm, lgm, random-real, centroid-real), ``ipc``, ``steps`` (None for the
    real sets), ``protocol``, accuracy mean/std over the seeds and ``n_seeds``; for synthetic sets the mean
    over those seeds' runs of ``loop_s`` (the optimisation loop's time to ``steps``, summed step times),
    ``setup_s`` (SFM's one statistics pass over the training set, once per dataset and backbone; 0 for
    LGM, which reads real images inside every step), ``seconds`` = loop_s + setup_s, and the mean
    ``peak_mem_mib`` of the runs with its kind; the record's ``complete`` flag, device and source. A run's
    times are those of the run that made it (a record that loaded it says so in ``runs``).
    """
    records = load() if records is None else list(records)
    out = []
    for rec in records:
        runs, checkpoints = rec.data.get("runs"), rec.config.get("checkpoints")
        if not isinstance(runs, Mapping) or not isinstance(checkpoints, list):
            continue
        st = rec.timings.get("sfm_statistics") or {}
        stats_s = st.get("original_wall_s", st.get("wall_s")) if isinstance(st, Mapping) else None
        for r in rec.rows:
            if not _is_number(r.get("mean")) or "set" not in r:
                continue
            row = {"set": r["set"], "ipc": r.get("ipc"), "steps": r.get("steps"), "protocol": r.get("protocol"),
                   "accuracy_mean": float(r["mean"]), "accuracy_std": _spread(r), "n_seeds": _n_seeds(r),
                   "loop_s": None, "setup_s": None, "seconds": None, "peak_mem_mib": None, "peak_mem_kind": None,
                   "complete": bool(rec.data.get("complete", True)), "device": rec.device,
                   "source": rec.source}
            if r.get("steps") is not None:
                mine = [runs.get(f"{r['set']}-ipc{r.get('ipc')}-seed{s}") for s in r.get("seeds") or []]
                mine = [m for m in mine if isinstance(m, Mapping) and _is_number(m.get("loop_s_at", {}).get(
                    str(r["steps"])))]
                if mine:
                    loop = sum(float(m["loop_s_at"][str(r["steps"])]) for m in mine) / len(mine)
                    setup = float(stats_s) if r["set"] == "sfm" and _is_number(stats_s) else 0.0
                    row.update(loop_s=loop, setup_s=setup, seconds=loop + setup,
                               peak_mem_mib=sum(float(m["peak_mem_bytes"]) for m in mine) / len(mine) / 2**20,
                               peak_mem_kind=mine[0].get("peak_mem_kind"))
            out.append(row)
    df = pd.DataFrame(out, columns=COST_CURVE_COLUMNS)
    df["ipc"] = pd.to_numeric(df["ipc"], errors="coerce").astype("Int64")
    df["steps"] = pd.to_numeric(df["steps"], errors="coerce").astype("Int64")
    return df


def _is_synthesis(rec: Record) -> bool:
    return isinstance(rec.data.get("runs"), Mapping) and isinstance(rec.config.get("checkpoints"), list)


def latest_synthesis(records: Iterable[Record] | None = None, *,
                     methods: Iterable[str] = ("sfm", "lgm")) -> Record | None:
    """The newest record (by date) of synthesis runs at equal step budgets (``sfm_vs_lgm_cifar10.py``: it has
    ``runs`` and ``checkpoints``) that ran ``methods`` (a record names its own in ``config.methods`` when it
    ran fewer than both: ``--methods sfm --eval-backbones ...``, SFM's sets scored on other backbones),
    joined with every other such record of the same config but for its IPCs, seeds and random real draws
    (the same data, backbones, steps, heads and departures), or None when none is recorded.

    More seeds can be run later as a record of their own (``--seeds 3,4 --out ...``; more random real draws
    with ``--seeds '' --real-seeds 3,4``); joined, each row holds every seed's accuracy once (the newest
    record's where two hold the same seed: a real set drawn by both), with its mean and population std
    over them (as the script writes them), and ``runs`` holds every run. The result's ``source`` names
    every file, joined by " + ", with ``merged_from`` (each file's source, commit, date, IPCs, seeds and
    real draws), and it is ``complete`` only if every part is."""
    records = load() if records is None else list(records)
    methods = sorted(methods)
    found = sorted((r for r in records if _is_synthesis(r) and sorted(r.config.get("methods") or ("sfm", "lgm"))
                    == methods), key=lambda r: str(r.provenance.get("date")), reverse=True)
    if not found:
        return None

    def same(rec: Record) -> str:
        return json.dumps([{k: v for k, v in rec.config.items() if k not in ("ipcs", "seeds", "real_seeds")},
                           rec.data.get("backbones")], sort_keys=True, default=str)

    parts = [r for r in found if same(r) == same(found[0])]
    if len(parts) == 1:
        return parts[0]
    by: dict[tuple, dict[str, Any]] = {}  # (set, ipc, steps, protocol) -> the first row and seed -> accuracy
    for rec in parts:
        for r in rec.rows:
            if "set" not in r or not isinstance(r.get("seeds"), list) or not isinstance(r.get("per_seed"), list):
                continue
            slot = by.setdefault((r["set"], r.get("ipc"), r.get("steps"), r.get("protocol")), {"row": r, "acc": {}})
            for seed, acc in zip(r["seeds"], r["per_seed"]):
                slot["acc"].setdefault(seed, acc)
    rows = []
    for slot in by.values():
        seeds = sorted(slot["acc"])
        vals = [slot["acc"][k] for k in seeds]
        ok = [v for v in vals if _is_number(v)]
        mean = sum(ok) / len(ok) if ok else None  # population std, as the script writes it
        rows.append({**slot["row"], "seeds": seeds, "per_seed": vals, "mean": mean,
                     "std": math.sqrt(sum((v - mean) ** 2 for v in ok) / len(ok)) if ok else None})
    runs: dict[str, Any] = {}
    for rec in parts:
        for name, run in rec.data["runs"].items():
            runs.setdefault(name, run)
    merged = [{"source": r.source, "commit": r.provenance["commit"], "date": r.provenance["date"],
               "ipcs": r.config.get("ipcs"), "seeds": r.config.get("seeds"), "real_seeds": r.config.get("real_seeds")}
              for r in parts]
    data = {**found[0].data, "rows": rows, "runs": runs, "merged_from": merged,
            "complete": all(bool(r.data.get("complete", True)) for r in parts),
            "config": {**found[0].config, "ipcs": sorted({i for r in parts for i in r.config.get("ipcs") or []}),
                       **{k: sorted({v for r in parts for v in r.config.get(k) or []}) for k in ("seeds", "real_seeds")}}}
    return Record(" + ".join(r.source for r in parts), data)


def synthesis_versus(record: Record | None, method: str = "sfm",
                     baselines: Iterable[str] = ("lgm", "random-real")) -> pd.DataFrame:
    """``method``'s final synthetic sets against each baseline in a record of synthesis runs at equal step
    budgets (``benchmarks/sfm_vs_lgm_cifar10.py``), per IPC and protocol: paired differences over the seeds
    the two share, with 95 % intervals (:func:`ddlib.metrics.paired_difference`), computed from the rows'
    per-seed accuracies. A synthetic baseline is taken at the same step budget (the record's last
    checkpoint); a real set (``steps`` None) pairs its draw ``s`` with distillation seed ``s``, each draw
    made afresh. Rule ``final``: the record's probe, projector and KD heads keep their last epoch. Columns
    :data:`VERSUS_COLUMNS`; empty for None or a record without such rows."""
    from ddlib.metrics import paired_stats

    rows = [r for r in (record.rows if record is not None else []) if "set" in r and isinstance(
        r.get("per_seed"), list) and isinstance(r.get("seeds"), list) and len(r["per_seed"]) == len(r["seeds"])]
    steps = [r["steps"] for r in rows if r.get("set") == method and _is_number(r.get("steps"))]
    out = []
    if steps:
        last = max(steps)
        by = {(r["set"], r.get("ipc"), r.get("protocol")): dict(zip(r["seeds"], r["per_seed"])) for r in rows
              if r.get("steps") in (last, None)}
        for (name, ipc, protocol), mine in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2] or "")):
            if name != method:
                continue
            for base in baselines:
                theirs = by.get((base, ipc, protocol), {})
                common = sorted(set(mine) & set(theirs))
                if not common:
                    continue
                out.append({"method": method, "baseline": base, "ipc": ipc, "protocol": protocol, "rule": "final",
                            **paired_stats([mine[k] for k in common], [theirs[k] for k in common], method, base)})
    return pd.DataFrame(out, columns=VERSUS_COLUMNS)
