"""The values the chapters glue into their prose, collected from executed notebooks and compared.

    .venv/bin/python benchmarks/glue_values.py OUT.json NB.ipynb [NB.ipynb ...]
    .venv/bin/python benchmarks/glue_values.py --compare A.json B.json [--rtol 1e-9] [--ignore PATTERN ...]

The first form reads every value each executed notebook (a papermill output, or a notebook run in
Jupyter) glued with ``myst_nb.glue`` (:func:`ddlib.sweep.read_results`: the ``application/papermill.record/``
outputs of ``display=False`` and the plain ones of ``display=True``; any glued object that is not a scalar
is kept as its text) and writes ``{"notebooks": {stem: {name: value}}, "provenance": {...}}`` to OUT.json.

``--compare`` prints every value that differs between two such files (per notebook and name, and the names
only one side has), leaving out the names of wall time and memory (:data:`IGNORED`: matched
case-insensitively as shell patterns; ``--ignore`` adds more). Numbers differ when they are further apart
than ``rtol`` times the larger (0: any difference). It exits 1 when something differs, 0 when nothing does:
a check that a refactoring of the chapters or the library changed none of the numbers the prose cites.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: glue names that hold wall time or memory, which differ from run to run: never compared
IGNORED = ("*_s", "*_s_*", "*seconds*", "*_ms", "*_ms_*", "*time*", "*mib*", "*wall*", "*peak_mem*")


def ignored(name: str, patterns: Iterable[str] = IGNORED) -> bool:
    """Whether a glue name is one of wall time or memory (it matches one of ``patterns``, any case)."""
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def collect(notebooks: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """``{notebook stem: {glue name: value}}`` of executed notebooks; two notebooks of one stem are an error."""
    from ddlib.sweep import read_results

    out: dict[str, dict[str, Any]] = {}
    for nb in map(Path, notebooks):
        if nb.stem in out:
            raise SystemExit(f"two notebooks named {nb.stem!r}: give each chapter once")
        out[nb.stem] = read_results(nb, scalars_only=False)
    return out


def _same(a: Any, b: Any, rtol: float) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))


def compare(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], rtol: float = 0.0,
            patterns: Iterable[str] = IGNORED) -> list[dict[str, Any]]:
    """Every difference between two collections (:func:`collect`), names matching ``patterns`` left out:
    ``{"notebook", "name", "a", "b"}``, with ``"only": "a"`` or ``"b"`` for a name one side lacks (a
    notebook one side lacks counts as every one of its names)."""
    patterns = tuple(patterns)
    out = []
    for nb in sorted(set(a) | set(b)):
        mine, theirs = a.get(nb, {}), b.get(nb, {})
        for name in sorted(set(mine) | set(theirs)):
            if ignored(name, patterns):
                continue
            if name not in theirs or name not in mine:
                side = "a" if name in mine else "b"
                out.append({"notebook": nb, "name": name, "only": side, side: (mine if side == "a" else theirs)[name]})
            elif not _same(mine[name], theirs[name], rtol):
                out.append({"notebook": nb, "name": name, "a": mine[name], "b": theirs[name]})
    return out


def _load(path: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: not a glue-values file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("notebooks"), dict):
        raise SystemExit(f"{path}: not a glue-values file (no 'notebooks' object); write one with "
                         "benchmarks/glue_values.py OUT.json NB.ipynb ...")
    return data["notebooks"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("paths", nargs="+", help="OUT.json NB.ipynb ..., or with --compare: A.json B.json")
    ap.add_argument("--compare", action="store_true", help="compare two glue-values files")
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of numbers (default 0)")
    ap.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                    help=f"a further glue-name pattern to leave out (always left out: {' '.join(IGNORED)})")
    args = ap.parse_args(argv)
    if args.compare:
        if len(args.paths) != 2:
            ap.error("--compare takes two files: A.json B.json")
        if not (args.rtol >= 0):
            ap.error(f"--rtol {args.rtol}: must be 0 or more")
        diffs = compare(_load(args.paths[0]), _load(args.paths[1]), args.rtol, (*IGNORED, *args.ignore))
        for d in diffs:
            where = f"{d['notebook']}: {d['name']}"
            print(f"{where}: only in {args.paths[0] if d['only'] == 'a' else args.paths[1]}" if "only" in d
                  else f"{where}: {d['a']!r} -> {d['b']!r}")
        print(f"{len(diffs)} glued value(s) differ" if diffs else "no glued value differs")
        return 1 if diffs else 0
    if len(args.paths) < 2:
        ap.error("give OUT.json and at least one executed notebook")
    out, notebooks = Path(args.paths[0]), args.paths[1:]
    if out.suffix != ".json":
        ap.error(f"{out}: the first path is the JSON to write (OUT.json)")
    from ddlib.utils import dumps_strict, provenance

    values = collect(notebooks)
    out.write_text(dumps_strict({"notebooks": values, "provenance": provenance(" ".join(sys.argv))}, indent=1,
                                ensure_ascii=False) + "\n")
    print(f"{sum(map(len, values.values()))} glued values of {len(values)} notebook(s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
