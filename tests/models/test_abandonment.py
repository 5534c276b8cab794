"""Cart abandonment: cases and labels (checked against the demo shop's ground truth), features
that read the prefix only (a changed future moves the label, never a feature), hand-computed
feature values, and the models' JSON round trip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from journeyrec.data.prepare import prepare
from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import SequenceData, build_sequences
from journeyrec.data.synthetic import DemoShopConfig, generate_carts
from journeyrec.evaluation.abandonment import choose_model
from journeyrec.models.abandonment import (
    ABANDONMENT_FEATURES,
    AbandonmentModel,
    abandonment_features,
    abandonment_training_cases,
    heldout_abandonment_cases,
    open_cart,
)
from journeyrec.models.intent import group_ids

from conftest import DEMO_FUNNEL, events_table, shared_file

# one customer: session 0 carts x and buys it; session 1 (a day later) carts y and leaves;
# session 2 (two days later): views x, carts x (met before) and z, views w ... (the prefix under test)
ROWS = [
    ("a", "x", "view", 0),
    ("a", "x", "cart", 50),
    ("a", "x", "purchase", 100),
    ("a", "y", "view", 86_400),
    ("a", "y", "cart", 86_460),
    ("a", "x", "view", 259_200),
    ("a", "x", "cart", 259_260),
    ("a", "z", "view", 259_300),
    ("a", "z", "cart", 259_330),
    ("a", "w", "view", 259_400),
]
PRICES = {"x": 30.0, "y": 80.0, "z": 50.0, "w": 20.0}


@pytest.fixture(scope="module")
def hand():
    seqs = build_sequences(events_table(ROWS))
    prices = np.zeros(seqs.n_items + 1)
    for i, item in enumerate(seqs.item_ids, start=1):
        prices[i] = PRICES[str(item)]
    return seqs, prices


def feature(x: np.ndarray, name: str) -> float:
    return float(x[0, ABANDONMENT_FEATURES.index(name)])


def test_features_by_hand(hand):
    seqs, prices = hand
    x = abandonment_features(seqs, np.array([10]), prices)  # the prefix ending at "view w"
    assert np.expm1(feature(x, "log_cart_age_s")) == pytest.approx(259_400 - 259_260)
    assert np.expm1(feature(x, "log_cart_value")) == pytest.approx(30.0 + 50.0)
    assert np.expm1(feature(x, "log_cart_max_price")) == pytest.approx(50.0)
    assert np.expm1(feature(x, "log_events_after_cart")) == pytest.approx(3)  # view z, cart z, view w
    assert np.expm1(feature(x, "log_views_after_cart")) == pytest.approx(2)
    assert np.expm1(feature(x, "log_cart_items_met_before")) == pytest.approx(1)  # x, not z
    assert np.expm1(feature(x, "log_earlier_cart_sessions")) == pytest.approx(2)
    assert np.expm1(feature(x, "log_earlier_abandoned")) == pytest.approx(1)  # session 1
    assert feature(x, "earlier_abandon_rate") == pytest.approx((1 + 1) / (2 + 2))
    assert np.expm1(feature(x, "log_since_previous_session_s")) == pytest.approx(259_200 - 86_460)
    assert np.expm1(feature(x, "log_n_cart")) == pytest.approx(2)
    # before the session's first cart nothing is open: no cart age, value or items
    y = abandonment_features(seqs, np.array([6]), prices)  # ends at "view x" of session 2
    assert feature(y, "log_cart_age_s") == feature(y, "log_cart_value") == feature(y, "log_views_after_cart") == 0.0
    assert open_cart(seqs, np.array([6, 7, 10, 3, 5])).tolist() == [False, True, True, False, True]


def test_features_read_the_prefix_only_while_the_label_reads_the_future(hand):
    """Rewrite everything after the prefix (other items, types, times, a purchase): the label of
    the case flips, every feature stays exactly as it was."""
    seqs, prices = hand
    rows = ROWS + [("a", "y", "view", 259_500)]  # the session goes on, without a purchase
    future = ROWS + [("a", "w", "cart", 259_450), ("a", "q", "view", 259_470), ("a", "z", "purchase", 259_600)]
    prices_q = {**PRICES, "q": 999.0}
    before, after = build_sequences(events_table(rows)), build_sequences(events_table(future))
    pb = np.r_[0.0, [PRICES[str(i)] for i in before.item_ids]]
    pa_ = np.r_[0.0, [prices_q[str(i)] for i in after.item_ids]]
    _, lb = abandonment_training_cases(before, before.offsets[1:])
    eb, _ = abandonment_training_cases(before, before.offsets[1:])
    ea, la = abandonment_training_cases(after, after.offsets[1:])
    case = 10  # the prefix ending at "view w"
    assert case in eb.tolist() and case in ea.tolist()
    assert lb[eb.tolist().index(case)] == 1 and la[ea.tolist().index(case)] == 0  # the future decides the label
    # the two data sets differ after the prefix (a feature that read past it would see it) ...
    assert before.n_events != after.n_events
    # ... and no feature does
    np.testing.assert_array_equal(
        abandonment_features(before, np.array([case]), pb), abandonment_features(after, np.array([case]), pa_)
    )


@pytest.fixture(scope="module")
def demo():
    return prepare(DEMO_FUNNEL)


def test_labels_are_the_generators_ground_truth(demo):
    """Every session with a cart: the label of its open-cart cases is the generator's draw."""
    seqs = demo.sequences
    ends, labels = abandonment_training_cases(seqs, seqs.offsets[1:])
    gid = group_ids(seqs)
    by_group = dict(zip(gid[ends - 1].tolist(), labels.tolist()))
    carts = generate_carts(DemoShopConfig(n_customers=400, seed=7))
    key = resolve_key(None, allow_demo_key=True)
    user_index = {str(u): i for i, u in enumerate(seqs.user_ids)}
    cart_code = EVENT_TYPES.index("cart") + 1
    checked = 0
    for user, cart_ms, abandoned in zip(
        carts.column("user_id").to_pylist(),
        pc.cast(carts.column("cart_time"), pa.int64()).to_pylist(),
        carts.column("abandoned").to_pylist(),
    ):
        u = user_index.get(pseudonymise(user, key))
        if u is None:  # opted out: not in the store
            continue
        lo, hi = seqs.offsets[u], seqs.offsets[u + 1]
        at = np.flatnonzero((seqs.timestamps[lo:hi] == cart_ms) & (seqs.event_types[lo:hi] == cart_code))
        assert len(at), "a generated cart is missing from the prepared events"
        assert by_group[int(gid[lo + at[0]])] == int(abandoned)
        checked += 1
    assert checked > 1000


