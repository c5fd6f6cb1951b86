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
