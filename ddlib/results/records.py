"""Result records: one writer, one schema, one reader; the vocabulary every table of records shares.

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
recorded with the reference's best-of-last-epochs). The files are strict JSON: a non-finite float is
written as ``null``. A file that is not valid JSON or not of the schema raises :class:`ResultsError`
naming the file: a broken record is never skipped silently. Chapter 5 ("Recorded results") shows them.
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

from ddlib.utils import ROOT, _cpu_threads, provenance

__all__ = ["ACCURACY_COLUMNS", "CLAIM_SEEDS", "KEYS", "PROVENANCE_KEYS", "RESULT_DIRS",
           "VERSUS_COLUMNS", "Record", "ResultsError", "accuracy_rows", "accuracy_table", "dataset_label",
           "device_words", "load", "load_file", "records_overview", "records_table", "result_files", "strict", "write"]

#: where recorded results live, relative to the repository root
RESULT_DIRS = ("results", "benchmarks/results")
KEYS = ("what", "provenance", "config", "rows", "timings")
PROVENANCE_KEYS = ("command", "commit", "device", "date")

ACCURACY_COLUMNS = ["source", "method", "dataset", "ipc", "protocol", "rule", "accuracy_mean", "accuracy_std", "seeds",
                    "device", "date", "commit", "command", "wall_s"]
#: how a student's accuracy was read: the reference's best over its last epochs, or the final epoch's
#: the columns of a paired comparison's rows (selection evidence and synthesis alike)
VERSUS_COLUMNS = ["method", "baseline", "ipc", "protocol", "rule", "n_seeds", "diff_mean", "ci95", "excludes_zero",
                  "verdict"]
CLAIM_SEEDS = 5  # the fewest paired seeds behind a claim (fewer: a measurement, stated as such)


class ResultsError(ValueError):
    """A result file is malformed; the message names the file and what is wrong."""


# ----------------------------------------------------------------------------- writing
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
    def device(self) -> str:
        """The device the record was made on, as a label: "CPU (1 thread)" also for records written as
        "CPU (1 threads)" before :func:`ddlib.utils.provenance` said it right (the label is its, ``_cpu_threads``); any
        other device unchanged."""
        text = str(self.provenance.get("device", ""))
        m = _CPU.fullmatch(text.strip())
        return _cpu_threads(int(m[1])) if m else text

    @property
    def wall_s(self) -> float | None:
        """The wall time of the run that produced the numbers: ``original_wall_s`` for a record gathered or
        loaded from earlier runs, else ``wall_s``."""
        t = self.timings
        for k in ("original_wall_s", "wall_s"):
            if _is_number(t.get(k)):
                return float(t[k])
        return None


_CPU = re.compile(r"CPU \((\d+) threads?\)")
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 8: "eight", 16: "sixteen"}


def device_words(rec: Record) -> str:
    """A record's device for a sentence: "one CPU thread", "two CPU threads", "16 CPU threads"; any other
    device (a GPU's name) as recorded."""
    m = _CPU.fullmatch(rec.device)
    if not m:
        return rec.device
    n = int(m[1])
    return f"{_NUMBER_WORDS.get(n, n)} CPU thread{'' if n == 1 else 's'}"


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
    return {"device": rec.device, "date": p["date"], "commit": str(p["commit"])[:10], "command": p["command"]}


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


def records_overview(records: Iterable[Record] | None = None, *,
                     key: str = "records") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Every record in one table the page holds whole: its file, what it measured, device, date, commit and
    wall time (:func:`records_table` without the command, which is in each file).

    Glue: ``<key>_n`` (records), ``<key>_n_gpu`` (those whose device is not a CPU), ``<key>_n_accuracy_rows``
    (:func:`accuracy_table`'s rows). Chapter 5 ("Recorded results") uses it.
    """
    from ddlib.plots.tables import whole_table

    records = load() if records is None else list(records)
    t = records_table(records)
    wall = [f"{v:,.1f}" if _is_number(v) else "not recorded" for v in t.wall_s]
    table = t[["source", "what", "device", "date", "commit"]].assign(**{"wall time (s)": wall})
    glue: dict[str, str | float] = {f"{key}_n": len(t), f"{key}_n_gpu": int((~t.device.str.startswith("CPU")).sum()),
                                    f"{key}_n_accuracy_rows": len(accuracy_table(records))}
    return whole_table(table), glue
