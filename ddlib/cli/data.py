"""Sub-commands about data: ``datasets``."""
from __future__ import annotations

import argparse

from ddlib import data

#: its output options (:data:`ddlib.cli.OUTPUTS`): none, it prints
OUTPUTS: dict = {"datasets": ()}


def _datasets(args: argparse.Namespace) -> int:
    rows = data.sources()
    width = max(len(n) for n, _ in rows)
    for name, where in rows:
        print(f"{name:<{width}}  {where}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    sub.add_parser("datasets", help="list the datasets and where each would be loaded from")
    return {"datasets": _datasets}
