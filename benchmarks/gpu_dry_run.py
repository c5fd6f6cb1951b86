"""The ``gpu`` scale's exact code path on a CPU with only the sizes cut (issue 22): a dry run, and its costs.

    .venv/bin/python benchmarks/gpu_dry_run.py --out benchmarks/results/gpu_dry_run_cpu.json

Runs ``python -m ddlib select`` (every method) and ``evaluate`` at ``--scale gpu`` on a few images per class of a
CIFAR-10 fixture in its ImageFolder layout, then, with ``--chapters``, chapters 1, 2 and 4 through papermill at
``scale="gpu"``: the same models (torchvision's ImageNet ResNet-18 at 224 px for Stage 1, CIFAR ResNet-18
teacher and students, the ViT-B backbones of the synthesis chapters), the same input sizes and options; only
sizes are cut (images per class, epochs, steps, batches, the queue, IPCs). Pretrained weights this machine
lacks start from random weights (``DDLIB_RANDOM_WEIGHTS=1``, ``DDLIB_OFFLINE=1``; the artifact keys say so),
so the first GPU run cannot fail on code that never ran. ``tests/test_gpu_dry_run.py`` runs the same at the
smallest sizes.

The record holds each stage's wall time and, per stage, the cost of one step or image at the full input size,
scaled to the preset's full sizes (CIFAR-10's 50,000 training images, its epochs and IPCs): what each stage of
the ``gpu`` scale would take on this machine. A GPU is much faster; no GPU has run it here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: what the cut sizes replace (the option, its dry-run value); everything else is the gpu preset's
SELECT_CUTS = {"--per-class": "4", "--test-per-class": "2", "--ipc": "1,2", "--encoder-epochs": "1",
               "--encoder-batch": "8", "--encoder-warmup": "0", "--clu-warmup": "0", "--queue-size": "32",
               "--teacher-epochs": "1", "--forgetting-epochs": "1"}
EVALUATE_CUTS = {"--seeds": "1", "--epochs": "1", "--last-epochs": "1"}
#: chapter -> the chapter's parameters that cut its sizes at scale "gpu"
CHAPTER_CUTS = {
    "01_pattern_discovery": dict(per_class=4, encoder_per_class=4, epochs=1, batch_size=8, queue_size=32,
                                 warmup_epochs=0, clu_warmup_epochs=0, projection="pca"),
    "02_balanced_selection": dict(per_class=4, encoder_per_class=4, test_per_class=2, ipcs=[1, 2], encoder_epochs=1,
                                  teacher_epochs=1, student_epochs=1, last_epochs=1, seeds=1),
    "04_classifier_inheritance": dict(per_class=2, test_per_class=2, steps=2, grow_every=1, probe_epochs=1,
                                      golden_epochs=1, runs=1, views=1),
}


def environment(cache: Path) -> dict[str, str]:
    """The dry run's environment: random weights where weights are absent, no hub, its own cache."""
    return {"DDLIB_RANDOM_WEIGHTS": "1", "DDLIB_OFFLINE": "1", "DDLIB_CACHE": str(cache), "DDLIB_PROGRESS": "0"}


def write_cifar10(root: Path, per_class: int = 4, test_per_class: int = 2) -> Path:
    """A CIFAR-10 fixture in the ImageFolder layout the ``cifar10:PATH`` loader reads (32 px PNGs)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c, name in enumerate(CIFAR_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = (rng.integers(0, 60, (32, 32, 3)) + 19 * c).clip(0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


def write_imagenette(root: Path, n: int = 2) -> Path:
    """An ImageNette fixture in fast.ai's imagenette2-160 layout (train/ and val/ of WordNet ids, JPEGs)."""
    import numpy as np
    from PIL import Image

    from ddlib.data.imagenet import IMAGENETTE_CLASSES

    rng = np.random.default_rng(0)
    base = root / "imagenette2-160"
    for k, wnid in enumerate(IMAGENETTE_CLASSES):
        for split in ("train", "val"):
            (base / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = (rng.integers(0, 80, (40, 48, 3)) + 17 * k).clip(0, 255).astype(np.uint8)
                Image.fromarray(img).save(base / split / wnid / f"{wnid}_{i}.JPEG")
    return base


def select_argv(dataset: str, out: Path) -> list[str]:
    argv = ["select", "--scale", "gpu", "--dataset", dataset, "--method", "bps,random,herding,kcenter,forgetting,centroids",
            "--out", str(out), "--quiet"]
    for k, v in SELECT_CUTS.items():
        argv += [k, v]
    return argv


def evaluate_argv(selection: Path, out: Path) -> list[str]:
    argv = ["evaluate", "--scale", "gpu", "--selection", str(selection), "--out", str(out), "--quiet"]
    for k, v in EVALUATE_CUTS.items():
        argv += [k, v]
    return argv


def run_chapter(name: str, dataset: str, out_dir: Path, cwd: Path) -> float:
    """Chapter ``name`` at scale gpu with its cut sizes through papermill; its wall seconds."""
    import papermill as pm

    params = {"scale": "gpu", "dataset": dataset, **CHAPTER_CUTS[name]}
    start = time.perf_counter()
    pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"), parameters=params,
                        kernel_name="python3", progress_bar=False, cwd=str(cwd))
    return time.perf_counter() - start


