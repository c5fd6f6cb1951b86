"""Exact cosine k-nearest neighbours over L2-normalised embeddings.

Two exact backends with the same result (ties aside):

- ``"torch"``: per block of rows, one matrix product against all N rows and one ``topk``, in
  PyTorch on the embeddings' device (CUDA or CPU). The block holds
  ``min(block_size, max(256, tile / N))`` rows (tile = 2²¹ similarities on CPU, 2²⁶ on CUDA), so
  the memory is one (rows, N) float32 buffer, never an N×N matrix.
- ``"faiss"``: ``faiss.IndexFlatIP`` (exact inner product); ``GpuIndexFlatIP`` when a faiss GPU
  build and a GPU are present and the embeddings live on CUDA.

``backend="auto"`` picks faiss for CPU tensors when faiss is importable, otherwise torch (the GPU
path on CUDA tensors, since faiss-gpu wheels are rarely installed; see ENVIRONMENT.md). On CPU
the two take about the same time at 512 dimensions and faiss is a little faster at 128
(``benchmarks/results/bench_knn_infomap_cpu*.json`` times both beside the SGEMM of the same
product, the bound neither can beat).
The inner product equals the cosine only for L2-normalised rows; :func:`l2_normalize` does that.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ddlib.utils import ParamError, check_choice, check_int

KNN_BACKENDS = ("auto", "torch", "faiss")


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm (float32)."""
    return F.normalize(x.float(), dim=1, eps=eps)


def faiss_available() -> bool:
    """Whether ``import faiss`` works here."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_gpus() -> int:
    try:
        import faiss
        return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    except Exception:  # noqa: BLE001 - any faiss failure means "no GPU faiss"
        return 0


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ("torch" | "faiss") that ``backend`` means for tensors on ``device``."""
    check_choice("backend", backend, KNN_BACKENDS)
    if backend == "faiss":
        if not faiss_available():
            raise ParamError("backend='faiss' needs the faiss package (pip install faiss-cpu); "
                             "accepted here: 'torch' or 'auto'")
        return "faiss"
    if backend == "torch":
        return "torch"
    if device.type == "cuda":
        return "faiss" if faiss_available() and _faiss_gpus() > 0 else "torch"
    return "faiss" if faiss_available() else "torch"


def knn(x: torch.Tensor, k: int, block_size: int = 4096, backend: str = "auto",
        exclude_self: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest inner products of every row of ``x`` (N, D) with the rows of ``x``.

    Returns ``(sims, idx)``, each (N, k') with k' = min(k, N - 1) when ``exclude_self`` else
    min(k, N): a class smaller than k simply has fewer neighbours. Rows are sorted by decreasing
    similarity; ``idx`` is int64. Both tensors are on ``x``'s device. With ``exclude_self`` a row
    never lists itself (duplicates of it are still neighbours).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ParamError(f"x must be a 2-D tensor (N, D); got {getattr(x, 'shape', type(x).__name__)}")
    if not (x.is_floating_point()):
        raise ParamError(f"x must be a floating-point tensor; got dtype {x.dtype}")
    k = check_int("k", k, 1)
    block_size = check_int("block_size", block_size, 1)
    if not isinstance(exclude_self, bool):
        raise ParamError(f"exclude_self={exclude_self!r} must be True or False")
    n = x.shape[0]
    kk = min(k, n - 1 if exclude_self else n)
    backend = resolve_backend(backend, x.device)
    if kk <= 0:
        return x.new_zeros((n, 0)), torch.zeros((n, 0), dtype=torch.long, device=x.device)
    x = x.float().contiguous()
    if backend == "faiss":
        return _knn_faiss(x, kk, exclude_self)
    return _knn_torch(x, kk, block_size, exclude_self)


#: Similarities per row block the torch kernel aims for (8 MiB of float32 on CPU, about the size
#: that stays in cache while top-k reads it; 256 MiB on CUDA, where bigger launches pay).
TILE_ELEMS = {"cpu": 2 ** 21, "cuda": 2 ** 26}
MIN_ROWS = 256  # below this the matrix product re-reads all of x per block for too little work


def row_block(n: int, block_size: int, device: torch.device) -> int:
    """Rows of the (rows, n) similarity block: ``min(block_size, n, max(256, tile / n))``."""
    tile = TILE_ELEMS.get(device.type, TILE_ELEMS["cpu"])
    return max(1, min(block_size, n, max(MIN_ROWS, tile // max(n, 1))))


@torch.no_grad()
def _knn_torch(x: torch.Tensor, k: int, block: int, exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One matrix product and one top-k per row block against all N columns.

    Profile of the earlier kernel (square blocks with a running top-k): concatenating the running
    best with each block, its int64 index copy and the gather cost more than the product itself
    (its "before" rows in ``bench_knn_infomap``'s records). Here each row block's similarities are
    written into one reused buffer (no page faults), the self column is its diagonal at offset
    ``r0`` (set to -inf in place) and ``topk`` writes straight into the outputs.
    """
    n = x.shape[0]
    rows = row_block(n, block, x.device)
    sims_out = torch.empty((n, k), dtype=torch.float32, device=x.device)
    idx_out = torch.empty((n, k), dtype=torch.long, device=x.device)
    buf = torch.empty((rows, n), dtype=torch.float32, device=x.device)
    xt = x.T  # a view: the product runs as a transposed GEMM, no copy
    for r0 in range(0, n, rows):
        b = min(rows, n - r0)
        s = buf[:b]
        torch.mm(x[r0:r0 + b], xt, out=s)
        if exclude_self:
            s.diagonal(offset=r0).fill_(float("-inf"))  # element (i, r0 + i) is row r0 + i's own column
        torch.topk(s, k, dim=1, largest=True, sorted=True, out=(sims_out[r0:r0 + b], idx_out[r0:r0 + b]))
    return sims_out, idx_out


def _knn_faiss(x: torch.Tensor, k: int, exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import faiss
    import numpy as np

    device = x.device
    xn = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    n, d = xn.shape
    index = faiss.IndexFlatIP(d)
    if device.type == "cuda" and _faiss_gpus() > 0:  # pragma: no cover - needs faiss-gpu
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(xn)
    kq = min(k + 1, n) if exclude_self else k
    sims, idx = index.search(xn, kq)
    if exclude_self:
        sims, idx = _drop_self(sims, idx, k)
    return torch.from_numpy(sims).to(device), torch.from_numpy(idx.astype(np.int64)).to(device)


def _drop_self(sims, idx, k):  # type: ignore[no-untyped-def]
    """Remove each row's own index from a (n, k+1) result (or its last column if self is absent)."""
    import numpy as np

    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    # rows where self was not found (many exact duplicates): drop the last column instead
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    first = np.argmax(is_self, axis=1)  # only the first occurrence is dropped
    keep = np.ones_like(is_self)
    keep[np.arange(n), first] = False
    sims = sims[keep].reshape(n, -1)[:, :k]
    idx = idx[keep].reshape(n, -1)[:, :k]
    return np.ascontiguousarray(sims), np.ascontiguousarray(idx)


def knn_reference(x: torch.Tensor, k: int, exclude_self: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: the full N×N similarity matrix and one sort (for tests only)."""
    s = x.float() @ x.float().T
    if exclude_self:
        s.fill_diagonal_(float("-inf"))
    kk = min(k, x.shape[0] - 1 if exclude_self else x.shape[0])
    vals, idx = torch.sort(s, dim=1, descending=True)
    return vals[:, :kk], idx[:, :kk]
