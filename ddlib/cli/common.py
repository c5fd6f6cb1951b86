"""What the command families share: ``--scale``, the overrides of a preset, the recorded command line."""
from __future__ import annotations

import argparse
import shlex
from typing import Any

from ddlib.utils import ParamError, check_int


def add_scale(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=["test", "cpu", "gpu"], default=None,
                   help="the preset of ddlib.presets that the other options override (default: the reference "
                        "settings, the configs' own defaults on every image; see ddlib.presets)")


def add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace results of other settings found at --out (without it the command stops before any "
                        "work, naming the file and the first setting that differs)")


def settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The settings :func:`ddlib.cli.main` claimed the outputs with, recorded with the results (``settings``)
    so that the next run into the same ``--out`` can tell whether it would replace results of other settings."""
    return getattr(args, "settings", None)


def overrides(args: argparse.Namespace, workflow: str) -> dict[str, Any]:
    """The options given (not None) whose names are the preset's flat names (``ddlib.presets.TABLES``)."""
    from ddlib import presets

    table = presets.TABLES["synth" if workflow in ("sfm", "ci") else workflow]
    return {k: v for k, v in vars(args).items() if k in table and v is not None}


def dataset(name: str | None, where: str = "the preset's") -> str:
    """The dataset to load: the option's, else ``where`` it comes from; a ParamError when neither names one."""
    if name is None:
        raise ParamError(f"dataset is not given and {where} names none; give --dataset (python -m ddlib datasets)")
    return name


def command(args: argparse.Namespace) -> str:
    """``python -m ddlib`` and the arguments this run was given."""
    return shlex.join(["python", "-m", "ddlib", *getattr(args, "argv", [args.command])])


def parse_ints(name: str, text: str) -> list[int]:
    """'1,10,50' -> [1, 10, 50] (each >= 1), else ParamError naming ``name``."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ParamError(f"{name}={text!r} must be comma-separated positive integers, e.g. 1,10,50") from None
    if not vals:
        raise ParamError(f"{name}={text!r} names no value; give e.g. 1,10,50")
    return [check_int(name, v, 1) for v in vals]


def backbone_options(name: str, preset: Any, given: dict[str, Any], progress: bool) -> dict[str, Any]:
    """``get_backbone``'s options for ``name`` from a synthesis preset, as the chapters pass them
    (:func:`ddlib.sfm.backbones.preset_options`; an explicit size option applies to any backbone)."""
    from ddlib.sfm.backbones import preset_options

    return preset_options(name, preset, progress, given.get("image_size"))
