"""Paired comparisons over seeds (issue 9): hand-computed cases."""
from __future__ import annotations

import math

import pytest

from ddlib import metrics


def test_paired_difference_hand_computed():
    # d = [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t_{0.975, 2} = 4.302652729911275
    r = metrics.paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert r["n"] == 3 and r["diff_mean"] == pytest.approx(2.0) and r["diff_sd"] == pytest.approx(1.0)
    assert r["ci"][0] == pytest.approx(2 - half) and r["ci"][1] == pytest.approx(2 + half)
    assert r["excludes_zero"] is False  # 2 - 2.484 < 0


def test_paired_difference_uses_pairs_not_groups():
    # a large shared seed effect cancels in the pairs: every difference is exactly 0.01
    a = [0.50, 0.70, 0.90, 0.60, 0.80]
    b = [0.49, 0.69, 0.89, 0.59, 0.79]
    r = metrics.paired_difference(a, b)
    assert r["diff_mean"] == pytest.approx(0.01)
    assert r["ci"][0] == pytest.approx(0.01) and r["ci"][1] == pytest.approx(0.01)
    assert r["excludes_zero"] is True


def test_paired_difference_other_confidence_and_single_seed():
    # n = 2, d = [0, 2]: mean 1, sd sqrt(2), t_{0.95, 1} = 6.313751514675041 (90 % interval)
    r = metrics.paired_difference([1.0, 3.0], [1.0, 1.0], confidence=0.90)
    half = 6.313751514675041 * math.sqrt(2) / math.sqrt(2)
    assert r["ci"] == pytest.approx((1 - half, 1 + half))
    one = metrics.paired_difference([0.5], [0.4])
    assert one["diff_mean"] == pytest.approx(0.1) and all(math.isnan(v) for v in one["ci"])
    assert one["excludes_zero"] is False


@pytest.mark.parametrize("a, b", [([1.0, 2.0], [1.0]), ([], []), ([float("nan"), 1.0], [0.0, 0.0])])
def test_paired_difference_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        metrics.paired_difference(a, b)


def test_verdict_sentences():
    up = metrics.paired_difference([0.52, 0.53, 0.54], [0.50, 0.50, 0.50])
    assert metrics.verdict("bps", "random", up).startswith("bps beats random by 3.0 ± ")
    down = metrics.paired_difference([0.50, 0.50, 0.50], [0.52, 0.53, 0.54])
    assert metrics.verdict("bps", "random", down).startswith("bps trails random by 3.0 ± ")
    tie = metrics.paired_difference([0.50, 0.52, 0.49], [0.51, 0.50, 0.50])
    assert "cannot be told apart" in metrics.verdict("bps", "random", tie)


def test_ior_and_hlr():
    ior = metrics.improvement_over_random([0.6, 0.7], [0.5, 0.5])
    assert ior["diff_mean"] == pytest.approx(0.15)
    hlr = metrics.hard_label_recovery(0.9, [0.6, 0.8])
    assert hlr["diff_mean"] == pytest.approx(0.2) and hlr["n"] == 2
