"""Uncertainty of the reported numbers: bootstrap intervals, the paired test, AUC resamples.

:func:`bootstrap_intervals` gives percentile intervals of case means (cases resampled with
replacement, one shared set of resamples for all metrics). Coverage and Gini are set-level
statistics: a resample with replacement holds ~63% distinct cases, so a bootstrap would bias them
low; they are reported without intervals. :func:`paired_comparison` compares two systems on the
same cases (bootstrap interval of the mean difference and a paired sign-flip permutation test).
:func:`grouped_auc_resamples` bootstraps :func:`roc_auc` over groups of cases (e.g. sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

__all__ = [
    "ci_keys",
    "resample_weights",
    "bootstrap_intervals",
    "PairedResult",
    "paired_comparison",
    "roc_auc",
    "grouped_auc_resamples",
    "percentile_interval",
]


def ci_keys(key: str) -> tuple[str, str]:
    """Names of the 95% interval bounds of a metric in metrics.json."""
    return f"{key}_ci95_low", f"{key}_ci95_high"


def resample_weights(n: int, n_boot: int, rng: np.random.Generator, chunk: int = 200) -> Iterable[np.ndarray]:
    """Bootstrap resamples of ``n`` cases as count vectors (float64 [c, n] chunks): row b says
    how often each case was drawn, so a resampled mean is one matrix product."""
    for lo in range(0, n_boot, chunk):
        c = min(chunk, n_boot - lo)
        idx = rng.integers(0, n, size=(c, n)) + (np.arange(c) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=c * n).reshape(c, n).astype(np.float64)


def bootstrap_intervals(
    per_case: Mapping[str, np.ndarray], n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the mean of every per-case array (all of length n).

    NaN entries (e.g. a list with no attribute pair) are left out of each resampled mean, as
    they are of the point estimate.
    """
    keys = list(per_case)
    if not keys or n_boot <= 0:
        return {}
    m = np.stack([np.asarray(per_case[k], dtype=np.float64) for k in keys], axis=1)
    n = m.shape[0]
    if n == 0:
        return {k: (float("nan"), float("nan")) for k in keys}
    finite = np.isfinite(m)
    m0 = np.where(finite, m, 0.0)
    f = finite.astype(np.float64)
    means = []
    for w in resample_weights(n, n_boot, np.random.default_rng(seed)):
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((w @ m0) / (w @ f))
    allm = np.concatenate(means, axis=0)
    alpha = (1.0 - level) / 2.0
    out = {}
    for j, k in enumerate(keys):
        col = allm[:, j]
        col = col[np.isfinite(col)]
        out[k] = (
            (float(np.quantile(col, alpha)), float(np.quantile(col, 1.0 - alpha)))
            if len(col)
            else (float("nan"), float("nan"))
        )
    return out


@dataclass
class PairedResult:
    """B against A on the same cases: ``diff = mean(B) - mean(A)`` with its interval and p-value."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str = "paired sign-flip permutation test (two-sided)"


def paired_comparison(
    metric: str,
    a: np.ndarray,
    b: np.ndarray,
    n_boot: int = 10000,
    n_perm: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedResult:
    """Paired comparison of per-case values of two systems on the same cases (same order).

    Interval: percentile bootstrap of the mean difference (cases resampled, pairs kept together).
    Test: under H0 each case's difference is as likely to have either sign; the p-value is the
    share of random sign flips whose |mean| reaches the observed one, with the +1 correction so
    it is never 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be 1-D and aligned case by case; got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        raise ValueError("no common cases to compare")
    d = b - a
    obs = float(d.mean())
    # Only cases where the systems differ move either statistic, and on ranking metrics they are
    # few (both systems miss most targets). Both procedures below work on them alone, exactly:
    # of n bootstrap draws, Binomial(n, k/n) land on the k differing cases, uniformly among them;
    # sign flips of zero differences change nothing.
    dn = d[d != 0]
    k = len(dn)
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    extreme = n_perm
    if k:
        for lo in range(0, n_boot, 1000):
            c = min(1000, n_boot - lo)
            m = rng.binomial(n, k / n, size=c)
            rows = np.repeat(np.arange(c), m)
            boots[lo : lo + c] = np.bincount(rows, weights=dn[rng.integers(0, k, size=int(m.sum()))], minlength=c) / n
        extreme = 0
        step = max(1, (1 << 22) // k)
        for lo in range(0, n_perm, step):
            c = min(step, n_perm - lo)
            signs = rng.integers(0, 2, size=(c, k), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
            extreme += int((np.abs(signs @ dn) / n >= abs(obs) - 1e-12).sum())
    alpha = (1.0 - level) / 2.0
    return PairedResult(
        metric=metric,
        n=n,
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        diff=obs,
        ci_low=float(np.quantile(boots, alpha)),
        ci_high=float(np.quantile(boots, 1.0 - alpha)),
        p_value=(extreme + 1.0) / (n_perm + 1.0),
    )


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of binary ``labels`` (1 = positive) by ``scores``; tied scores
    count one half (Mann-Whitney U with average ranks). NaN when a class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank (1-based) of each run of equal scores
    starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def grouped_auc_resamples(
    scores: Mapping[str, np.ndarray],
    labels: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, np.ndarray]:
    """AUC of every scorer on ``n_boot`` bootstrap resamples of the *groups* (e.g. sessions: the
    cases of one session are not independent, so the session is what is drawn, with replacement,
    and brings all its cases along): ``{name: float64 [n_boot]}``. Every scorer sees the same
    resamples, so the difference of two scorers' arrays is a paired bootstrap of their difference.

    Each resample is :func:`roc_auc` of the cases weighted by how often their group was drawn
    (ties count one half), computed for a chunk of resamples at once from one sort per scorer."""
    y = np.asarray(labels).astype(bool)
    g = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    n_groups = int(g.max()) + 1 if len(g) else 0
    out = {name: np.full(max(n_boot, 0), np.nan) for name in scores}
    if n_boot <= 0 or n_groups == 0:
        return out
    prepared = []
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        order = np.argsort(s, kind="mergesort")
        sorted_s = s[order]
        starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]  # runs of tied scores
        prepared.append((name, order, starts))
    rng = np.random.default_rng(seed)
    done = 0
    for counts in resample_weights(n_groups, n_boot, rng, chunk):
        w = counts[:, g]  # [c, n] case weights
        wp, wn = w * y, w * ~y
        for name, order, starts in prepared:
            pos = np.add.reduceat(wp[:, order], starts, axis=1)
            neg = np.add.reduceat(wn[:, order], starts, axis=1)
            below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each run
            num = (pos * (below + 0.5 * neg)).sum(axis=1)
            den = pos.sum(axis=1) * neg.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name][done : done + len(counts)] = np.where(den > 0, num / den, np.nan)
        done += len(counts)
    return out


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of resampled statistics (NaN resamples left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(v, alpha)), float(np.quantile(v, 1.0 - alpha))
