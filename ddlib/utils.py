"""Seed, device, parameter checks, images as floats, progress bars and peak memory: decided in one
place, used everywhere (the bottom layer: imports nothing from ddlib).

Progress bars follow one policy (:func:`progress_shown`): on in a terminal, the CLI (unless ``--quiet``)
and an interactive Jupyter session; off under the test-suite, when ``$DDLIB_PROGRESS=0`` (set by the book
build, sweeps and ``benchmarks/chapter_times.py``), and in a kernel driven by papermill or Jupyter Book
(no person at a frontend), so that a rendered chapter carries no progress lines.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ROOT", "offline", "ParamError", "check_choice", "check_int", "check_float", "seed_everything", "in_test",
           "PROGRESS_ENV", "progress_shown", "progress_env", "progress", "to_unit", "DEVICE_CHOICES", "get_device",
           "ADDED_FIELD", "config_fields", "config_dict", "json_safe", "dumps_strict", "validate_indices",
           "check_ipc", "cpu_name", "environment_info", "provenance", "PeakMemory"]

#: the project's root: the checkout holding ddlib/, notebooks/ and results/
ROOT = Path(__file__).resolve().parents[1]


def offline() -> bool:
    """True when nothing may be downloaded: ``DDLIB_OFFLINE`` (or ``HF_HUB_OFFLINE``) set to anything but '', '0'
    or 'false' (data sets are then read from disk only, timm fetches no weights)."""
    return any(os.environ.get(v, "") not in ("", "0", "false", "False") for v in ("DDLIB_OFFLINE", "HF_HUB_OFFLINE"))


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
    """Return ``value`` as a finite float in [minimum, maximum], else raise :class:`ParamError`.

    NaN and ±inf are refused: NaN passes every comparison unnoticed (a NaN learning rate trains a
    chance-level model and exits 0), and no ddlib parameter means anything at infinity.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamError(f"{name}={value!r} must be a number" + _range_text(minimum, maximum))
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        finite = False
    if not finite:
        raise ParamError(f"{name}={value!r} is not a finite number; accepted: a finite number"
                         + _range_text(minimum, maximum))
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


#: The environment variable that switches progress bars: ``0``/``off`` silences them, ``1``/``on`` shows
#: them (see :func:`progress_shown`). The book build, sweeps and benchmarks set it to ``0`` for the
#: kernels and processes they start (:func:`progress_env`).
PROGRESS_ENV = "DDLIB_PROGRESS"
_OFF, _ON = ("0", "off", "false", "no"), ("1", "on", "true", "yes")


