"""Many Stage-3 students at once: the protocol of :func:`ddlib.bps.distill.train_student`, stacked.

An evidence grid (methods x IPCs x seeds x KD/hard labels) is many small students trained with one
protocol. :func:`train_students` trains a list of :class:`StudentJob` (a selection, a seed, and
optionally its own resolved :class:`~ddlib.bps.distill.StudentConfig`) as :class:`~ddlib.stack.ModelStack`
s and returns, per job, what ``train_student(ds, job.indices, cfg, teacher, seed=job.seed)``
returns: ``best_acc``, ``last_acc``, ``accs``, ``seconds``.

What stays each job's own (so a job's numbers do not depend on which jobs it is stacked with):

- its randomness: ``gen = seed_everything(seed)`` then ``build_model`` (the initial weights from the
  global RNG, as ``train_student`` draws them), and with ``gen``, per epoch ``randperm``, per step
  :func:`~ddlib.kernels.augment.augment` and :func:`~ddlib.kernels.augment.cutmix`: the same calls in
  the same order as ``train_student`` (:class:`_JobStream`);
- its loss (KD at its temperature, or CutMix cross-entropy), its crop scale and CutMix alpha.

What the jobs of one stack share: one forward and backward of the stacked students, one AdamW over
the stacked parameters (elementwise: each slice steps as its own optimiser would), one teacher
forward over the S mixed batches concatenated (eval mode: a per-image computation, equal to the
per-job forwards within float rounding, tests/test_grid.py), one evaluation forward of the S
students over each chunk of the test set (``ModelStack.correct``). Lockstep needs the same number of
steps per epoch, the same batch size, lr schedule and evaluated epochs: jobs are grouped by
(architecture, selection size, batch size, epochs, lr, weight decay, last_epochs); each group runs
as stacks of at most ``max_stack`` jobs, and ``workers`` stacks run at once in threads.

Equality with ``train_student``. On CPU the default is stacks of one (:data:`MAX_STACK`) on as many
worker threads as intra-op threads, one intra-op thread each: the same kernels on the same shapes as
``train_student`` with one thread, bit for bit (tests/test_grid.py). The speed on CPU comes from
elsewhere than stacking (benchmarks/bench_student_grid.py): the evaluation in cache-sized chunks,
the exact faster average pool, the dataset statistics computed once, and the workers. Stacks of
several agree within float32 rounding at first, not bit for bit (the stacked kernels sum in another
order; see :mod:`ddlib.stack`), and like any float nondeterminism (``train_student`` itself with
another thread count) the difference grows over training into accuracy differences of the size the
benchmark's ``check`` rows record. ``seconds`` is the stack's wall time divided by its size;
``stack_size`` is added.

How this plugs into a generic training loop (``train.fit`` with a pluggable batch source and a loss
hook, once that refactor lands): the stack is the model (``ModelStack``: (S, B, ...) -> (S, B, K));
the batch source yields, per step, the S jobs' batches stacked (each :class:`_JobStream` draws its
own, :func:`stack_batches` puts them together); the loss hook is :func:`stacked_loss` (the sum of
the per-job losses, teacher logits from one concatenated forward); the optimiser is the loop's own
over ``stack.parameters()``; the evaluation hook is ``stack.accuracy`` (S numbers per call). What
the loop must let the hooks decide: steps per epoch (the jobs' common count), the per-epoch lr
(set before the first step of the epoch, as here) and which epochs evaluate.
"""
from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddlib import book
from ddlib.bps.distill import StudentConfig, build_model, kd_loss
from ddlib.kernels.augment import AUGMENTS, augment, cutmix
from ddlib.stack import BACKENDS, ModelStack
from ddlib.train import TrainConfig, make_optimizer, to_unit
from ddlib.utils import ParamError, check_choice, check_int, get_device, seed_everything

__all__ = ["StudentJob", "train_students", "stacked_loss", "stack_batches", "job_groups", "MAX_STACK", "EVAL_IMAGES"]


@dataclass(frozen=True)
class StudentJob:
    """One student: ``indices`` into ``ds.train_x``, its ``seed``, and optionally its own resolved
    ``cfg`` (else the ``cfg`` given to :func:`train_students`). ``tag`` is a free label (method, IPC)."""

    indices: tuple[int, ...]
    seed: int = 0
    cfg: StudentConfig | None = None
    tag: str = ""

    @classmethod
    def of(cls, indices, seed: int = 0, cfg: StudentConfig | None = None, tag: str = "") -> StudentJob:
        return cls(tuple(int(i) for i in np.asarray(indices, dtype=np.int64).ravel()), seed, cfg, tag)


