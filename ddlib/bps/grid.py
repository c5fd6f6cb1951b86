"""Many Stage-3 students at once: the protocol of :func:`ddlib.bps.distill.train_student`, stacked.

An evidence grid (methods x IPCs x seeds x KD/hard labels) is many small students trained with one
protocol. :func:`train_students` trains a list of :class:`StudentJob` (a selection, a seed, and
optionally its own resolved :class:`~ddlib.bps.distill.StudentConfig`) as :class:`~ddlib.stack.ModelStack`
s and returns, per job, what ``train_student(ds, job.indices, cfg, teacher, seed=job.seed)``
returns: ``best_acc``, ``last_acc``, ``accs``, ``seconds``. :func:`supports` says for which student
models and devices :func:`ddlib.bps.pipeline.evaluate_grid` trains its students here.

A stack trains on the one training loop, :func:`ddlib.train.loop`, with these parts:

- the model: the :class:`~ddlib.stack.ModelStack` of the S students ((S, B, ...) -> (S, B, K)), and the
  loop's optimiser: one AdamW over the stacked parameters (elementwise: each slice steps as its own
  optimiser would);
- the source: :class:`ddlib.train.StackedBatches` over each job's own
  :func:`~ddlib.bps.distill.student_batches` (the source ``train_student`` uses), called with one
  generator per job;
- the step: :func:`stacked_step`, the sum of the per-job losses (:func:`stacked_loss`; the gradient
  on job j's slice is that of job j's loss alone), the teacher run once on the KD jobs' images
  concatenated;
- the hooks: the lr of :func:`~ddlib.bps.distill.student_lr` per epoch (:class:`~ddlib.train.LrPerEpoch`)
  and :class:`EvaluateStack` (S accuracies per evaluated epoch).

What stays each job's own (so a job's numbers do not depend on which jobs it is stacked with):

- its randomness: ``gen = seed_everything(seed)`` then ``build_model`` (the initial weights from the
  global RNG, as ``train_student`` draws them), and with ``gen``, per epoch ``randperm``, per step
  :func:`~ddlib.kernels.augment.augment` and :func:`~ddlib.kernels.augment.cutmix`: the same calls in
  the same order as ``train_student``, from the same source;
- its loss (KD at its temperature, or CutMix cross-entropy), its crop scale and CutMix alpha.

What the jobs of one stack share: one forward and backward of the stacked students, the optimiser
step, one teacher forward over the S mixed batches concatenated (eval mode: a per-image computation,
equal to the per-job forwards within float rounding, tests/test_grid.py), one evaluation forward of
the S students over each chunk of the test set (``ModelStack.correct``). Lockstep needs the same
number of steps per epoch, the same batch size, lr schedule and evaluated epochs: jobs are grouped by
(architecture, selection size, batch size, epochs, lr, weight decay, last_epochs); each group runs
as stacks of at most ``max_stack`` jobs, and ``workers`` stacks run at once in threads.

Equality with ``train_student``. On CPU the default is stacks of one (:data:`MAX_STACK`) on as many
worker threads as intra-op threads, one intra-op thread each: the same kernels on the same shapes as
``train_student`` with one thread, bit for bit (tests/test_grid.py); with ``OMP_NUM_THREADS=1`` (one
worker) that is the one-by-one path of the same process, bit for bit. What the CPU default saves
over one by one lies elsewhere than stacking: the evaluation in cache-sized chunks (:data:`EVAL_IMAGES`),
the exact, faster average pool of :mod:`ddlib.stack`, the dataset statistics computed once per call
and the workers (benchmarks/bench_student_grid.py times each part). Stacking is not the default
on CPU because it is not bit for bit and the DD ConvNet's step on CPU is bound by memory traffic,
which stacking does not reduce (see :mod:`ddlib.stack`; benchmarks/bench_student_grid.py measures
one by one against stacked). Stacks of several agree within float32 rounding at first, not bit for
bit (the stacked kernels sum in another order; see :mod:`ddlib.stack`), and like any float
nondeterminism (``train_student`` itself with another thread count) the difference grows over
training into accuracy differences of the size the benchmark's ``check`` rows record. ``seconds``
is the stack's wall time divided by its size; ``stack_size`` is added.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ddlib.bps.distill import StudentConfig, build_model, student_batches, student_lr
from ddlib.losses import cutmix_cross_entropy, kd_kl_loss
from ddlib.stack import STACK_BACKENDS, ModelStack
from ddlib.train import (Accel, Batch, Hook, LoopState, LrPerEpoch, StackedBatches, Step, TrainConfig, loop,
                         make_optimizer)
from ddlib.utils import ParamError, check_choice, check_int, get_device, seed_everything

__all__ = ["StudentJob", "train_students", "stacked_loss", "stacked_step", "EvaluateStack", "job_groups",
           "supports", "STACKABLE", "MAX_STACK", "EVAL_IMAGES"]


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


def stacked_loss(out: Tensor, xs: Tensor, members: Sequence[Batch], cfgs: Sequence[StudentConfig],
                 teacher: nn.Module | None) -> Tensor:
    """The sum over jobs of each job's ``train_student`` loss (its gradient on job j's slice is the
    gradient of job j's loss alone).

    ``out`` (S, B, K) the students' logits, ``xs`` (S, B, ...) their images, ``members`` each job's
    :class:`~ddlib.train.Batch` (labels ``y``, CutMix pairing ``mix``). KD jobs:
    :func:`~ddlib.losses.kd_kl_loss` ``(out_j, teacher(x_j), tau_j)``, the teacher run once on the KD
    jobs' images concatenated; CE jobs: :func:`~ddlib.losses.cutmix_cross_entropy`
    ``lam_j CE(out_j, y_j) + (1 - lam_j) CE(out_j, y_j[perm_j])``.
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
    for j, (b, c) in enumerate(zip(members, cfgs)):
        if c.loss == "kd":
            loss = kd_kl_loss(out[j], t_logits[j], c.temperature)
        else:
            perm, lam = b.mix if b.mix is not None else (torch.arange(len(b), device=out.device), 1.0)
            loss = cutmix_cross_entropy(out[j], b.y, perm, lam)
        total = total + loss
    return total


