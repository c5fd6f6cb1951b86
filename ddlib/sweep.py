"""Papermill sweeps: run a chapter over a grid of parameters and collect what each run recorded.

How a notebook records results: every scalar it glues with ``myst_nb.glue(name, value)``
(the numbers its prose shows) is a result of the run. :func:`read_results` reads them back
from an executed notebook, so a chapter needs nothing beyond what the book already asks of it.

A sweep (``python -m ddlib sweep NOTEBOOK -p NAME v1,v2 … --out DIR``) writes, for each point
of the grid, ``DIR/<stem>__<name>=<value>__….ipynb`` and, once the run succeeded, a record
``….json`` beside it (parameters, status, results, wall time, provenance). A point whose
record says ``ok`` is skipped on the next call, so an interrupted sweep resumes where it
stopped. A run that fails is recorded with its parameters and error and the others go on.

Run names are unique by construction (:func:`run_name`): where the readable part does not say the values
exactly (characters a file name cannot hold, a value cut at 60 characters, ``"1"`` beside ``1``) a digest of
the full values is added (``…__h-3f2a1c9b0e``), and a grid that would still give two runs one name (a value
listed twice) is refused before any run starts. Each run holds a lock (``DIR/.<name>.lock``) while it
executes, so two sweeps into one folder never run the same point at once; the second reports it as busy
and leaves the first's files and row alone.
``DIR/results.csv`` and ``DIR/results.json`` hold one row per point: a later sweep into the same
``DIR`` merges its rows with the earlier ones (a row per notebook and parameter combination; a re-run
of a point replaces its row).

With ``jobs > 1`` every run executes in a process of its own (papermill changes the working
directory of the whole process while it runs, so runs in threads would resolve each other's
relative paths wrongly); the notebook and ``DIR`` are made absolute before any run starts.
All JSON written is strict (:func:`ddlib.utils.dumps_strict`: NaN and inf become null). The runs execute
with ``DDLIB_PROGRESS=0`` (:func:`ddlib.utils.progress_env`): the executed notebooks carry no progress bars.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ddlib import preflight
from ddlib.artifacts import write_bytes_atomic, write_json_atomic
from ddlib.utils import ParamError, check_int, json_safe, progress_env, provenance

__all__ = ["GLUE_PREFIX", "Scalar", "Value", "parse_value", "parse_grid", "expand", "digest", "run_name", "check_names",
           "read_results", "SweepConfig", "run_one", "sweep", "write_table"]

GLUE_PREFIX = "application/papermill.record/"
Scalar = int | float | str | bool | None
#: a value of a grid: a scalar, or a list of scalars (a chapter's list parameter: ``ipcs``, ``methods``)
Value = Scalar | list


def parse_value(text: str, name: str = "value") -> Value:
    """A command-line value as papermill would inject it: int, float, bool, None, a list in brackets
    (``[1, 10]``, ``[bps, random]``: each item parsed the same way), else the string."""
    low = text.strip()
    if low.startswith("[") or low.endswith("]"):
        if not (low.startswith("[") and low.endswith("]")) or "[" in low[1:-1] or "]" in low[1:-1]:
            raise ParamError(f"-p {name}: {text!r} is not a list of values; write a list as [v1,v2] (no nesting)")
        inner = low[1:-1].strip()
        return [parse_value(v.strip().strip("'\""), name) for v in inner.split(",")] if inner else []
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


def _split_values(values: str) -> list[str]:
    """``"1,10"`` -> ``["1", "10"]``; commas inside brackets stay: ``"[1,10],[1,10,50]"`` -> two lists."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(values):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(values[start:i])
            start = i + 1
    return [*parts, values[start:]]


