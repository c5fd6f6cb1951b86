"""Streamed folder data sets (issue 25 item 5): the lazy ImageStore gives the in-memory loader's pixels, stays
lazy when subsampled, refuses whole-set conversions, and the training loops (Stage 1's encoder, the teacher,
the students) run on it, computing what they compute in memory, within a memory cap the in-memory path exceeds."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddlib import data
from ddlib.utils import ParamError
from tests.test_data import _full_layout, _png, _write_folder, _write_tar

ROOT = Path(__file__).resolve().parents[1]


def _mixed_folder(tmp_path: Path) -> Path:
    """Sub-folders, a greyscale image among RGB ones and images of several sizes (so image_size is needed)."""
    files = _full_layout()
    files["toy/train/cat/extra/big.png"] = _png((200, 10, 10), size=9)
    files["toy/train/dog/grey.png"] = _png((90, 0, 0), mode="L")
    return _write_folder(tmp_path, files)


def _loads(path: Path, **kw: object) -> tuple[data.Dataset, data.Dataset]:
    with pytest.warns(data.DataLoadWarning, match="converted 1 image"):
        mem = data.load(f"imagefolder:{path}", image_size=5, **kw)
        lazy = data.load(f"imagefolder:{path}", image_size=5, stream=True, **kw)
    return mem, lazy


def test_a_streamed_folder_gives_the_in_memory_pixels(tmp_path: Path) -> None:
    mem, lazy = _loads(_mixed_folder(tmp_path))
    assert isinstance(lazy.train_x, data.ImageStore) and lazy.streamed and not mem.streamed
    assert lazy.train_x.shape == mem.train_x.shape == (38, 3, 5, 5) and lazy.image_shape == (3, 5, 5)
    assert lazy.classes == mem.classes and torch.equal(lazy.train_y, mem.train_y)
    assert torch.equal(lazy.train_x[:], mem.train_x) and torch.equal(lazy.test_x[:], mem.test_x)
    for key in (torch.tensor([5, 0, 37]), [3, 3], np.array([1, -1]), slice(2, 30, 7), torch.arange(38) % 3 == 0):
        assert torch.equal(lazy.train_x[key], mem.train_x[key])
    assert torch.equal(lazy.train_x[-2], mem.train_x[-2]) and lazy.train_x[[]].shape == (0, 3, 5, 5)
    with pytest.raises(IndexError, match="out of range for 38 images"):
        lazy.train_x[torch.tensor([38])]
    assert torch.equal(lazy.mean, mem.mean) and torch.equal(lazy.std, mem.std)  # a small set: exactly
    assert lazy.report["streamed"] and lazy.report["loaded"] == mem.report["loaded"]
    with pytest.warns(data.DataLoadWarning):
        assert lazy.key() == data.load(f"imagefolder:{tmp_path / 'toy'}", image_size=5, stream=True).key()


def test_subsampling_stays_streamed(tmp_path: Path) -> None:
    mem, lazy = _loads(_mixed_folder(tmp_path), per_class=4, test_per_class=2, seed=3)
    assert isinstance(lazy.train_x, data.ImageStore) and len(lazy.train_x) == 12 and len(lazy.test_x) == 6
    assert torch.equal(lazy.train_index, mem.train_index) and torch.equal(lazy.train_x[:], mem.train_x)
    assert lazy.spec == mem.spec  # stream is how, not which data: not in the spec


def test_large_sample_stats_are_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact size the mean/std come from an even sample, read in batches."""
    mem, lazy = _loads(_mixed_folder(tmp_path))
    monkeypatch.setattr(data.stream, "EXACT_STATS_BYTES", 0)
    sampled = lazy.train_x.subset(slice(None)).channel_stats(sample=20, batch=4)
    assert torch.allclose(sampled[0], mem.mean, atol=0.05) and torch.allclose(sampled[1], mem.std, atol=0.05)


def test_whole_set_conversions_are_refused(tmp_path: Path) -> None:
    _, lazy = _loads(_mixed_folder(tmp_path))
    for convert in (lambda x: x.float(), lambda x: x.numpy(), lambda x: x.to("cpu"), np.asarray):
        with pytest.raises(ParamError, match=r"would decode all 38 images of a streamed data set .* index it in batches"):
            convert(lazy.train_x)


def test_stream_needs_a_folder(tmp_path: Path) -> None:
    path = _write_tar(tmp_path / "toy.tar", _full_layout(), "w")
    with pytest.raises(ParamError, match=r"stream=True reads images from a folder, and .*toy\.tar is an archive: unpack"):
        data.load(f"imagefolder:{path}", stream=True)


def test_large_folders_stream_by_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_folder(tmp_path, _full_layout())
    monkeypatch.setattr(data.folder, "STREAM_ABOVE_BYTES", 54 * 3 * 6 * 6 - 1)  # 54 images of 3 x 6 x 6
    assert data.load(f"imagefolder:{path}").streamed
    assert not data.load(f"imagefolder:{path}", stream=False).streamed
    monkeypatch.setattr(data.folder, "STREAM_ABOVE_BYTES", 54 * 3 * 6 * 6)
    assert not data.load(f"imagefolder:{path}").streamed