def test_heldout_cases_are_open_cart_prefixes_of_heldout_sessions(demo):
    seqs, split = demo.sequences, demo.split
    users, ends, labels = heldout_abandonment_cases(seqs, split, "test")
    assert len(ends) > 100 and 0 < labels.mean() < 1
    assert open_cart(seqs, ends).all()
    assert (seqs.timestamps[ends - 1] >= split.info["cutoff_test_ms"]).all()
    # the case's input ends before the session's end and never holds its purchase
    assert not (seqs.event_types[ends - 1] == EVENT_TYPES.index("purchase") + 1).any()


def test_models_round_trip_through_json(demo):
    seqs, split = demo.sequences, demo.split
    from journeyrec.models.abandonment import training_design

    x, y, stop = training_design(seqs, split.train_ends)
    boosted = AbandonmentModel.fit_boosted(x[~stop], y[~stop], x[stop], y[stop])
    logistic = AbandonmentModel.fit_logistic(x, y)
    _, ends, _ = heldout_abandonment_cases(seqs, split, "valid")
    xv = abandonment_features(seqs, ends)
    for m in (boosted, logistic):
        again = AbandonmentModel.from_dict(m.to_dict())
        np.testing.assert_allclose(again.predict(xv), m.predict(xv), rtol=0, atol=1e-12)
        assert again.kind == m.kind
    with pytest.raises(ValueError, match="re-export"):
        AbandonmentModel.from_dict({**boosted.to_dict(), "features": ["a", "b"]})
    with pytest.raises(ValueError, match="score it with the model"):
        AbandonmentModel.head().predict(xv)


def test_serving_sessions_are_the_sources_on_the_demo_shop(demo):
    """Serving splits a journey into sessions by the inactivity gap; on the demo shop that
    reproduces the source's session ids exactly, so served and offline features agree."""
    seqs = demo.sequences
    gap = dataclasses.replace(seqs, sessions=None)
    assert isinstance(gap, SequenceData)
    np.testing.assert_array_equal(gap.session_ids(), seqs.session_ids())


def test_no_model_is_shipped_when_none_beats_chance_on_validation():
    """Taobao's 2-hour slice: a few dozen carts convert within their session, too few to learn
    from; every candidate is at or below chance on validation, so none is chosen (a risk at
    chance would fire a shop's actions at random) and the export ships no model."""
    path = shared_file("taobao_userbehavior/UserBehavior.csv")
    prepared = prepare(
        {
            "name": "taobao",
            "path": str(path),
            "split": "global_time",
            "valid_fraction": 0.2,
            "test_fraction": 0.3,
            "allow_demo_key": True,
        }
    )
    with pytest.raises(ValueError, match="beats chance on validation"):
        choose_model(prepared.sequences, prepared.split)
