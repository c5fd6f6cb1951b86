"""Synthetic sets on disk: the output format of ``python -m ddlib distill`` and the input of evaluation
(:mod:`ddlib.sfm.inherit`, ``python -m ddlib evaluate-synthetic``).

A set carries the identity of what made it (``identity``: dataset, class names, channels, image size,
backbone; :mod:`ddlib.identity`), so that a reader can refuse to score it against another dataset. Its files
are written atomically, the record (``distill.json``) last: a folder whose record is missing was not
finished. A file that cannot be read as a set is named in a one-line :class:`~ddlib.utils.ParamError`.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from ddlib.artifacts import write_bytes_atomic, write_json_atomic
from ddlib.identity import dataset_name
from ddlib.utils import ParamError, json_safe

__all__ = ["save_synthetic", "load_synthetic"]


def save_synthetic(result: dict[str, Any], out_dir: str | os.PathLike, *, classes: list[str] | None = None,
                   backbone: str | None = None, dataset: Any = None, provenance: dict[str, Any] | None = None,
                   grid_max_classes: int = 100) -> dict[str, Path]:
    """Write ``out_dir``/images.pt, grid.png and distill.json for a :func:`distill` result.

    images.pt: torch.save of {"images" float [0, 1] (C·IPC, ch, S, S), "labels" int64, "classes",
    "config", "backbone", "dataset", "identity", "history", "wall_time", "stats_time", "peak_mem",
    "peak_mem_kind", "provenance"}. grid.png: one row per class (the first ``grid_max_classes``),
    IPC columns. distill.json: everything but the tensors. Each file is written atomically; an earlier
    distill.json is removed first and the new one written last.
    """
    from torchvision.utils import save_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = result["images"]
    meta = {k: result[k] for k in ("config", "history", "wall_time", "stats_time", "peak_mem", "peak_mem_kind",
                                   "levels", "num_classes", "device") if k in result}
    identity = {"dataset": dataset_name(dataset), "classes": classes, "channels": int(images.shape[1]),
                "image_size": int(images.shape[-1]), "backbone": backbone}
    meta.update({"classes": classes, "backbone": backbone, "dataset": dataset, "provenance": provenance,
                 "identity": identity, "num_images": int(len(images)), "image_shape": list(images.shape[1:])})
    payload = {"images": images.float().clamp(0, 1), "labels": result["labels"].long(), **meta}
    paths = {"images": out / "images.pt", "grid": out / "grid.png", "json": out / "distill.json"}
    paths["json"].unlink(missing_ok=True)  # the record goes last: without it the folder reads as unfinished
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(paths["images"], buf.getvalue())
    ipc = int(result["config"]["ipc"])
    keep = min(len(images), grid_max_classes * ipc)
    grid = images[:keep]
    if grid.shape[1] == 1:
        grid = grid.expand(-1, 3, -1, -1)
    buf = io.BytesIO()
    save_image(grid, buf, format="png", nrow=ipc, padding=1)
    write_bytes_atomic(paths["grid"], buf.getvalue())
    meta["grid_classes"] = keep // ipc
    write_json_atomic(paths["json"], json_safe(meta))
    return paths


def load_synthetic(path: str | os.PathLike, name: str = "images") -> dict[str, Any]:
    """Read what :func:`save_synthetic` wrote (a directory or its images.pt).

    A missing file raises FileNotFoundError; a file that is not a synthetic set (not a torch file, truncated,
    no ``images``/``labels``, tensors of the wrong shape) a :class:`ParamError` naming ``name`` and the file.
    """
    p = Path(path)
    p = p / "images.pt" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"no synthetic images at {p} (expected images.pt written by `python -m ddlib distill`)")
    again = "write it again with python -m ddlib distill"
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a pickle, zip or OS error: the file is named, no traceback
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ParamError(f"{name}={str(path)!r}: {str(p)!r} cannot be read as a synthetic set "
                         f"({type(e).__name__}: {first}); {again}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("images"), torch.Tensor) \
            or not isinstance(obj.get("labels"), torch.Tensor):
        raise ParamError(f"{name}={str(path)!r}: {str(p)!r} is not a synthetic set (a dict with tensors 'images' and "
                         f"'labels'); {again}")
    x, y = obj["images"], obj["labels"]
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or len(y) == 0 or y.is_floating_point():
        raise ParamError(f"{name}={str(path)!r}: {str(p)!r} holds images {tuple(x.shape)} and labels {tuple(y.shape)}; "
                         f"a synthetic set is (N, C, H, W) images and N integer labels; {again}")
    return obj
