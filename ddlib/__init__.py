"""ddlib: dataset distillation, reproducibly.

Balanced Pattern Selection (BPS) and Statistical Flow Matching with Classifier
Inheritance (SFM + CI), with the kernels, data and model registries, cache and plots
that the book's chapters call.
"""
#: the package's version, read by pyproject.toml; it enters every artifact's cache key, so a release that
#: changes what a stage computes bumps it and old cached artifacts are not reused
__version__ = "0.2.0"

from ddlib.utils import ParamError, get_device, seed_everything  # noqa: E402

__all__ = ["__version__", "ParamError", "get_device", "seed_everything"]
