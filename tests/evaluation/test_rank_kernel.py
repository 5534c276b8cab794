"""Target ranks and top-k lists against slow brute-force references: ties, NaN scores, empty
histories, repeated targets under both protocols (S3-Rec's rule), several protocols from one
comparison, and sampled ranks. The tiled kernel against the dense ranks: test_rank_vectors.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from journeyrec.evaluation.metrics import per_case_metrics, ranking_metrics, summarise
from journeyrec.evaluation.rank_kernel import MISS_RANK, exclusion_mask, sampled_ranks, target_ranks, topk_items


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


def test_tie_policy_counts_only_strictly_higher():
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]])
    ranks, ties = target_ranks(scores, torch.tensor([2]))
    assert ranks.item() == 1  # only item 4 is strictly higher; items 1 and 3 tie
    assert ties.item() == 2


def test_nan_target_is_worst_and_nan_others_are_lower():
    scores = torch.tensor([[0.0, float("nan"), 0.5, 0.7], [0.0, 0.1, float("nan"), 0.05]])
    ranks, _ = target_ranks(scores, torch.tensor([1, 1]))
    assert ranks.tolist() == [2, 0]


def test_invalid_targets_rejected():
    with pytest.raises(ValueError, match="1..N"):
        target_ranks(torch.zeros(2, 5), torch.tensor([0, 1]))


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
