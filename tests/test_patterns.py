"""ddlib.bps.patterns: kNN + Infomap recovers known sub-patterns; the number of patterns is found."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score

from ddlib import data
from ddlib.bps.patterns import (PatternConfig, knn_links, partition, partition_class, partition_class_info,
                                partition_info, pattern_entropy)
from ddlib.utils import ParamError


def _prototype_embedding(ds: data.Dataset, noise: float = 0.05, dim: int = 64) -> torch.Tensor:
    """A fixed, well-separated embedding: one random unit prototype per (class, sub-pattern) plus noise."""
    g = torch.Generator().manual_seed(0)
    protos = F.normalize(torch.randn(ds.num_classes, 8, dim, generator=g), dim=-1)
    return protos[ds.train_y, ds.train_patterns] + noise * torch.randn(len(ds.train_y), dim, generator=g)


def test_recovers_known_sub_patterns() -> None:
    ds = data.load("synthetic-patterns")
    ids, info = partition_info(_prototype_embedding(ds), ds.train_y, PatternConfig())
    truth_counts = {c: int(ds.train_patterns[ds.train_y == c].max()) + 1 for c in range(ds.num_classes)}
    for c in range(ds.num_classes):
        m = ds.train_y == c
        assert normalized_mutual_info_score(ds.train_patterns[m].numpy(), ids[m].numpy()) >= 0.9
        assert info[c].num_patterns == truth_counts[c]  # found by Infomap, never given
        assert info[c].codelength < info[c].one_level_codelength  # the partition compresses the walk
        # pattern 0 is the largest, ids are 0..M-1
        sizes = torch.bincount(ids[m])
        assert (sizes[:-1] >= sizes[1:]).all() and len(sizes) == info[c].num_patterns
    assert len(set(truth_counts.values())) > 1  # classes differ in their number of sub-patterns


def test_singletons_are_their_own_patterns() -> None:
    g = torch.Generator().manual_seed(1)
    e0, e1 = torch.eye(8)[:2]
    tight = e0 + 0.01 * torch.randn(12, 8, generator=g)  # one pattern (a complete kNN graph with k=11)
    emb = torch.cat([tight, -e0[None], e1[None]])  # two samples with no neighbour of cosine >= 0.9
    part = partition_class_info(emb, PatternConfig(k=11, min_sim=0.9))
    assert part.num_singletons == 2 and part.num_patterns == 3
    assert (part.ids[:12] == 0).all()
    assert sorted(part.ids[12:].tolist()) == [1, 2]


def test_no_links_at_all_and_tiny_classes() -> None:
    eye = torch.eye(4)  # orthogonal: every cosine is 0 < min_sim
    assert partition_class(eye).tolist() == [0, 1, 2, 3]
    assert partition_class(torch.ones(1, 3)).tolist() == [0]
    assert partition_class(torch.ones(0, 3)).numel() == 0


def test_knn_links_threshold_and_direction() -> None:
    emb = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    links, single = knn_links(emb, PatternConfig(k=2, min_sim=0.5))
    got = {(int(i), int(j)): round(w, 3) for i, j, w in links}
    assert got == {(0, 1): 0.8, (1, 0): 0.8, (1, 2): 0.6, (2, 1): 0.6}
    assert not single.any()


def test_partition_is_per_class_and_deterministic() -> None:
    ds = data.load("synthetic-patterns", per_class=40)
    emb = _prototype_embedding(ds, noise=0.1)
    a = partition(emb, ds.train_y, PatternConfig(seed=7))
    b = partition(emb, ds.train_y, PatternConfig(seed=7))
    assert torch.equal(a, b) and a.dtype == torch.long and (a >= 0).all()
    for c in range(ds.num_classes):
        assert a[ds.train_y == c].min() == 0


def test_pattern_entropy() -> None:
    assert pattern_entropy(torch.tensor([0, 0, 1, 1])) == pytest.approx(1.0)
    assert pattern_entropy(torch.zeros(5, dtype=torch.long)) == pytest.approx(0.0)


@pytest.mark.parametrize("field, value", [("k", 0), ("min_sim", 1.5), ("trials", 0), ("directed", "yes"),
                                          ("knn_backend", "annoy"), ("seed", -1), ("block_size", 0)])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ParamError, match=field):
        PatternConfig(**{field: value})


def test_flags_and_bad_input() -> None:
    assert PatternConfig().infomap_flags() == "--two-level --directed --silent --num-trials 3 --seed 123"
    with pytest.raises(ParamError, match="labels"):
        partition(torch.randn(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ParamError, match="emb"):
        partition_class(np.zeros((3, 2)))  # type: ignore[arg-type]


def test_worker_processes_give_the_same_partition() -> None:
    ds = data.load("synthetic-patterns", per_class=60)
    emb = _prototype_embedding(ds, noise=0.15)
    cfg = PatternConfig(k=10, min_sim=0.3, seed=5)
    a, ia = partition_info(emb, ds.train_y, cfg, workers=1)
    b, ib = partition_info(emb, ds.train_y, cfg, workers=3)  # Infomap in 3 processes, kNN here
    assert torch.equal(a, b)
    assert all(p.num_links > 0 and p.num_patterns > 1 for p in ia.values())
    assert {c: (p.num_patterns, p.num_links, p.codelength, p.one_level_codelength) for c, p in ia.items()} == \
        {c: (p.num_patterns, p.num_links, p.codelength, p.one_level_codelength) for c, p in ib.items()}
    assert len(set(ds.train_y.tolist())) > 3  # more classes than workers: workers are reused
    # classes of very different sizes: the workers finish out of submission order (the first to
    # finish is collected first), and every class still gets its own partition
    keep = torch.cat([torch.nonzero(ds.train_y == c).reshape(-1)[: 60 if c == 0 else 12 + 6 * c]
                      for c in sorted(set(ds.train_y.tolist()))])
    c1, _ = partition_info(emb[keep], ds.train_y[keep], cfg, workers=1)
    threads = torch.get_num_threads()
    c2, _ = partition_info(emb[keep], ds.train_y[keep], cfg, workers=2)
    assert torch.equal(c1, c2)
    assert torch.get_num_threads() == threads  # the graphs built beside busy workers take fewer threads, then restored


def test_infomap_workers() -> None:
    from ddlib.bps.patterns import infomap_workers

    assert infomap_workers(10, 4) == 4 and infomap_workers(2, 4) == 2 and infomap_workers(0, 4) == 1
    from ddlib.bps.patterns import POOL_MIN_ROWS

    assert infomap_workers(10, rows=POOL_MIN_ROWS - 1) == 1  # a process start would cost more than it saves
    assert infomap_workers(10, rows=POOL_MIN_ROWS) == min(10, torch.get_num_threads())
    assert infomap_workers(10) == min(10, torch.get_num_threads())  # any device: the default rows
    with pytest.raises(ParamError, match="workers"):
        infomap_workers(10, 0)


def test_patterns_table_and_what_a_partition_found() -> None:
    """Per class: sizes, the largest's share, the median, how many patterns hold half; words read from them."""
    import pandas as pd

    from ddlib.bps.patterns import describe_partition, patterns_table
    from ddlib.bps.slots import slots_per_pattern

    labels = torch.tensor([0] * 10 + [1] * 4)
    pats = torch.tensor([0] * 6 + [1] * 3 + [2] + [0] * 4)
    info = {0: {"num_singletons": 1, "codelength": 1.234, "one_level_codelength": 2.5},
            1: {"num_singletons": 0, "codelength": float("nan"), "one_level_codelength": float("nan")}}
    t = patterns_table(labels, pats, info, ["a", "b"])
    assert t.loc["a"].tolist() == [3, 1, 60.0, 3.0, 1, "1.23 (2.50)"]
    assert t.loc["b"].tolist() == [1, 0, 100.0, 4.0, 1, "no links"]
    slots = slots_per_pattern(labels, pats, [3])
    f = describe_partition(t, slots, {"recorded_n": 2, "recorded_min": 1, "recorded_max": 3}, ipc=3)
    assert (f["min_patterns"], f["max_patterns"], f["largest_min"], f["half_max"]) == (1, 3, 60.0, 1)
    assert f["shape"] == "one large pattern per class with small ones beside it"
    assert f["typical"].startswith("the 2 recorded modellings of the same recipe (other sessions) found 1 to 3")
    # IPC 3: class a's slots 2, 1 (one margin), class b's 3 (2 centres, 1 margin): 4 centres of 6 picks
    assert (f["slots_centre_pct"], f["balance"]) == (66.67, "acts in part")
    many = pd.DataFrame({"patterns": [45, 40], "singletons": [1, 0], "largest (%)": [6.1, 7.3],
                         "median size": [120.0, 130.0], "half in": [14, 12]})
    g = describe_partition(many, None, {"recorded_n": 1, "recorded_min": 10, "recorded_max": 12})
    assert g["shape"] == "many small patterns rather than a few large ones" and "balance" not in g
    assert g["typical"].startswith("the recorded modelling of the book's default settings found 10 to 12 per class")
    assert "falls outside that range" in g["typical"]
    assert describe_partition(many)["typical"] == "no modelling of this dataset is recorded yet to compare it with"
