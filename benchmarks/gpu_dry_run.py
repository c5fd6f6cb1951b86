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

The record holds each stage's wall time in the dry run and, per stage, the steady-state cost of one image's
step at the full input size (:func:`step_costs`), scaled to the preset's full sizes (:func:`full_scale_estimate`:
CIFAR-10's 50,000 training images, its epochs and IPCs; ImageNette for SFM): what each stage of the ``gpu``
scale would take on this machine's one thread. A GPU is much faster; no GPU has run it here.
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


def _fwd_bwd_seconds(model, x, backward: bool = True, repeats: int = 3) -> float:
    """Seconds per image of one forward (and backward) pass of ``model`` on ``x``, the best of ``repeats`` after a
    warm-up (steady state: no first-call costs)."""
    import torch

    def once() -> float:
        t = time.perf_counter()
        if backward:
            model.zero_grad(set_to_none=True)
            model(x).float().sum().backward()
        else:
            with torch.no_grad():
                model(x)
        return time.perf_counter() - t

    once()
    return min(once() for _ in range(repeats)) / len(x)


def step_costs(batch: int = 4) -> dict:
    """Each gpu stage's steady-state cost per image on this machine: forward + backward of its network at its
    input size (Stage 1's MoCo step: the query's forward and backward plus the key's forward; the teacher, the
    forgetting run and the students: the CIFAR ResNet-18 at 32 px; the embeddings: a forward at 224 px; SFM: a
    forward and backward of the ViT-B/16 at 224 px per synthetic view), random weights, ``batch`` images."""
    import torch

    from ddlib import models, presets

    torch.manual_seed(0)
    g = presets.bps("gpu")
    trunk = models.create(g.encoder.backbone, 10, 3, 32, weights=None, pretrained=False,
                          input_size=g.encoder.input_size)
    cifar = models.create(g.teacher.model, 10, 3, 32)
    vit = models.create(presets.ci("gpu").distill_backbone, 10, 3, 224, pretrained=False)
    x32, x224 = torch.rand(batch, 3, 32, 32), torch.rand(batch, 3, 224, 224)
    enc_fb, enc_f = _fwd_bwd_seconds(trunk, x32), _fwd_bwd_seconds(trunk, x32, backward=False)
    return {"stage1_step_per_image": enc_fb + enc_f, "embed_per_image": enc_f,
            "cifar_resnet18_step_per_image": _fwd_bwd_seconds(cifar, x32),
            "vit_step_per_view": _fwd_bwd_seconds(vit, x224), "batch": batch, "threads": torch.get_num_threads()}


def full_scale_estimate(costs: dict) -> dict:
    """The gpu preset's stages on this machine: the steady-state per-image costs scaled to its full sizes."""
    from ddlib import presets
    from ddlib.selectors import names

    g, c = presets.bps("gpu"), presets.ci("gpu")
    n_train = 50_000
    students = len(names()) * g.seeds * 2  # every method, its seeds, KD and hard labels
    imagenette = 9_469  # ImageNette's training images
    return {
        "stage1_encoder_h": costs["stage1_step_per_image"] * g.encoder.epochs * n_train / 3600,
        "stage1_embed_h": costs["embed_per_image"] * n_train / 3600,
        "teacher_h": costs["cifar_resnet18_step_per_image"] * g.teacher.epochs * n_train / 3600,
        "forgetting_h": costs["cifar_resnet18_step_per_image"] * g.forgetting.epochs * n_train / 3600,
        "students_h": sum(costs["cifar_resnet18_step_per_image"] * g.student.epochs * k * 10 for k in g.ipcs)
        * students / 3600,
        "sfm_h": costs["vit_step_per_view"] * c.steps * c.ipc * 10 / 3600,
        "sfm_statistics_h": costs["vit_step_per_view"] / 3 * imagenette / 3600,
        "assumptions": f"CIFAR-10's {n_train} training images: Stage 1 {g.encoder.epochs} epochs at "
                       f"{g.encoder.input_size} px, teacher {g.teacher.epochs} and forgetting run "
                       f"{g.forgetting.epochs} epochs, {students} students per IPC ({g.seeds} seeds, KD and hard "
                       f"labels) of {g.student.epochs} epochs at IPC {list(g.ipcs)} (a KD step's teacher forward "
                       f"left out); SFM {c.steps} steps of {c.ipc} image per class x 10 classes, its statistics pass "
                       f"a forward (1/3 of a step) over ImageNette's {imagenette} training images; one thread's "
                       "steady-state steps, no data loading",
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
    costs = step_costs()
    t = time.perf_counter()
    if cli(select_argv(cifar, work / "sel")) != 0:
        raise SystemExit("select failed")
    seconds["select"] = time.perf_counter() - t
    t = time.perf_counter()
    if cli(evaluate_argv(work / "sel" / "bps_ipc2_seed0.json", work / "eval.json")) != 0:
        raise SystemExit("evaluate failed")
    seconds["evaluate"] = time.perf_counter() - t
    if a.chapters:
        for name in CHAPTER_CUTS:
            seconds[name] = run_chapter(name, nette if name.startswith("04") else cifar, work, ROOT / "notebooks")
    results.write(a.out, what="the gpu scale's code path on a CPU with only the sizes cut (dry run), and its costs "
                              "scaled to the full sizes",
                  config={"select_cuts": SELECT_CUTS, "evaluate_cuts": EVALUATE_CUTS,
                          "chapter_cuts": CHAPTER_CUTS if a.chapters else {}, "environment": environment(Path("CACHE"))},
                  rows=[{"stage": k, "wall_s": v} for k, v in seconds.items()],
                  timings={"wall_s": sum(seconds.values())}, step_costs=costs,
                  full_scale_estimate=full_scale_estimate(costs))
    print(json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
