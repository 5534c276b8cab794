"""train-vs-peer's paired comparison of the two sides' test ranks (the training itself needs the
peer's virtual environment and runs in the benchmark, not here)."""

from __future__ import annotations

import numpy as np

from journeyrec.benchmarks.train_vs_peer import paired_test_metrics
from journeyrec.evaluation.metrics import per_case_metrics


def ranks(seed: int, n: int = 4000, better: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = rng.integers(0, 40, n)
    r[: better] = 0  # these cases' targets ranked first
    return {"all": r + 1, "seen_excluded": r}


def test_identical_sides_differ_by_nothing():
    side = ranks(0)
    out = paired_test_metrics(side, side)
    for key in ("test_ndcg@10", "test_seen_excluded_ndcg@10"):
        assert out[key]["ours_minus_peer"] == 0.0 and out[key]["ci95"] == [0.0, 0.0]
        assert out[key]["p_value"] == 1.0 and out[key]["cases"] == 4000


def test_the_difference_is_ours_minus_the_peers_with_an_interval_around_it():
    peer, ours = ranks(1), ranks(1, better=400)
    out = paired_test_metrics(peer, ours)["test_seen_excluded_ndcg@10"]
    expected = per_case_metrics(ours["seen_excluded"], [10])["ndcg@10"].mean() - per_case_metrics(peer["seen_excluded"], [10])["ndcg@10"].mean()
    assert np.isclose(out["ours_minus_peer"], expected) and expected > 0
    lo, hi = out["ci95"]
    assert 0 < lo < expected < hi
    assert out["p_value"] < 0.01
    reverse = paired_test_metrics(ours, peer)["test_seen_excluded_ndcg@10"]
    assert np.isclose(reverse["ours_minus_peer"], -expected) and reverse["ci95"][1] < 0
