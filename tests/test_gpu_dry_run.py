"""The ``gpu`` preset's exact code path on the CPU with only the sizes cut (issue 22): ``select`` (every method)
and ``evaluate`` through the CLI, and chapters 1, 2 and 4 through papermill at ``scale="gpu"``. The same models
(torchvision's ImageNet ResNet-18 at 224 px for Stage 1, the CIFAR ResNet-18 teacher and students, DeepCore's
forgetting run, the ViT-B/16 backbones of the synthesis chapters), input sizes and options; random weights
where this machine has none (``DDLIB_RANDOM_WEIGHTS``), so the first GPU run cannot fail on code that never ran.
``benchmarks/gpu_dry_run.py`` is the same run with its costs recorded; these tests use its cuts."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _script():
    spec = importlib.util.spec_from_file_location("gpu_dry_run", ROOT / "benchmarks" / "gpu_dry_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory):
    """The dry run's environment and data: CIFAR-10 and ImageNette fixtures in their real layouts."""
    work = tmp_path_factory.mktemp("gpu_dry_run")
    mod = _script()
    mp = pytest.MonkeyPatch()
    for k, v in mod.environment(work / "cache").items():
        mp.setenv(k, v)
    yield mod, work, f"cifar10:{mod.write_cifar10(work / 'cifar10')}", \
        f"imagenette:{mod.write_imagenette(work / 'imagenette')}"
    mp.undo()


def test_gpu_dry_run_select_and_evaluate(dry) -> None:  # noqa: ANN001
    from ddlib.cli import main

    mod, work, cifar, _ = dry
    assert main(mod.select_argv(cifar, work / "sel")) == 0
    sel = json.loads((work / "sel" / "bps_ipc2_seed0.json").read_text())
    enc, teacher = sel["config"]["encoder"], sel["config"]["teacher"]
    assert (enc["backbone"], enc["weights"], enc["input_size"]) == ("resnet18-imagenet", "imagenet", 224)
    assert (teacher["model"], sel["config"]["forgetting"]["source"]) == ("resnet18", "separate")
    for m in ("random", "herding", "kcenter", "forgetting", "centroids"):
        assert (work / "sel" / f"{m}_ipc2_seed0.json").exists()
    assert main(mod.evaluate_argv(work / "sel" / "bps_ipc2_seed0.json", work / "eval.json")) == 0
    ev = json.loads((work / "eval.json").read_text())
    assert ev["config"]["student"]["model"] == "resnet18" and len(ev["rows"][0]["per_seed"]) == 1


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", ["01_pattern_discovery", "02_balanced_selection", "04_classifier_inheritance"])
def test_gpu_dry_run_chapter(dry, chapter: str) -> None:  # noqa: ANN001
    mod, work, cifar, nette = dry
    mod.run_chapter(chapter, nette if chapter.startswith("04") else cifar, work, ROOT / "notebooks")
    nb = json.loads((work / f"{chapter}.ipynb").read_text())
    injected = "".join("".join(c["source"]) for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "scale = \"gpu\"" in injected


def test_random_weights_only_in_a_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DDLIB_RANDOM_WEIGHTS a network whose weights are absent stops with one line saying where to put them;
    with it, it starts from random weights and every artifact key says so."""
    from ddlib import artifacts, models
    from ddlib.nets.pretrained import RANDOM_WEIGHTS, resolve
    from ddlib.utils import ParamError

    monkeypatch.setenv("DDLIB_OFFLINE", "1")
    monkeypatch.setenv("DDLIB_WEIGHTS", "/nonexistent")
    monkeypatch.delenv("DDLIB_RANDOM_WEIGHTS", raising=False)
    spec = models.get("resnet18-imagenet")
    key = artifacts.make_key("x", None, {"a": 1})
    with pytest.raises(ParamError, match="resnet18-f37072fd.pth"):
        resolve(spec.name, spec.weights)
    monkeypatch.setenv("DDLIB_RANDOM_WEIGHTS", "1")
    with pytest.warns(UserWarning, match="random weights"):
        assert resolve(spec.name, spec.weights) == RANDOM_WEIGHTS
    assert artifacts.make_key("x", None, {"a": 1}) != key