def test_a_file_changed_after_indexing_is_named(tmp_path: Path) -> None:
    path = _write_folder(tmp_path, _full_layout())
    lazy = data.load(f"imagefolder:{path}", stream=True)
    (path / "train" / "cat" / "001.png").write_bytes(b"garbage")
    with pytest.raises(data.UnreadableDataError, match=r"cannot decode the image .*train/cat/001\.png"):
        lazy.train_x[torch.tensor([0, 1])]
    (path / "train" / "cat" / "001.png").write_bytes(_png((200, 10, 10), size=7))
    with pytest.raises(data.UnreadableDataError, match=r"001\.png is 7x7 px, not the 6x6 px it had"):
        lazy.train_x[1]
    # a new load sees the change (the index is keyed by the folder's tree)
    with pytest.raises(data.DataNotFoundError, match="several sizes"):
        data.load(f"imagefolder:{path}", stream=True)


def test_an_unreadable_file_is_named_when_indexing(tmp_path: Path) -> None:
    files = _full_layout()
    files["toy/train/dog/001.png"] = b"\x89PNG not really"
    path = _write_folder(tmp_path, files)
    with pytest.raises(data.UnreadableDataError, match=r"cannot decode the image .*dog/001\.png"):
        data.load(f"imagefolder:{path}", stream=True)
    with pytest.warns(data.DataLoadWarning, match="1 unreadable"):
        lazy = data.load(f"imagefolder:{path}", stream=True, skip_unreadable=True)
    assert torch.bincount(lazy.train_y).tolist() == [12, 11, 12]


# ---- the training loops on a streamed data set ----------------------------------------------------------

def _colour_folder(tmp_path: Path) -> Path:
    """Three classes of noisy colour patches (16 x 16 JPEG), 20 train and 6 test images each."""
    rng = np.random.default_rng(0)
    files = {}
    for k, c in enumerate(("red", "green", "blue")):
        for split, n in (("train", 20), ("test", 6)):
            for i in range(n):
                base = np.full((16, 16, 3), 40, np.uint8)
                base[..., k] = 200
                img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="JPEG", quality=90)
                files[f"c/{split}/{c}/{i:02d}.jpg"] = buf.getvalue()
    return _write_folder(tmp_path, files)


def test_teacher_and_students_train_on_a_streamed_set_as_in_memory(tmp_path: Path) -> None:
    from ddlib.bps.distill import (StudentConfig, TeacherConfig, evaluate_selection, teacher_entropies, teacher_key,
                                   train_teacher)

    path = _colour_folder(tmp_path)
    mem = data.load(f"imagefolder:{path}")
    lazy = data.load(f"imagefolder:{path}", stream=True)
    tcfg = TeacherConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=16, lr=0.05)
    assert teacher_key(mem, tcfg) != teacher_key(lazy, tcfg)  # each trained, not one read from the other's cache
    t_mem, t_lazy = train_teacher(mem, tcfg, progress=False), train_teacher(lazy, tcfg, progress=False)
    for a, b in zip(t_mem.state_dict().values(), t_lazy.state_dict().values()):
        assert torch.equal(a, b)  # the same pixels, the same statistics, the same random draws
    assert t_lazy.test_acc == t_mem.test_acc and t_lazy.test_acc > 0.9
    assert torch.equal(teacher_entropies(t_lazy, lazy.train_x), teacher_entropies(t_mem, mem.train_x))
    assert np.array_equal(t_lazy.scores["el2n"], t_mem.scores["el2n"])  # the forgetting/EL2N hooks read it too
    idx = torch.cat([torch.nonzero(mem.train_y == c).flatten()[:2] for c in range(3)])
    scfg = StudentConfig(model="convnet", width=8, depth=1, epochs=3, last_epochs=2)
    r_mem = evaluate_selection(mem, idx, scfg, seeds=1, teacher=t_mem, progress=False)
    r_lazy = evaluate_selection(lazy, idx, scfg, seeds=1, teacher=t_lazy, progress=False)
    assert r_lazy["per_seed"] == r_mem["per_seed"]


def test_stage1_encoder_trains_and_embeds_a_streamed_set(tmp_path: Path) -> None:
    from ddlib.bps.encoder import PATTERN_CLUSTERING
    from ddlib.bps.patterns import PatternConfig
    from ddlib.encoders import EncoderConfig, train_embeddings, train_moco

    path = _colour_folder(tmp_path)
    cfg = EncoderConfig(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8, epochs=1,
                        batch_size=16, queue_size=48, warmup_epochs=0, clu_warmup_epochs=0, pattern=PatternConfig(k=5))
    out = {}
    for mode in (False, True):
        ds = data.load(f"imagefolder:{path}", stream=mode)
        model, hist = train_moco(ds, cfg, progress=False, clustering=PATTERN_CLUSTERING)
        out[mode] = (hist, train_embeddings(model, ds, cfg))
    assert out[True][0]["loss"] == out[False][0]["loss"]
    assert out[True][1].shape == (60, out[True][1].shape[1]) and torch.equal(out[True][1], out[False][1])


@pytest.mark.slow
def test_streaming_keeps_memory_below_what_the_images_take(tmp_path: Path) -> None:
    """A teacher epoch, its evaluation and a KD student on 1,500 images of 64 px, each mode in a fresh process:
    the streamed run's peak memory stays below what the same work takes on random images plus the decoded
    images' size, the in-memory run's does not (figures for a larger folder: benchmarks/bench_stream.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_stream
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    folder = bench_stream.write_folder(tmp_path, images=1500, size=64)
    stream = bench_stream.measure(folder, "stream", tmp_path / "cache-stream")
    memory = bench_stream.measure(folder, "memory", tmp_path / "cache-memory")
    assert stream["streamed"] and not memory["streamed"]
    for run in (stream, memory):
        cap = run["work_bytes"] + run["decoded_bytes"]  # the work's own peak + 1,500 x 3 x 64 x 64 bytes (17.6 MiB)
        assert (run["peak_growth_bytes"] < cap) == run["streamed"], (stream, memory)
