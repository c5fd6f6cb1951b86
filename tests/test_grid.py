"""train_students gives every job what train_student gives it alone (tiny ConvNets on digits).

On CPU the default (stacks of one student, ``workers`` for the cores) runs the same kernels on the
same shapes as train_student: weights and accuracies are equal bit for bit (this also relies on the
conv giving each test image the same logits at the evaluation's batch of 64 as at train_student's
512, which oneDNN does on the CPUs tried).

Stacks of several students (grouped convs, vmap) sum in another order. Tolerances after 32 optimiser
steps at lr 1e-2 (float32): the per-epoch test accuracies are equal; the test logits agree within
1e-3, and the weights within 1e-3 except the conv biases right before a GroupNorm: their true
gradient is 0, Adam turns the rounding noise of their computed gradient into lr-sized steps in either
path, and they do not change the function (see ddlib.stack). Over longer training such differences
grow like any float nondeterminism (recorded in benchmarks/bench_student_grid.py's ``check``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ddlib import data
from ddlib.bps import distill
from ddlib.bps.distill import StudentConfig, TeacherConfig, train_student, train_teacher
from ddlib.bps.grid import StudentJob, job_groups, stacked_loss, supports, train_students
from ddlib.losses import kd_kl_loss
from ddlib.train import Batch
from ddlib.utils import ParamError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    ds = data.load("digits", per_class=30, test_per_class=20)
    with pytest.MonkeyPatch.context() as mp:  # the session's cache (the autouse fixture is per test)
        mp.setenv("DDLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        teacher = train_teacher(ds, TeacherConfig(model="convnet", width=16, depth=2, epochs=20, batch_size=32,
                                                  lr=0.05, augment="none"), progress=False)
    cfg = replace(StudentConfig(model="convnet", width=8, depth=2, epochs=8, last_epochs=3, lr=1e-2)
                  .resolved("digits", 10, 3), batch_size=8)
    return ds, teacher, cfg


def selection(ds, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = ds.train_y.numpy()
    return np.concatenate([rng.choice(np.nonzero(y == c)[0], per_class, replace=False) for c in range(10)])


def one_by_one(ds, jobs, cfg, teacher, monkeypatch):
    """train_student per job, keeping each trained student (caught where train_student builds it)."""
    built, build = [], distill.build_model

    def spy(*args, **kw):
        built.append(build(*args, **kw))
        return built[-1]

    out = []
    with monkeypatch.context() as mp:
        mp.setattr(distill, "build_model", spy)
        for j in jobs:
            r = train_student(ds, j.indices, j.cfg or cfg, teacher, seed=j.seed, progress=False)
            out.append((r, built[-1]))
    return out


def assert_same_student(ds, got: dict, want: dict, model: torch.nn.Module) -> None:
    assert got["accs"] == want["accs"]
    assert got["best_acc"] == want["best_acc"] and got["last_acc"] == want["last_acc"]
    twin = distill.build_model(ds, "convnet", model.body[0].out_channels, len(model.body) // 4)
    twin.load_state_dict(got["state_dict"])
    x = ds.test_x.float() / 255
    with torch.no_grad():
        torch.testing.assert_close(twin.eval()(x), model.eval()(x), rtol=0, atol=1e-3)
    for name, w in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "body" and parts[-1] == "bias" and isinstance(model.body[int(parts[1])], torch.nn.Conv2d):
            continue  # the pre-norm conv bias: see the module docstring
        torch.testing.assert_close(got["state_dict"][name], w, rtol=0, atol=1e-3)


def mixed_jobs(ds, cfg) -> list[StudentJob]:
    """Different selections and seeds, KD and hard-label students."""
    ce = replace(cfg, loss="ce")
    return [StudentJob.of(selection(ds, 3, 0), 0), StudentJob.of(selection(ds, 3, 1), 1),
            StudentJob.of(selection(ds, 3, 2), 0, ce), StudentJob.of(selection(ds, 3, 0), 2, ce)]


@pytest.fixture
def one_thread():
    """One intra-op thread (the grid's CPU workers use one each; train_student's sums change with the count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("workers", [1, 2])
def test_default_cpu_path_is_train_student_bit_for_bit(setup, workers, monkeypatch, one_thread):
    ds, teacher, cfg = setup
    jobs = mixed_jobs(ds, cfg)
    got = train_students(ds, jobs, cfg, teacher, progress=False, keep_weights=True, workers=workers, device="cpu")
    for g, (w, model) in zip(got, one_by_one(ds, jobs, cfg, teacher, monkeypatch)):
        assert g["stack_size"] == 1
        assert g["accs"] == w["accs"] and g["best_acc"] == w["best_acc"] and g["last_acc"] == w["last_acc"]
        for name, v in model.state_dict().items():
            assert torch.equal(g["state_dict"][name], v), name
    assert max(g["best_acc"] for g in got) > 0.3  # the students learn: the comparison is not of chance-level nets


@pytest.mark.parametrize("backend", ["grouped", "vmap"])
def test_stacked_students_equal_one_by_one(setup, backend, monkeypatch):
    ds, teacher, cfg = setup
    jobs = mixed_jobs(ds, cfg)
    got = train_students(ds, jobs, cfg, teacher, progress=False, backend=backend, keep_weights=True, max_stack=64)
    want = one_by_one(ds, jobs, cfg, teacher, monkeypatch)
    for g, (w, model) in zip(got, want):
        assert g["stack_size"] == 4 and len(g["accs"]) == 3
        assert_same_student(ds, g, w, model)


def test_groups_of_different_sizes(setup, monkeypatch):
    """Selections of 30 and 50 images and a second batch size: separate stacks, each job as alone."""
    ds, teacher, cfg = setup
    jobs = [StudentJob.of(selection(ds, 3, 0), 0), StudentJob.of(selection(ds, 5, 1), 0),
            StudentJob.of(selection(ds, 3, 2), 1), StudentJob.of(selection(ds, 5, 3), 1, replace(cfg, loss="ce")),
            StudentJob.of(selection(ds, 3, 4), 2, replace(cfg, batch_size=16))]
    cfgs = [j.cfg or cfg for j in jobs]
    assert job_groups(jobs, cfgs, 64) == [[0, 2], [1, 3], [4]]
    assert job_groups(jobs, cfgs, 1) == [[0], [2], [1], [3], [4]]
    got = train_students(ds, jobs, cfg, teacher, progress=False, keep_weights=True, max_stack=64)
    assert [g["stack_size"] for g in got] == [2, 2, 2, 2, 1]
    for g, (w, model) in zip(got, one_by_one(ds, jobs, cfg, teacher, monkeypatch)):
        assert_same_student(ds, g, w, model)


def test_one_job_is_the_plain_path(setup, one_thread):
    ds, teacher, cfg = setup
    idx = selection(ds, 3, 5)
    (got,) = train_students(ds, [(idx, 3)], cfg, teacher, progress=False)
    want = train_student(ds, idx, cfg, teacher, seed=3, progress=False)
    assert got["accs"] == want["accs"] and got["stack_size"] == 1
    assert set(want) <= set(got)


def test_teacher_once_on_all_batches_is_the_teacher_per_batch(setup):
    """The KD targets of one concatenated teacher forward equal the per-job forwards (eval mode)."""
    ds, teacher, cfg = setup
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(4, 16, 1, 8, 8, generator=g)
    out = torch.zeros(4, 16, 10, requires_grad=True)
    y = torch.zeros(16, dtype=torch.long)
    batches = [Batch(torch.arange(16), x, y, (torch.arange(16), 1.0)) for x in xs]
    loss = stacked_loss(out, xs, batches, [cfg] * 4, teacher)
    with torch.no_grad():
        want = sum(kd_kl_loss(out[j], teacher(xs[j]), cfg.temperature) for j in range(4))
    torch.testing.assert_close(loss, want, rtol=1e-6, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(teacher(xs.flatten(0, 1)).view(4, 16, -1), torch.stack([teacher(x) for x in xs]),
                                   rtol=1e-6, atol=1e-6)


def test_bad_jobs_fail_before_training(setup):
    ds, teacher, cfg = setup
    idx = selection(ds, 3, 0)
    with pytest.raises(ParamError, match="resolved"):
        train_students(ds, [(idx, 0)], StudentConfig(model="convnet", width=8, depth=2), teacher)
    with pytest.raises(ParamError, match="teacher"):
        train_students(ds, [(idx, 0)], cfg, None)
    with pytest.raises(ParamError, match="no cfg"):
        train_students(ds, [(idx, 0)], None, teacher)
    with pytest.raises(ParamError, match="empty"):
        train_students(ds, [StudentJob(indices=(), seed=0)], cfg, teacher)
    with pytest.raises(ParamError, match="within"):
        train_students(ds, [([0, 10_000], 0)], cfg, teacher)
    with pytest.raises(ParamError, match="at least one"):
        train_students(ds, [], cfg, teacher)
    with pytest.raises(ParamError, match="pair"):
        train_students(ds, [idx], cfg, teacher)
    with pytest.raises(ParamError, match="max_stack"):
        train_students(ds, [(idx, 0)], cfg, teacher, max_stack=0)
    with pytest.raises(ParamError, match="workers"):
        train_students(ds, [(idx, 0)], cfg, teacher, workers=0)
    with pytest.raises(ParamError, match="eval_images"):
        train_students(ds, [(idx, 0)], cfg, teacher, eval_images=0)
    with pytest.raises(ParamError, match="backend"):
        train_students(ds, [(idx, 0)], cfg, teacher, backend="loops")


def test_students_train_on_the_one_loop(setup, monkeypatch):
    """A stack is trained by ddlib.train.loop (one call per stack), not by a loop of the grid's own."""
    import ddlib.bps.grid as G

    ds, teacher, cfg = setup
    calls, real = [], G.loop

    def spy(model, opt, source, step, epochs, gen, **kw):
        calls.append((type(model).__name__, model.size, len(gen), epochs))
        return real(model, opt, source, step, epochs, gen, **kw)

    monkeypatch.setattr(G, "loop", spy)
    got = train_students(ds, mixed_jobs(ds, cfg), cfg, teacher, progress=False, max_stack=2, workers=1)
    assert calls == [("ModelStack", 2, 2, cfg.epochs)] * 2 and [g["stack_size"] for g in got] == [2] * 4


def test_supports_the_convnet_on_cpu(setup):
    _, _, cfg = setup
    assert supports(cfg, "cpu")
    assert not supports(replace(cfg, model="resnet18"), "cpu")  # a vmap stack of one is not the model bit for bit
    with pytest.raises(ParamError, match="cfg"):
        supports({"model": "convnet"}, "cpu")
    with pytest.raises(ParamError, match="device"):
        supports(cfg, "tpu")


def test_accel_reaches_the_stack_and_keeps_its_accuracies(setup):
    """train_students(accel=...) trains the stack on the one loop with the Accel options: NHWC weights and
    a compiled wrapper ("eager") give the plain students' accuracies."""
    from ddlib.train import Accel

    ds, teacher, cfg = setup
    jobs = mixed_jobs(ds, cfg)[:2]
    plain = train_students(ds, jobs, cfg, teacher, progress=False, max_stack=2, workers=1)
    for accel in (Accel(channels_last=True), Accel(compile="eager")):
        got = train_students(ds, jobs, cfg, teacher, progress=False, max_stack=2, workers=1, accel=accel)
        for g, p in zip(got, plain):
            assert g["accs"] == pytest.approx(p["accs"], abs=0.02)
