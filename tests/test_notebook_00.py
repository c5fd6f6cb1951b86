"""Chapter 00 (the data) runs under papermill with any valid parameters and stops at once on invalid ones."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import nbformat
import numpy as np
import papermill as pm
import pytest
from PIL import Image

from tests._chapters import check_page

pytestmark = pytest.mark.notebook
CIFAR_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.xz"  # ../shared/data
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def check_executed(path: Path, n_classes: int) -> dict[str, object]:
    """No error output; the grid, the table and the environment report are there; returns the glued numbers."""
    nb = nbformat.read(path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    png = "data:image/png;base64," in html.replace("\\u002f", "/")  # plotly's html escapes "/" in its JSON
    assert "plotly-graph-div" in html and png, "the image grid is missing"
    assert "<table" in html, "the class-balance table is missing"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "torch:" in text and "device:" in text, "the environment report is missing"
    g = check_page(path)  # the "What we found" box, every cited value set, no NaN on the page
    assert g["n_classes"] == n_classes
    assert g["n_distilled"] == g["ipc"] * n_classes
    return g


def test_default_dataset_at_test_scale(run_notebook) -> None:
    g = check_executed(run_notebook("00_data", scale="test"), 10)
    assert g["max_per_class"] == 30  # the test preset: Fashion-MNIST, 30 per class
    assert g["chapter_time"] != "not recorded yet"  # the opening's cost, from the book-build record
    assert g["balance_words"] == "the same number of images"


def test_the_finding_cites_the_recorded_random_baseline(run_notebook) -> None:
    """At IPC 10 the box reads random selection's five-seed accuracy from chapter 2's record."""
    g = check_executed(run_notebook("00_data", scale="test", ipc=10), 10)
    assert g["rec_random_kd"].endswith(" %") and g["rec_random_ce"].endswith(" %"), g["rec_random_kd"]


def test_digits_with_explicit_parameters(run_notebook) -> None:
    g = check_executed(run_notebook("00_data", scale="test", dataset="digits", per_class=12, seed=3, ipc=2), 10)
    assert (g["n_train"], g["min_per_class"], g["ipc"]) == (120, 12, 2)


def test_synthetic_patterns(run_notebook) -> None:
    check_executed(run_notebook("00_data", scale="test", dataset="synthetic-patterns", per_class=None), 4)


def _write_cifar_tar(path: Path, images: dict[tuple[str, str], list[bytes]]) -> None:
    with tarfile.open(path, "w") as t:
        for (split, cls), blobs in images.items():
            for i, blob in enumerate(blobs):
                info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{cls}/{i:04d}.jpg")
                info.size = len(blob)
                t.addfile(info, io.BytesIO(blob))


def _generated_images(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_cifar10_archive_made_here(run_notebook, tmp_path: Path) -> None:
    """The ``cifar10:PATH`` form on a tiny archive of generated 32x32 JPEGs in CIFAR-10's layout."""
    rng = np.random.default_rng(0)
    tar = tmp_path / "tiny-cifar10.tar"
    _write_cifar_tar(tar, {(s, c): [_generated_images(rng) for _ in range(n)]
                           for s, n in (("train", 3), ("test", 1)) for c in CIFAR_CLASSES})
    g = check_executed(run_notebook("00_data", scale="test", dataset=f"cifar10:{tar}", ipc=2), 10)
    assert g["n_train"] == 30


@pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason=f"the CIFAR-10 JPEG archive is not at {CIFAR_ARCHIVE}")
def test_cifar10_real_jpegs(run_notebook, tmp_path: Path) -> None:
    """Real CIFAR-10 JPEGs: the first four per class and split of the shared archive, repacked small
    (decoding the whole archive takes a minute)."""
    want = {(s, c): [] for s in ("train", "test") for c in CIFAR_CLASSES}
    with tarfile.open(CIFAR_ARCHIVE, "r:xz") as t:
        for m in t:
            parts = m.name.split("/")
            if m.isfile() and len(parts) >= 3 and len(want.get((parts[-3], parts[-2]), [0] * 4)) < 4:
                want[(parts[-3], parts[-2])].append(t.extractfile(m).read())
            if all(len(v) == 4 for v in want.values()):
                break
    tar = tmp_path / "cifar10-sample.tar"
    _write_cifar_tar(tar, want)
    g = check_executed(run_notebook("00_data", scale="test", dataset=f"cifar10:{tar}", ipc=3), 10)
    assert g["n_train"] == 40


@pytest.mark.parametrize("params, name", [
    (dict(dataset="no-such-data"), "dataset"),
    (dict(per_class=0), "per_class"),
    (dict(scale="huge"), "scale"),
])
def test_invalid_parameters_fail_in_the_first_cells(run_notebook, params: dict, name: str) -> None:
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook("00_data", **{"scale": "test", **params})
    assert err.value.ename == "ParamError"
    assert name in err.value.evalue
    assert err.value.exec_count <= 3, "the error must come from the parameter cells, before any work"
