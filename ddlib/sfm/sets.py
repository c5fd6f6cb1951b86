"""Synthetic sets on disk: the output format of ``python -m ddlib distill`` and the input of evaluation
(:mod:`ddlib.sfm.inherit`, ``python -m ddlib evaluate-synthetic``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ddlib.utils import json_safe


def save_synthetic(result: dict[str, Any], out_dir: str | os.PathLike, *, classes: list[str] | None = None,
                   backbone: str | None = None, dataset: Any = None, provenance: dict[str, Any] | None = None,
                   grid_max_classes: int = 100) -> dict[str, Path]:
    """Write ``out_dir``/images.pt, grid.png and distill.json for a :func:`distill` result.

    images.pt: torch.save of {"images" float [0, 1] (C·IPC, ch, S, S), "labels" int64, "classes",
    "config", "backbone", "dataset", "history", "wall_time", "stats_time", "peak_mem",
    "peak_mem_kind", "provenance"}. grid.png: one row per class (the first ``grid_max_classes``),
    IPC columns. distill.json: everything but the tensors.
    """
    from torchvision.utils import save_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {k: result[k] for k in ("config", "history", "wall_time", "stats_time", "peak_mem", "peak_mem_kind",
                                   "levels", "num_classes", "device") if k in result}
    meta.update({"classes": classes, "backbone": backbone, "dataset": dataset, "provenance": provenance,
                 "num_images": int(len(result["images"])), "image_shape": list(result["images"].shape[1:])})
    payload = {"images": result["images"].float().clamp(0, 1), "labels": result["labels"].long(), **meta}
    paths = {"images": out / "images.pt", "grid": out / "grid.png", "json": out / "distill.json"}
    torch.save(payload, paths["images"])
    ipc = int(result["config"]["ipc"])
    keep = min(len(result["images"]), grid_max_classes * ipc)
    grid = result["images"][:keep]
    if grid.shape[1] == 1:
        grid = grid.expand(-1, 3, -1, -1)
    save_image(grid, paths["grid"], nrow=ipc, padding=1)
    meta["grid_classes"] = keep // ipc
    paths["json"].write_text(json.dumps(json_safe(meta), indent=1))
    return paths


def load_synthetic(path: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_synthetic` wrote (a directory or its images.pt)."""
    p = Path(path)
    p = p / "images.pt" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"no synthetic images at {p} (expected images.pt written by `python -m ddlib distill`)")
    return torch.load(p, map_location="cpu", weights_only=False)