def _as_job(job) -> StudentJob:
    if isinstance(job, StudentJob):
        return job
    if isinstance(job, tuple) and len(job) == 2:
        return StudentJob.of(job[0], job[1])
    raise ParamError(f"a job must be a StudentJob or an (indices, seed) pair; got {type(job).__name__}")


class _Batch(NamedTuple):
    x: Tensor      # the augmented, mixed images (B, C, H, W)
    y: Tensor      # their hard labels (B,)
    perm: Tensor   # CutMix's pairing (B,)
    lam: float     # CutMix's own-image fraction


class _JobStream:
    """One job's data and randomness: exactly the draws of ``train_student``, in its order."""

    def __init__(self, ds, job: StudentJob, cfg: StudentConfig, dev: torch.device, stats=None) -> None:
        idx = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
        self.cfg, self.dev = cfg, dev
        self.gen = seed_everything(job.seed)
        self.x, self.y = ds.train_x[idx], ds.train_y[idx]
        # init from the global RNG; ``stats`` is ds with its mean/std computed once (see _DataStats)
        self.model = build_model(stats or ds, cfg.model, cfg.width, cfg.depth).to(dev)
        self.aug = replace(AUGMENTS["kd"], crop_scale=(cfg.min_crop, 1.0))
        self.order = torch.arange(0)

    def new_epoch(self) -> None:
        self.order = torch.randperm(len(self.x), generator=self.gen)

    def batch(self, start: int) -> _Batch:
        b = self.order[start:start + self.cfg.batch_size]
        xb = augment(to_unit(self.x[b].to(self.dev)), self.aug, self.gen)
        yb = self.y[b].to(self.dev)
        if self.cfg.cutmix_alpha > 0:
            xb, perm, lam = cutmix(xb, self.cfg.cutmix_alpha, self.gen)
        else:
            perm, lam = torch.arange(len(b), device=self.dev), 1.0
        return _Batch(xb, yb, perm, lam)


class _DataStats(NamedTuple):
    """What ``build_model`` reads of a dataset, with ``mean``/``std`` computed once: ``Dataset.mean``
    and ``.std`` run over the whole training pool on every access, which ``train_student`` pays per
    student (the ``build_model`` row of benchmarks/bench_student_grid.py)."""

    num_classes: int
    image_shape: tuple[int, int, int]
    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, ds) -> _DataStats:
        return cls(ds.num_classes, ds.image_shape, ds.mean, ds.std)


def stack_batches(batches: Sequence[_Batch]) -> Tensor:
    """The S jobs' images of one step as one (S, B, C, H, W) tensor for the stack."""
    return torch.stack([b.x for b in batches])


def stacked_loss(out: Tensor, xs: Tensor, batches: Sequence[_Batch], cfgs: Sequence[StudentConfig],
                 teacher: nn.Module | None) -> Tensor:
    """The sum over jobs of each job's ``train_student`` loss (its gradient on job j's slice is the
    gradient of job j's loss alone).

    ``out`` (S, B, K) the students' logits, ``xs`` (S, B, ...) their images. KD jobs:
    ``kd_loss(out_j, teacher(x_j), tau_j)``, the teacher run once on the KD jobs' images concatenated;
    CE jobs: ``lam_j CE(out_j, y_j) + (1 - lam_j) CE(out_j, y_j[perm_j])``.
    """
    kd = [j for j, c in enumerate(cfgs) if c.loss == "kd"]
    t_logits: dict[int, Tensor] = {}
    if kd:
        if teacher is None:
            raise ParamError("loss='kd' needs a teacher")
        with torch.no_grad():
            t = teacher(xs[kd].flatten(0, 1)).view(len(kd), xs.shape[1], -1)
        t_logits = dict(zip(kd, t))
    total = out.new_zeros(())
    for j, (b, c) in enumerate(zip(batches, cfgs)):
        if c.loss == "kd":
            loss = kd_loss(out[j], t_logits[j], c.temperature)
        else:
            mixed = b.y[b.perm.to(b.y.device)]
            loss = b.lam * F.cross_entropy(out[j], b.y) + (1 - b.lam) * F.cross_entropy(out[j], mixed)
        total = total + loss
    return total


