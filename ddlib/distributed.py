"""Data-parallel runs under torchrun: which process this is, the process group, who computes and who writes.

``torchrun --nproc_per_node N -m ddlib select …`` starts N processes (*ranks*) and tells each its place
through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).
:func:`init` (or :func:`session`, which the CLI and ``benchmarks/bps_evidence.py`` open) joins them into a
process group: NCCL when the device is CUDA (each rank on GPU ``LOCAL_RANK``), gloo on the CPU. Without
torchrun, or with one process, nothing is initialised, every helper here is the identity (or does
nothing), and one process runs exactly as before, bit for bit.

What runs where, once the group is up (every rank runs the same program and calls the same helpers in the
same order):

- **training one model** (Stage 1's encoder, the teacher): :class:`DataParallel`, passed to
  :func:`ddlib.train.loop` as ``parallel=``. Every rank draws the same global batch (one permutation, one
  augmentation, from generators seeded alike) and keeps its contiguous share (:func:`bounds`); the
  model runs in DistributedDataParallel, each rank's loss is scaled by ``world · share`` so that DDP's
  average of the gradients is the gradient of the whole batch's mean. A departure from the reference
  (a DistributedSampler: each GPU augments only its own shard): here the global batch is augmented on
  every rank, a cost next to the forward and backward, and the price of a run that *is* the one-process
  run computed by N processes: without batch norm the same numbers up to float rounding. With batch norm
  each rank normalises over its own share, as the reference under DDP (no SyncBatchNorm);
- **MoCo's keys**: the key encoder runs on a shuffled share of the whole key batch (MoCo's shuffled BN,
  :func:`shuffled_forward`), the keys of every rank are gathered (:func:`gather_rows`) so every rank
  enqueues the same global batch and holds the same queue; the Infomap re-partition runs on rank 0 and
  its partition is broadcast (:func:`broadcast_object`);
- **embeddings and entropies**: ``ddlib.train.embed(..., shard=True)``: each rank its contiguous share of
  the images, gathered in order;
- **independent jobs** (the student grid, the seeds of ``evaluate``): :func:`split_map`: round-robin over
  the jobs, each rank trains its share with each job's own seed, the results gathered to every rank;
- **the cache and the records**: :func:`ddlib.artifacts.cached`: rank 0 looks up and writes, the others
  wait (:func:`barrier`) and load; a compute that is not data-parallel runs on rank 0 :func:`alone`
  (inside it every helper acts as one process); :func:`ddlib.results.write` writes on rank 0 only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ddlib.utils import ParamError, check_choice, get_device

__all__ = ["DIST_BACKENDS", "env_rank", "env_world_size", "local_rank", "init", "teardown", "session", "world_size",
           "rank", "is_main", "alone", "barrier", "broadcast_object", "all_gather_objects", "on_main", "bounds",
           "check_split", "share_sizes", "split_map", "gather_rows", "all_reduce_sum", "DataParallel", "data_parallel",
           "shuffled_forward", "rows_of", "describe"]

T = TypeVar("T")
#: The process-group backends :func:`init` accepts.
DIST_BACKENDS = ("gloo", "nccl")
#: How long a rank waits in a collective (e.g. for rank 0 computing an artifact alone) before the group
#: gives up; ``$DDLIB_DIST_TIMEOUT_S`` overrides it.
TIMEOUT_S = 12 * 3600
_ALONE = 0  # > 0 inside :func:`alone`


# ----------------------------------------------------------------------------- who this process is
def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text.strip() else default
    except ValueError:
        raise ParamError(f"${name}={text!r} is not an integer (torchrun sets it)") from None


def env_rank() -> int:
    """This process's rank as torchrun set it (``$RANK``; 0 without torchrun)."""
    return _env_int("RANK", 0)


def env_world_size() -> int:
    """How many processes torchrun started (``$WORLD_SIZE``; 1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """This process's rank on its node (``$LOCAL_RANK``; its GPU under NCCL)."""
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    """How many ranks work together now: the group's size once :func:`init` ran; 1 without a group and
    inside :func:`alone`."""
    if _ALONE or not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def rank() -> int:
    """This process's rank in the group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, or the one process: the rank that writes artifacts and records."""
    return rank() == 0


