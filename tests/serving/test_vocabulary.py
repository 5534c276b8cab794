"""The grown vocabularies: newsletter_click, call_centre and tv are events and channels like the
others, and a bundle exported before they existed still loads and serves, reading them as their
older fallbacks (a newsletter click as a click, TV as an unknown channel)."""

from __future__ import annotations

import numpy as np
import pytest

from journeyrec.bundle.format import write_bundle
from journeyrec.bundle.stats import learn_stats
from journeyrec.data.records import validate_records
from journeyrec.data.schema import CHANNELS, EVENT_TYPES, FEATURE_SIZES, feature_code_map
from journeyrec.models.sasrec import SASRec
from journeyrec.serving import Recommender, RecommendRequest
from journeyrec.serving.request import Event
from journeyrec.serving.settings import CONTEXT_TYPES

pytestmark = pytest.mark.usefixtures("one_thread")
OLD_SIZES = {"event_type": 9, "channel": 6, "time_gap": 10}  # what bundles exported before recorded


def test_the_issue_vocabulary_exists_with_stable_codes():
    assert EVENT_TYPES[:9] == (
        "view",
        "click",
        "cart",
        "remove_from_cart",
        "wishlist",
        "purchase",
        "search",
        "newsletter_open",
        "rating",
    )  # codes are index + 1: only appended to
    assert "newsletter_click" in EVENT_TYPES and {"call_centre", "tv"} <= set(CHANNELS)
    assert CHANNELS.index("call_centre") == 4 and CHANNELS.index("unknown") == 5  # call_centre took call_center's code
    assert set(CONTEXT_TYPES) == {
        "home",
        "product_page",
        "search",
        "cart",
        "checkout",
        "newsletter",
        "app_push",
        "store",
        "call_centre",
    }
    ok = validate_records(
        [
            {"customer_id": "c", "event_type": "newsletter_click", "item_id": "x", "channel": "tv", "timestamp": 1},
            {"customer_id": "c", "event_type": "view", "item_id": "x", "channel": "call_center", "timestamp": 1},
        ]
    )
    assert ok.indices == [0] and [(r.index, r.reason) for r in ok.rejected] == [(1, "unknown_channel")]


def test_code_maps_for_older_models():
    lut = feature_code_map("event_type", 9)
    assert lut[EVENT_TYPES.index("newsletter_click") + 1] == EVENT_TYPES.index("click") + 1
    assert list(lut[:10]) == list(range(10))
    assert feature_code_map("channel", 6)[CHANNELS.index("tv") + 1] == CHANNELS.index("unknown") + 1
    assert list(feature_code_map("channel", FEATURE_SIZES["channel"])) == list(range(len(CHANNELS) + 1))
    with pytest.raises(ValueError, match="re-export"):
        feature_code_map("channel", 5)  # "unknown" (6), tv's fallback, is beyond such a model too


def test_a_bundle_from_before_the_new_values_still_serves_them_as_their_fallbacks(demo_bundle, tmp_path):
    seqs = demo_bundle.prepared.sequences
    model = SASRec(seqs.n_items, d_model=16, n_blocks=1, n_heads=2, max_len=20, dropout=0.0, features=OLD_SIZES).eval()
    write_bundle(tmp_path / "old", model, seqs.catalog, {"data": {}}, {}, stats=learn_stats(seqs))
    old = Recommender.load(tmp_path / "old")
    items = demo_bundle.column("item_id")[100:106]
    new_events = [
        Event(
            i, "newsletter_click" if j % 2 else "view", "tv" if j < 3 else "call_centre", 1_700_000_000_000 + j * 60_000
        )
        for j, i in enumerate(items)
    ]
    as_before = [
        Event(
            e.item_id,
            "click" if e.event_type == "newsletter_click" else e.event_type,
            "unknown" if e.channel == "tv" else e.channel,
            e.timestamp_ms,
        )
        for e in new_events
    ]
    a = old.recommend(RecommendRequest(new_events, k=10, now_ms=1_700_000_600_000))
    b = old.recommend(RecommendRequest(as_before, k=10, now_ms=1_700_000_600_000))
    assert [x.item_id for x in a.items] == [x.item_id for x in b.items] and a.personalised
    assert np.allclose([x.score for x in a.items], [x.score for x in b.items])
    # a model built with today's vocabularies reads them as values of their own
    new = Recommender.load(demo_bundle.path)
    qa = new.encoder.encode(*new.event_parser.parse(new_events, 1_700_000_600_000)[:4])[0]
    qb = new.encoder.encode(*new.event_parser.parse(as_before, 1_700_000_600_000)[:4])[0]
    assert not np.allclose(qa, qb)
