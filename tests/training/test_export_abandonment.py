"""``export.abandonment=true``: a real (tiny) training run ships the cart-abandonment model chosen
on validation in its bundle, and serving reads it; a run whose data merge a cart into the
purchase that follows (``dedup_consecutive``) ships none."""

from __future__ import annotations

import json

import numpy as np

from journeyrec.bundle.format import read_bundle
from journeyrec.data.prepare import load_prepared
from journeyrec.evaluation.abandonment import held_out
from journeyrec.models.abandonment import AbandonmentModel
from journeyrec.serving import Recommender

from conftest import train_tiny

INTENT = [
    "experiment=demo_intent",
    "data.options.n_customers=300",
    "trainer.max_epochs=1",
    "trainer.patience=1",
    "model.n_blocks=1",
    "eval.bootstrap=0",
]


def test_the_bundle_ships_the_candidate_best_on_validation(tmp_path):
    _, out = train_tiny(tmp_path / "run", INTENT)
    bundle = read_bundle(out / "bundle")
    model = bundle.abandonment
    assert isinstance(model, AbandonmentModel)
    auc = model.info["validation_auc"]
    assert set(auc) == {"boosted", "logistic", "head"}  # the tiny SASRec has an intent head
    best = max(auc, key=auc.get)
    assert {"boosted": "lightgbm", "logistic": "logistic", "head": "head"}[best] == model.kind
    assert json.loads((out / "bundle" / "manifest.json").read_text())["abandonment"]["kind"] == model.kind
    # serving loads it: the risk of a held-out open cart is the bundle model's (or 1 - intent for the head)
    rec = Recommender.load(out / "bundle")
    assert rec.cart_risk.available
    if model.kind != "head":
        prepared = load_prepared(out / "prepared")
        h = held_out(prepared.sequences, prepared.split, "valid")
        assert len(h.labels) and np.isfinite(model.predict(h.x)).all()


def test_no_model_when_carts_are_merged_into_purchases(tmp_path):
    _, out = train_tiny(tmp_path / "run", [*INTENT, "data.dedup_consecutive=true"])
    assert read_bundle(out / "bundle").abandonment is None
    assert not (out / "bundle" / "abandonment.json").exists()