def parse_grid(specs: Sequence[tuple[str, str]]) -> dict[str, list[Value]]:
    """``[("ipc", "1,10"), ("seed", "0")]`` -> ``{"ipc": [1, 10], "seed": [0]}``; a list parameter's values in
    brackets: ``[("ipcs", "[1,10],[1,10,50]")]`` -> ``{"ipcs": [[1, 10], [1, 10, 50]]}``."""
    grid: dict[str, list[Value]] = {}
    for name, values in specs:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ParamError(f"-p {name!r}: a parameter name must be a Python identifier")
        if name in grid:
            raise ParamError(f"-p {name}: given twice; list every value once: -p {name} v1,v2")
        vals = [parse_value(v, name) for v in _split_values(values) if v.strip() != ""]
        if not vals:
            raise ParamError(f"-p {name}: no values given; write -p {name} v1,v2,…")
        twice = [v for i, v in enumerate(vals) if _same_value(v, vals[:i])]
        if twice:
            raise ParamError(f"-p {name}: the value {twice[0]!r} is given twice; list every value once")
        grid[name] = vals
    return grid


def expand(grid: dict[str, list[Value]]) -> list[dict[str, Value]]:
    """Every combination of the grid's values, in the order given (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _same_value(v: Value, earlier: Sequence[Value]) -> bool:
    return any(type(v) is type(e) and v == e for e in earlier)


#: the readable part of a run's name keeps at most this many characters per value and in all
VALUE_CHARS, NAME_CHARS = 60, 160


def _safe(v: Scalar) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(v)).strip("-")[:VALUE_CHARS] or "empty"


def _exact(text: str) -> bool:
    """Whether ``text`` can sit between the ``__`` separators of a name without making them ambiguous."""
    return "__" not in text and not text.startswith("_") and not text.endswith("_")


def _readable_is_exact(stem: str, params: dict[str, Value]) -> bool:
    """Whether ``stem__k=v__…`` says the values exactly: each value survives :func:`_safe` unchanged and reads back
    as itself, type included (:func:`parse_value`), and no part blurs the ``__`` separators."""
    if "__" in stem or stem.endswith("_"):
        return False
    for k, v in params.items():
        text = str(v)
        back = parse_value(text)
        if not (_exact(k) and _exact(text) and _safe(v) == text and type(back) is type(v) and back == v):
            return False
    return True


def digest(params: dict[str, Value]) -> str:
    """A short digest of the full values (and their types) of one run: ``h-`` and 10 hex digits."""
    text = json.dumps([[k, type(v).__name__, repr(v)] for k, v in params.items()])
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def run_name(stem: str, params: dict[str, Value]) -> str:
    """A file-name-safe name of one run, unique per (stem, parameters): ``00_data__dataset=digits__ipc=10``.

    Where that readable part is not exact (:func:`_readable_is_exact`: a character a file name cannot hold, a
    value over 60 characters, a name over 160, ``"1"`` beside ``1``) the :func:`digest` of the full values is
    added as a last part, ``00_data__dataset=cifar10-data-c.tar__h-3f2a1c9b0e``; an exact name's last part
    always holds ``=``, a digest never, so the two kinds never meet.
    """
    readable = "__".join([stem, *(f"{k}={_safe(v)}" for k, v in params.items())])
    if _readable_is_exact(stem, params) and len(readable) <= NAME_CHARS:
        return readable
    return f"{readable[:NAME_CHARS].rstrip('_')}__{digest(params)}"


def check_names(stem: str, points: Sequence[dict[str, Value]]) -> list[str]:
    """The run names of ``points``; a ParamError naming both points when two would share one (a point listed
    twice, or a digest collision), before any run starts."""
    seen: dict[str, dict[str, Value]] = {}
    names = []
    for p in points:
        name = run_name(stem, p)
        if name in seen:
            raise ParamError(f"the grid gives two runs the name {name!r} ({seen[name]} and {p}); list every value of "
                             "a parameter once")
        seen[name] = p
        names.append(name)
    return names


# numpy 2's reprs of its scalars: np.float64(1.5), np.int64(3), np.True_
_NUMPY_SCALAR = re.compile(r"^np\.(?:(?:float|int|uint|bool)\w*\((.*)\)|(True|False)_)$")


def read_results(path: str | os.PathLike, scalars_only: bool = True) -> dict[str, Any]:
    """The values an executed notebook glued (``myst_nb.glue``), by name, from each glue output's
    ``text/plain`` (under ``application/papermill.record/`` for ``display=False``, plain for ``display=True``;
    a numpy scalar's ``np.float64(1.5)`` reads as ``1.5``). Scalars (int, float, str, bool, None) only; with
    ``scalars_only=False`` any other glued object is kept as its ``text/plain`` text (a table's rows)."""
    import nbformat

    nb = nbformat.read(os.fspath(path), as_version=4)
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            scrap = o.get("metadata", {}).get("scrapbook", {})
            name, prefix = scrap.get("name"), scrap.get("mime_prefix", GLUE_PREFIX)
            text = o.get("data", {}).get(f"{prefix or ''}text/plain")
            if name is None or text is None:
                continue
            if isinstance(text, list):  # nbformat may keep multi-line text as a list of lines
                text = "".join(text)
            numpy = _NUMPY_SCALAR.match(text.strip())
            try:
                value = ast.literal_eval(numpy.group(1) or numpy.group(2) if numpy else text)
                scalar = isinstance(value, (int, float, str, bool)) or value is None
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                scalar = False  # not a literal: another glued object (a table, a figure)
            if scalar:
                out[name] = value
            elif not scalars_only:
                out[name] = text
    return out


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the notebook, the grid of parameters, where outputs go, and how many runs at once."""

    notebook: str
    grid: dict[str, list[Value]] = field(default_factory=dict)
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


def run_one(cfg: SweepConfig, params: dict[str, Value], log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Execute one point of the grid (or reuse its record when it already succeeded); return its record.

    ``log`` (None: quiet) gets a line when the run starts, is skipped or fails. The run holds its lock file
    while it executes; when another sweep holds it, the point is reported busy (``"busy": True``, failed) and
    nothing of the other sweep's is touched.
    """
    say = log or (lambda _: None)
    out = Path(cfg.out)
    name = run_name(Path(cfg.notebook).stem, params)
    held = contextlib.ExitStack()
    try:
        held.enter_context(preflight.locked("run", out / name, out / f".{name}.lock",
                                            command=f"sweep {cfg.notebook} {params}"))
    except ParamError as e:
        say(f"busy  {name}")
        return {"run": name, "notebook": cfg.notebook, "parameters": json_safe(params),
                "output": str(out / f"{name}.ipynb"), "status": "failed", "error": f"ParamError: {e}",
                "results": {}, "wall_s": None, "skipped": False, "busy": True}
    with held:
        return _run_locked(cfg, params, name, say)


def _run_locked(cfg: SweepConfig, params: dict[str, Value], name: str, say: Callable[[str], None]) -> dict[str, Any]:
    import papermill as pm

    out = Path(cfg.out)
    rec_path, nb_path = _record_path(out, name), out / f"{name}.ipynb"
    if rec_path.is_file():
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            rec = {}  # an unreadable record: run the point again
        if rec.get("status") == "ok" and rec.get("parameters") == json_safe(params) and nb_path.is_file():
            say(f"skip  {name} (done)")
            return {**rec, "skipped": True}
    say(f"run   {name}")
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
        say(f"FAIL  {name}: {err.splitlines()[0] if err else ''}")
    rec["wall_s"] = round(time.time() - start, 2)
    rec["provenance"] = provenance(f"python -m ddlib sweep {cfg.notebook} " +
                                   " ".join(f"-p {k} {v}" for k, v in params.items()))
    write_json_atomic(rec_path, rec)
    return {**rec, "skipped": False}


def _crashed(cfg: SweepConfig, params: dict[str, Value], error: BaseException) -> dict[str, Any]:
    """The record of a run whose worker process died (it could not record itself)."""
    name = run_name(Path(cfg.notebook).stem, params)
    return {"run": name, "notebook": cfg.notebook, "parameters": json_safe(params),
            "output": str(Path(cfg.out) / f"{name}.ipynb"), "status": "failed",
            "error": f"{type(error).__name__}: {error}", "results": {}, "wall_s": None,
            "provenance": provenance(), "skipped": False}


def sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every point of ``cfg.grid`` (``cfg.jobs`` at a time, each in its own process when more than
    one), then merge ``results.csv`` and ``results.json`` in ``cfg.out`` with earlier rows; returns
    one record per point of this grid, in grid order."""
    preflight.check_folder("out", cfg.out)  # before any kernel starts: the folder and the cache its runs fill
    preflight.check_cache()
    cfg = replace(cfg, notebook=str(Path(cfg.notebook).resolve()), out=str(Path(cfg.out).resolve()))
    out = Path(cfg.out)
    points = expand(cfg.grid)
    check_names(Path(cfg.notebook).stem, points)
    out.mkdir(parents=True, exist_ok=True)
    with progress_env(False):  # the kernels (and worker processes) inherit DDLIB_PROGRESS=0: no bars in the outputs
        records = _run_points(cfg, points, log)
    write_table(records, out)
    return records


def _run_points(cfg: SweepConfig, points: list[dict[str, Value]], log: Callable[[str], None]) -> list[dict[str, Any]]:
    if cfg.jobs == 1 or len(points) == 1:
        records = [run_one(cfg, p, log) for p in points]
    else:
        records = []
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or CUDA state
        with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(points)), mp_context=ctx) as pool:
            futures = [pool.submit(run_one, cfg, p, None) for p in points]
            for p, fut in zip(points, futures):
                try:
                    rec = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died: record it, keep the others
                    rec = _crashed(cfg, p, e)
                first = (rec["error"] or "").splitlines()[:1]
                log(("skip  " if rec["skipped"] else "done  " if rec["status"] == "ok" else "busy  " if rec.get("busy")
                     else "FAIL  ") + rec["run"]
                    + ("" if rec["status"] == "ok" else f": {first[0] if first else ''}"))
                records.append(rec)
    return records


def _row_key(rec: dict[str, Any]) -> str:
    """What identifies a row: the run's name, i.e. the notebook's stem and the parameter combination
    (as its files are named, so a row and its files stay one-to-one)."""
    return str(rec.get("run"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``): two sweeps into one folder merge one after the other."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _earlier_records(out: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows of ``out/results.json`` and True; when it is missing or unreadable (a sweep that stopped
    before writing it), the run records found beside it and False."""
    try:
        rows = json.loads((out / "results.json").read_text())
        if isinstance(rows, list) and all(isinstance(r, dict) and "parameters" in r for r in rows):
            return rows, True
    except (OSError, ValueError):
        pass
    rows = []
    for f in sorted(out.glob("*.json")):
        if f.name == "results.json":
            continue
        try:
            r = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and {"run", "parameters", "status"} <= r.keys():
            rows.append(r)
    return rows, False


def write_table(records: list[dict[str, Any]], out: Path) -> None:
    """Merge ``records`` into ``results.json`` (the records) and ``results.csv`` (one row: parameters,
    status, error, wall time, results, output) in ``out``: earlier rows stay, in their order; a record
    for the same notebook and parameters replaces its row; new ones are appended. Strict JSON, atomic writes."""
    import pandas as pd

    out = Path(out)
    with _locked(out / ".results.lock"):
        merged: dict[str, dict[str, Any]] = {}
        earlier, from_table = _earlier_records(out)
        records = [r for r in records if not r.get("busy")]  # another sweep's run: its row is that sweep's to write
        ours = {_row_key(r) for r in records}
        for r in earlier:
            if from_table or _row_key(r) not in ours:  # rows found only as records go before this grid's
                merged[_row_key(r)] = r
        for r in records:
            merged[_row_key(r)] = {k: v for k, v in r.items() if k != "skipped"}
        rows = list(merged.values())
        write_json_atomic(out / "results.json", rows)
        table = [{**r["parameters"], "status": r.get("status"), "error": r.get("error"), "wall_s": r.get("wall_s"),
                  **(r.get("results") or {}), "output": r.get("output")} for r in rows]
        write_bytes_atomic(out / "results.csv", pd.DataFrame(table).to_csv(index=False).encode())
