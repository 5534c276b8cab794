"""The request pipeline's fast paths give exactly what their straightforward references give:
the list-comprehension event parser against the checked per-event loop, first-occurrence
deduplication against np.unique, and whole responses (items, scores, reasons, warnings,
exposure counts) with the fast parser against a Recommender on the checked loop, on demo-shop
sessions with filters and all rules on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from journeyrec.serving import Recommender, RecommendRequest, RulesConfig
from journeyrec.serving.request import Context, Event
from journeyrec.serving.rules import first_occurrences

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_RULES = RulesConfig(epsilon=0.2, diversity_lambda=0.7, seed=3)
FILTERS = [
    {},
    {"category": "Electronics"},
    {"colour": ["blue", "navy"], "price": {"max": 60}},
    {"category": "Electronics/Cameras/Camera bags", "colour": "black"},
]


@pytest.fixture(scope="module")
def rec(demo_bundle):
    return Recommender.load(demo_bundle.path, rules=ALL_RULES)


def reference_recommender(demo_bundle) -> Recommender:
    """The same bundle with every request parsed by the checked per-event loop."""
    ref = Recommender.load(demo_bundle.path, rules=ALL_RULES)
    ref.event_parser.fast = lambda events, now: None
    return ref


def test_first_occurrences_equals_unique_in_first_seen_order():
    rng = np.random.default_rng(1)
    for size in (0, 1, 7, 60):
        x = rng.integers(1, 12, size)
        _, first = np.unique(x, return_index=True)
        assert first_occurrences(x).tolist() == x[np.sort(first)].tolist()


def test_fast_event_parser_equals_the_checked_loop(demo_bundle, rec):
    ids = [str(x) for x in rec.item_ids[:6]]
    sessions = demo_bundle.sessions(10, seed=4)
    sessions.append(
        [
            Event(ids[0], "view", "web", None),
            Event(None, "search", "web", 5),
            Event("no-such-item", "cart", "app", 7),
            Event(ids[1], "purchase", "store", 9),
            Event(ids[2], "newsletter_open", "newsletter", 10),
            Event(ids[3], "cart", "web", None),
        ]
    )
    sessions.append([Event("ghost-1", "view"), Event("ghost-2", "view")])
    sessions.append([])
    for events in sessions:
        fast = rec.event_parser.fast(events, now=1_770_000_000_000)
        checked = rec.event_parser.checked(events, now=1_770_000_000_000)
        assert fast is not None
        for a, b in zip(fast[:4], checked[:4]):
            assert a.dtype == b.dtype and a.tolist() == b.tolist()
        assert fast[4] == checked[4]
    # anything unusual goes to the checked loop, which names the problem
    for bad, match in [
        ([Event(ids[0], "teleport")], "unknown event_type"),
        ([Event(ids[0], "view", "pigeon")], "unknown channel"),
        ([Event(ids[0], "view", "web", 10**20)], "not a time"),
        ([Event(ids[0], "view", "web", 2**70)], "not a time"),
    ]:
        assert rec.event_parser.fast(bad, now=0) is None
        with pytest.raises(ValueError, match=match):
            rec.event_parser.parse(bad, now=0)
    # numpy and float timestamps are accepted as before (by the checked loop)
    odd = [Event(ids[0], "view", "web", np.int64(5)), Event(ids[1], "view", "web", 6.0)]
    assert rec.event_parser.parse(odd, now=0)[3].tolist() == [5, 6]


def test_responses_equal_the_reference_paths(demo_bundle):
    fast, ref = Recommender.load(demo_bundle.path, rules=ALL_RULES), reference_recommender(demo_bundle)
    page = str(fast.item_ids[10])
    checked = 0
    for events in demo_bundle.sessions(12, seed=5):
        now = max(e.timestamp_ms for e in events) + 30 * 86_400_000
        for filters in FILTERS:
            for k in (5, 20):
                for context in (Context(), Context("product_page", item_id=page)):
                    req = RecommendRequest(events=events, k=k, filters=filters, context=context, now_ms=now)
                    a, b = fast.recommend(req), ref.recommend(req)
                    assert [dataclasses.astuple(x) for x in a.items] == [dataclasses.astuple(x) for x in b.items]
                    assert a.warnings == b.warnings
                    checked += bool(a.items)
    assert checked > 100
    assert np.array_equal(fast.exposure, ref.exposure)


@pytest.mark.parametrize("causal", [True, False])
def test_bsa_mixer_keeps_the_traced_unpadded_fast_path(causal):
    """The filter of ``mixer=bsa`` reads padding as zeros, causal or over the whole window
    (``causal=False``), so serving's traced unpadded path is accepted at load and gives the padded
    window's session vector at every length."""
    import torch

    from journeyrec.models.sasrec import SASRec
    from journeyrec.serving.encoder import SessionEncoder

    torch.manual_seed(0)
    model = SASRec(40, d_model=16, n_blocks=2, max_len=10, mixer="bsa", repeat_bias=True, causal=causal).eval()
    enc = SessionEncoder(model)
    assert isinstance(enc.unpadded, torch.jit.ScriptModule), "the fast path fell back"
    feats = torch.zeros(1, 1, 10, dtype=torch.int64)
    with torch.no_grad():
        for n in range(1, 11):
            items = torch.arange(1, n + 1)[None]
            padded = torch.zeros(1, 10, dtype=torch.int64)
            padded[0, 10 - n :] = items[0]
            want = model.session_vectors(padded)
            got = enc.unpadded(items, feats[..., :n])
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
