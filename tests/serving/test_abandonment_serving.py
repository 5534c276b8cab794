"""Cart abandonment in serving: the bundle ships the model (checksummed JSON), the served risk is
the offline model's for the same session, actions fire exactly above their thresholds, and HTTP
answers carry risk and actions in cart and checkout contexts only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from journeyrec.bundle.format import BundleError, read_bundle, session_queries, write_bundle
from journeyrec.bundle.stats import learn_stats
from journeyrec.data.prepare import prepare
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.models.abandonment import (
    ABANDONMENT_FEATURES,
    AbandonmentModel,
    abandonment_features,
    heldout_abandonment_cases,
    open_cart,
    training_design,
)
from journeyrec.models.sasrec import SASRec
from journeyrec.serving import Recommender
from journeyrec.serving.abandonment import fire_actions
from journeyrec.serving.app import create_app
from journeyrec.serving.request import Context, Event, RecommendRequest
from journeyrec.serving.service import Service
from journeyrec.serving.settings import ActionRule, ActionWhen

from conftest import DEMO_FUNNEL
from serving_support import FEATURES, ThreadServer

pytestmark = pytest.mark.usefixtures("one_thread")
VALUE = ABANDONMENT_FEATURES.index("log_cart_value")


class Shop:
    def __init__(self, path: Path, prepared, model: AbandonmentModel) -> None:
        self.path, self.prepared, self.model = path, prepared, model

    def events(self, end: int) -> tuple[list[Event], int]:
        """The events of the customer owning position ``end - 1``, up to it, and a request time."""
        s = self.prepared.sequences
        user = int(np.searchsorted(s.offsets, end - 1, side="right") - 1)
        lo = int(s.offsets[user])
        out = [
            Event(str(s.item_ids[i - 1]), EVENT_TYPES[e - 1], CHANNELS[c - 1], int(t))
            for i, e, c, t in zip(s.items[lo:end], s.event_types[lo:end], s.channels[lo:end], s.timestamps[lo:end])
        ]
        return out, int(s.timestamps[end - 1]) + 5_000


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Shop:
    prepared = prepare(DEMO_FUNNEL)
    seqs = prepared.sequences
    x, y, stop = training_design(seqs, prepared.split.train_ends)
    model = AbandonmentModel.fit_boosted(x[~stop], y[~stop], x[stop], y[stop])
    torch.manual_seed(0)
    sasrec = SASRec(seqs.n_items, d_model=16, n_blocks=1, n_heads=2, max_len=20, dropout=0.0, features=FEATURES).eval()
    path = tmp_path_factory.mktemp("abandonment") / "bundle"
    write_bundle(
        path,
        sasrec,
        seqs.catalog,
        {"data": DEMO_FUNNEL},
        {},
        stats=learn_stats(seqs),
        queries=session_queries(sasrec, seqs, prepared.split.valid, n=200),
        abandonment=model,
    )
    return Shop(path, prepared, model)


def cart_request(events: list[Event], now: int, context: str = "cart") -> RecommendRequest:
    return RecommendRequest(events=events, k=5, context=Context(context), now_ms=now)


def test_the_bundle_ships_the_model_checksummed(shop, tmp_path):
    bundle = read_bundle(shop.path)
    assert bundle.abandonment is not None and bundle.abandonment.to_dict() == shop.model.to_dict()
    assert "abandonment.json" in bundle.manifest["files"] and bundle.manifest["abandonment"]["kind"] == "lightgbm"
    damaged = tmp_path / "bundle"
    damaged.mkdir()
    for f in shop.path.iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    doc = json.loads((damaged / "abandonment.json").read_text())
    doc["params"]["model"] = doc["params"]["model"].replace("shrinkage=0.05", "shrinkage=0.5")
    (damaged / "abandonment.json").write_text(json.dumps(doc, sort_keys=True))
    with pytest.raises(BundleError, match="abandonment.json"):
        read_bundle(damaged)


def test_served_risk_is_the_offline_models(shop):
    """Held-out open-cart prefixes replayed as requests: the served risk and cart value equal the
    offline model's prediction on the offline features of the same prefix."""
    rec = Recommender.load(shop.path)
    seqs = shop.prepared.sequences
    _, ends, _ = heldout_abandonment_cases(seqs, shop.prepared.split, "test")
    picks = ends[np.random.default_rng(0).choice(len(ends), size=25, replace=False)]
    offline = shop.model.predict(abandonment_features(seqs, picks))
    values = np.expm1(abandonment_features(seqs, picks)[:, VALUE])
    assert np.ptp(offline) > 0.05  # distinct sessions, distinct risks: the comparison means something
    for end, expected, value in zip(picks.tolist(), offline, values):
        events, now = shop.events(end)
        result = rec.recommend(cart_request(events, now))
        assert result.abandonment_risk == pytest.approx(float(expected), abs=1e-12)
        assert result.cart_value == pytest.approx(float(value), rel=1e-9)
    # a prefix whose session has no open cart (nothing carted yet, or bought) has no risk
    closed = np.flatnonzero(~open_cart(seqs, np.arange(1, seqs.n_events + 1)))[:5] + 1
    for end in closed.tolist():
        events, now = shop.events(end)
        assert rec.recommend(cart_request(events, now)).abandonment_risk is None


