"""The data sets that are always there: scikit-learn's 8 x 8 digits (for unit tests) and a generated set whose
classes are mixtures of known sub-patterns (so tests can check that pattern discovery finds the truth)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ddlib.data.core import Dataset, DatasetEntry
from ddlib.utils import ParamError, check_float, check_int

__all__ = ["ENTRIES", "SYNTHETIC_OPTIONS", "load_digits", "make_synthetic_patterns", "load_synthetic_patterns"]

SYNTHETIC_OPTIONS = ("num_classes", "patterns_per_class", "n_train", "n_test", "image_size", "noise")


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8 x 8 grey digits, split 80/20 per class (a fixed stratified split)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(np.round(d.images * (255 / 16)).astype(np.uint8))[:, None]
    y = torch.from_numpy(d.target.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):  # a fixed stratified 80/20 split
        idx = perm[y[perm] == c]
        test[idx[: len(idx) // 5]] = True
    return Dataset("digits", x[~test], y[~test], x[test], y[test], [str(i) for i in range(10)],
                   source="sklearn.datasets.load_digits")


def make_synthetic_patterns(num_classes: int = 4, patterns_per_class: tuple[int, ...] = (3, 2, 4, 3),
                            n_train: int = 240, n_test: int = 60, image_size: int = 16,
                            noise: float = 0.08, seed: int = 0) -> Dataset:
    """Classes that are mixtures of known visual sub-patterns of unequal sizes.

    Class c has a colour; each of its ``patterns_per_class[c]`` sub-patterns is a distinct
    blob (at a position of its own) and stripe (at an
    orientation of its own) layout, and its share of the class decays geometrically (1, 1/2,
    1/4, ...; normalised), so the sub-patterns are unbalanced. Samples are the sub-pattern's
    prototype with a random shift of up to one pixel, brightness jitter and Gaussian noise.
    ``train_patterns``/``test_patterns`` hold each sample's sub-pattern id within its class.
    At most 9 sub-patterns per class (the distinct blob positions).
    """
    num_classes = check_int("num_classes", num_classes, 2, 100)
    n_train, n_test = check_int("n_train", n_train, 1, 100_000), check_int("n_test", n_test, 1, 100_000)
    image_size = check_int("image_size", image_size, 4, 1024)
    noise = check_float("noise", noise, 0.0, 1.0)
    seed = check_int("seed", seed, 0, 2**32 - 3)  # seed + 2 seeds the test split
    if not isinstance(patterns_per_class, (tuple, list)) or not patterns_per_class:
        raise ParamError(f"patterns_per_class={patterns_per_class!r} must be a non-empty tuple of integers >= 1")
    patterns_per_class = tuple(check_int("patterns_per_class", m, 1, 9) for m in patterns_per_class)
    if len(patterns_per_class) != num_classes:
        patterns_per_class = tuple(patterns_per_class[i % len(patterns_per_class)] for i in range(num_classes))
    g = np.random.default_rng(seed)
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s] / s
    hues = np.linspace(0, 1, num_classes, endpoint=False)
    anchors = np.array([(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75), (0.5, 0.5),
                        (0.25, 0.5), (0.75, 0.5), (0.5, 0.25), (0.5, 0.75)])

    def colour(h: float) -> np.ndarray:
        return 0.5 + 0.5 * np.cos(2 * np.pi * (h + np.array([0.0, 1 / 3, 2 / 3])))

    protos = []
    for c in range(num_classes):
        col = colour(hues[c])
        cls = []
        m = patterns_per_class[c]
        spots = g.permutation(len(anchors))  # distinct blob positions keep sub-patterns apart
        for k in range(m):
            cy, cx = anchors[spots[k % len(anchors)]] + g.uniform(-0.05, 0.05, size=2)
            r = g.uniform(0.15, 0.25)
            theta, freq = np.pi * (k + g.uniform(0, 0.3)) / m, g.uniform(2, 4)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy))
            mask = 0.65 * blob + 0.35 * stripes * (1 - blob)
            cls.append(mask[None] * col[:, None, None] + 0.1)
        protos.append(cls)

    def sample(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, ps = [], [], []
        for c in range(num_classes):
            m = patterns_per_class[c]
            w = 0.5 ** np.arange(m)
            counts = np.floor(w / w.sum() * n_per_class).astype(int)
            counts[0] += n_per_class - counts.sum()
            for k, cnt in enumerate(counts):
                for _ in range(cnt):
                    img = np.roll(protos[c][k], shift=tuple(rng.integers(-1, 2, size=2)), axis=(1, 2))
                    img = img * rng.uniform(0.9, 1.1) + rng.normal(0, noise, img.shape)
                    xs.append(img)
                    ys.append(c)
                    ps.append(k)
        x = (np.clip(np.stack(xs), 0, 1) * 255).round().astype(np.uint8)
        return x, np.array(ys), np.array(ps)

    tx, ty, tp = sample(n_train, np.random.default_rng(seed + 1))
    vx, vy, vp = sample(n_test, np.random.default_rng(seed + 2))
    return Dataset("synthetic-patterns", torch.from_numpy(tx), torch.from_numpy(ty).long(), torch.from_numpy(vx),
                   torch.from_numpy(vy).long(), [f"class{c}" for c in range(num_classes)],
                   source="generated", train_patterns=torch.from_numpy(tp).long(),
                   test_patterns=torch.from_numpy(vp).long())


def load_synthetic_patterns(seed: int = 0, **options: Any) -> Dataset:
    """``synthetic-patterns``: :func:`make_synthetic_patterns` with the load's seed and the generator settings."""
    return make_synthetic_patterns(seed=seed, **{k: v for k, v in options.items() if k in SYNTHETIC_OPTIONS})


ENTRIES = (
    DatasetEntry("digits", lambda: load_digits(), needs="nothing: scikit-learn's bundled copy (1,797 images, 8 x 8)",
                 where=lambda: "scikit-learn (bundled)"),
    DatasetEntry("synthetic-patterns", load_synthetic_patterns, needs="nothing: generated from the seed (options "
                 + ", ".join(SYNTHETIC_OPTIONS) + ")", where=lambda: "generated in memory", options=SYNTHETIC_OPTIONS,
                 seeded=True),
)
