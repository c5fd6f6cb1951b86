"""``python -m ddlib …``: run a stage or a sweep from the shell.

One module per command family (:mod:`~ddlib.cli.data`, :mod:`~ddlib.cli.sfm`, :mod:`~ddlib.cli.inherit`,
:mod:`~ddlib.cli.bps`, :mod:`~ddlib.cli.sweep`), each with ``add_commands(subparsers) -> {name: handler}``.
Every command that runs a stage takes ``--scale test|cpu|gpu`` (a preset of :mod:`ddlib.presets`; without
it, the reference settings) and its other options override that preset; no option has a default of its
own. Handlers turn the parsed arguments into the library's frozen configs; no argparse object travels
further. Results are written by :func:`ddlib.results.write`.

Before a handler runs, :func:`main` runs the pre-flight of :mod:`ddlib.preflight` for the command: every output
option it declares in :data:`OUTPUTS` must be usable (a folder where a folder is needed, writable, not an existing
file), the artifact cache (``$DDLIB_CACHE``) too, and the outputs are claimed: locked for this run, and refused
when they hold results of other settings unless ``--overwrite`` is given. Errors are one line, ``error: …`` on
stderr and exit status 2, for bad parameters and for files that cannot be read or written.

Under ``torchrun --nproc_per_node N -m ddlib …`` the commands of :data:`DISTRIBUTED` run in a process group
(:func:`ddlib.distributed.session`): ``select`` trains Stage 1 and the teacher data-parallel, ``evaluate``
splits its students over the ranks (and trains a missing teacher data-parallel), and only rank 0 writes (see
:mod:`ddlib.distributed`). The other commands refuse to run under torchrun: their work is not split.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ddlib import distributed, preflight
from ddlib.cli import bps, cache, common, data, inherit, sfm, sweep
from ddlib.preflight import Output
from ddlib.utils import ParamError

__all__ = ["Handler", "FAMILIES", "DISTRIBUTED", "OUTPUTS", "NO_CACHE", "build_parser", "argv_for", "in_options",
           "main"]

Handler = Callable[[argparse.Namespace], int]
#: the command families, in the order ``--help`` lists them
FAMILIES = (data, sfm, inherit, bps, sweep, cache)
#: the commands that split their work over torchrun's processes
DISTRIBUTED = ("select", "evaluate")
#: every command's output options (each family's ``OUTPUTS``), checked and claimed before its handler runs
OUTPUTS: dict[str, tuple[Output, ...]] = {name: outs for family in FAMILIES for name, outs in family.OUTPUTS.items()}
#: the commands that compute nothing, so need no artifact cache
NO_CACHE = ("datasets",)


def _one_line_errors() -> tuple[type[BaseException], ...]:
    """What the CLI prints as one line (``error: …``, exit 2) rather than a traceback: bad parameters, and
    files that cannot be read, parsed or written (the message names the file)."""
    from ddlib.results import ResultsError

    return ParamError, OSError, pickle.UnpicklingError, ResultsError


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="python -m ddlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for family in FAMILIES:
        handlers.update(family.add_commands(sub))
    return parser, handlers


def argv_for(command: str, **overrides: Any) -> list[str]:
    """The options of ``command`` that set these preset names (``ddlib.presets.TABLES``), e.g.
    ``argv_for("evaluate", student_epochs=60)`` -> ``["--epochs", "60"]``; None values are skipped.

    Raises :class:`ParamError` for a name the command has no option for.
    """
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings}
    out: list[str] = []
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in flags:
            raise ParamError(f"{command} has no option for {name!r}; its options set {sorted(flags)}")
        out += [flags[name], ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return out


def in_options(message: str, parser: argparse.ArgumentParser, command: str) -> str:
    """``message`` with the preset names it cites (``"(set by teacher_lr)"``, ``"data_seed=…"``) written as the
    options the user typed (``--teacher-lr``, ``--data-seed``), so an error points at the command line."""
    import re

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings and a.dest != "help"}

    def by(m: re.Match) -> str:
        return "(set by " + ", ".join(flags.get(n.strip(), n.strip()) for n in m.group(1).split(",")) + ")"

    message = re.sub(r"\(set by ([^)]*)\)", by, message)
    for dest, flag in sorted(flags.items(), key=lambda kv: -len(kv[0])):
        message = re.sub(rf"(?<![\w-]){re.escape(dest)}=", f"{flag}=", message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # the command line that reproduces the run (recorded with its results)
    try:
        if distributed.env_world_size() > 1 and args.command not in DISTRIBUTED:
            raise ParamError(f"{args.command} does not run under torchrun (WORLD_SIZE={distributed.env_world_size()}): "
                             f"its work is not split over processes; the commands that are: {list(DISTRIBUTED)}")
        with distributed.session(getattr(args, "device", None)):
            outputs = OUTPUTS[args.command]
            for out in outputs:  # every path first, then the cache: all before any work
                preflight.check_output(out, getattr(args, out.option))
            if args.command not in NO_CACHE:
                preflight.check_cache()
            with preflight.claims(outputs, vars(args), overwrite=bool(getattr(args, "overwrite", False)),
                                  lock=distributed.is_main(), command=common.command(args)) as settings:
                args.settings = settings  # recorded with the results, compared by the next run into the same output
                return handlers[args.command](args) or 0
    except Exception as e:  # noqa: BLE001 - only the kinds below become one line; anything else is a bug to show
        if not isinstance(e, _one_line_errors()):
            raise
        print(f"error: {in_options(_first_line(e), parser, args.command)}", file=sys.stderr)
        return 2


def _first_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, pickle.UnpicklingError):
        text = f"{type(e).__name__}: {text}"
    return text.splitlines()[0] if text.strip() else type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
