"""Accuracy metrics from ranks: hand-computed values, K beyond the catalogue (and the top-k
padding it leaves), empty input, the metrics.json key names and segment breakdowns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from journeyrec.evaluation.metrics import per_case_metrics, ranking_metrics, segment_metrics, summarise
from journeyrec.evaluation.rank_kernel import exclusion_mask, target_ranks, topk_items


def test_segment_metrics_equal_metrics_of_the_subsets():
    ranks = np.array([0, 3, 50, 1, 9, 11])
    labels = np.array(["a", "b", "a", "b", "b", "a"], dtype=object)
    seg = segment_metrics(ranks, labels, [10])
    assert set(seg) == {"a", "b"}
    assert seg["a"]["n_cases"] == 3 and seg["b"]["n_cases"] == 3
    assert seg["a"]["ndcg@10"] == pytest.approx(ranking_metrics(ranks[[0, 2, 5]], [10])["ndcg@10"])
    assert seg["b"]["hr@10"] == 1.0
    assert per_case_metrics(ranks, [10])["hr@10"].sum() == 4


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


def test_k_larger_than_catalogue_and_topk_padding():
    scores = torch.tensor([[0.0, 0.2, 0.9, 0.4]])
    ranks, _ = target_ranks(scores, torch.tensor([1]))
    m = ranking_metrics(ranks.numpy(), [100])
    assert m["hr@100"] == 1.0 and m["ndcg@100"] == pytest.approx(1 / math.log2(4))
    ids, vals = topk_items(scores, 10, exclude=exclusion_mask(1, 4, torch.tensor([0]), torch.tensor([2])))
    assert ids[0, :2].tolist() == [3, 1]
    assert ids[0, 2:].tolist() == [0] * 8 and torch.isinf(vals[0, 2:]).all()


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
