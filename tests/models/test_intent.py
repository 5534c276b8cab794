"""Purchase-intent labels (no leakage past the training prefix), held-out session cases (open
prefixes only: the labelled purchase is never in a case's input), the count baseline, AUC."""

from __future__ import annotations

import numpy as np
import pytest

from journeyrec.data.sequences import EvalCases, Split, build_sequences, make_split
from journeyrec.evaluation.statistics import roc_auc
from journeyrec.models.intent import (
    _PURCHASE,
    NEGATIVE,
    POSITIVE,
    SESSION_FEATURES,
    UNKNOWN,
    SessionLogit,
    _groups,
    heldout_intent_cases,
    intent_labels,
    session_features,
)

from conftest import events_table


@pytest.fixture
def seqs():
    rows = [
        # a: session 0 = view x, cart x, purchase x, view y; session 1 (2 h later) = view z, view w
        ("a", "x", "view", 0),
        ("a", "x", "cart", 60),
        ("a", "x", "purchase", 120),
        ("a", "y", "view", 180),
        ("a", "z", "view", 8000),
        ("a", "w", "view", 8060),
        # b: one session ending in a purchase
        ("b", "x", "view", 0),
        ("b", "y", "view", 30),
        ("b", "y", "purchase", 90),
    ]
    return build_sequences(events_table(rows))


def test_labels_see_the_whole_session(seqs):
    P, N = POSITIVE, NEGATIVE
    assert intent_labels(seqs).tolist() == [P, P, N, N, N, N, P, P, N]


def test_labels_never_look_past_the_training_prefix(seqs):
    limit = seqs.offsets[:-1] + np.array([3, 2])  # a: first 3 events; b: first 2 events
    U = UNKNOWN
    # a: the purchase at position 2 is inside -> positions 0, 1 positive; position 2's session goes on
    # beyond the limit -> unknown. b: the purchase is outside the prefix -> nothing known.
    assert intent_labels(seqs, limit).tolist() == [POSITIVE, POSITIVE, U, U, U, U, U, U, U]


def test_heldout_cases_are_open_prefixes_of_sessions_after_the_training_prefix(seqs):
    # a trains on its first session (4 events), its second session is the test period
    train_ends = np.array([4, 6 + 1])
    test = EvalCases(np.array([0]), np.array([4]), seqs.items[[4]].astype(np.int64))
    split = Split(
        "custom", train_ends, EvalCases(np.array([], np.int64), np.array([], np.int64), np.array([], np.int64)), test
    )
    users, ends, labels = heldout_intent_cases(seqs, split, "test")
    assert users.tolist() == [0, 0] and ends.tolist() == [5, 6] and labels.tolist() == [0, 0]
    # b: a held-out session from its first event on (train end 6 = its first position); the
    # prefix ending at the purchase is no case: the session has converted there
    split.train_ends = np.array([4, 6])
    users, ends, labels = heldout_intent_cases(seqs, split, "valid")
    assert users.tolist() == [1, 1] and ends.tolist() == [7, 8] and labels.tolist() == [1, 1]
    # a's first session held out too: view x, cart x are open (positive); purchase x and the view after it are not cases
    split.train_ends = np.array([0, 6])
    users, ends, labels = heldout_intent_cases(seqs, split, "valid")
    assert ends.tolist() == [1, 2, 7, 8] and labels.tolist() == [1, 1, 1, 1]


def test_no_case_input_holds_a_purchase_of_its_own_session():
    from journeyrec.data.synthetic import DemoShopConfig, generate

    shop = generate(DemoShopConfig(n_customers=200, seed=3))
    data = build_sequences(shop.events, shop.catalog)
    split = make_split(data, "global_time", valid_fraction=0.2, test_fraction=0.2)
    user, gid, _ = _groups(data)
    is_purchase = data.event_types == _PURCHASE
    for which in ("valid", "test"):
        users, ends, labels = heldout_intent_cases(data, split, which)
        assert len(ends) > 50 and 0 < labels.mean() < 1
        t = ends - 1
        assert not is_purchase[t].any()
        # walking back through each case's session: no purchase between the session start and t
        same = t.copy()
        for _ in range(12):
            same = np.where((same > 0) & (gid[np.maximum(same - 1, 0)] == gid[t]), same - 1, same)
            assert not is_purchase[same].any()
        # and the label is exactly "a purchase later in the session"
        later = np.array([is_purchase[(gid == gid[i]) & (np.arange(len(gid)) > i)].any() for i in t[:300]])
        assert labels[:300].tolist() == later.astype(int).tolist()


def test_session_features_read_the_prefix_only(seqs):
    f = session_features(seqs, np.array([2, 6]))  # a's cart (t=1); a's second view of session 1 (t=5)
    col = {name: f[:, i] for i, name in enumerate(SESSION_FEATURES)}
    assert f.shape == (2, len(SESSION_FEATURES))
    assert col["is_cart"].tolist() == [1, 0] and col["is_view"].tolist() == [0, 1]
    assert np.allclose(col["log_n_view"], np.log1p([1, 2])) and np.allclose(col["log_n_cart"], np.log1p([1, 0]))
    assert np.allclose(col["log_n_purchase"], 0)  # the purchase at t=2 is after the first case
    assert np.allclose(col["log_length"], np.log1p([2, 2]))
    assert np.allclose(col["log_duration_s"], np.log1p([60, 60])) and np.allclose(col["log_gap_s"], np.log1p([60, 60]))
    assert np.allclose(col["log_earlier_sessions"], np.log1p([0, 1]))
    assert np.allclose(col["log_earlier_purchases"], np.log1p([0, 1]))
    first = session_features(seqs, np.array([7]))  # b's first event: no previous gap, no history
    assert first[0, SESSION_FEATURES.index("log_gap_s")] == 0 and first[
        0, SESSION_FEATURES.index("log_length")
    ] == np.log1p(1)


def test_session_logit_is_the_regularised_maximum_likelihood_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    x = np.c_[x, np.ones(2000)]  # a constant column is dropped, not a singular Hessian
    y = rng.random(2000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))
    m = SessionLogit(l2=1.0).fit(x, y)
    a = m._design(x)
    p = m.predict(x)
    grad = a.T @ (p - y) + np.r_[0.0, np.ones(a.shape[1] - 1)] * m.coef  # zero at the optimum
    assert np.abs(grad).max() < 1e-6
    assert m.coef[1] > 1 and m.coef[2] < -0.5 and abs(m.coef[3]) < 0.2
    assert roc_auc(p, y) > 0.8
    with pytest.raises(ValueError, match="both classes"):
        SessionLogit().fit(x, np.zeros(2000, bool))


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 200).astype(float)  # many ties
    y = rng.random(200) < 0.3
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert roc_auc(s, y) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert np.isnan(roc_auc(np.array([0.1, 0.9]), np.array([1, 1])))
