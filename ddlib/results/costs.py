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

from ddlib.results.records import Record, _is_number, _prov, load

__all__ = ["COST_COLUMNS", "cost_appendix", "cost_table"]

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