# ----------------------------------------------------------------------------- the process group
def init(device: str | torch.device | None = None, timeout_s: float | None = None,
         backend: str | None = None) -> torch.device:
    """Join the process group torchrun described, if it started several processes; return this rank's device.

    ``backend`` (default ``$DDLIB_DIST_BACKEND``, else NCCL when ``device`` (:func:`ddlib.utils.get_device`)
    is CUDA, gloo on the CPU): one of :data:`DIST_BACKENDS`; NCCL needs CUDA. On CUDA each rank computes on GPU
    ``LOCAL_RANK`` (give ``cuda`` or nothing, not ``cuda:N``), so a node runs at most one rank per GPU.
    Without torchrun (or with ``WORLD_SIZE=1``) nothing is initialised and ``get_device(device)`` is returned.
    """
    dev = get_device(device)
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return _rank_device(dev)
    if not dist.is_available():
        raise ParamError("WORLD_SIZE > 1 (torchrun), but this PyTorch has no torch.distributed")
    name = "backend"
    if backend is None and os.environ.get("DDLIB_DIST_BACKEND", "").strip():
        name, backend = "DDLIB_DIST_BACKEND", os.environ["DDLIB_DIST_BACKEND"].strip()
    backend = check_choice(name, backend or ("nccl" if dev.type == "cuda" else "gloo"), DIST_BACKENDS)
    if backend == "nccl" and dev.type != "cuda":
        raise ParamError(f"{name}='nccl' needs CUDA, but device={str(dev)!r}; use 'gloo' on the CPU")
    if dev.type == "cuda":
        if dev.index is not None:
            raise ParamError(f"device={str(device)!r}: under torchrun each rank computes on GPU LOCAL_RANK; give "
                             "'cuda' or no device")
        if local_rank() >= torch.cuda.device_count():
            raise ParamError(f"LOCAL_RANK={local_rank()}, but this node has {torch.cuda.device_count()} GPU(s): "
                             "torchrun's --nproc_per_node must be at most the number of GPUs")
        torch.cuda.set_device(local_rank())
    timeout = float(os.environ.get("DDLIB_DIST_TIMEOUT_S") or timeout_s or TIMEOUT_S)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return _rank_device(dev)


def _rank_device(dev: torch.device) -> torch.device:
    if dev.type == "cuda" and dev.index is None and world_size() > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def teardown() -> None:
    """Leave the process group (nothing to do without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str | torch.device | None = None) -> Iterator[None]:
    """:func:`init` on entry and :func:`teardown` on exit when torchrun started several processes; nothing
    at all otherwise (``device`` is not even checked)."""
    if env_world_size() <= 1:
        yield
        return
    init(device)
    try:
        yield
    finally:
        teardown()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """A block that this rank runs by itself while the others wait: inside it every helper here acts as one
    process (no collective is started, nothing is sharded). :func:`ddlib.artifacts.cached` computes
    artifacts that are not data-parallel this way on rank 0."""
    global _ALONE
    _ALONE += 1
    try:
        yield
    finally:
        _ALONE -= 1


def describe() -> dict[str, Any]:
    """The processes a record was computed by, for its provenance: ``{"processes": world, "backend": "gloo" |
    "nccl"}`` under torchrun, ``{}`` in one process (its records as before)."""
    if world_size() == 1:
        return {}
    return {"processes": world_size(), "backend": dist.get_backend()}


def _comm_device() -> torch.device:
    """Where tensors must be for the group's collectives: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------------- collectives
