"""Evaluation metrics against slow brute-force references: ranks and top-k lists with ties, K beyond
the catalogue, empty histories, beyond-accuracy metrics, bootstrap intervals, the paired test,
sampled ranks and segment breakdowns."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from journeyrec.evaluation.beyond_accuracy import (
    beyond_accuracy,
    catalogue_coverage,
    gini,
    intra_list_diversity,
    self_information,
)
from journeyrec.evaluation.metrics import per_case_metrics, ranking_metrics, segment_metrics, summarise
from journeyrec.evaluation.rank_kernel import MISS_RANK, exclusion_mask, sampled_ranks, target_ranks, topk_items
from journeyrec.evaluation.statistics import (
    bootstrap_intervals,
    grouped_auc_resamples,
    paired_comparison,
    percentile_interval,
    resample_weights,
    roc_auc,
)


def brute_rank(scores, target, excluded):
    """The protocol's rank by its definition: a target among the excluded items is a miss (S3-Rec's
    rule); otherwise the number of remaining candidates scored strictly higher (NaN = worst)."""
    if target in excluded:
        return MISS_RANK
    t = scores[target]
    cands = [j for j in range(1, len(scores)) if j == target or j not in excluded]
    if math.isnan(t):
        return len(cands) - 1
    return sum(1 for j in cands if j != target and not math.isnan(scores[j]) and scores[j] > t)


def random_cases(seed, b=30, n=12, levels=4):
    """Few distinct score values -> many ties; some histories empty, some containing the target."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(b, n + 1)).astype(np.float64)
    targets = rng.integers(1, n + 1, size=b)
    hist = [
        set(rng.choice(np.arange(1, n + 1), size=rng.integers(0, n // 2), replace=False).tolist()) for _ in range(b)
    ]
    hist[0] = set()  # an empty history
    hist[1] |= {int(targets[1])}  # a repeat purchase: the target is in the history, a miss when seen items are excluded
    rows = torch.tensor([i for i in range(b) for _ in hist[i]], dtype=torch.long)
    cols = torch.tensor([j for i in range(b) for j in sorted(hist[i])], dtype=torch.long)
    return scores, targets, hist, exclusion_mask(b, n + 1, rows, cols)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranks_and_metrics_vs_brute_force(seed, dtype):
    scores, targets, hist, excl = random_cases(seed)
    n = scores.shape[1] - 1
    s = torch.tensor(scores, dtype=dtype)
    r_all, ties = target_ranks(s, torch.from_numpy(targets))
    r_seen, _ = target_ranks(s, torch.from_numpy(targets), excl)
    for i in range(len(targets)):
        assert r_all[i] == brute_rank(scores[i], int(targets[i]), set())
        assert r_seen[i] == brute_rank(scores[i], int(targets[i]), hist[i])
        assert ties[i] == sum(1 for j in range(1, n + 1) if j != targets[i] and scores[i, j] == scores[i, targets[i]])
    assert r_seen[0] == r_all[0]  # empty history: nothing excluded
    assert r_seen[1] == MISS_RANK and ties[1] >= 0  # the repeat: ranked under "all" only
    for k in (1, 3, n, n + 5, 1000):  # K beyond the catalogue: every ranked target is a hit
        m = ranking_metrics(r_seen.numpy(), [k])
        ref = [brute_rank(scores[i], int(targets[i]), hist[i]) for i in range(len(targets))]
        assert m[f"hr@{k}"] == pytest.approx(np.mean([r < k for r in ref]))
        assert m[f"ndcg@{k}"] == pytest.approx(np.mean([1 / math.log2(r + 2) if r < k else 0 for r in ref]))
        assert m[f"mrr@{k}"] == pytest.approx(np.mean([1 / (r + 1) if r < k else 0 for r in ref]))
        assert m[f"recall@{k}"] == m[f"hr@{k}"] and m[f"map@{k}"] == m[f"mrr@{k}"]
    assert ranking_metrics(r_all.numpy(), [n + 5])[f"hr@{n + 5}"] == 1.0


def test_float64_scores_are_not_rounded_into_ties():
    # two keys that differ only beyond float32 precision: float64 keeps them apart
    big = 2.0**30
    scores = torch.tensor([[0.0, big + 1.0, big, big + 2.0]], dtype=torch.float64)
    ranks, ties = target_ranks(scores, torch.tensor([1]))
    assert ranks.item() == 1 and ties.item() == 0
    r32, t32 = target_ranks(scores.float(), torch.tensor([1]))
    assert t32.item() > 0  # what float32 would have done: the reason float64 is kept


@pytest.mark.parametrize("seed", range(3))
def test_topk_matches_brute_force_ordering(seed):
    scores, _, hist, excl = random_cases(seed, levels=1000)  # (almost) no ties: an unambiguous order
    k = 20  # beyond the catalogue of 12: the tail is padding
    ids, vals = topk_items(torch.from_numpy(scores), k, excl)
    for i in range(len(scores)):
        cands = sorted((j for j in range(1, scores.shape[1]) if j not in hist[i]), key=lambda j: -scores[i, j])
        got = [x for x in ids[i].tolist() if x]
        assert len(got) == len(cands)
        assert [scores[i, j] for j in got] == [scores[i, j] for j in cands]
        assert set(got).isdisjoint(hist[i]) and 0 not in got
        assert (ids[i, len(cands) :] == 0).all() and torch.isinf(vals[i, len(cands) :]).all()


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


def test_sampled_ranks_are_ranks_among_the_drawn_negatives():
    scores, targets, hist, excl = random_cases(0, b=50, n=40, levels=7)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    r = sampled_ranks(s, t, 10, excl, torch.Generator().manual_seed(0))
    # as in the sampling papers' code, the target is ranked even when it repeats an earlier item:
    # the reference excludes the rest of the history only
    full = torch.tensor(
        [brute_rank(scores[i], int(targets[i]), hist[i] - {int(targets[i])}) for i in range(len(targets))]
    )
    assert int(targets[1]) in hist[1] and r[1] <= 10  # the repeat is ranked
    assert (r <= full).all() and (r <= 10).all()  # fewer competitors than full ranking
    # with as many negatives as candidates the sampled rank is that full rank
    r_all = sampled_ranks(s, t, 10_000, excl, torch.Generator().manual_seed(0))
    assert torch.equal(r_all, full)
    again = sampled_ranks(s, t, 10, excl, torch.Generator().manual_seed(0))
    assert torch.equal(r, again)  # seeded: reproducible


def test_segment_metrics_equal_metrics_of_the_subsets():
    ranks = np.array([0, 3, 50, 1, 9, 11])
    labels = np.array(["a", "b", "a", "b", "b", "a"], dtype=object)
    seg = segment_metrics(ranks, labels, [10])
    assert set(seg) == {"a", "b"}
    assert seg["a"]["n_cases"] == 3 and seg["b"]["n_cases"] == 3
    assert seg["a"]["ndcg@10"] == pytest.approx(ranking_metrics(ranks[[0, 2, 5]], [10])["ndcg@10"])
    assert seg["b"]["hr@10"] == 1.0
    assert per_case_metrics(ranks, [10])["hr@10"].sum() == 4


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


def test_many_protocols_from_one_comparison_equal_separate_calls():
    from journeyrec.evaluation.rank_kernel import target_ranks_many

    scores, targets, _, excl = random_cases(7, levels=3)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    s[2, 5] = float("nan")
    s[4, int(targets[4])] = float("nan")  # a NaN target: worst rank among its candidates
    excl[4, int(targets[4])] = False  # the NaN target is no repeat: it is ranked, last
    (ra, ta), (rs, ts) = target_ranks_many(s, t, [None, excl])
    assert ra[4] == scores.shape[1] - 2 and rs[4] == int((~excl[4, 1:]).sum()) - 1
    for i in range(len(targets)):
        if i != 4:
            assert ra[i] == brute_rank(s[i].numpy(), int(targets[i]), set())


def brute_metrics(ranks, k):
    hr = np.mean([r < k for r in ranks])
    ndcg = np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in ranks])
    mrr = np.mean([1 / (r + 1) if r < k else 0.0 for r in ranks])
    return hr, ndcg, mrr


@pytest.mark.parametrize("seed", range(5))
def test_ranks_match_brute_force_with_ties_and_exclusions(seed):
    rng = np.random.default_rng(seed)
    b, n = 40, 30
    # few distinct values -> many ties
    scores = rng.integers(0, 6, size=(b, n + 1)).astype(np.float32)
    targets = rng.integers(1, n + 1, size=b)
    hist = [set(rng.choice(np.arange(1, n + 1), size=rng.integers(0, 8), replace=False).tolist()) for _ in range(b)]
    hist[0].add(int(targets[0]))  # a repeat: the target is in the history, a miss when seen items are excluded
    rows = torch.tensor([i for i in range(b) for _ in hist[i]], dtype=torch.long)
    cols = torch.tensor([j for i in range(b) for j in hist[i]], dtype=torch.long)
    excl = exclusion_mask(b, n + 1, rows, cols)
    r_all, _ = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets))
    r_seen, _ = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets), excl)
    for i in range(b):
        assert r_all[i] == brute_rank(scores[i], int(targets[i]), set())
        assert r_seen[i] == brute_rank(scores[i], int(targets[i]), hist[i])
    for k in (1, 5, 10, 50):
        m = ranking_metrics(r_seen.numpy(), [k])
        hr, ndcg, mrr = brute_metrics(r_seen.numpy().tolist(), k)
        assert m[f"hr@{k}"] == pytest.approx(hr)
        assert m[f"ndcg@{k}"] == pytest.approx(ndcg)
        assert m[f"mrr@{k}"] == pytest.approx(mrr)
        assert m[f"recall@{k}"] == m[f"hr@{k}"] and m[f"map@{k}"] == m[f"mrr@{k}"]