def _kernel_without_frontend() -> bool:
    """True inside a Jupyter kernel whose cells are sent by an executor (papermill, nbclient, Jupyter Book's
    execution) rather than by a person: executors send every cell with ``allow_stdin=False`` (nobody could
    answer ``input()``), Jupyter's frontends (Lab, Notebook, VS Code) with ``True``. Outside a kernel
    (a terminal, a script, IPython in a terminal): False."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    return kernel is not None and not getattr(kernel, "_allow_stdin", True)


def progress_shown(enabled: bool = True) -> bool:
    """Whether a progress bar is drawn: ddlib's one policy, decided in this order.

    1. ``enabled=False`` (a caller's ``progress=False``, the CLI's ``--quiet``), or a rank other than 0 under
       torchrun (``$RANK`` > 0): no bar.
    2. ``$DDLIB_PROGRESS`` is ``0``/``off``/``false``/``no``: no bar. The book build (``make book``,
       ``python -m ddlib book``), ``sweep`` and ``benchmarks/chapter_times.py`` set it for what they run.
    3. Under the test-suite (:func:`in_test`): no bar.
    4. ``$DDLIB_PROGRESS`` is ``1``/``on``/``true``/``yes``: a bar.
    5. In a Jupyter kernel driven by an executor rather than a person (papermill, nbclient, Jupyter Book;
       :func:`_kernel_without_frontend`): no bar, so a chapter executed for the book or under papermill
       renders without pages of progress lines even when nobody set ``$DDLIB_PROGRESS``.
    6. Otherwise (a terminal, the CLI, an interactive Jupyter session): a bar.
    """
    if not enabled or os.environ.get("RANK", "0").strip() not in ("", "0"):
        return False
    env = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if env in _OFF or in_test():
        return False
    if env in _ON:
        return True
    return not _kernel_without_frontend()


@contextlib.contextmanager
def progress_env(shown: bool) -> Iterator[None]:
    """Set ``$DDLIB_PROGRESS`` for a block, so that the kernels and processes started inside it inherit it
    (the book build and sweeps use ``progress_env(False)``); the earlier value is restored afterwards."""
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "1" if shown else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


def progress(iterable: Iterable[Any] | None = None, desc: str = "", enabled: bool = True, **kw: Any) -> Any:
    """A plain-text tqdm bar over ``iterable`` (or over ``total=`` steps), drawn when :func:`progress_shown`
    says so (``enabled`` is the caller's own switch). The only place ddlib makes a bar. Text bars, not
    widgets: the book build drops widget outputs (with warnings)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, disable=not progress_shown(enabled), leave=False, **kw)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: integer pixels (uint8) / 255, floating images as float32."""
    return x.float() if x.is_floating_point() else x.float() / 255.0


DEVICE_CHOICES = "'cpu', 'cuda', 'cuda:N' (N a GPU index), or None for automatic (CUDA when present, else CPU)"


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$DDLIB_DEVICE``, else CUDA when present, else CPU.

    Accepted: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` (a GPU that exists) or a ``torch.device`` of those;
    anything else (``'tpu'``, ``''``, CUDA on a machine without it, ``'cuda:7'`` with two GPUs) raises
    :class:`ParamError` naming ``device`` (or ``DDLIB_DEVICE``) and the accepted values. Call it before
    any work: it raises whether or not the work would later come from the cache.
    """
    name = "device"
    if device is None:
        env = os.environ.get("DDLIB_DEVICE")
        if env is not None and env != "":
            name, device = "DDLIB_DEVICE", env
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str) and re.fullmatch(r"cpu|cuda(:\d+)?", device):
        dev = torch.device(device)
    else:
        raise ParamError(f"{name}={device!r} is not accepted; choose {DEVICE_CHOICES}")
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ParamError(f"{name}={str(device)!r} is not accepted; choose {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise ParamError(f"{name}={str(device)!r} asked for CUDA, but no CUDA device is available here; "
                         "use 'cpu' (or None for automatic)")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ParamError(f"{name}={str(device)!r} asks for GPU {dev.index}, but this machine has {count} "
                         f"(cuda:0 … cuda:{count - 1}); choose {DEVICE_CHOICES}")
    return dev


#: Field metadata of a config field added after artifacts were cached under that config: at its default the
#: field is left out of :func:`config_fields` (so of :func:`config_dict` and of cache keys), and the artifacts
#: cached before it existed keep their keys. Use ``field(default=..., metadata=ADDED_FIELD)``.
ADDED_FIELD = {"omit_at_default": True}


def config_fields(obj: Any) -> Any:
    """``dataclasses.asdict`` of a config, recursively, without the :data:`ADDED_FIELD` fields at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.metadata.get("omit_at_default") and v == f.default:
                continue
            out[f.name] = config_fields(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [config_fields(v) for v in obj]
    if isinstance(obj, dict):
        return {k: config_fields(v) for k, v in obj.items()}
    return obj


def config_dict(cfg: Any) -> dict[str, Any]:
    """A frozen dataclass config as a plain JSON-able dict (tuples become lists; :data:`ADDED_FIELD` fields at
    their default left out)."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")
    return json_safe(config_fields(cfg))


def json_safe(obj: Any, strict: bool = False) -> Any:
    """Recursively convert tuples, numpy scalars and paths to JSON-able values.

    ``strict=True`` also turns non-finite floats (NaN, ±inf) into ``None``, so the result is valid
    strict JSON (Python's ``json`` would write the bare tokens ``NaN``/``Infinity``, which strict
    parsers reject).
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v, strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, strict) for v in obj]
    if strict and isinstance(obj, np.ndarray):
        return json_safe(obj.tolist(), strict)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if strict and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` (``strict=True``) with ``allow_nan=False``: strict JSON, NaN/inf as null.

    ``kwargs`` go to ``json.dumps`` (``indent``, ``sort_keys``, ``default``). The one way ddlib writes JSON.
    """
    return json.dumps(json_safe(obj, strict=True), allow_nan=False, **kwargs)


