"""The cost tables: every time, memory and throughput number of the records, in long form.

A number is a cost when its key says so (``*_s``, ``*seconds*``, ``*time*``, ``*mem*``, ``*bytes*``,
``*per_s``); settings (``config``, provenance, ``dataset``...) never are. Chapter 5 ("Every recorded time
and memory number") shows them all.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from ddlib.results.records import _NUMBER_WORDS, Record, _is_number, _prov, device_words, load

__all__ = ["BOOK_DEFAULT_SCALE", "COST_COLUMNS", "chapter_time", "cost_appendix", "cost_table"]

COST_COLUMNS = ["source", "case", "metric", "value", "unit", "device", "date", "commit", "command"]
# parts of a record that describe settings or identity, not measurements
_NOT_COSTS = {"what", "provenance", "config", "dataset", "paired", "modelling", "synthetic_provenance"}
_COST_KEY = re.compile(r"(^|_)(s|sec|seconds|time|wall|mem|memory|bytes|per_s)($|_)|seconds|per_s$|bytes$")


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


#: how the appendix shows each unit: (order, divisor, unit shown, decimals)
_SHOWN = {"s": (0, 1.0, "s", 3), "bytes": (1, 2.0**20, "MiB", 1), "1/s": (2, 1.0, "/s", 1)}


def cost_appendix(records: Iterable[Record] | None = None, *,
                  key: str = "cost") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Every recorded time, memory and throughput number (:func:`cost_table`) as the book's appendix shows
    them: seconds first, then memory (MiB), then throughput; one row per number with its record, case,
    metric, value with its unit ("12.345 s", "45.6 MiB"), device and date (the commit of each record is in
    :func:`~ddlib.results.records_overview`'s table). The table is whole (hundreds of rows, never cut).

    Glue: ``<key>_n_rows`` (every number), ``<key>_n_rows_duration``, ``<key>_n_rows_memory``,
    ``<key>_n_rows_throughput``, ``<key>_n_records`` (the records they come from). Chapter 5 ("Every recorded
    time and memory number") uses it.
    """
    from ddlib.plots.tables import whole_table

    t = cost_table(records)
    order = t.unit.map(lambda u: _SHOWN[u][0])
    t = t.assign(_order=order).sort_values(["_order", "source"], kind="stable")
    value = [f"{v / _SHOWN[u][1]:,.{_SHOWN[u][3]}f} {_SHOWN[u][2]}" for v, u in zip(t.value, t.unit, strict=True)]
    table = pd.DataFrame({"record": t.source.values, "case": t.case.values, "metric": t.metric.values,
                          "value": value, "device": t.device.values, "date": t.date.values})
    glue: dict[str, str | float] = {f"{key}_n_rows": len(t), f"{key}_n_rows_duration": int((t.unit == "s").sum()),
                                    f"{key}_n_rows_memory": int((t.unit == "bytes").sum()),
                                    f"{key}_n_rows_throughput": int((t.unit == "1/s").sum()),
                                    f"{key}_n_records": int(t.source.nunique())}
    return whole_table(table), glue


def _minutes(seconds: float) -> str:
    """A duration as a reader says it: "under a minute", "about 4 minutes", "about 1.5 hours"."""
    if seconds < 60:
        return "under a minute"
    if seconds < 90 * 60:
        m = round(seconds / 60)
        return f"about {m} minute{'s' if m != 1 else ''}"
    return f"about {seconds / 3600:.1f} hours"


#: what a whole book build's record calls its scale: every chapter at its default, the ``cpu`` scale
BOOK_DEFAULT_SCALE = "chapter defaults (make book)"


def chapter_time(chapter: str, records: Iterable[Record] | None = None, *, scale: str = "cpu",
                 key: str = "chapter") -> dict[str, str | float]:
    """What a chapter cost at the book's default scale, from the newest record that timed it: a whole book
    build (``benchmarks/book_build_time.py``: ``chapter_seconds``), else ``benchmarks/chapter_times.py``'s
    rows (``chapter``, ``wall_s``). ``chapter`` is the notebook's name, e.g. ``"02_balanced_selection"``.

    Returns glue: ``<key>_seconds`` (0.0 when none recorded), ``<key>_time`` ("about 8 minutes", or "not
    recorded yet"), ``<key>_time_where`` ("on 2 CPU threads in the book build of 2026-12-01"; the
    record's device and date) and ``<key>_time_source`` (the record's file). A rerun with a filled cache takes
    less. ``scale``: only records of that scale count (a book build runs every chapter at ``cpu``, its
    default), so a workshop-scale timing never stands for the book's. Every chapter's opening cites it."""
    records = load() if records is None else list(records)
    found: list[tuple[str, float, str, Record]] = []
    accepted = {scale, BOOK_DEFAULT_SCALE} if scale == "cpu" else {scale}
    for rec in records:
        for row in rec.rows if isinstance(rec.rows, list) else []:
            if not isinstance(row, dict):
                continue
            if (row.get("scale") or (rec.config or {}).get("scale")) not in accepted:
                continue
            secs = (row.get("chapter_seconds") or {}).get(chapter) if isinstance(row.get("chapter_seconds"),
                                                                                 dict) else None
            if _is_number(secs):
                jobs = row.get("jobs")  # a parallel build (python -m ddlib book --jobs N): N chapters at once
                threads = rec.provenance.get("threads")
                each = (max(1, int(threads) // int(jobs)) if _is_number(threads) and _is_number(jobs) else None)
                side = (f", {_NUMBER_WORDS.get(int(jobs), jobs)} chapters at a time" + (
                    f" ({_NUMBER_WORDS.get(each, each)} thread{'' if each == 1 else 's'} each)" if each else "")
                        if _is_number(jobs) and int(jobs) > 1 else "")
                found.append((str(rec.provenance.get("date")), float(secs), "the book build of {date}, from an "
                              f"empty cache{side}", rec))
            elif row.get("chapter") == chapter and _is_number(row.get("wall_s")) and row.get("status", "ok") == "ok":
                date = str((row.get("provenance") or {}).get("date") or rec.provenance.get("date"))
                found.append((date, float(row["wall_s"]), "a run of the chapter of {date}", rec))
    if not found:
        return {f"{key}_seconds": 0.0, f"{key}_time": "not recorded yet", f"{key}_time_where": "",
                f"{key}_time_source": "none yet"}
    date, secs, what, rec = max(found, key=lambda f: f[0])
    device = device_words(rec)
    return {f"{key}_seconds": round(secs, 1), f"{key}_time": _minutes(secs),
            f"{key}_time_where": f"on {device} in {what.format(date=date[:10])}",
            f"{key}_time_source": rec.source}