def test_hand_computed_case():
    # items 1..4; padding column 0 has the highest score and must be ignored
    scores = torch.tensor([[9.0, 0.1, 0.9, 0.5, 0.7], [9.0, 0.3, 0.2, 0.1, 0.0]])
    targets = torch.tensor([3, 1])
    ranks, ties = target_ranks(scores, targets)
    assert ranks.tolist() == [2, 0]  # 0.5 < 0.9, 0.7 ; 0.3 is the best
    assert ties.tolist() == [0, 0]
    m = ranking_metrics(ranks.numpy(), [1, 3])
    assert m["hr@1"] == 0.5
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1.0) / 2)
    assert m["mrr@3"] == pytest.approx((1 / 3 + 1) / 2)


def test_tie_policy_counts_only_strictly_higher():
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]])
    ranks, ties = target_ranks(scores, torch.tensor([2]))
    assert ranks.item() == 1  # only item 4 is strictly higher; items 1 and 3 tie
    assert ties.item() == 2


def test_k_larger_than_catalogue_and_topk_padding():
    scores = torch.tensor([[0.0, 0.2, 0.9, 0.4]])
    ranks, _ = target_ranks(scores, torch.tensor([1]))
    m = ranking_metrics(ranks.numpy(), [100])
    assert m["hr@100"] == 1.0 and m["ndcg@100"] == pytest.approx(1 / math.log2(4))
    ids, vals = topk_items(scores, 10, exclude=exclusion_mask(1, 4, torch.tensor([0]), torch.tensor([2])))
    assert ids[0, :2].tolist() == [3, 1]
    assert ids[0, 2:].tolist() == [0] * 8 and torch.isinf(vals[0, 2:]).all()