def barrier() -> None:
    """Wait until every rank gets here (nothing in one process)."""
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` (any picklable value) on every rank; ``obj`` itself in one process."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list:
    """Every rank's ``obj``, in rank order, on every rank; ``[obj]`` in one process."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 :func:`alone` and broadcast to every rank; ``fn()`` in one process."""
    if world_size() == 1:
        return fn()
    out = None
    if is_main():
        with alone():
            out = fn()
    return broadcast_object(out)


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """The element-wise sum over ranks of ``values`` (float64); the values themselves in one process."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def bounds(n: int, r: int | None = None, world: int | None = None) -> tuple[int, int]:
    """Rank ``r``'s contiguous share ``[lo, hi)`` of ``n`` items split over ``world`` ranks (default: this
    rank, the group): the first ``n % world`` ranks take one more, as ``torch.tensor_split``."""
    r = rank() if r is None else r
    world = world_size() if world is None else world
    base, extra = divmod(n, world)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def check_split(name: str, n: int) -> None:
    """Raise :class:`ParamError` naming ``name`` when ``n`` items (a batch) cannot give every rank one."""
    world = world_size()
    if world > 1 and n < world:
        raise ParamError(f"{name}={n} is smaller than the number of ranks ({world}: torchrun's --nproc_per_node "
                         f"times --nnodes): every rank needs a share of each batch; run fewer processes or raise "
                         f"{name}")


def share_sizes(n: int) -> list[int]:
    """How many of ``n`` items each rank holds (:func:`bounds`), in rank order."""
    return [hi - lo for lo, hi in (bounds(n, r) for r in range(world_size()))]


def gather_rows(t: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Every rank's rows of ``t`` concatenated in rank order, on every rank (on ``t``'s device); ``t``
    itself in one process. The ranks may hold different numbers of rows (``sizes``, when every rank
    knows them, saves one exchange); the trailing shape and dtype must agree."""
    world = world_size()
    if world == 1:
        return t
    dev = _comm_device()
    if sizes is None:
        n = torch.tensor([len(t)], device=dev)
        got = [torch.zeros_like(n) for _ in range(world)]
        dist.all_gather(got, n)
        sizes = [int(s) for s in got]
    as_bool = t.dtype == torch.bool
    src = (t.to(torch.uint8) if as_bool else t).to(dev)
    buf = torch.zeros((max(sizes), *t.shape[1:]), dtype=src.dtype, device=dev)
    buf[:len(src)] = src
    outs = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(outs, buf.contiguous())
    out = torch.cat([o[:s] for o, s in zip(outs, sizes)]).to(t.device)
    return out.bool() if as_bool else out


def split_map(fn: Callable[[list], list], items: Sequence) -> list:
    """``fn`` over ``items`` split round-robin over the ranks: rank r computes ``fn(items[r::world])`` (a list,
    one result per item: a stacked trainer may take them together), and every rank gets every result, in
    the order of ``items``. In one process: ``fn(list(items))``. Each item must carry what makes its result
    (its seed): a result may not depend on the rank that computed it."""
    world = world_size()
    if world == 1:
        return fn(list(items))
    mine = list(items[rank()::world])
    done = fn(mine) if mine else []
    if len(done) != len(mine):
        raise ValueError(f"split_map: fn returned {len(done)} results for {len(mine)} items")
    parts = all_gather_objects(done)
    out: list = [None] * len(items)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out


# ----------------------------------------------------------------------------- one model, many ranks
def rows_of(batch: Any) -> slice:
    """The rows of ``batch.full`` (the step's global batch) that ``batch`` (this rank's share) holds."""
    lo, hi = bounds(len(batch.full))
    return slice(lo, hi)


def _share(batch: Any) -> Any:
    """This rank's contiguous share of a :class:`ddlib.train.Batch`, with the whole batch as ``full``."""
    if batch.mix is not None:
        raise ParamError("a CutMix batch cannot be split over ranks (its mixing partners span the batch); "
                         "students train one per rank (ddlib.distributed.split_map)")
    rows = slice(*bounds(len(batch)))

    def cut(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(cut(u) for u in v)
        return None if v is None else v[rows]

    return dataclasses.replace(batch, index=batch.index[rows], x=cut(batch.x), y=cut(batch.y), full=batch)


class _ShardedSource:
    """A batch source whose every batch is this rank's share of the wrapped source's batch. Every rank
    draws the same global batches (the same generator state); a batch with fewer images than ranks (a last
    partial batch) is skipped on every rank."""

    def __init__(self, source: Any, world: int) -> None:
        self.source, self.world = source, world
        self.steps_per_epoch = source.steps_per_epoch

    def __call__(self, epoch: int, gen: Any) -> Iterator[Any]:
        for batch in self.source(epoch, gen):
            if len(batch) >= self.world:
                yield _share(batch)


class DataParallel:
    """One model trained by every rank together, for :func:`ddlib.train.loop` (``parallel=``).

    ``net`` is the model in DistributedDataParallel (the step calls it; its backward averages the
    gradients over ranks); :meth:`shard` gives each rank its share of every batch; :meth:`backward`
    scales the rank's loss (a mean over its share) by ``world · share``, so that the average DDP takes is
    the gradient of the global batch's mean; :meth:`epoch_mean` is the epoch's loss over every rank.
    """

    def __init__(self, model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        dev = torch.device(device)
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
        self.world = world_size()
        self.net = DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def shard(self, source: Any) -> _ShardedSource:
        return _ShardedSource(source, self.world)

    def backward(self, loss: Tensor, batch: Any) -> None:
        (loss * (self.world * batch.share)).backward()

    def epoch_mean(self, total: float, count: float) -> float:
        total, count = all_reduce_sum([total, count])
        return total / count if count else math.nan


def data_parallel(model: nn.Module, device: str | torch.device | None = None,
                  find_unused_parameters: bool = False) -> DataParallel | None:
    """A :class:`DataParallel` of ``model`` when several ranks run (torchrun), else None (one process).
    ``find_unused_parameters``: DDP's option, for a model some of whose parameters a step may not use."""
    if world_size() == 1:
        return None
    return DataParallel(model, get_device(device), find_unused_parameters)


def shuffled_forward(fn: Callable[[Tensor], Tensor], x: Tensor, gen: torch.Generator) -> Tensor:
    """``fn`` over the whole batch ``x`` (which every rank holds), each rank computing a shuffled share, the
    outputs gathered and un-shuffled: every rank gets ``fn``'s rows for all of ``x``, in ``x``'s order.
    MoCo's shuffled batch norm across GPUs (``_batch_shuffle_ddp``): a batch-norm layer in ``fn`` sees a
    random subset of the batch, not the rank's own share, so its statistics cannot leak which key belongs
    to which query. ``gen`` must be in the same state on every rank (the permutation is not sent)."""
    n = len(x)
    perm = torch.randperm(n, generator=gen)
    lo, hi = bounds(n)
    out = fn(x[perm[lo:hi].to(x.device)])
    shuffled = gather_rows(out, share_sizes(n))
    unshuffled = torch.empty_like(shuffled)
    unshuffled[perm.to(shuffled.device)] = shuffled
    return unshuffled
