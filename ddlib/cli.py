"""``python -m ddlib …``: run a stage or a sweep from the shell.

Each sub-command lives beside the code it drives and registers itself in ``COMMANDS``:
a function that adds its sub-parser and returns the handler. Handlers turn the parsed
arguments into the library's frozen configs; no argparse object travels further.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ddlib.utils import ParamError

Handler = Callable[[argparse.Namespace], int]
# module whose ``add_commands(subparsers) -> dict[name, handler]`` adds its sub-commands
COMMAND_MODULES: tuple[str, ...] = ("ddlib.cli_data", "ddlib.cli_sfm", "ddlib.cli_inherit", "ddlib.cli_bps", "ddlib.cli_sweep")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="python -m ddlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for mod in COMMAND_MODULES:
        handlers.update(importlib.import_module(mod).add_commands(sub))
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args) or 0
    except (ParamError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
