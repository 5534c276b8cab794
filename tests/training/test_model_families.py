"""Every model and objective trains end to end through the real pipeline (Hydra config ->
Lightning fit -> full-ranking evaluation -> bundle) on a tiny demo shop; the bundle serves the
same vectors; same seed gives the same metrics; intent AUC and cold-start metrics are reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import train_tiny as run

# each family's short training on the demo shop (CPU seconds): the smallest that learns the shop's
# journeys. BERT4Rec's cloze objective yields one masked item in five per sequence, so it needs
# more customers and epochs for as many training signals as the causal models get.
SHORT = {
    "sasrec": ["data.options.n_customers=300", "model.d_model=32", "model.n_blocks=1", "trainer.max_epochs=4"],
    "two_tower": ["data.options.n_customers=300", "model.d_model=32", "model.n_blocks=1", "trainer.max_epochs=4"],
    "gru4rec": ["data.options.n_customers=300", "model.d_model=32", "trainer.max_epochs=6", "optim.lr=0.003"],
    "bert4rec": [
        "data.options.n_customers=1000",
        "model.d_model=32",
        "model.n_blocks=1",
        "model.mask_last_share=0.2",
        "trainer.max_epochs=12",
        "trainer.patience=12",
        "optim.lr=0.003",
    ],
}
MARGIN = 1.5  # the model's test NDCG@10 (seen excluded) must be at least this multiple of popularity's


@pytest.mark.slow
@pytest.mark.parametrize("model", ["sasrec", "bert4rec", "gru4rec", "two_tower"])
def test_model_trains_beats_popularity_and_its_bundle_serves_the_same_vectors(tmp_path, model):
    # with a refit epoch: every model family refits, and the bundle holds the refitted model
    metrics, out = run(
        tmp_path,
        [
            "experiment=demo",
            f"model={model}",
            "model.features=[event_type,channel,time_gap]",
            "model.attributes=[category,brand,price]",
            "trainer.refit_epochs=1",
            *SHORT[model],
        ],
    )
    assert metrics["refit_epochs"] == 1
    key = "test_seen_excluded/ndcg@10"
    assert metrics[key] >= MARGIN * metrics[f"popularity/{key}"], (metrics[key], metrics[f"popularity/{key}"])
    from journeyrec.serving import Recommender

    rec = Recommender.load(out / "bundle")
    assert type(rec.model).__name__.lower().replace("_", "") == model.replace("_", "")
    saved = np.load(out / "bundle" / "item_vectors.npy")
    assert np.allclose(rec.model.item_vectors().detach().numpy(), saved, atol=1e-6)
    from journeyrec.serving import RecommendRequest

    res = rec.recommend(RecommendRequest.from_items([str(x) for x in rec.item_ids[1:5]], k=5))
    assert len(res.items) == 5
    # every model is served traced (item table precomputed), and the traced session vector is the
    # eager model's own
    enc = rec.encoder
    assert enc.traced is not None
    items, feats = enc.window(np.arange(1, 9), np.full(8, 1), np.full(8, 1), np.arange(8) * 60_000)
    with torch.no_grad():
        eager = rec.model.session_vectors(items, enc._feature_dict(feats))
        assert torch.allclose(enc.traced(items, feats), eager, atol=1e-4)


@pytest.mark.parametrize(
    "loss",
    [
        # with 64 sampled negatives beside the batch's, the tiny run's loss falls by less than the
        # noise of its few steps per epoch at first (it rose between epochs 1 and 2 for some seeds,
        # with torch's dropout and with journeyrec's): four epochs
        "loss=sampled_softmax loss.negatives=mixed loss.n_negatives=64 trainer.max_epochs=4 trainer.min_epochs=4",
        "loss=sampled_softmax loss.negatives=in_batch",
        "loss=gbce loss.negatives=popularity loss.n_negatives=16",
        "model=bert4rec loss.exclude_seen=true",
        "loss.exclude_seen=true +loss.event_type_weights.purchase=2.0 loss.contrastive_weight=0.1",
        "loss=softmax loss.label_smoothing=0.1 +loss.event_type_weights.purchase=3.0 +loss.event_type_weights.cart=2.0",
        "model.repeat_bias=true +loss.event_type_weights.purchase=2.0",
        "model.repeat_bias=true loss.exclude_seen=true loss.recency_halflife=3",
        "model.causal=false model.mixer=bsa loss.targets=newest loss.exclude_seen=true",
    ],
)
@pytest.mark.slow
def test_objectives_train(tmp_path, loss):
    """Each objective learns: its training loss falls from the first epoch to the last."""
    metrics, out = run(
        tmp_path, ["experiment=demo", "trainer.max_epochs=2", "trainer.min_epochs=2", "model.n_blocks=1", *loss.split()]
    )
    losses = [row["train/loss"] for row in json.loads((out / "curve.json").read_text())]
    epochs = 4 if "trainer.max_epochs=4" in loss else 2
    assert len(losses) == epochs and np.isfinite(losses).all() and losses[-1] < losses[0], losses
    if "repeat_bias" in loss:  # learned (moved off its zero start), saved and served with the bundle
        from journeyrec.serving import Recommender

        bias = Recommender.load(out / "bundle").model.repeat_bias.item()
        assert bias != 0.0 and np.isfinite(bias)


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path):
    args = [
        "experiment=demo",
        "model.n_blocks=1",
        "model.dropout=0.3",
        "model.attributes=[category]",
        "export.enabled=false",
    ]
    a, _ = run(tmp_path / "a", args)
    b, _ = run(tmp_path / "b", args)
    c, _ = run(tmp_path / "c", [*args, "seed=7"])
    keys = [k for k in a if "/" in k]
    assert all(a[k] == b[k] for k in keys), "same seed on CPU must reproduce every metric exactly"
    assert any(a[k] != c[k] for k in keys)


@pytest.mark.slow
def test_refit_keeps_validation_figures_and_trains_on(tmp_path):
    args = ["experiment=demo", "model.n_blocks=1", "trainer.ema_decay=0.9"]
    plain, _ = run(tmp_path / "plain", args)
    refit, _ = run(tmp_path / "refit", [*args, "trainer.refit_epochs=2"])
    valid = [k for k in plain if k.startswith("valid")]
    test = [k for k in plain if k.startswith("test") and "ndcg" in k]
    assert valid and all(plain[k] == refit[k] for k in valid), "validation figures are those of the picked epoch"
    assert any(plain[k] != refit[k] for k in test), "the refit must have changed the model that is tested"
    assert refit["refit_epochs"] == 2 and refit["refit_seconds"] > 0 and refit["epochs"] == plain["epochs"]
    assert "refit_epochs" not in plain and not any(k.startswith("test_before_refit") for k in plain)
    # the refit run also reports the picked epoch's test figures: exactly those of the run without it
    before = {
        k.replace("test_before_refit", "test", 1): v for k, v in refit.items() if k.startswith("test_before_refit")
    }
    assert test and all(before[k] == plain[k] for k in test) and before.keys() >= set(test)
    # scripts/evaluate.py on the refitted bundle warns that its valid/... figures score trained-on items
    from journeyrec.evaluation.pipeline import refit_warning

    config = json.loads((tmp_path / "refit" / "bundle" / "config.json").read_text())
    assert "2 epochs on the validation targets" in refit_warning(config, ["valid", "test"])
    assert refit_warning(config, ["test"]) is None
    assert (
        refit_warning(json.loads((tmp_path / "plain" / "bundle" / "config.json").read_text()), ["valid", "test"])
        is None
    )


def test_refit_trains_at_the_base_rate_after_a_cosine_schedule_reached_zero(tmp_path):
    # one epoch of a cosine schedule ends at a rate of 0; continuing that schedule would leave
    # the refit's weights (no weight average here) exactly those of the picked epoch
    args = ["experiment=demo", "model.n_blocks=1", "trainer.max_epochs=1", "optim.lr_schedule=cosine"]
    refit, out = run(tmp_path, [*args, "trainer.refit_epochs=2"])
    assert refit["best_epoch"] == 1 and refit["refit_epochs"] == 2
    best = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    after = torch.load(out / "checkpoints" / "refit.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    moved = [k for k in after if not torch.equal(after[k], best[k])]
    assert any("emb" in k for k in moved) and any("blocks" in k for k in moved), moved
    test = [k for k in refit if k.startswith("test_before_refit") and "ndcg" in k]
    assert test and any(refit[k] != refit[k.replace("test_before_refit", "test", 1)] for k in test)


def test_refit_refuses_data_parallel_before_reading_data(tmp_path):
    with pytest.raises(ValueError, match="single-process"):
        run(tmp_path, ["experiment=demo", "trainer=ddp", "trainer.refit_epochs=1"])
    assert not (tmp_path / "prepared").exists()


@pytest.mark.slow
def test_intent_head_auc_on_heldout_sessions(tmp_path):
    # funnel events kept apart (no dedup): a cart that is not yet a purchase is the intent signal
    metrics, out = run(
        tmp_path,
        [
            "experiment=demo",
            "data.split=global_time",
            "data.dedup_consecutive=false",
            "model.n_blocks=1",
            "model.d_model=32",
            "loss.intent_weight=1.0",
            "trainer.max_epochs=3",
            "data.options.n_customers=400",
            "data.batch_size=16",
            "trainer.monitor=valid_intent/auc",
        ],
    )
    for which in ("valid", "test"):
        assert metrics[f"{which}_intent/n_cases"] > 100
        assert 0 < metrics[f"{which}_intent/positive_rate"] < 1
        assert 0.5 < metrics[f"{which}_intent/baseline_auc"] < 1  # the count baseline on the same cases
    assert metrics["test_intent/auc"] > 0.6  # cart events announce purchases in the demo shop
    # valid_intent/auc is logged every epoch, so it can pick the best checkpoint: the final
    # evaluation of that checkpoint reproduces the best epoch's value
    curve = json.loads((out / "curve.json").read_text())
    aucs = [row["valid_intent/auc"] for row in curve]
    assert len(aucs) == 3 and metrics["best_epoch"] == 1 + int(np.argmax(aucs))
    assert metrics["valid_intent/auc"] == pytest.approx(max(aucs), abs=1e-6)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_intent/auc"] == metrics["test_intent/auc"]
    from journeyrec.serving import Recommender

    model = Recommender.load(out / "bundle").model
    codes = torch.tensor([[0, 1, 3]])  # padding, view, cart
    p = model.purchase_intent(torch.tensor([[0, 3, 5]]), {name: codes for name in model.feature_names})
    assert p.shape == (1,) and 0 < float(p) < 1


@pytest.mark.slow
def test_cold_start_beats_the_attribute_aware_baseline(tmp_path):
    """Items hidden from training are ranked from their attributes better than by the attribute-
    aware baseline a shop would use for a new product: every item by its popularity, a new item
    counted as popular as its category's average item (global popularity scores new items zero by
    construction: reported, but no competitor)."""
    metrics, _ = run(
        tmp_path,
        [
            "experiment=demo",
            "model=two_tower",
            "model.n_blocks=1",
            "model.d_model=32",
            "model.attributes=[category,brand,price]",
            "model.id_dropout=0.3",
            "eval.cold_items=0.1",
            "data.options.n_customers=600",
            "trainer.max_epochs=6",
            "export.enabled=false",
        ],
    )
    assert metrics["test_cold/n_cases"] >= 50
    model, baseline = metrics["test_cold/ndcg@20"], metrics["test_cold_category_popularity/ndcg@20"]
    assert model >= 2 * baseline, (model, baseline)
    assert metrics["test_cold_popularity/recall@20"] == 0.0  # never seen: tied at zero behind every seen item


def test_category_popularity_baselines_against_a_hand_computed_case():
    """Items 1-2 in category A (counts 5, 1), item 3 in A hidden, items 4-5 in B (counts 3, 0); the
    customer's newest item is 4 (B); the target is the hidden item 3."""
    import pyarrow as pa

    from journeyrec.data.sequences import EvalCases, SequenceData
    from journeyrec.training.cold_start import category_popularity_ranks

    catalog = pa.table({"item_id": ["a1", "a2", "a3", "b1", "b2"], "category": ["A", "A", "A", "B", "B"]})
    data = SequenceData(
        item_ids=np.array(["a1", "a2", "a3", "b1", "b2"], dtype=object),
        user_ids=np.array(["u"], dtype=object),
        offsets=np.array([0, 2]),
        items=np.array([4, 3], dtype=np.int32),
        event_types=np.ones(2, np.int8),
        channels=np.ones(2, np.int8),
        timestamps=np.array([0, 1]),
        catalog=catalog,
    )
    cases = EvalCases(np.array([0]), np.array([1]), np.array([3]))
    hidden = np.array([False, False, False, True, False, False])
    counts = np.array([0, 5, 1, 0, 3, 0])
    # mean: a3 counts (5 + 1) / 2 = 3, tied with b1 (strictly higher: a1 only) -> rank 1
    assert category_popularity_ranks(data, cases, hidden, counts, "mean").tolist() == [1]
    # best seller: a3 counts 5, tied with a1 -> rank 0
    assert category_popularity_ranks(data, cases, hidden, counts, "best").tolist() == [0]
    # newest category (B) first: b1 and b2 outrank every A item -> rank 2
    assert category_popularity_ranks(data, cases, hidden, counts, "best", session_category=True).tolist() == [2]
