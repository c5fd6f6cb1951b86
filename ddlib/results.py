"""Recorded results as tidy tables: every result JSON under ``results/`` and ``benchmarks/results/``.

Every record is a JSON object carrying ``provenance`` (command, commit, device, date; see
:func:`ddlib.utils.provenance`). The writers of the project use a few schemas; this module reads
them all into two tables:

- :func:`accuracy_table`: one row per (record, method, IPC, evaluation protocol) with the accuracy's
  mean/std over seeds and the provenance. Schemas understood: ``rows`` of BPS/baseline students
  (``benchmarks/bps_results.py``), ``results`` of synthetic-set evaluations
  (``benchmarks/sfm_ci_cifar10.py``), a single ``python -m ddlib evaluate`` record
  (``mean``/``per_seed``) and a single ``python -m ddlib evaluate-synthetic`` record (``acc``/``mode``).
- :func:`cost_table`: one row per measured time, memory or throughput number anywhere in a record
  (keys such as ``*_s``, ``seconds``, ``wall_time``, ``peak_mem_bytes``, ``images_per_s``), in long
  form with its unit, so benchmarks of any shape land in one table.

A record of a schema not listed above still loads (it appears in :func:`records_table` and, for
its costs, in :func:`cost_table`). A file that is not valid JSON, not an object (or a list of
objects), or lacks provenance raises :class:`ResultsError` naming the file: a broken record is
never skipped silently.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: where recorded results live, relative to the repository root
RESULT_DIRS = ("results", "benchmarks/results")
PROVENANCE_KEYS = ("command", "commit", "device", "date")
_WALL_KEYS = ("wall_s", "wall_seconds", "wall_time_s", "wall_time")
# parts of a record that describe settings, not measurements
_SETTINGS_KEYS = {"provenance", "config", "settings", "budgets", "setup", "student_config", "probe_config",
                  "golden_config", "synthetic_config", "synthetic_provenance", "dataset", "parameters", "modelling",
                  "selection_config"}
_COST_KEY = re.compile(r"(^|_)(s|sec|seconds|time|wall|mem|memory|bytes|per_s)($|_)|seconds|per_s$|bytes$")

ACCURACY_COLUMNS = ["source", "method", "dataset", "ipc", "protocol", "accuracy_mean", "accuracy_std", "seeds",
                    "device", "date", "commit", "command", "wall_s"]
COST_COLUMNS = ["source", "case", "metric", "value", "unit", "device", "date", "commit", "command"]


class ResultsError(ValueError):
    """A result file is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Record:
    """One recorded result: its file (relative to the repository when inside it), data and provenance."""

    source: str
    data: dict[str, Any] = field(repr=False)
    provenance: dict[str, Any]

    @property
    def wall_s(self) -> float | None:
        """The run's wall time in seconds, wherever the writer put it (provenance or top level).

        A BPS record's ``pipeline_wall_seconds`` (select + every evaluation) wins over its provenance's
        ``wall_seconds``, which times only the gathering script (seconds when it reuses earlier runs).
        """
        if _is_number(self.data.get("pipeline_wall_seconds")):
            return float(self.data["pipeline_wall_seconds"])
        for where in (self.provenance, self.data):
            for k in _WALL_KEYS:
                v = where.get(k)
                if _is_number(v):
                    return float(v)
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _source(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _check(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ResultsError(f"{where}: a result must be a JSON object, got {type(obj).__name__}")
    prov = obj.get("provenance")
    if not isinstance(prov, dict):
        raise ResultsError(f"{where}: no 'provenance' object (command, commit, device, date); "
                           "write it with ddlib.utils.provenance()")
    missing = [k for k in PROVENANCE_KEYS if not prov.get(k)]
    if missing:
        raise ResultsError(f"{where}: provenance lacks {missing}")
    return prov


def load_file(path: str | Path) -> list[Record]:
    """The records of one JSON file (an object, or a list of objects such as a sweep's ``results.json``).

    Raises :class:`ResultsError` naming the file when it is unreadable, not JSON, or lacks provenance.
    """
    path = Path(path)
    src = _source(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{src}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{src}: not valid JSON ({e})") from None
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise ResultsError(f"{src}: an empty list holds no result")
    out = []
    for i, item in enumerate(items):
        where = src if len(items) == 1 and not isinstance(obj, list) else f"{src}[{i}]"
        out.append(Record(where, item, _check(item, where)))
    return out


def result_files(dirs: Iterable[str | Path] | None = None) -> list[Path]:
    """Every ``*.json`` below ``dirs`` (default: :data:`RESULT_DIRS` of the repository), sorted."""
    roots = [ROOT / d for d in RESULT_DIRS] if dirs is None else [Path(d) for d in dirs]
    return sorted(f for r in roots if r.is_dir() for f in r.rglob("*.json") if f.is_file())


def load(dirs: Iterable[str | Path] | None = None) -> list[Record]:
    """Every record under ``dirs`` (default: ``results/`` and ``benchmarks/results/``)."""
    return [rec for f in result_files(dirs) for rec in load_file(f)]


def records_table(records: Iterable[Record]) -> pd.DataFrame:
    """One row per record: source, what it is, device, date, commit, command, wall time."""
    rows = [{"source": r.source, "what": r.data.get("what") or r.data.get("benchmark") or r.data.get("run") or "",
             "device": r.provenance["device"], "date": r.provenance["date"], "commit": str(r.provenance["commit"])[:10],
             "command": r.provenance["command"], "wall_s": r.wall_s} for r in records]
    return pd.DataFrame(rows, columns=["source", "what", "device", "date", "commit", "command", "wall_s"])


# ----------------------------------------------------------------------------- accuracy
def _dataset_name(rec: Record, row: dict[str, Any] | None = None) -> str:
    """The dataset's short name: ``cifar10:/a/b.tar.xz`` -> ``cifar10``."""
    for d in (row or {}, rec.data):
        ds = d.get("dataset")
        name = ds.get("name") if isinstance(ds, dict) else ds
        if isinstance(name, str) and name:
            return name.split(":")[0] if ":" in name else name.split("/")[-1]
    return ""


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _spread(std: Any, samples: Any) -> float:
    """A row's recorded standard deviation, else that of its per-seed values (0 without them)."""
    return float(std) if _is_number(std) else _std(samples if isinstance(samples, list) else [])


def _accuracy_rows(rec: Record) -> Iterator[dict[str, Any]]:
    d = rec.data
    rows = d.get("rows")
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows) and \
            any("method" in r and "mean" in r for r in rows):
        # BPS vs baselines: students on selections (benchmarks/bps_results.py)
        frac = (d.get("budgets") or {}).get("centre_frac")  # an ablation of BPS's centre/margin split
        for r in rows:
            if "method" not in r or not _is_number(r.get("mean")):
                continue
            st = r.get("student_config") or {}
            seeds = r.get("per_seed")
            method = f"bps (centre share {frac:g})" if r["method"] == "bps" and _is_number(frac) else r["method"]
            yield {"method": method, "dataset": _dataset_name(rec, r), "ipc": r.get("ipc"),
                   "protocol": f"{st.get('loss', 'kd')} student" + (f" ({st['model']})" if st.get("model") else ""),
                   "accuracy_mean": float(r["mean"]),
                   "accuracy_std": _spread(r.get("std"), seeds),
                   "seeds": len(seeds) if isinstance(seeds, list) else None}
        return
    results = d.get("results")
    if isinstance(results, list) and any(isinstance(r, dict) and "acc" in r for r in results):
        # synthetic sets vs real baselines, probe / CI / KD (benchmarks/sfm_ci_cifar10.py)
        for r in results:
            if not isinstance(r, dict) or not _is_number(r.get("acc")):
                continue
            accs = r.get("accs")
            proto = r.get("mode", "")
            if r.get("eval_backbone"):
                proto = f"{proto} on {r['eval_backbone']}"
            yield {"method": r.get("set") or r.get("method"), "dataset": _dataset_name(rec, r), "ipc": r.get("ipc"),
                   "protocol": proto, "accuracy_mean": float(r["acc"]),
                   "accuracy_std": _spread(r.get("acc_std"), accs),
                   "seeds": len(accs) if isinstance(accs, list) else None}
        return
    if _is_number(d.get("mean")) and isinstance(d.get("per_seed"), list):
        # one `python -m ddlib evaluate` record
        cfg = d.get("config") or {}
        yield {"method": d.get("method"), "dataset": _dataset_name(rec), "ipc": d.get("ipc"),
               "protocol": f"{cfg.get('loss', 'kd')} student" + (f" ({cfg['model']})" if cfg.get("model") else ""),
               "accuracy_mean": float(d["mean"]), "accuracy_std": float(d.get("std") or 0.0),
               "seeds": len(d["per_seed"])}
        return
    if _is_number(d.get("acc")) and "mode" in d:
        # one `python -m ddlib evaluate-synthetic` record
        accs = (d.get("result") or {}).get("accs")
        yield {"method": d.get("method"), "dataset": _dataset_name(rec), "ipc": d.get("ipc"),
               "protocol": f"{d['mode']} on {d.get('backbone', '?')}", "accuracy_mean": float(d["acc"]),
               "accuracy_std": float(d.get("acc_std") or 0.0), "seeds": len(accs) if isinstance(accs, list) else None}


def accuracy_table(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracies (fractions in [0, 1]) of every record that has some, with provenance per row.

    ``records`` default: :func:`load` of the repository's result folders.
    """
    records = load() if records is None else records
    rows = []
    for rec in records:
        for r in _accuracy_rows(rec):
            rows.append({"source": rec.source, **r, "device": rec.provenance["device"], "date": rec.provenance["date"],
                         "commit": str(rec.provenance["commit"])[:10], "command": rec.provenance["command"],
                         "wall_s": rec.wall_s})
    df = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    df["ipc"] = pd.to_numeric(df["ipc"], errors="coerce").astype("Int64")
    df["seeds"] = pd.to_numeric(df["seeds"], errors="coerce").astype("Int64")
    return df


# options of benchmarks/bps_results.py that do not change what a selection or a student is
_RUN_ONLY = {"centre_frac", "methods", "ipc", "work", "out", "notes", "resume", "gather", "scale"}


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ba, bb = a.get("budgets") or {}, b.get("budgets") or {}
    keys = (set(ba) | set(bb)) - _RUN_ONLY
    return a.get("dataset") == b.get("dataset") and all(ba.get(k) == bb.get(k) for k in keys)


def bps_split_ablation(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """BPS's centre/margin split ablated: per ablation record (``bps_results.py --centre-frac``), its
    rows beside BPS at the reference split and random selection from the record of the same run
    (same dataset subsample and budgets). Columns: ``selection``, ``centre_share`` (None for
    random), ``ipc``, accuracy mean/std, ``device``, ``source``.
    """
    records = load() if records is None else list(records)
    bps = [r for r in records if isinstance(r.data.get("rows"), list) and isinstance(r.data.get("budgets"), dict)]
    out = []
    for abl in bps:
        frac = abl.data["budgets"].get("centre_frac")
        if not _is_number(frac):
            continue
        refs = [r for r in bps if r is not abl and not _is_number(r.data["budgets"].get("centre_frac"))
                and _same_run(r.data, abl.data)]
        picked = [(abl, row, float(frac)) for row in abl.data["rows"] if row.get("method") == "bps"]
        for ref in refs[-1:]:  # the newest file of that run, when several
            picked += [(ref, row, 0.5 if row["method"] == "bps" else None) for row in ref.data["rows"]
                       if row.get("method") in ("bps", "random")]
        for rec, row, share in picked:
            if not _is_number(row.get("mean")):
                continue
            out.append({"selection": "random" if share is None else f"bps, centre share {share:g}",
                        "centre_share": share, "ipc": row.get("ipc"), "accuracy_mean": float(row["mean"]),
                        "accuracy_std": _spread(row.get("std"), row.get("per_seed")),
                        "device": rec.provenance["device"], "source": rec.source})
    cols = ["selection", "centre_share", "ipc", "accuracy_mean", "accuracy_std", "device", "source"]
    return pd.DataFrame(out, columns=cols).drop_duplicates(["selection", "ipc", "source"]).reset_index(drop=True)


def synthesis_by_steps(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracy of synthetic and real sets per recorded synthesis run with its step budget.

    One row per result of every ``benchmarks/sfm_ci_cifar10.py`` record: ``steps`` (the
    distillation steps of that run's synthetic sets; the real sets do not depend on them), ``set``,
    ``ipc``, ``distill_backbone``, ``eval_backbone``, ``mode``, accuracy mean/std, ``device``, ``source``.
    """
    records = load() if records is None else list(records)
    out = []
    for rec in records:
        settings, rows = rec.data.get("settings"), rec.data.get("results")
        if not isinstance(settings, dict) or not isinstance(rows, list):
            continue
        distill = (rec.data.get("distill_backbone") or {}).get("name")
        for r in rows:
            if isinstance(r, dict) and _is_number(r.get("acc")):
                out.append({"steps": settings.get("steps"), "set": r.get("set"), "ipc": r.get("ipc"),
                            "distill_backbone": distill, "eval_backbone": r.get("eval_backbone"), "mode": r.get("mode"),
                            "accuracy_mean": float(r["acc"]), "accuracy_std": _spread(r.get("acc_std"), r.get("accs")),
                            "device": rec.provenance["device"], "source": rec.source})
    cols = ["steps", "set", "ipc", "distill_backbone", "eval_backbone", "mode", "accuracy_mean", "accuracy_std", "device", "source"]
    return pd.DataFrame(out, columns=cols)


# ----------------------------------------------------------------------------- cost
def _unit(key: str) -> str:
    k = key.lower()
    if "per_s" in k:
        return "1/s"
    if "mem" in k or "bytes" in k:
        return "bytes"
    return "s"


def _label(item: dict[str, Any]) -> str:
    """What identifies one element of a list of measurements: its text fields and a few sizes."""
    parts = []
    for k, v in item.items():
        if isinstance(v, str) and k not in ("status", "peak_mem_kind", "what") and len(v) < 60:
            parts.append(v)
        elif k.lower() in ("ipc", "side", "batch", "n", "chunk_size", "image_size") and _is_number(v):
            parts.append(f"{k}={v}")
        elif isinstance(v, bool) and v:
            parts.append(k)
    return " ".join(parts)


def _walk_costs(obj: Any, path: list[str]) -> Iterator[tuple[str, str, float]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _SETTINGS_KEYS:
                continue
            if _is_number(v) and _COST_KEY.search(k.lower()):
                yield " / ".join(path), k, float(v)
            elif isinstance(v, list) and v and all(_is_number(x) for x in v) and _COST_KEY.search(k.lower()):
                yield " / ".join(path), k, float(sum(v) / len(v))  # repeated timings: their mean
            elif isinstance(v, (dict, list)):
                yield from _walk_costs(v, [*path, str(k)])
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, dict):
                yield from _walk_costs(v, [*path, _label(v) or str(i)])


def cost_table(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Every time (s), memory (bytes) and throughput (1/s) number of the records, in long form.

    ``case`` locates the number in its record (e.g. ``rows / efficientnet-lite0 sfm IPC=1``);
    a list of repeated timings counts as its mean. The run's own wall time is one row
    (``metric="wall_s"``, ``case="(whole run)"``).
    """
    records = load() if records is None else records
    rows = []
    for rec in records:
        prov = {"device": rec.provenance["device"], "date": rec.provenance["date"],
                "commit": str(rec.provenance["commit"])[:10], "command": rec.provenance["command"]}
        if rec.wall_s is not None:
            rows.append({"source": rec.source, "case": "(whole run)", "metric": "wall_s", "value": rec.wall_s,
                         "unit": "s", **prov})
        for case, metric, value in _walk_costs({k: v for k, v in rec.data.items() if k not in _WALL_KEYS}, []):
            rows.append({"source": rec.source, "case": case or "(top level)", "metric": metric, "value": value,
                         "unit": _unit(metric), **prov})
    return pd.DataFrame(rows, columns=COST_COLUMNS)
