"""ddlib: dataset distillation, reproducibly.

Balanced Pattern Selection (BPS) and Statistical Flow Matching with Classifier
Inheritance (SFM + CI), with the kernels, data and model registries, cache and plots
that the book's chapters call.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("ddlib")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"

from ddlib.utils import ParamError, get_device, seed_everything  # noqa: E402

__all__ = ["__version__", "ParamError", "get_device", "seed_everything"]
