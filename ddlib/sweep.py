"""Papermill sweeps: run a chapter over a grid of parameters and collect what each run recorded.

How a notebook records results: every scalar it glues with ``myst_nb.glue(name, value)``
(the numbers its prose shows) is a result of the run. :func:`read_results` reads them back
from an executed notebook, so a chapter needs nothing beyond what the book already asks of it.

A sweep (``python -m ddlib sweep NOTEBOOK -p NAME v1,v2 … --out DIR``) writes, for each point
of the grid, ``DIR/<stem>__<name>=<value>__….ipynb`` and, once the run succeeded, a record
``….json`` beside it (parameters, status, results, wall time, provenance). A point whose
record says ``ok`` is skipped on the next call, so an interrupted sweep resumes where it
stopped. A run that fails is recorded with its parameters and error and the others go on.
``DIR/results.csv`` and ``DIR/results.json`` hold one row per point.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddlib.utils import ParamError, check_int, json_safe, provenance

GLUE_PREFIX = "application/papermill.record/"
Scalar = int | float | str | bool | None


def parse_value(text: str) -> Scalar:
    """A command-line value as papermill would inject it: int, float, bool, None, else the string."""
    low = text.strip()
    if low in ("None", "none", "null"):
        return None
    if low in ("True", "true", "False", "false"):
        return low in ("True", "true")
    for conv in (int, float):
        try:
            return conv(low)
        except ValueError:
            pass
    return text


def parse_grid(specs: Sequence[tuple[str, str]]) -> dict[str, list[Scalar]]:
    """``[("ipc", "1,10"), ("seed", "0")]`` -> ``{"ipc": [1, 10], "seed": [0]}``."""
    grid: dict[str, list[Scalar]] = {}
    for name, values in specs:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ParamError(f"-p {name!r}: a parameter name must be a Python identifier")
        if name in grid:
            raise ParamError(f"-p {name}: given twice; list every value once: -p {name} v1,v2")
        vals = [parse_value(v) for v in values.split(",") if v.strip() != ""]
        if not vals:
            raise ParamError(f"-p {name}: no values given; write -p {name} v1,v2,…")
        grid[name] = vals
    return grid


def expand(grid: dict[str, list[Scalar]]) -> list[dict[str, Scalar]]:
    """Every combination of the grid's values, in the order given (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def run_name(stem: str, params: dict[str, Scalar]) -> str:
    """A file-name-safe name of one run: ``00_data__dataset=digits__ipc=10``."""
    def safe(v: Scalar) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(v)).strip("-")[:60] or "empty"

    return "__".join([stem, *(f"{k}={safe(v)}" for k, v in params.items())])


def read_results(path: str | os.PathLike) -> dict[str, Scalar]:
    """The scalars an executed notebook glued (``myst_nb.glue``), by name; other glued objects are left out."""
    import nbformat

    nb = nbformat.read(os.fspath(path), as_version=4)
    out: dict[str, Scalar] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            text = o.get("data", {}).get(GLUE_PREFIX + "text/plain")
            if name is None or text is None:
                continue
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, (int, float, str, bool)) or value is None:
                out[name] = value
    return out


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the notebook, the grid of parameters, where outputs go, and how many runs at once."""

    notebook: str
    grid: dict[str, list[Scalar]] = field(default_factory=dict)
    out: str = "sweeps"
    jobs: int = 1
    kernel: str = "python3"
    timeout: int | None = None  # seconds per cell; None = no limit

    def __post_init__(self) -> None:
        if not Path(self.notebook).is_file() or not self.notebook.endswith(".ipynb"):
            raise ParamError(f"notebook={self.notebook!r} is not an .ipynb file")
        if not self.grid:
            raise ParamError("grid is empty: give at least one -p NAME v1,v2")
        check_int("jobs", self.jobs, 1, 64)
        if self.timeout is not None:
            check_int("timeout", self.timeout, 1)


def _record_path(out: Path, name: str) -> Path:
    return out / f"{name}.json"


def run_one(cfg: SweepConfig, params: dict[str, Scalar], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Execute one point of the grid (or reuse its record when it already succeeded); return its record."""
    import papermill as pm

    out = Path(cfg.out)
    name = run_name(Path(cfg.notebook).stem, params)
    rec_path, nb_path = _record_path(out, name), out / f"{name}.ipynb"
    if rec_path.is_file():
        rec = json.loads(rec_path.read_text())
        if rec.get("status") == "ok" and rec.get("parameters") == json_safe(params) and nb_path.is_file():
            log(f"skip  {name} (done)")
            return {**rec, "skipped": True}
    log(f"run   {name}")
    start = time.time()
    rec: dict[str, Any] = {"run": name, "notebook": cfg.notebook, "parameters": json_safe(params),
                           "output": str(nb_path)}
    try:
        pm.execute_notebook(cfg.notebook, str(nb_path), parameters=params, kernel_name=cfg.kernel,
                            cwd=str(Path(cfg.notebook).resolve().parent), progress_bar=False,
                            execution_timeout=cfg.timeout)
        rec.update(status="ok", error=None, results=read_results(nb_path))
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        err = f"{e.ename}: {e.evalue}" if isinstance(e, pm.PapermillExecutionError) else f"{type(e).__name__}: {e}"
        rec.update(status="failed", error=err, results={})
        log(f"FAIL  {name}: {err.splitlines()[0] if err else ''}")
    rec["wall_s"] = round(time.time() - start, 2)
    rec["provenance"] = provenance(f"python -m ddlib sweep {cfg.notebook} " +
                                   " ".join(f"-p {k} {v}" for k, v in params.items()))
    tmp = rec_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rec, indent=1, default=str))
    tmp.replace(rec_path)
    return {**rec, "skipped": False}


def sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every point of ``cfg.grid`` (``cfg.jobs`` at a time), then write ``results.csv`` and
    ``results.json`` in ``cfg.out``; returns one record per point, in grid order."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    points = expand(cfg.grid)
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        records = list(pool.map(lambda p: run_one(cfg, p, log), points))
    write_table(records, out)
    return records


def write_table(records: list[dict[str, Any]], out: Path) -> None:
    """``results.json`` (the records) and ``results.csv`` (one row: parameters, status, error, results)."""
    import pandas as pd

    (out / "results.json").write_text(json.dumps(records, indent=1, default=str))
    rows = [{**r["parameters"], "status": r["status"], "error": r["error"], "wall_s": r["wall_s"],
             **r["results"], "output": r["output"]} for r in records]
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
