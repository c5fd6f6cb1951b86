"""Seed, device, parameter checks, images as floats, progress bars and peak memory: decided in one
place, used everywhere (the bottom layer: imports nothing from ddlib)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import threading
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


def in_test() -> bool:
    """True when run by the test-suite (``DDLIB_TEST=1``)."""
    return os.environ.get("DDLIB_TEST", "") not in ("", "0")


def progress(iterable: Iterable[Any] | None = None, desc: str = "", enabled: bool = True, **kw: Any) -> Any:
    """A plain-text tqdm bar over ``iterable`` (or over ``total=`` steps), silent when not ``enabled`` and
    under the test-suite. Text bars, not widgets: the book build drops widget outputs (with warnings)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, disable=not enabled or in_test(), leave=False, **kw)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: integer pixels (uint8) / 255, floating images as float32."""
    return x.float() if x.is_floating_point() else x.float() / 255.0


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


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory of a block: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the peak resident
    set size above the level at entry, sampled every 2 ms by a thread (after ``malloc_trim`` so freed
    memory of earlier work is returned first). ``.peak_bytes``, ``.kind`` say which."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self.kind = "cuda max_memory_allocated" if device.type == "cuda" else "CPU peak RSS increase (sampled)"
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            import ctypes

            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            self._base = _rss_bytes()
            self._peak = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device) - self._base)
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
            self.peak_bytes = int(self._peak - self._base)