def test_nan_target_is_worst_and_nan_others_are_lower():
    scores = torch.tensor([[0.0, float("nan"), 0.5, 0.7], [0.0, 0.1, float("nan"), 0.05]])
    ranks, _ = target_ranks(scores, torch.tensor([1, 1]))
    assert ranks.tolist() == [2, 0]


def test_invalid_targets_rejected():
    with pytest.raises(ValueError, match="1..N"):
        target_ranks(torch.zeros(2, 5), torch.tensor([0, 1]))


def test_empty_input_gives_nan_not_crash():
    m = ranking_metrics(np.zeros(0), [10])
    assert math.isnan(m["ndcg@10"])


def test_summarise_key_names():
    ranks = {"all": np.array([0, 5]), "seen_excluded": np.array([0, 3])}
    m = summarise(ranks, [10], "test")
    assert m["test/hr@10"] == 1.0
    assert m["test_seen_excluded/ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / 2)
    per = per_case_metrics(np.array([0, 20]), [10])
    assert per["hr@10"].tolist() == [1.0, 0.0]


def s3rec_full_sort(
    scores: np.ndarray, targets: np.ndarray, hist: list[set[int]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """S3-Rec's full-sort evaluation, written out literally (its trainers.py, finetune): set the
    score of every item of the user's history to 0, the target included when it is one of them,
    take the k best items, and score the target's position in that list (HR@k, NDCG@k). Scores
    here are positive, so a zeroed item is below every candidate, as removal intends; the padding
    column is left out (S3-Rec lets it compete, a quirk no protocol wants)."""
    pred = scores[:, 1:].copy()
    hr, ndcg = np.zeros(len(targets)), np.zeros(len(targets))
    for i, t in enumerate(targets):
        for j in hist[i]:
            pred[i, j - 1] = 0.0
        top = (np.argsort(-pred[i], kind="stable")[:k] + 1).tolist()
        if int(t) in top:
            pos = top.index(int(t))
            hr[i], ndcg[i] = 1.0, 1.0 / math.log2(pos + 2)
    return hr, ndcg


@pytest.mark.parametrize("seed", range(3))
def test_seen_excluded_is_s3recs_rule_with_repeated_targets(seed):
    """Repeated targets (a quarter of the cases) are misses under seen_excluded, in the dense
    ranking, the tiled ranking and the metrics, exactly as S3-Rec's code scores them; the
    nothing-excluded protocol still ranks them."""
    from journeyrec.evaluation.rank_kernel import rank_vectors

    rng = np.random.default_rng(seed)
    b, n, d = 80, 60, 8
    items = np.abs(rng.normal(size=(n + 1, d))) + 0.05
    queries = np.abs(rng.normal(size=(b, d))) + 0.05  # positive scores, (almost surely) no ties
    scores = queries @ items.T
    targets = rng.integers(1, n + 1, size=b)
    hist = [set(rng.choice(np.arange(1, n + 1), size=rng.integers(0, 12), replace=False).tolist()) for _ in range(b)]
    repeat = rng.random(b) < 0.25
    for i in np.nonzero(repeat)[0]:
        hist[i].add(int(targets[i]))
    repeat = np.asarray([int(targets[i]) in hist[i] for i in range(b)])
    assert 0 < repeat.sum() < b
    rows = torch.tensor([i for i in range(b) for _ in sorted(hist[i])], dtype=torch.long)
    cols = torch.tensor([j for i in range(b) for j in sorted(hist[i])], dtype=torch.long)
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    dense, _ = target_ranks(s, t, exclusion_mask(b, n + 1, rows, cols))
    tiled = rank_vectors(torch.from_numpy(queries), torch.from_numpy(items), t, rows, cols, topk=10, tile=16)
    assert torch.equal(tiled["seen_excluded"], dense)
    assert (dense.numpy()[repeat] == MISS_RANK).all() and (dense.numpy()[~repeat] < n).all()
    assert (tiled["ties_seen_excluded"].numpy()[repeat] == 0).all()
    for i in np.nonzero(repeat)[0]:  # the repeated target is not offered in its own list either
        assert int(targets[i]) not in tiled["top_seen_excluded"][i].tolist()
    for k in (1, 5, 10, 20):
        hr, ndcg = s3rec_full_sort(scores, targets, hist, k)
        per = per_case_metrics(dense.numpy(), [k])
        assert np.array_equal(per[f"hr@{k}"], hr)
        assert np.allclose(per[f"ndcg@{k}"], ndcg, rtol=0, atol=1e-12)
        m = summarise({"all": target_ranks(s, t)[0].numpy(), "seen_excluded": dense.numpy()}, [k], "test")
        assert m[f"test_seen_excluded/ndcg@{k}"] == pytest.approx(ndcg.mean())
    # nothing excluded: the repeats are ranked among every item (some of them are hits)
    r_all = target_ranks(s, t)[0].numpy()
    assert (r_all[repeat] < n).all() and (r_all[repeat] < 10).any()
    # K beyond the catalogue: a repeat is still a miss
    assert per_case_metrics(dense.numpy(), [10 * n])[f"hr@{10 * n}"][repeat].sum() == 0


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
