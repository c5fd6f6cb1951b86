"""Result records: one writer, one schema, and the tables the book shows.

Every result the project records (``results/``, ``benchmarks/results/``, and every JSON the CLI writes)
is written by :func:`write` as one JSON object of this schema::

    {"what": "one line: what was measured",
     "provenance": {"command", "commit", "device", "date", "threads", "load_average"},
     "config": {...},         # the settings that produced the numbers (configs, presets' flat names)
     "rows": [{...}, ...],    # the measurements, one object per case
     "timings": {"wall_s": ..., ...},
     ...}                     # anything else the writer adds (``**extra``)

``timings["wall_s"]`` is the wall time of the run that wrote the record (``None`` only for a record that
merges several runs). A record whose numbers were loaded rather than computed (from the artifact
cache, or gathered from earlier runs) says so: ``"cached": true``, with the original run's time under
``"original_wall_s"`` when it is known; an old time is never passed off as new.

An *accuracy row* carries ``method``, ``dataset`` (a short name, :func:`dataset_label`), ``ipc``,
``protocol`` and ``mean`` (a fraction in [0, 1]) with, over seeds, ``std``, ``per_seed`` and ``seeds``, and
for students the ``rule`` their accuracy was read by (:data:`RULES`; BPS student rows without one were
recorded with the reference's best-of-last-epochs).
A BPS record may add a ``paired`` table (method, baseline, ipc, protocol, rule, n_seeds, diff_mean,
ci95) through ``**extra``; :func:`paired_table` collects it. The files are strict JSON: a non-finite
float is written as ``null``.

Readers: :func:`accuracy_table` (every accuracy row with its provenance), :func:`cost_table` (every
time, memory and throughput number, long form), :func:`records_table`, :func:`bps_split_ablation`,
:func:`synthesis_by_steps`, :func:`synthesis_cost_curve`, :func:`latest_synthesis` and :func:`synthesis_versus`
(SFM against LGM at equal steps), :func:`paired_table`. A file that is not valid JSON or not of the schema raises :class:`ResultsError`
naming the file: a broken record is never skipped silently.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: where recorded results live, relative to the repository root
RESULT_DIRS = ("results", "benchmarks/results")
KEYS = ("what", "provenance", "config", "rows", "timings")
PROVENANCE_KEYS = ("command", "commit", "device", "date")
# parts of a record that describe settings or identity, not measurements
_NOT_COSTS = {"what", "provenance", "config", "dataset", "paired", "modelling", "synthetic_provenance"}
_COST_KEY = re.compile(r"(^|_)(s|sec|seconds|time|wall|mem|memory|bytes|per_s)($|_)|seconds|per_s$|bytes$")

ACCURACY_COLUMNS = ["source", "method", "dataset", "ipc", "protocol", "rule", "accuracy_mean", "accuracy_std", "seeds",
                    "device", "date", "commit", "command", "wall_s"]
#: how a student's accuracy was read: the reference's best over its last epochs, or the final epoch's
RULES = {"best_last": "best of the last epochs", "final": "final epoch"}
COST_COLUMNS = ["source", "case", "metric", "value", "unit", "device", "date", "commit", "command"]
PAIRED_COLUMNS = ["method", "baseline", "ipc", "protocol", "rule", "n_seeds", "diff_mean", "ci95", "excludes_zero",
                  "verdict", "dataset", "device", "date", "commit", "source"]


class ResultsError(ValueError):
    """A result file is malformed; the message names the file and what is wrong."""


# ----------------------------------------------------------------------------- writing
def provenance(command: str | None = None) -> dict[str, Any]:
    """Command, commit, device, date (:func:`ddlib.utils.provenance`), torch's threads, the load average,
    the CPU count and the versions (:func:`ddlib.utils.environment_info`); under torchrun also the processes
    (:func:`ddlib.distributed.describe`)."""
    import torch

    from ddlib import distributed
    from ddlib.utils import environment_info
    from ddlib.utils import provenance as base

    return {**base(command), "threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
            "environment": environment_info(), **distributed.describe()}


def dataset_label(name: Any) -> str:
    """A dataset's short name for tables: ``cifar10:/a/b.tar.xz`` -> ``cifar10``, ``a/b`` -> ``b``."""
    if isinstance(name, Mapping):
        name = name.get("name")
    if not isinstance(name, str) or not name:
        return ""
    from ddlib.data import split_name

    head, path = split_name(name)
    return head if path is not None else head.split("/")[-1]


