"""Purchase-intent labels (no leakage past the training prefix), held-out session cases, AUC."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from journeyrec.data.schema import conform_events
from journeyrec.data.sequences import EvalCases, Split, build_sequences
from journeyrec.evaluation.metrics import roc_auc
from journeyrec.models.intent import NEGATIVE, POSITIVE, UNKNOWN, heldout_intent_cases, intent_labels


def events(rows):
    u, i, e, t = zip(*rows)
    return conform_events(pa.table({
        "user_id": pa.array(u, pa.string()), "item_id": pa.array(i, pa.string()), "event_type": pa.array(e, pa.string()),
        "timestamp": pa.array([x * 1000 for x in t], pa.timestamp("ms", tz="UTC")),
    }))


@pytest.fixture
def seqs():
    rows = [
        # a: session 0 = view x, cart x, purchase x, view y; session 1 (2 h later) = view z, view w
        ("a", "x", "view", 0), ("a", "x", "cart", 60), ("a", "x", "purchase", 120), ("a", "y", "view", 180),
        ("a", "z", "view", 8000), ("a", "w", "view", 8060),
        # b: one session ending in a purchase
        ("b", "x", "view", 0), ("b", "y", "view", 30), ("b", "y", "purchase", 90),
    ]
    return build_sequences(events(rows))


def test_labels_see_the_whole_session(seqs):
    P, N = POSITIVE, NEGATIVE
    assert intent_labels(seqs).tolist() == [P, P, N, N, N, N, P, P, N]


def test_labels_never_look_past_the_training_prefix(seqs):
    limit = seqs.offsets[:-1] + np.array([3, 2])  # a: first 3 events; b: first 2 events
    U = UNKNOWN
    # a: the purchase at position 2 is inside -> positions 0, 1 positive; position 2's session goes on
    # beyond the limit -> unknown. b: the purchase is outside the prefix -> nothing known.
    assert intent_labels(seqs, limit).tolist() == [POSITIVE, POSITIVE, U, U, U, U, U, U, U]


def test_heldout_cases_are_prefixes_of_sessions_after_the_training_prefix(seqs):
    # a trains on its first session (4 events), its second session is the test period
    train_ends = np.array([4, 6 + 1])
    test = EvalCases(np.array([0]), np.array([4]), seqs.items[[4]].astype(np.int64))
    split = Split("custom", train_ends, EvalCases(np.array([], np.int64), np.array([], np.int64), np.array([], np.int64)), test)
    users, ends, labels = heldout_intent_cases(seqs, split, "test")
    assert users.tolist() == [0, 0] and ends.tolist() == [5, 6] and labels.tolist() == [0, 0]
    # b: a held-out session from its first event on (train end 6 = its first position)
    split.train_ends = np.array([4, 6])
    users, ends, labels = heldout_intent_cases(seqs, split, "valid")
    assert users.tolist() == [1, 1, 1] and ends.tolist() == [7, 8, 9] and labels.tolist() == [1, 1, 0]


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 200).astype(float)  # many ties
    y = rng.random(200) < 0.3
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert roc_auc(s, y) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert np.isnan(roc_auc(np.array([0.1, 0.9]), np.array([1, 1])))