#: Most students per stack when ``max_stack`` is None, by device type. On CPU one: a stack of one is
#: train_student bit for bit, and ``workers`` use the cores; stacks of a few students train faster
#: on CPU at the larger IPCs but agree with train_student only within float rounding
#: (benchmarks/bench_student_grid.py records both). The CUDA figure is not a measurement.
MAX_STACK = {"cpu": 1, "cuda": 64}

#: Student-images per evaluation forward, by device type. On CPU the activations of a forward should
#: stay in cache (benchmarks/bench_student_grid.py measures the sweep); the CUDA figure is a guess
#: that keeps the GPU busy, not a measurement.
EVAL_IMAGES = {"cpu": 64, "cuda": 8192}


def _group_key(cfg: StudentConfig, n: int) -> tuple:
    return (cfg.model, cfg.width, cfg.depth, n, cfg.batch_size, cfg.epochs, cfg.lr, cfg.weight_decay, cfg.last_epochs)


def job_groups(jobs: Sequence[StudentJob], cfgs: Sequence[StudentConfig], max_stack: int) -> list[list[int]]:
    """Job positions grouped into stacks: same (architecture, selection size, batch size, epochs, lr,
    weight decay, last_epochs), at most ``max_stack`` per stack, in the jobs' order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (job, cfg) in enumerate(zip(jobs, cfgs)):
        groups[_group_key(cfg, len(job.indices))].append(i)
    return [g[k:k + max_stack] for g in groups.values() for k in range(0, len(g), max_stack)]


def _check_job(ds, job: StudentJob, cfg: StudentConfig | None, teacher: nn.Module | None, i: int) -> StudentConfig:
    if cfg is None:
        raise ParamError(f"jobs[{i}] has no cfg and train_students got none: give cfg=StudentConfig(...).resolved(...)")
    if not isinstance(cfg, StudentConfig):
        raise ParamError(f"jobs[{i}].cfg must be a StudentConfig, got {type(cfg).__name__}")
    if cfg.min_crop is None or cfg.batch_size is None:
        raise ParamError("train_students needs resolved StudentConfigs (use cfg.resolved(dataset, classes, ipc))")
    if cfg.loss == "kd" and teacher is None:
        raise ParamError(f"jobs[{i}] has loss='kd' and needs a teacher")
    check_int(f"jobs[{i}].seed", job.seed, 0, 2**32 - 1)
    if len(job.indices) == 0:
        raise ParamError(f"jobs[{i}]: the selection is empty")
    if min(job.indices) < 0 or max(job.indices) >= len(ds.train_y):
        raise ParamError(f"jobs[{i}]: indices must be within [0, {len(ds.train_y) - 1}] (the training set)")
    return cfg


class _Run(NamedTuple):
    """What every stack of one :func:`train_students` call shares."""

    ds: object
    stats: _DataStats
    teacher: nn.Module | None
    dev: torch.device
    backend: str
    eval_images: int
    keep_weights: bool
    progress: bool


def train_students(ds, jobs: Sequence[StudentJob | tuple], cfg: StudentConfig | None = None,
                   teacher: nn.Module | None = None, device=None, progress: bool = True, max_stack: int | None = None,
                   workers: int | None = None, backend: str = "auto", eval_images: int | None = None,
                   keep_weights: bool = False) -> list[dict]:
    """Train every job's student as ``train_student`` would, many at once; one result dict per job, in order.

    ``jobs``: :class:`StudentJob` s or ``(indices, seed)`` pairs; ``cfg`` is the resolved config of
    jobs that carry none. ``teacher`` is needed when any job uses ``loss="kd"``. ``max_stack`` caps
    the students trained together (None: :data:`MAX_STACK` for the device); ``workers`` stacks train
    at once in threads, each with ``torch.get_num_threads() // workers`` intra-op threads (None: on
    CPU as many workers as intra-op threads, one thread each -- no OpenMP barriers, which on a
    loaded machine make small ops with several threads collapse; elsewhere 1). On CPU the results
    are bit for bit ``train_student``'s with one intra-op thread (``train_student`` itself changes
    at the rounding level with the thread count). ``backend`` is the :class:`~ddlib.stack.ModelStack`
    backend. ``eval_images``: student-images per evaluation forward
    (each forward runs the S students on ``max(1, eval_images // S)`` test images); None takes
    :data:`EVAL_IMAGES` for the device. Each result: ``best_acc``, ``last_acc``, ``accs`` (the
    evaluated epochs), ``seconds`` (its share of its stack's wall time), ``stack_size``, and with
    ``keep_weights`` the trained student's ``state_dict`` (on the CPU).
    """
    jobs = [_as_job(j) for j in jobs]
    if not jobs:
        raise ParamError("jobs must name at least one student")
    check_choice("backend", backend, BACKENDS)
    dev = get_device(device)
    if workers is None:
        workers = torch.get_num_threads() if dev.type == "cpu" else 1
    check_int("workers", workers, 1, 64)
    if max_stack is None:
        max_stack = MAX_STACK.get(dev.type, MAX_STACK["cuda"])
    check_int("max_stack", max_stack, 1)
    if eval_images is None:
        eval_images = EVAL_IMAGES.get(dev.type, EVAL_IMAGES["cuda"])
    check_int("eval_images", eval_images, 1)
    cfgs = [_check_job(ds, j, j.cfg or cfg, teacher, i) for i, j in enumerate(jobs)]
    run = _Run(ds, _DataStats.of(ds), None if teacher is None else teacher.to(dev).eval(), dev, backend, eval_images,
               keep_weights, progress and not book.in_test())
    stacks = job_groups(jobs, cfgs, max_stack)

    def train(k: int) -> list[dict]:
        members = stacks[k]
        return _train_stack(run, [jobs[i] for i in members], [cfgs[i] for i in members],
                            f"students {k + 1}/{len(stacks)} ({len(members)} stacked)")

    if workers == 1:
        done = [train(k) for k in range(len(stacks))]
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // workers))
        try:
            with ThreadPoolExecutor(workers) as pool:
                done = list(pool.map(train, range(len(stacks))))
        finally:
            torch.set_num_threads(threads)
    results: list[dict] = [{}] * len(jobs)
    for members, res in zip(stacks, done):
        for i, r in zip(members, res):
            results[i] = r
    return results


#: Model initialisation draws from the global RNG (``seed_everything`` then ``build_model``): one
#: stack at a time, so that concurrent workers do not interleave their draws.
_INIT_LOCK = threading.Lock()


def _train_stack(run: _Run, jobs: list[StudentJob], cfgs: list[StudentConfig], desc: str) -> list[dict]:
    """One lockstep stack: the jobs share (n, batch, epochs, lr, wd, last_epochs); see the module docstring."""
    from tqdm.auto import tqdm

    c0, ds = cfgs[0], run.ds
    start = time.perf_counter()
    with _INIT_LOCK:
        streams = [_JobStream(ds, j, c, run.dev, run.stats) for j, c in zip(jobs, cfgs)]
    stack = ModelStack([s.model for s in streams], run.backend).to(run.dev)
    for s in streams:
        s.model = None  # the stack holds the weights now
    opt = make_optimizer(stack.parameters(), TrainConfig(epochs=c0.epochs, optimizer="adamw", lr=c0.lr,
                                                         weight_decay=c0.weight_decay))
    n, bs = len(jobs[0].indices), c0.batch_size
    first_eval = max(c0.epochs - c0.last_epochs, 0)
    chunk = max(1, run.eval_images // len(jobs))
    accs: list[Tensor] = []
    bar = tqdm(range(c0.epochs), desc=desc, disable=not run.progress, leave=False)
    for epoch in bar:
        for g in opt.param_groups:
            g["lr"] = c0.lr * 0.5 * (1 + math.cos(math.pi * epoch / c0.epochs / 2))
        stack.train()
        for s in streams:
            s.new_epoch()
        for b0 in range(0, n, bs):
            batches = [s.batch(b0) for s in streams]
            xs = stack_batches(batches)
            loss = stacked_loss(stack(xs), xs, batches, cfgs, run.teacher)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch >= first_eval:
            accs.append(stack.accuracy(ds.test_x, ds.test_y, chunk))
            bar.set_postfix(best=f"{float(torch.stack(accs).max()):.3f}")
    seconds = time.perf_counter() - start
    table = torch.stack(accs).T.tolist()  # (S, epochs evaluated)
    states = stack.state_dicts() if run.keep_weights else None
    out = []
    for j, a in enumerate(table):
        out.append({"best_acc": max(a), "last_acc": a[-1], "accs": a, "seconds": seconds / len(jobs),
                    "stack_size": len(jobs)})
        if states is not None:
            out[-1]["state_dict"] = {k: v.cpu() for k, v in states[j].items()}
    return out