def validate_indices(indices: Any, n_train: int, name: str = "indices") -> list[int]:
    """A selection's image indices as a list of ints, checked against ``n_train`` training images.

    Refused with a :class:`ParamError` naming ``name`` and the problem: not a list, an empty list,
    a non-integer value (``1.7``, ``"3"``, ``True``; also ``2.0``: a selection lists integers),
    a negative index, an index ``>= n_train``, an index listed twice.
    """
    n_train = check_int("n_train", n_train, 1)
    if isinstance(indices, np.ndarray) or isinstance(indices, torch.Tensor):
        indices = indices.tolist()
    if not isinstance(indices, (list, tuple)):
        raise ParamError(f"{name} must be a list of image indices (integers 0 … {n_train - 1}), "
                         f"got {type(indices).__name__}")
    if len(indices) == 0:
        raise ParamError(f"{name} is empty: a selection must pick at least one image (indices 0 … {n_train - 1})")
    out: list[int] = []
    for pos, v in enumerate(indices):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ParamError(f"{name}[{pos}]={v!r} is not an integer; a selection lists image indices "
                             f"0 … {n_train - 1}")
        if v < 0:
            raise ParamError(f"{name}[{pos}]={v} is negative; image indices count from 0 to {n_train - 1}")
        if v >= n_train:
            raise ParamError(f"{name}[{pos}]={v} is out of range: the training set has {n_train} images "
                             f"(indices 0 … {n_train - 1}); was the selection made on another dataset, "
                             "per-class subsample or data seed?")
        out.append(int(v))
    if len(set(out)) != len(out):
        seen: dict[int, list[int]] = {}
        for pos, v in enumerate(out):
            seen.setdefault(v, []).append(pos)
        dups = {v: p for v, p in seen.items() if len(p) > 1}
        first = next(iter(dups))
        raise ParamError(f"{name} lists {len(dups)} image(s) more than once (e.g. {first} at positions "
                         f"{dups[first][:5]}); a selection lists each image once")
    return out


def check_ipc(ipc: Any, labels: Any, classes: Sequence[str] | None = None, cap: bool = False) -> dict[int, int]:
    """Check a per-class budget ``ipc`` against the class sizes in ``labels``; return the capped classes.

    Every selection needs at least 2 classes. A class with fewer than ``ipc`` images is an error
    naming the class and its size, unless ``cap=True``: then that class is taken whole and the
    returned ``{label: size}`` of capped classes is what the caller records beside ``ipc``.
    """
    ipc = check_int("ipc", ipc, 1)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        which = "no class" if len(values) == 0 else f"one class ({_class_name(int(values[0]), classes)})"
        raise ParamError(f"labels hold {which}; selection, students and accuracy need at least 2 classes")
    small = {int(c): int(n) for c, n in zip(values, counts) if n < ipc}
    if small and not cap:
        c, n = min(small.items(), key=lambda kv: kv[1])
        more = f" and {len(small) - 1} more class(es)" if len(small) > 1 else ""
        raise ParamError(f"ipc={ipc} exceeds class {_class_name(c, classes)} ({n} images){more}; "
                         f"lower ipc to at most {int(counts.min())}, load more images per class, "
                         "or pass cap=True to take such classes whole (recorded in the result)")
    return small


def _class_name(label: int, classes: Sequence[str] | None) -> str:
    if classes is not None and 0 <= label < len(classes):
        return f"{classes[label]!r} (label {label})"
    return f"{label}"


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``cpuinfo``'s first ``model name`` on Linux, else :func:`platform.processor`), ""
    if unknown."""
    import platform

    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def environment_info() -> dict[str, str]:
    """Versions and device, printed at the end of every chapter and recorded with every result. ``cpu`` and
    ``cpu_kernels`` (the instruction set torch's CPU kernels dispatch to) tell machines apart: the same code
    and seed can train weights that differ in the last digits on two CPUs (summation order), enough for
    a long training to end a few tenths of a point apart."""
    import platform

    import ddlib

    info = {
        "ddlib": ddlib.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(get_device()),
        "threads": str(torch.get_num_threads()),
        "cpu": cpu_name(),
        "cpu_kernels": str(torch.backends.cpu.get_cpu_capability()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(command: str | None = None) -> dict[str, Any]:
    """Where a result came from, recorded with every one: command, git commit, device, date, torch's threads, the
    load average, the CPU count and the versions (:func:`environment_info`); under torchrun also the processes
    (:func:`ddlib.distributed.describe`)."""
    import subprocess
    import sys
    import time

    from ddlib import distributed

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    dev = get_device()
    device = torch.cuda.get_device_name(0) if dev.type == "cuda" else _cpu_threads(torch.get_num_threads())
    return {"command": command if command is not None else " ".join(sys.argv), "commit": commit,
            "device": device, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
            "environment": environment_info(), **distributed.describe()}


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


def _cpu_threads(n: int) -> str:
    """A CPU device in words, "CPU (2 threads)" or "CPU (1 thread)" (records before this read "1 threads")."""
    return f"CPU ({n} thread{'' if n == 1 else 's'})"
