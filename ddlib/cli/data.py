"""Sub-commands about data: ``datasets``."""
from __future__ import annotations

import argparse

from ddlib import data

#: its output options (:data:`ddlib.cli.OUTPUTS`): none, it prints
OUTPUTS: dict = {"datasets": ()}


def _datasets(args: argparse.Namespace) -> int:
    rows = [(e.usage, e.needs, e.where()) for e in data.DATASETS.values()]
    width = max(len(r[0]) for r in rows)
    for usage, needs, where in rows:
        print(f"{usage:<{width}}  needs: {needs}")
        print(f"{'':<{width}}  from:  {where}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    sub.add_parser("datasets", help="list the datasets, what each needs and where each would be loaded from")
    return {"datasets": _datasets}
