"""ddlib.kernels.knn: exact neighbour sets against a brute-force reference, both backends."""
from __future__ import annotations

import pytest
import torch

from ddlib.kernels.knn import faiss_available, knn, knn_reference, l2_normalize, resolve_backend
from ddlib.utils import ParamError

BACKENDS = ["torch"] + (["faiss"] if faiss_available() else [])


def _emb(n: int = 300, d: int = 16, seed: int = 0) -> torch.Tensor:
    return l2_normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("block_size", [7, 64, 4096])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_same_neighbours_as_brute_force(backend: str, block_size: int, exclude_self: bool) -> None:
    x = _emb()
    sims, idx = knn(x, 10, block_size=block_size, backend=backend, exclude_self=exclude_self)
    ref_s, ref_i = knn_reference(x, 10, exclude_self=exclude_self)
    assert sims.shape == idx.shape == (300, 10) and idx.dtype == torch.long
    assert [set(r) for r in idx.tolist()] == [set(r) for r in ref_i.tolist()]  # random data: no ties
    torch.testing.assert_close(sims, ref_s, atol=1e-5, rtol=0)
    assert (sims[:, :-1] >= sims[:, 1:] - 1e-6).all()  # sorted, largest first
    torch.testing.assert_close(sims, (x[:, None, :] * x[idx]).sum(-1), atol=1e-5, rtol=0)
    if exclude_self:
        assert not (idx == torch.arange(300)[:, None]).any()
    else:
        assert (idx[:, 0] == torch.arange(300)).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_at_least_n(backend: str) -> None:
    x = _emb(5)
    s, i = knn(x, 30, backend=backend)
    assert i.shape == (5, 4)  # every other sample, never itself
    assert all(sorted(r) == sorted(set(range(5)) - {n}) for n, r in enumerate(i.tolist()))
    s, i = knn(x, 30, backend=backend, exclude_self=False)
    assert i.shape == (5, 5)
    s, i = knn(_emb(1), 3, backend=backend)
    assert i.shape == (1, 0) and s.shape == (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_never_list_self(backend: str) -> None:
    x = l2_normalize(torch.ones(6, 4))  # all identical: every similarity ties at 1
    _, i = knn(x, 3, backend=backend)
    assert i.shape == (6, 3) and not (i == torch.arange(6)[:, None]).any()


def test_auto_backend() -> None:
    assert resolve_backend("auto", torch.device("cpu")) == ("faiss" if faiss_available() else "torch")
    assert resolve_backend("torch", torch.device("cpu")) == "torch"


@pytest.mark.parametrize("kwargs, name", [
    ({"k": 0}, "k"), ({"k": 2.5}, "k"), ({"block_size": 0}, "block_size"),
    ({"backend": "annoy"}, "backend"), ({"exclude_self": "yes"}, "exclude_self"),
])
def test_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"k": 3, **kwargs}
    with pytest.raises(ParamError, match=name):
        knn(_emb(10), **args)


def test_bad_input() -> None:
    with pytest.raises(ParamError, match="2-D"):
        knn(torch.randn(10), 3)
    with pytest.raises(ParamError, match="floating"):
        knn(torch.ones(4, 3, dtype=torch.long), 3)


def _same_up_to_ties(x: torch.Tensor, sims: torch.Tensor, idx: torch.Tensor, ref_s: torch.Tensor, atol: float = 1e-5) -> None:
    """Same k largest similarities per row; every neighbour strictly above the k-th value is listed."""
    torch.testing.assert_close(sims, ref_s, atol=atol, rtol=0)
    torch.testing.assert_close(sims, (x[:, None, :] * x[idx]).sum(-1), atol=atol, rtol=0)
    full = x @ x.T
    full.fill_diagonal_(float("-inf"))
    for r in range(len(x)):
        kth = ref_s[r, -1]
        must = set(torch.nonzero(full[r] > kth + atol).reshape(-1).tolist())
        assert must <= set(idx[r].tolist())
        assert len(set(idx[r].tolist())) == idx.shape[1] and r not in set(idx[r].tolist())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("block_size", [5, 64, 4096])
def test_exact_duplicates(backend: str, block_size: int) -> None:
    base = _emb(40, 8, seed=3)
    x = torch.cat([base, base[:25], base[:10], _emb(30, 8, seed=4)])  # triplets, pairs, singles
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]
    sims, idx = knn(x, 6, block_size=block_size, backend=backend)
    ref_s, _ = knn_reference(x, 6)
    _same_up_to_ties(x, sims, idx, ref_s)
    # a sample's copies are its nearest neighbours (similarity 1), itself never
    dup = (x[:, None, :] == x[None, :, :]).all(-1)
    dup.fill_diagonal_(False)
    for r in range(len(x)):
        copies = set(torch.nonzero(dup[r]).reshape(-1).tolist())
        assert copies <= set(idx[r, :len(copies)].tolist())


@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 1000])
def test_row_blocks_cover_every_row_and_exclude_self(n: int) -> None:
    from ddlib.kernels.knn import row_block

    x = _emb(n, 4, seed=n)
    k = min(3, max(n - 1, 1))
    for bs in (1, 7, 300):
        sims, idx = knn(x, k, block_size=bs, backend="torch")
        if n > 1:
            ref_s, _ = knn_reference(x, k)
            torch.testing.assert_close(sims, ref_s, atol=1e-5, rtol=0)
            assert not (idx == torch.arange(n)[:, None]).any()
    assert row_block(5000, 4096, torch.device("cpu")) == 2 ** 21 // 5000
    assert row_block(50_000, 4096, torch.device("cpu")) == 256  # at least 256 rows per product
    assert row_block(50_000, 4096, torch.device("cuda")) == 1342  # bigger tiles on the GPU
    assert row_block(100, 7, torch.device("cpu")) == 7 and row_block(3, 4096, torch.device("cpu")) == 3


def test_float64_and_noncontiguous_input() -> None:
    x = _emb(200, 12, seed=9).double()
    xt = x.T.contiguous().T  # a non-contiguous view with the same values
    s1, i1 = knn(xt, 5, backend="torch")
    s2, i2 = knn_reference(x, 5)
    assert s1.dtype == torch.float32 and i1.dtype == torch.long
    assert [set(r) for r in i1.tolist()] == [set(r) for r in i2.tolist()]