def test_actions_fire_exactly_above_their_thresholds(shop):
    assert fire_actions([ActionRule(ActionWhen(risk_above=0.7), "a")], 0.7, 10.0) == []
    assert fire_actions([ActionRule(ActionWhen(risk_above=0.7), "a")], float(np.nextafter(0.7, 1)), 10.0) == ["a"]
    assert fire_actions([ActionRule(ActionWhen(risk_above=0.1, cart_value_above=50), "a")], 0.9, 50.0) == []
    assert fire_actions([ActionRule(ActionWhen(risk_above=0.1, cart_value_above=50), "a")], 0.9, 50.01) == ["a"]
    assert fire_actions([ActionRule(ActionWhen(), "always")], None, None) == []  # no open cart: nothing fires
    # end to end: thresholds set at the served session's own risk and cart value
    rec = Recommender.load(shop.path)
    _, ends, _ = heldout_abandonment_cases(shop.prepared.sequences, shop.prepared.split, "test")
    events, now = shop.events(int(ends[0]))
    first = rec.recommend(cart_request(events, now))
    r, v = first.abandonment_risk, first.cart_value
    rules = [
        ActionRule(ActionWhen(risk_above=r), "at_risk"),
        ActionRule(ActionWhen(risk_above=float(np.nextafter(r, 0))), "below_risk"),
        ActionRule(ActionWhen(cart_value_above=v), "at_value"),
        ActionRule(
            ActionWhen(risk_above=float(np.nextafter(r, 0)), cart_value_above=float(np.nextafter(v, 0))), "both"
        ),
    ]
    result, fields = Service(rec, allow_demo_key=True, actions=rules).recommend(cart_request(events, now))
    assert result.actions == ["below_risk", "both"]
    assert fields["actions"] == ["below_risk", "both"]


def test_http_carries_risk_and_actions_in_cart_and_checkout_answers_only(shop):
    rec = Recommender.load(shop.path)
    _, ends, _ = heldout_abandonment_cases(shop.prepared.sequences, shop.prepared.split, "test")
    events, now = shop.events(int(ends[1]))
    expected = rec.recommend(cart_request(events, now)).abandonment_risk
    rules = [
        ActionRule(ActionWhen(risk_above=0.0), "free_shipping_banner"),
        ActionRule(ActionWhen(risk_above=1.0), "never"),
    ]
    body = {
        "events": [
            {"item_id": e.item_id, "event_type": e.event_type, "channel": e.channel, "timestamp": e.timestamp_ms}
            for e in events
        ],
        "k": 3,
        "now": now,
        "user_id": "u-1",
    }
    with ThreadServer(create_app(Service(rec, allow_demo_key=True, actions=rules))) as url:
        for context in ("cart", "checkout"):
            r = httpx.post(f"{url}/v1/recommendations", json={**body, "context": {"type": context}}, timeout=30)
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["abandonment_risk"] == pytest.approx(expected, abs=1e-6)
            assert answer["actions"] == ["free_shipping_banner"]
        for context in ("home", "product_page", "search", "newsletter"):
            r = httpx.post(f"{url}/v1/recommendations", json={**body, "context": {"type": context}}, timeout=30)
            assert r.status_code == 200 and "abandonment_risk" not in r.json() and "actions" not in r.json()
        r = httpx.post(
            f"{url}/v1/recommendations", json={**body, "consent": False, "context": {"type": "cart"}}, timeout=30
        )
        assert r.json()["abandonment_risk"] is None and r.json()["actions"] == []  # nothing personal without consent


def test_a_bundle_without_a_model_falls_back_to_the_intent_head(shop):
    class WithIntent(SASRec):
        def purchase_intent(self, items, features=None, table=None):
            return torch.sigmoid(self.session_vectors(items, features, table).sum(-1))

    base = Recommender.load(shop.path)
    model = WithIntent.from_hparams(base.model.hparams)
    model.load_state_dict(base.model.state_dict())
    rec = Recommender(base.bundle_dir, base.manifest, model.eval(), base.index, base.vectors, base.catalog, base.stats)
    _, ends, _ = heldout_abandonment_cases(shop.prepared.sequences, shop.prepared.split, "test")
    events, now = shop.events(int(ends[0]))
    result = rec.recommend(cart_request(events, now))
    assert result.intent is not None and result.abandonment_risk == pytest.approx(1.0 - result.intent, abs=1e-12)
    plain = Recommender(base.bundle_dir, base.manifest, base.model, base.index, base.vectors, base.catalog, base.stats)
    assert plain.recommend(cart_request(events, now)).abandonment_risk is None  # neither a model nor a head
