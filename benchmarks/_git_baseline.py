"""The implementation a benchmark compares against, loaded from git history into this process.

Benchmarks of issue 12 time the new kernels beside the ones they replace, in the same run (same
machine, same load): ``load("ddlib/kernels/knn.py")`` returns that file as it was at
:data:`BASELINE_COMMIT`, as a module. None when git or the commit is not available.
"""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the last commit before issue 12's kernels (kNN, Stage 2, augmentation, pattern discovery)
BASELINE_COMMIT = "678a6d5"


def load(path: str, commit: str = BASELINE_COMMIT) -> types.ModuleType | None:
    """``path`` (relative to the repository) at ``commit`` as a module, or None."""
    try:
        src = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    name = f"_baseline_{commit}_{Path(path).stem}"
    mod = types.ModuleType(name)
    mod.__file__ = f"{commit}:{path}"
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def describe(path: str, commit: str = BASELINE_COMMIT) -> dict[str, str]:
    """How a record names the baseline it measured."""
    return {"file": path, "commit": commit, "how": "loaded from git history and timed in the same run"}