def stacked_step(cfgs: Sequence[StudentConfig], teacher: nn.Module | None) -> Step:
    """The loop's step for a stack fed by :class:`~ddlib.train.StackedBatches`: :func:`stacked_loss` of
    ``stack(batch.x)``; ``out`` = the (S, B, K) logits."""
    def step(model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        out = model(batch.x)
        return stacked_loss(out, batch.x, batch.y, cfgs, teacher), out
    return step


class EvaluateStack(Hook):
    """At the end of every epoch ``e`` (0-based) from ``first``: the stack's S test accuracies
    (``ModelStack.accuracy`` on (x, y), ``chunk`` test images per forward) appended to
    ``history["eval_accs"]``, the best so far on the progress bar."""

    def __init__(self, x: Tensor, y: Tensor, first: int, chunk: int) -> None:
        self.x, self.y, self.first, self.chunk = x, y, first, chunk

    def epoch_start(self, state: LoopState) -> None:
        state.history.setdefault("eval_accs", [])

    def epoch_end(self, state: LoopState) -> None:
        if state.epoch >= self.first:
            state.history["eval_accs"].append(state.model.accuracy(self.x, self.y, self.chunk))
            state.postfix["best"] = f"{float(torch.stack(state.history['eval_accs']).max()):.3f}"


#: Most students per stack when ``max_stack`` is None, by device type. On CPU one: a stack of one is
#: train_student bit for bit, and ``workers`` use the cores; stacks of several agree with train_student
#: only within float rounding (benchmarks/bench_student_grid.py measures both ways against one by one).
#: The CUDA figure is not a measurement.
MAX_STACK = {"cpu": 1, "cuda": 64}

#: Student-images per evaluation forward, by device type. On CPU the activations of a forward should
#: stay in cache (benchmarks/bench_student_grid.py measures the sweep); the CUDA figure is a guess
#: that keeps the GPU busy, not a measurement.
EVAL_IMAGES = {"cpu": 64, "cuda": 8192}

#: Student models whose students :func:`supports` sends here, by device type. On CPU the ConvNet only:
#: its stack of one (the ``grouped`` backend) runs the model's own kernels on the model's own shapes,
#: so the students are bit for bit those of the one-by-one path, where a ``vmap`` stack of one (ResNet-18)
#: is not. On CUDA also ResNet-18 (``vmap``; each member's BatchNorm its own, tests/test_stack.py).
STACKABLE = {"cpu": ("convnet",), "cuda": ("convnet", "resnet18")}


def supports(cfg: StudentConfig, device=None) -> bool:
    """Whether :func:`train_students` trains the students of ``cfg`` on ``device`` (default: the device of
    :func:`ddlib.utils.get_device`) in :func:`ddlib.bps.pipeline.evaluate_grid`: ``cfg.model`` is in
    :data:`STACKABLE` for the device type."""
    if not isinstance(cfg, StudentConfig):
        raise ParamError(f"cfg must be a StudentConfig, got {type(cfg).__name__}")
    return cfg.model in STACKABLE.get(get_device(device).type, ())


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

    ds: Any
    stats: _DataStats
    teacher: nn.Module | None
    dev: torch.device
    backend: str
    eval_images: int
    keep_weights: bool
    progress: bool
    accel: Accel | None


def train_students(ds, jobs: Sequence[StudentJob | tuple], cfg: StudentConfig | None = None,
                   teacher: nn.Module | None = None, device=None, progress: bool = True, max_stack: int | None = None,
                   workers: int | None = None, backend: str = "auto", eval_images: int | None = None,
                   keep_weights: bool = False, on_done: Callable[[int, dict], None] | None = None,
                   accel: Accel | None = None) -> list[dict]:
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
    ``keep_weights`` the trained student's ``state_dict`` (on the CPU). ``on_done(i, result)`` is called for
    job ``i`` as soon as its stack has trained (one call at a time, also with several workers), so a caller
    can store each student before the whole grid ends. ``accel``: the loop's :class:`~ddlib.train.Accel`
    (for benchmarks; the cached grids of ``ddlib.bps.pipeline`` train plain).
    """
    jobs = [_as_job(j) for j in jobs]
    if not jobs:
        raise ParamError("jobs must name at least one student")
    check_choice("backend", backend, STACK_BACKENDS)
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
               keep_weights, progress, accel)
    stacks = job_groups(jobs, cfgs, max_stack)

    done_lock = threading.Lock()

    def train(k: int) -> list[dict]:
        members = stacks[k]
        res = _train_stack(run, [jobs[i] for i in members], [cfgs[i] for i in members],
                           f"students {k + 1}/{len(stacks)} ({len(members)} stacked)")
        if on_done is not None:
            with done_lock:
                for i, r in zip(members, res):
                    on_done(i, r)
        return res

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
    """One lockstep stack on :func:`ddlib.train.loop`: the jobs share (n, batch, epochs, lr, wd,
    last_epochs); see the module docstring."""
    c0, ds = cfgs[0], run.ds
    start = time.perf_counter()
    gens, sources, students = [], [], []
    with _INIT_LOCK:  # per job as train_student: seed, then the initial weights from the global RNG
        for job, c in zip(jobs, cfgs):
            gens.append(seed_everything(job.seed))
            idx = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
            sources.append(student_batches(ds.train_x[idx], ds.train_y[idx], c, run.dev))
            students.append(build_model(run.stats, c.model, c.width, c.depth))
    stack = ModelStack(students, run.backend).to(run.dev)
    del students  # the stack holds the weights now
    opt = make_optimizer(stack.parameters(), TrainConfig(epochs=c0.epochs, optimizer="adamw", lr=c0.lr,
                                                         weight_decay=c0.weight_decay))
    first_eval = max(c0.epochs - c0.last_epochs, 0)
    hooks = [LrPerEpoch(lambda epoch: student_lr(c0, epoch)),
             EvaluateStack(ds.test_x, ds.test_y, first_eval, max(1, run.eval_images // len(jobs)))]
    hist = loop(stack, opt, StackedBatches(sources), stacked_step(cfgs, run.teacher), c0.epochs, gens, hooks=hooks,
                progress=run.progress, desc=desc, accel=run.accel)
    seconds = time.perf_counter() - start
    table = torch.stack(hist["eval_accs"]).T.tolist()  # (S, epochs evaluated)
    states = stack.state_dicts() if run.keep_weights else None
    out = []
    for j, a in enumerate(table):
        out.append({"best_acc": max(a), "last_acc": a[-1], "accs": a, "seconds": seconds / len(jobs),
                    "stack_size": len(jobs)})
        if states is not None:
            out[-1]["state_dict"] = {k: v.cpu() for k, v in states[j].items()}
    return out
