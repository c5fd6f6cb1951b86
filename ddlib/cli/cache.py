"""Sub-command about the artifact cache: ``cache export`` and ``cache import`` (a pre-filled cache to hand out,
e.g. to a workshop's attendees; :mod:`ddlib.bundle`).

    python -m ddlib cache export --out FILE [--chapters 01_pattern_discovery,...] [--scale workshop] [--source DIR]
    python -m ddlib cache import FILE [--cache DIR]

One command with the action as its first word (not a sub-command each), so that its one output option, export's
``--out``, is declared like every other command's (:data:`OUTPUTS`) and checked before any work.
"""
from __future__ import annotations

import argparse

from ddlib import bundle
from ddlib.preflight import Output
from ddlib.utils import ParamError

__all__ = ["OUTPUTS", "add_commands"]

#: its output options (:data:`ddlib.cli.OUTPUTS`): export writes one file (a tar, not a record of settings, so it is
#: checked and locked but not compared with a run of other settings); import writes into the cache only
OUTPUTS = {"cache": (Output("out", "file", guard=False),)}
#: what each action takes (the others' options are refused, naming the action)
_OPTIONS = {"export": ("out", "chapters", "scale", "source", "work"), "import": ("file", "cache_dir")}


def _export(args: argparse.Namespace) -> int:
    if args.out is None:
        raise ParamError("cache export needs --out FILE (the .tar or .tar.gz to write)")
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    manifest = bundle.export(args.out, chapters=chapters, scale=args.scale or "workshop", source=args.source,
                             work=args.work)
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"{args.out}: {len(manifest['files']) // 2} cache entries ({size / 1e6:.1f} MB) for "
          f"{', '.join(manifest['chapters']) if manifest['chapters'] else 'the cache ' + str(args.source)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.file is None:
        raise ParamError("cache import needs FILE (a file written by `python -m ddlib cache export`)")
    done = bundle.import_bundle(args.file, cache=args.cache_dir)
    m = done["manifest"]
    what = f"chapters {', '.join(m['chapters'])} at scale {m['scale']!r}" if m.get("chapters") else "a packed cache"
    print(f"{args.file}: {len(done['imported'])} entries imported into {done['cache']} ({len(done['kept'])} already "
          f"there, kept); {what}, exported with ddlib {m['ddlib']} on {m['created']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    given = {k for k in ("out", "chapters", "scale", "source", "work", "file", "cache_dir")
             if getattr(args, k) is not None}
    wrong = sorted(given - set(_OPTIONS[args.action]))
    if wrong:
        names = ", ".join("FILE" if w == "file" else "--" + w.replace("_dir", "").replace("_", "-") for w in wrong)
        raise ParamError(f"cache {args.action} does not take {names}")
    return _export(args) if args.action == "export" else _import(args)


def add_commands(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("cache", help="export or import a pre-filled artifact cache (one file)",
                       description="export: run CHAPTERS (default: every chapter) with papermill at SCALE (default "
                                   "workshop), in order, into a fresh cache, and write that cache to --out (a .tar, "
                                   "or .tar.gz to compress) with a manifest of SHA-256 hashes; or, with --source, "
                                   "pack an existing cache folder as it is. import: check every file of FILE against "
                                   "its manifest and its own record, then move the entries into the cache "
                                   "($DDLIB_CACHE, or --cache); a tampered, truncated or foreign file is refused and "
                                   "nothing is written.")
    p.add_argument("action", choices=["export", "import"], help="export | import")
    p.add_argument("file", nargs="?", default=None, help="import: the file written by `cache export`")
    p.add_argument("--out", default=None, help="export: the file to write (.tar or .tar.gz)")
    p.add_argument("--chapters", default=None, help="export: comma-separated notebook names, e.g. "
                                                    "01_pattern_discovery,02_balanced_selection (default: every chapter)")
    p.add_argument("--scale", default=None, help="export: the chapters' scale (default workshop)")
    p.add_argument("--source", default=None, help="export: pack this cache folder instead of running chapters")
    p.add_argument("--work", default=None, help="export: the cache folder the chapters run into (default: a temporary one)")
    p.add_argument("--cache", dest="cache_dir", default=None,
                   help="import: the cache folder (default: $DDLIB_CACHE or ~/.cache/ddlib)")
    return {"cache": _run}
