"""train-vs-peer's paired comparison of the two sides' test ranks, and journeyrec's side of its
command composed by Hydra (the training itself needs the peer's virtual environment and runs in
the benchmark, not here)."""

from __future__ import annotations

import numpy as np

from benchmarks.train_vs_peer import OURS, SHARED, ours_overrides, paired_test_metrics
from journeyrec.evaluation.metrics import per_case_metrics

from conftest import compose


def ranks(seed: int, n: int = 4000, better: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = rng.integers(0, 40, n)
    r[:better] = 0  # these cases' targets ranked first
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
    expected = (
        per_case_metrics(ours["seen_excluded"], [10])["ndcg@10"].mean()
        - per_case_metrics(peer["seen_excluded"], [10])["ndcg@10"].mean()
    )
    assert np.isclose(out["ours_minus_peer"], expected) and expected > 0
    lo, hi = out["ci95"]
    assert 0 < lo < expected < hi
    assert out["p_value"] < 0.01
    reverse = paired_test_metrics(ours, peer)["test_seen_excluded_ndcg@10"]
    assert np.isclose(reverse["ours_minus_peer"], -expected) and reverse["ci95"][1] < 0


def test_our_side_composes_to_the_shared_shape_with_every_setting_applied():
    """A renamed config key would otherwise surface only after the peer's 13-minute run."""
    cfg = compose("train", ours_overrides("/tmp/Beauty.txt", 20))
    assert (
        cfg.model.name,
        cfg.model.max_len,
        cfg.model.d_model,
        cfg.model.n_blocks,
        cfg.model.n_heads,
        cfg.loss.name,
    ) == ("sasrec", SHARED["max_len"], SHARED["d_model"], SHARED["n_blocks"], SHARED["n_heads"], SHARED["loss"])
    assert cfg.data.batch_size == SHARED["batch_size"] and cfg.data.path == "/tmp/Beauty.txt"
    assert cfg.trainer.max_epochs == cfg.trainer.min_epochs == 20 and cfg.trainer.patience > 20
    for key, value in OURS.items():
        section, name = key.split(".")
        assert cfg[section][name] == value, key