def full_scale_estimate(sel: dict, ev: dict) -> dict:
    """Each BPS stage's cost per image (or step) in the dry run, scaled to the gpu preset's full sizes."""
    from ddlib import presets
    from ddlib.selectors import names

    g = presets.bps("gpu")
    n_train = 50_000
    cfg = sel["config"]
    enc, teacher = cfg["encoder"], cfg["teacher"]
    stage1 = (sel.get("modelling") or {}).get("stage1_seconds") or {}
    pool = int((sel.get("modelling") or {}).get("pool_size") or 1)
    per_img_enc = stage1.get("encoder", 0.0) / max(1, enc["epochs"] * pool)
    per_img_embed = stage1.get("embed", 0.0) / pool
    t_sec = sel["timings"].get("shared_teacher", 0.0)
    per_img_teacher = t_sec / max(1, teacher["epochs"] * pool)
    s_sec = ev["rows"][0]["student_seconds"]
    s_sec = sum(s_sec) if isinstance(s_sec, list) else s_sec
    n_sel = ev["rows"][0]["n_images"]
    per_img_student = s_sec / max(1, int(EVALUATE_CUTS["--epochs"]) * n_sel)
    students = len(names()) * g.seeds * 2
    return {
        "stage1_encoder_h": per_img_enc * g.encoder.epochs * n_train / 3600,
        "stage1_embed_h": per_img_embed * n_train / 3600,
        "teacher_h": per_img_teacher * g.teacher.epochs * n_train / 3600,
        "forgetting_h": per_img_teacher * g.forgetting.epochs * n_train / 3600,
        "students_h": sum(per_img_student * g.student.epochs * k * 10 for k in g.ipcs) * students / 3600,
        "per_image_seconds": {"stage1_encoder": per_img_enc, "stage1_embed": per_img_embed,
                              "teacher": per_img_teacher, "student": per_img_student},
        "assumptions": f"CIFAR-10 {n_train} training images; Stage 1 {g.encoder.epochs} epochs at "
                       f"{g.encoder.input_size} px; teacher {g.teacher.epochs} and forgetting run {g.forgetting.epochs} "
                       f"epochs (the forgetting run costs what a teacher epoch costs); {students} students per IPC "
                       f"({g.seeds} seeds, KD and hard labels) of {g.student.epochs} epochs at IPC {list(g.ipcs)}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--chapters", action="store_true", help="also chapters 1, 2 and 4 through papermill")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    import tempfile

    from ddlib import results
    from ddlib.cli import main as cli

    work = Path(a.work or tempfile.mkdtemp(prefix="ddlib-gpu-dry-run-"))
    os.environ.update(environment(work / "cache"))
    cifar = f"cifar10:{write_cifar10(work / 'cifar10')}"
    nette = f"imagenette:{write_imagenette(work / 'imagenette')}"
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if cli(select_argv(cifar, work / "sel")) != 0:
        raise SystemExit("select failed")
    seconds["select"] = time.perf_counter() - t
    t = time.perf_counter()
    if cli(evaluate_argv(work / "sel" / "bps_ipc2_seed0.json", work / "eval.json")) != 0:
        raise SystemExit("evaluate failed")
    seconds["evaluate"] = time.perf_counter() - t
    sel = json.loads((work / "sel" / "bps_ipc2_seed0.json").read_text())
    ev = json.loads((work / "eval.json").read_text())
    if a.chapters:
        for name in CHAPTER_CUTS:
            seconds[name] = run_chapter(name, nette if name.startswith("04") else cifar, work, ROOT / "notebooks")
    results.write(a.out, what="the gpu scale's code path on a CPU with only the sizes cut (dry run), and its costs "
                              "scaled to the full sizes",
                  config={"select_cuts": SELECT_CUTS, "evaluate_cuts": EVALUATE_CUTS,
                          "chapter_cuts": CHAPTER_CUTS if a.chapters else {}, "environment": environment(Path("CACHE"))},
                  rows=[{"stage": k, "wall_s": v} for k, v in seconds.items()],
                  timings={"wall_s": sum(seconds.values())}, full_scale_estimate=full_scale_estimate(sel, ev))
    print(json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