def strict(obj: Any) -> Any:
    """``obj`` as JSON-able values (dataclass configs as dicts), every non-finite float as None."""
    from ddlib.utils import json_safe

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    obj = json_safe(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # a 0-d tensor
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write(path: str | os.PathLike, *, what: str, config: Any, rows: list[dict[str, Any]], timings: dict[str, Any],
          command: str | None = None, provenance_extra: Mapping[str, Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    """Write one record of the schema above to ``path`` atomically (temporary file, then rename); return it.
    Under torchrun only rank 0 writes; every rank returns the record.

    ``config``: a dict (dataclass configs inside become dicts) or a dataclass; ``timings`` must hold
    ``wall_s``; ``command``: what reproduces the run (default: this process's command line);
    ``provenance_extra``: more about the machine for the provenance (e.g. the load before the run);
    ``extra``: further top-level keys.
    """
    if not isinstance(what, str) or not what:
        raise ValueError("what must be a non-empty string saying what was measured")
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise ValueError("rows must be a list of objects (one per measured case)")
    if not isinstance(timings, Mapping) or "wall_s" not in timings:
        raise ValueError("timings must hold 'wall_s' (the wall time of this run)")
    record = {"what": what, "provenance": {**provenance(command), **dict(provenance_extra or {})}, "config": config,
              "rows": rows,
              "timings": dict(timings), **extra}
    return _dump(Path(path), record)


def _dump(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Check ``record`` against the schema and write it as strict JSON, atomically."""
    from ddlib import distributed
    from ddlib.artifacts import write_bytes_atomic

    record = strict(record)
    _check(record, str(path))
    if distributed.is_main():  # under torchrun one file, written once
        write_bytes_atomic(path, (json.dumps(record, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode())
    return record


# ----------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Record:
    """One recorded result: its file (relative to the repository when inside it) and its data."""

    source: str
    data: dict[str, Any] = field(repr=False)

    provenance = property(lambda self: self.data["provenance"])
    what = property(lambda self: self.data["what"])
    config = property(lambda self: self.data["config"])
    rows = property(lambda self: self.data["rows"])
    timings = property(lambda self: self.data["timings"])

    @property
    def wall_s(self) -> float | None:
        """The wall time of the run that produced the numbers: ``original_wall_s`` for a record gathered or
        loaded from earlier runs, else ``wall_s``."""
        t = self.timings
        for k in ("original_wall_s", "wall_s"):
            if _is_number(t.get(k)):
                return float(t[k])
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _source(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _check(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` if it is a record of the schema, else :class:`ResultsError` naming ``where`` and the fault."""
    if not isinstance(obj, dict):
        raise ResultsError(f"{where}: a result must be a JSON object, got {type(obj).__name__}")
    prov = obj.get("provenance")
    if not isinstance(prov, dict):
        raise ResultsError(f"{where}: no 'provenance' object (command, commit, device, date); "
                           "write the record with ddlib.results.write")
    missing = [k for k in PROVENANCE_KEYS if not prov.get(k)]
    if missing:
        raise ResultsError(f"{where}: provenance lacks {missing}")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise ResultsError(f"{where}: lacks {missing} (a record holds {list(KEYS)}; write it with "
                           "ddlib.results.write)")
    if not isinstance(obj["what"], str) or not obj["what"]:
        raise ResultsError(f"{where}: 'what' must be a non-empty string")
    if not isinstance(obj["config"], dict):
        raise ResultsError(f"{where}: 'config' must be an object")
    if not isinstance(obj["rows"], list) or not all(isinstance(r, dict) for r in obj["rows"]):
        raise ResultsError(f"{where}: 'rows' must be a list of objects")
    if not isinstance(obj["timings"], dict) or "wall_s" not in obj["timings"]:
        raise ResultsError(f"{where}: 'timings' must be an object holding 'wall_s'")
    return obj


def load_file(path: str | Path) -> list[Record]:
    """The records of one JSON file (a record, or a list of records).

    Raises :class:`ResultsError` naming the file when it is unreadable, not JSON, or not of the schema.
    """
    path = Path(path)
    src = _source(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{src}: cannot be read ({e})") from None
    try:
        obj = json.loads(text, parse_constant=lambda c: _raise(ResultsError(f"{src}: {c} is not JSON; "
                                                                           "write null for a missing number")))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{src}: not valid JSON ({e})") from None
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise ResultsError(f"{src}: an empty list holds no result")
    out = []
    for i, item in enumerate(items):
        where = src if not isinstance(obj, list) else f"{src}[{i}]"
        out.append(Record(where, _check(item, where)))
    return out


def _raise(e: Exception) -> Any:
    raise e


def result_files(dirs: Iterable[str | Path] | None = None) -> list[Path]:
    """Every ``*.json`` below ``dirs`` (default: :data:`RESULT_DIRS` of the repository), sorted."""
    roots = [ROOT / d for d in RESULT_DIRS] if dirs is None else [Path(d) for d in dirs]
    return sorted(f for r in roots if r.is_dir() for f in r.rglob("*.json") if f.is_file())


def load(dirs: Iterable[str | Path] | None = None) -> list[Record]:
    """Every record under ``dirs`` (default: ``results/`` and ``benchmarks/results/``)."""
    return [rec for f in result_files(dirs) for rec in load_file(f)]


def _prov(rec: Record) -> dict[str, Any]:
    p = rec.provenance
    return {"device": p["device"], "date": p["date"], "commit": str(p["commit"])[:10], "command": p["command"]}


def records_table(records: Iterable[Record]) -> pd.DataFrame:
    """One row per record: source, what it is, device, date, commit, command, wall time."""
    rows = [{"source": r.source, "what": r.what, **_prov(r), "wall_s": r.wall_s} for r in records]
    return pd.DataFrame(rows, columns=["source", "what", "device", "date", "commit", "command", "wall_s"])


# ----------------------------------------------------------------------------- accuracy
def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _spread(row: Mapping[str, Any]) -> float:
    """A row's recorded standard deviation, else that of its per-seed values (0 without them)."""
    std, samples = row.get("std"), row.get("per_seed")
    return float(std) if _is_number(std) else _std(samples if isinstance(samples, list) else [])


def _n_seeds(row: Mapping[str, Any]) -> int | None:
    for k in ("per_seed", "seeds"):
        if isinstance(row.get(k), list):
            return len(row[k])
    return None


def accuracy_rows(rec: Record) -> Iterator[dict[str, Any]]:
    """The record's accuracy rows (method, protocol and a numeric mean), as ``accuracy_table`` rows.

    BPS rows of a record whose config sets ``centre_frac`` (an ablation of the centre/margin split)
    keep it in their method's name.
    """
    frac = rec.config.get("centre_frac")
    for r in rec.rows:
        if "method" not in r or "protocol" not in r or not _is_number(r.get("mean")):
            continue
        method = f"bps (centre share {frac:g})" if r["method"] == "bps" and _is_number(frac) else r["method"]
        yield {"method": method, "dataset": r.get("dataset", ""), "ipc": r.get("ipc"), "protocol": r["protocol"],
               "rule": r.get("rule", "best_last" if "student" in str(r["protocol"]) else None),
               "accuracy_mean": float(r["mean"]), "accuracy_std": _spread(r), "seeds": _n_seeds(r)}


def accuracy_table(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracies (fractions in [0, 1]) of every record that has some, with provenance per row.

    ``records`` default: :func:`load` of the repository's result folders.
    """
    records = load() if records is None else records
    rows = [{"source": rec.source, **r, **_prov(rec), "wall_s": rec.wall_s} for rec in records
            for r in accuracy_rows(rec)]
    df = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    df["ipc"] = pd.to_numeric(df["ipc"], errors="coerce").astype("Int64")
    df["seeds"] = pd.to_numeric(df["seeds"], errors="coerce").astype("Int64")
    return df


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
                        "accuracy_std": _spread(row), "device": rec.provenance["device"], "source": rec.source})
    cols = ["selection", "centre_share", "ipc", "accuracy_mean", "accuracy_std", "device", "source"]
    return pd.DataFrame(out, columns=cols).drop_duplicates(["selection", "ipc", "source"]).reset_index(drop=True)


def synthesis_by_steps(records: Iterable[Record] | None = None) -> pd.DataFrame:
    """Accuracy of synthetic and real sets per recorded synthesis run with its step budget.

    One row per accuracy row (with a ``mode``) of every record whose config sets ``steps`` (written by
    ``benchmarks/sfm_ci_cifar10.py``): ``steps`` (the distillation steps of that run's synthetic sets;
    the real sets do not depend on them), ``set``, ``ipc``, ``distill_backbone``, ``eval_backbone``,
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
                            "eval_backbone": r.get("eval_backbone"), "mode": r["mode"],
                            "accuracy_mean": float(r["mean"]), "accuracy_std": _spread(r),
                            "device": rec.provenance["device"], "source": rec.source})
    cols = ["steps", "set", "ipc", "distill_backbone", "eval_backbone", "mode", "accuracy_mean", "accuracy_std",
            "device", "source"]
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
                   "complete": bool(rec.data.get("complete", True)), "device": rec.provenance["device"],
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


def latest_synthesis(records: Iterable[Record] | None = None) -> Record | None:
    """The newest record (by date) of synthesis runs at equal step budgets (``sfm_vs_lgm_cifar10.py``: it has
    ``runs`` and ``checkpoints``), joined with every other such record of the same config but for its
    IPCs, seeds and random real draws (the same data, backbones, steps, heads and departures), or None
    when none is recorded.

    More seeds can be run later as a record of their own (``--seeds 3,4 --out ...``; more random real draws
    with ``--seeds '' --real-seeds 3,4``); joined, each row holds every seed's accuracy once (the newest
    record's where two hold the same seed: a real set drawn by both), with its mean and population std
    over them (as the script writes them), and ``runs`` holds every run. The result's ``source`` names
    every file, joined by " + ", with ``merged_from`` (each file's source, commit, date, IPCs, seeds and
    real draws), and it is ``complete`` only if every part is."""
    records = load() if records is None else list(records)
    found = sorted((r for r in records if _is_synthesis(r)), key=lambda r: str(r.provenance.get("date")),
                   reverse=True)
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


VERSUS_COLUMNS = ["method", "baseline", "ipc", "protocol", "rule", "n_seeds", "diff_mean", "ci95", "excludes_zero",
                  "verdict"]
CLAIM_SEEDS = 5  # the fewest paired seeds behind a claim (fewer: a measurement, stated as such)


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
                            "device": rec.provenance["device"], "date": rec.provenance["date"],
                            "commit": str(rec.provenance["commit"])[:10], "source": rec.source})
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def _modelling_of(rec: Record) -> Any:
    """What makes two evidence records' numbers comparable: the data, the modelling (Stage 1's key), the
    teacher's and the students' settings, and the seeds; everything but which IPCs were run."""
    c = rec.config
    pipeline = {k: v for k, v in (c.get("pipeline") or {}).items() if k != "select"}
    return json.dumps([c.get("dataset"), c.get("teacher_dataset"), pipeline, c.get("students"), c.get("seeds"),
                       (rec.data.get("modelling") or {}).get("modelling_key")], sort_keys=True)


def latest_evidence(dataset: str, records: Iterable[Record] | None = None) -> Record | None:
    """The newest record (by date) of a paired BPS evidence run (``bps_evidence.py``: it has ``paired``
    and ``grid``) on ``dataset`` (a name or its short label), or None when none is recorded.

    A long run may be split by IPC over several invocations (sessions): the IPCs the newest record lacks
    are taken from older records of the same modelling, teacher, students and seeds (newest first), and
    the result is one :class:`Record` whose ``source`` names every file, joined by " + ", with
    ``merged_from`` (each file's source, commit, date, IPCs and teacher accuracy). Records of another
    modelling are never mixed in. The same settings are not the same bits: a modelling trained again in
    another session differs in its last digits (its teacher's accuracy is kept per part, and
    :func:`teacher_text` says so); every paired difference is still within one modelling, per IPC."""
    records = load() if records is None else list(records)
    label = dataset_label(dataset)
    found = sorted((r for r in records if isinstance(r.data.get("paired"), list)
                    and isinstance(r.data.get("grid"), list) and dataset_label(r.config.get("dataset")) == label),
                   key=lambda r: str(r.provenance.get("date")), reverse=True)
    if not found:
        return None
    newest = found[0]

    def ipcs(rec: Record) -> set[int]:
        return {int(g["ipc"]) for g in rec.data["grid"] if isinstance(g, dict) and _is_number(g.get("ipc"))}

    def part(rec: Record, keep: set[int]) -> dict[str, Any]:
        return {"source": rec.source, "commit": rec.provenance["commit"], "date": rec.provenance["date"],
                "ipcs": sorted(keep), "teacher_acc": (rec.data.get("teacher") or {}).get("test_acc")}

    covered, parts, data = ipcs(newest), [part(newest, ipcs(newest))], dict(newest.data)
    for old in found[1:]:
        extra = ipcs(old) - covered
        if not extra or _modelling_of(old) != _modelling_of(newest):
            continue
        for key in ("grid", "paired", "hlr", "rows"):
            mine = [r for r in old.data.get(key) or [] if isinstance(r, dict) and r.get("ipc") in extra]
            data[key] = [*(data.get(key) or []), *mine]
        covered |= extra
        parts.append(part(old, extra))
    if len(parts) == 1:
        return newest
    return Record(" + ".join(p["source"] for p in parts), {**data, "merged_from": parts})


def teacher_text(record: Record | None, missing: str = "not recorded yet") -> str:
    """The teacher of an evidence record in words: "90.7 % on 60,000 images", or per IPC when the record
    joins invocations that each trained it (:func:`latest_evidence`)."""
    t = (record.data.get("teacher") or {}) if record is not None else {}
    if not _is_number(t.get("test_acc")):
        return missing
    size = f" on {int(t['train_size']):,} images" if _is_number(t.get("train_size")) else ""
    parts = [m for m in (record.data.get("merged_from") or []) if _is_number(m.get("teacher_acc"))]
    if len(parts) < 2:
        return f"{100 * t['test_acc']:.1f} %{size}"
    each = "; ".join(f"{100 * m['teacher_acc']:.1f} % for IPC {', '.join(map(str, m['ipcs']))}" for m in parts)
    return f"{each}{size}: the same settings trained in {len(parts)} sessions"


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
    from ddlib.bps.pipeline import paired_table as pairs

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
            if k in _NOT_COSTS or k.endswith("config"):
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

    ``case`` locates the number in its record (e.g. ``rows / efficientnet-lite0 sfm IPC=1``); a list of
    repeated timings counts as its mean. The run's own wall time (:attr:`Record.wall_s`) is one row
    (``metric="wall_s"``, ``case="(whole run)"``).
    """
    records = load() if records is None else records
    rows = []
    for rec in records:
        prov = _prov(rec)
        if rec.wall_s is not None:
            rows.append({"source": rec.source, "case": "(whole run)", "metric": "wall_s", "value": rec.wall_s,
                         "unit": "s", **prov})
        body = {k: v for k, v in rec.data.items() if k != "timings"}
        body["timings"] = {k: v for k, v in rec.timings.items() if k not in ("wall_s", "original_wall_s")}
        for case, metric, value in _walk_costs(body, []):
            rows.append({"source": rec.source, "case": case or "(top level)", "metric": metric, "value": value,
                         "unit": _unit(metric), **prov})
    return pd.DataFrame(rows, columns=COST_COLUMNS)
