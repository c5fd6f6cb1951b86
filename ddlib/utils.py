"""Seed, device and parameter checks: decided in one place, used everywhere."""
from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


class ParamError(ValueError):
    """A parameter has a value ddlib does not accept; the message names it and the accepted values."""


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParamError` naming both."""
    choices = list(choices)
    if value not in choices:
        raise ParamError(f"{name}={value!r} is not accepted; choose one of {choices}")
    return value


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int in [minimum, maximum], else raise :class:`ParamError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParamError(f"{name}={value!r} must be an integer" + _range_text(minimum, maximum))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParamError(f"{name}={value!r} is out of range; accepted:" + _range_text(minimum, maximum))
    return int(value)


def check_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    """Return ``value`` as a float in [minimum, maximum], else raise :class:`ParamError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamError(f"{name}={value!r} must be a number" + _range_text(minimum, maximum))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParamError(f"{name}={value!r} is out of range; accepted:" + _range_text(minimum, maximum))
    return float(value)


def _range_text(minimum: Any, maximum: Any) -> str:
    if minimum is None and maximum is None:
        return ""
    lo = "-inf" if minimum is None else minimum
    hi = "inf" if maximum is None else maximum
    return f" in [{lo}, {hi}]"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a torch Generator seeded the same."""
    seed = check_int("seed", seed, 0, 2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$DDLIB_DEVICE``, else CUDA when present, else CPU."""
    if device is None:
        device = os.environ.get("DDLIB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParamError(f"device={str(device)!r} asked for CUDA, but no CUDA device is available; use 'cpu'")
    return dev


def config_dict(cfg: Any) -> dict[str, Any]:
    """A frozen dataclass config as a plain JSON-able dict (tuples become lists)."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")
    return json_safe(dataclasses.asdict(cfg))


def json_safe(obj: Any) -> Any:
    """Recursively convert tuples, numpy scalars and paths to JSON-able values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def environment_info() -> dict[str, str]:
    """Versions and device, printed at the end of every chapter."""
    import platform

    import ddlib

    info = {
        "ddlib": ddlib.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(get_device()),
        "threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(command: str | None = None) -> dict[str, str]:
    """Where a figure came from: command, git commit, device, date; recorded with every result."""
    import subprocess
    import sys
    import time

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    dev = get_device()
    device = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {"command": command if command is not None else " ".join(sys.argv), "commit": commit,
            "device": device, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
