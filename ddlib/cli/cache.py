"""Sub-commands about the artifact cache: ``cache export`` and ``cache import`` (a pre-filled cache to hand
out, e.g. to a workshop's attendees; :mod:`ddlib.bundle`)."""
from __future__ import annotations

import argparse

from ddlib import bundle


def _export(args: argparse.Namespace) -> int:
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    manifest = bundle.export(args.out, chapters=chapters, scale=args.scale, source=args.source, work=args.work)
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"{args.out}: {len(manifest['files']) // 2} cache entries ({size / 1e6:.1f} MB) for "
          f"{', '.join(manifest['chapters']) if manifest['chapters'] else 'the cache ' + str(args.source)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    done = bundle.import_bundle(args.file, cache=args.cache)
    m = done["manifest"]
    what = f"chapters {', '.join(m['chapters'])} at scale {m['scale']!r}" if m.get("chapters") else "a packed cache"
    print(f"{args.file}: {len(done['imported'])} entries imported into {done['cache']} ({len(done['kept'])} already "
          f"there, kept); {what}, exported with ddlib {m['ddlib']} on {m['created']}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("cache", help="export or import a pre-filled artifact cache (one file)",
                       description="Hand out a pre-filled artifact cache: export writes the entries some chapters "
                                   "need to one tar file with a manifest of SHA-256 hashes; import checks every "
                                   "file before it writes anything, and refuses a tampered or truncated file.")
    cmd = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    e = cmd.add_parser("export", help="run chapters at a scale into a fresh cache and write it to one file",
                       description="Run CHAPTERS (default: every chapter) with papermill at SCALE, in order, into "
                                   "a fresh cache, and write that cache to OUT (a .tar, or .tar.gz to compress); "
                                   "or, with --source, pack an existing cache folder as it is.")
    e.add_argument("--out", required=True, help="the file to write (.tar or .tar.gz)")
    e.add_argument("--chapters", default=None, help="comma-separated notebook names, e.g. 01_pattern_discovery,"
                                                   "02_balanced_selection (default: every chapter)")
    e.add_argument("--scale", default="workshop", help="the chapters' scale (default workshop)")
    e.add_argument("--source", default=None, help="pack this cache folder instead of running chapters")
    e.add_argument("--work", default=None, help="the cache folder the chapters run into (default: a temporary one)")
    i = cmd.add_parser("import", help="import an exported cache file into this cache, whole or not at all",
                       description="Check every file of FILE against its manifest (SHA-256, size) and against its "
                                   "own record, then move the entries into the cache ($DDLIB_CACHE, or --cache); "
                                   "a tampered, truncated or foreign file is refused and nothing is written.")
    i.add_argument("file", help="a file written by `python -m ddlib cache export`")
    i.add_argument("--cache", default=None, help="the cache folder (default: $DDLIB_CACHE or ~/.cache/ddlib)")

    def run(args: argparse.Namespace) -> int:
        return _export(args) if args.cache_command == "export" else _import(args)

    return {"cache": run}
