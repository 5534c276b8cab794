"""Bootstrap intervals, the paired test and grouped AUC resamples against slow references and
a known population AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from journeyrec.evaluation.statistics import (
    bootstrap_intervals,
    grouped_auc_resamples,
    paired_comparison,
    percentile_interval,
    resample_weights,
    roc_auc,
)


def test_bootstrap_intervals_cover_and_match_a_slow_reference():
    rng = np.random.default_rng(3)
    x = (rng.random(400) < 0.3).astype(float)
    y = rng.normal(size=400)
    y[:5] = np.nan  # left out of each resampled mean, as of the point estimate
    ci = bootstrap_intervals({"x": x, "y": y}, n_boot=2000, seed=7)
    lo, hi = ci["x"]
    assert lo < x.mean() < hi
    se = x.std() / math.sqrt(len(x))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)  # the normal approximation
    # same resamples drawn one by one with the generator the function uses
    from journeyrec.evaluation.statistics import resample_weights

    w = np.concatenate(list(resample_weights(len(x), 2000, np.random.default_rng(7))))
    slow = [np.average(x, weights=row) for row in w]
    assert (lo, hi) == pytest.approx((np.quantile(slow, 0.025), np.quantile(slow, 0.975)))
    assert ci["y"][0] < np.nanmean(y) < ci["y"][1]
    assert bootstrap_intervals({"x": x}, n_boot=0) == {}


def test_paired_comparison_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.2).astype(float)
    b = np.where(rng.random(2000) < 0.1, 1.0, a)  # b = a plus extra hits
    r = paired_comparison("hr@10", a, b, n_boot=2000, n_perm=2000, seed=1)
    assert r.diff == pytest.approx(b.mean() - a.mean())
    assert r.ci_low > 0 and r.p_value < 0.01
    noise = rng.normal(size=2000)
    null = paired_comparison("x", noise, noise.copy(), n_boot=500, n_perm=500)  # identical systems
    assert null.diff == 0.0 and null.p_value == 1.0
    swapped = paired_comparison("x", b, a, n_boot=2000, n_perm=2000, seed=1)
    assert swapped.diff == pytest.approx(-r.diff) and swapped.ci_high < 0
    with pytest.raises(ValueError, match="aligned"):
        paired_comparison("x", a, b[:10])


@pytest.mark.slow
def test_paired_interval_equals_a_full_case_bootstrap_in_distribution():
    # the fast path resamples only the cases where the systems differ; compare with the plain
    # bootstrap of all cases (resample_weights): same distribution, so close quantiles
    from journeyrec.evaluation.statistics import resample_weights

    rng = np.random.default_rng(5)
    a = (rng.random(3000) < 0.1).astype(float)
    b = np.where(rng.random(3000) < 0.05, 1.0 - a, a)
    fast = paired_comparison("hr", a, b, n_boot=20000, n_perm=1000, seed=2)
    d = b - a
    w = np.concatenate(list(resample_weights(len(d), 20000, np.random.default_rng(9))))
    slow = (w @ d) / len(d)
    assert fast.ci_low == pytest.approx(np.quantile(slow, 0.025), abs=6e-4)
    assert fast.ci_high == pytest.approx(np.quantile(slow, 0.975), abs=6e-4)


def test_grouped_auc_resamples_are_roc_auc_of_the_drawn_sessions():
    """Each resample equals roc_auc on the cases of the drawn groups, written out explicitly
    (a group drawn twice brings its cases twice); the scorers share the resamples."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(60), rng.integers(1, 5, size=60))
    labels = rng.random(len(groups)) < 0.4
    a = np.round(rng.normal(size=len(groups)) + labels, 1)  # rounded: ties across and within groups
    b = rng.normal(size=len(groups))
    got = grouped_auc_resamples({"a": a, "b": b}, labels, groups, n_boot=30, seed=5, chunk=7)
    counts = np.concatenate(list(resample_weights(60, 30, np.random.default_rng(5), 7)))
    for r in range(30):
        idx = np.concatenate([np.repeat(np.flatnonzero(groups == g), int(c)) for g, c in enumerate(counts[r]) if c])
        assert got["a"][r] == pytest.approx(roc_auc(a[idx], labels[idx]), abs=1e-12)
        assert got["b"][r] == pytest.approx(roc_auc(b[idx], labels[idx]), abs=1e-12)


def test_grouped_auc_interval_covers_the_truth():
    """Scores whose population AUC is known (normal scores, shifted by 1 for positives: AUC =
    Phi(1 / sqrt 2) = 0.760): the session-bootstrap interval covers it in most of 40 seeded samples."""
    truth = 0.5 * (1 + math.erf(0.5))  # Phi(1/sqrt(2))
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        groups = np.repeat(np.arange(150), 3)
        labels = rng.random(len(groups)) < 0.5
        scores = rng.normal(size=len(groups)) + labels
        lo, hi = percentile_interval(grouped_auc_resamples({"s": scores}, labels, groups, n_boot=300, seed=seed)["s"])
        covered += lo <= truth <= hi
    assert covered >= 34  # 95% nominal: P(Binomial(40, 0.95) < 34) < 0.01
