"""Beyond-accuracy metrics against slow brute-force references: coverage, Gini, novelty, ARP
and intra-list diversity (both intersection paths, chunking)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from journeyrec.evaluation.beyond_accuracy import (
    beyond_accuracy,
    catalogue_coverage,
    gini,
    intra_list_diversity,
    self_information,
)


def brute_ild(lst, codes):
    pairs = []
    for a, b in itertools.combinations([x for x in lst if x > 0], 2):
        sa, sb = {c for c in codes[a] if c >= 0}, {c for c in codes[b] if c >= 0}
        if sa and sb:
            pairs.append(1 - len(sa & sb) / len(sa | sb))
    return np.mean(pairs) if pairs else np.nan


def random_codes(rng, n, width=3, vocab=6):
    """Padded attribute codes: up to ``width`` distinct tags per item, some items without any."""
    codes = np.full((n + 1, width), -1)
    for i in range(1, n + 1):
        tags = rng.choice(vocab, size=rng.integers(0, width + 1), replace=False)
        codes[i, : len(tags)] = tags
    return codes


def test_beyond_accuracy_vs_brute_force():
    rng = np.random.default_rng(0)
    n, b, k = 15, 25, 5
    topk = np.stack([rng.choice(np.arange(1, n + 1), size=k, replace=False) for _ in range(b)])
    topk[3, 3:] = 0  # a short list (fewer candidates than K)
    counts = np.r_[0, rng.integers(0, 50, size=n)]
    attrs = random_codes(rng, n)
    attrs[2] = -1  # an item without attributes takes no part in any pair
    agg, per = beyond_accuracy(topk, [2, k], counts, attrs, "test/")
    for kk in (2, k):
        top = topk[:, :kk]
        listed = {int(x) for x in top.ravel() if x > 0}
        assert agg[f"test/coverage@{kk}"] == pytest.approx(len(listed) / n)
        exposure = np.array([(top == i).sum() for i in range(1, n + 1)], dtype=float)
        xs = np.sort(exposure)
        ref_gini = sum(abs(a - c) for a in xs for c in xs) / (2 * n * n * xs.mean())
        assert agg[f"test/gini@{kk}"] == pytest.approx(ref_gini)
        p = (counts + 1) / (counts[1:].sum() + n)
        nov = [np.mean([-math.log2(p[x]) for x in row if x > 0]) for row in top]
        arp = [np.mean([counts[x] for x in row if x > 0]) for row in top]
        ild = [brute_ild(row, attrs) for row in top]
        np.testing.assert_allclose(per[f"test/novelty@{kk}"], nov)
        np.testing.assert_allclose(per[f"test/arp@{kk}"], arp)
        np.testing.assert_allclose(per[f"test/diversity@{kk}"], ild, equal_nan=True)
        assert agg[f"test/diversity@{kk}"] == pytest.approx(np.nanmean(ild))


def test_diversity_with_one_category_is_share_of_different_pairs_and_chunking_is_exact():
    cats = np.array([-1, 0, 0, 0, 1, 1, 2])[:, None]  # item 1..6 -> category code
    topk = np.array([[1, 2, 3], [1, 4, 6], [4, 5, 0]])
    np.testing.assert_allclose(intra_list_diversity(topk, cats), [0.0, 1.0, 0.0])
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 30, width=4, vocab=8)
    big = rng.integers(0, 31, size=(300, 6))
    np.testing.assert_allclose(
        intra_list_diversity(big, codes, chunk_elements=1), intra_list_diversity(big, codes), equal_nan=True
    )
    np.testing.assert_allclose(intra_list_diversity(big, codes), [brute_ild(r, codes) for r in big], equal_nan=True)
    # a vocabulary too large for dense rows takes the code-comparison path: same numbers
    sparse = np.where(codes >= 0, codes * 10_000_000, -1)
    np.testing.assert_allclose(intra_list_diversity(big, sparse), intra_list_diversity(big, codes), equal_nan=True)


def test_gini_and_coverage_edge_cases():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(9), 5.0]) == pytest.approx(0.9)
    assert math.isnan(gini(np.zeros(4)))
    assert catalogue_coverage(np.zeros((3, 4), dtype=np.int64), 10) == 0.0
    info = self_information(np.array([0, 0, 3]))
    assert np.isfinite(info[1]) and info[1] > info[2]  # unseen items are most novel, finite by smoothing
