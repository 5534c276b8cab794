"""Full-ranking metrics against a slow brute-force reference and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from journeyrec.evaluation.metrics import (
    exclusion_mask,
    per_case_metrics,
    ranking_metrics,
    summarise,
    target_ranks,
    topk_items,
)


def brute_rank(scores: np.ndarray, target: int, excluded: set[int]) -> int:
    """Count candidates (1..N, not excluded unless the target) scoring strictly higher."""
    t = scores[target]
    if math.isnan(t):
        return sum(1 for j in range(1, len(scores)) if j not in excluded or j == target) - 1
    return sum(
        1
        for j in range(1, len(scores))
        if j != target and (j not in excluded) and not math.isnan(scores[j]) and scores[j] > t
    )


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
    hist[0].add(int(targets[0]))  # a repeat: the target is in the history and must still be ranked
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
