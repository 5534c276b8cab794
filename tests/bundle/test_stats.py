"""Rule statistics learned from the demo shop's events agree with the shop's ground truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeyrec.bundle.stats import RuleStats, learn_stats
from journeyrec.data.schema import conform_catalog
from journeyrec.data.sequences import build_sequences


def test_learned_repurchase_classes_agree_with_the_declared_ones(demo_bundle):
    stats = RuleStats.load(demo_bundle.path)
    declared = dict(zip(demo_bundle.column("category"), demo_bundle.column("repurchase_class")))
    table = {r["category"]: r for r in stats.category_table()}
    confident = {c: r["learned_class"] for c, r in table.items() if r["learned_class"] != "unknown"}
    assert len(confident) >= 15  # most categories are conclusive in 3,000 customers' data
    assert all(declared[c] == cls for c, cls in confident.items()), {
        c: (cls, declared[c]) for c, cls in confident.items()
    }
    assert {
        "Grocery/Coffee/Coffee beans",
        "Apparel/Outerwear/Winter coats",
        "Electronics/Cameras/Mirrorless cameras",
    } <= set(confident)
    # consumables: intervals learned, and more frequent purchases mean a shorter interval
    beans, tshirts = table["Grocery/Coffee/Coffee beans"], table["Apparel/Tops/T-shirts"]
    assert beans["interval_days"] < tshirts["interval_days"] and beans["repurchase_rate"] > tshirts["repurchase_rate"]
    # durables: bought again only after a long time (the demo shop allows a second coat after a year)
    assert table["Apparel/Outerwear/Winter coats"]["repurchase_rate"] < beans["repurchase_rate"] / 10


def test_complements_never_pair_an_item_with_its_own_category(demo_bundle):
    stats = RuleStats.load(demo_bundle.path)
    cats = np.asarray([None] + demo_bundle.column("category"), dtype=object)
    anchors = np.repeat(np.arange(len(stats.comp_offsets) - 1), np.diff(stats.comp_offsets))
    assert len(anchors) > 1000
    assert not (cats[anchors] == cats[stats.comp_items]).any()
    # strongest first, the strongest scaled to 1
    for a in np.unique(anchors)[:50]:
        _, s = stats.complements(int(a))
        assert s[0] == 1.0 and np.all(np.diff(s) <= 0)


def test_stats_degrade_without_categories_or_purchases():
    """S3-Rec-like data: no categories, one event type: statistics still learn what they can."""
    events = pa.table(
        {
            "user_id": ["a", "a", "a", "b", "b", "c", "c"],
            "item_id": ["x", "y", "z", "x", "y", "x", "y"],
            "event_type": ["view"] * 7,
            "timestamp": pa.array([1, 2, 3, 1, 2, 1, 2], pa.timestamp("ms", tz="UTC")),
            "channel": ["unknown"] * 7,
        }
    )
    from journeyrec.data.schema import conform_events

    seqs = build_sequences(conform_events(events), conform_catalog({"item_id": ["x", "y", "z"]}))
    stats = learn_stats(seqs)
    assert stats.categories == [] and stats.anchor_event == "any"
    comps, _ = stats.complements(1)  # x -> y by three users
    assert comps.tolist()[:1] == [2]
    assert stats.popularity.tolist() == [0, 3, 3, 1]
    assert np.allclose(stats.trending, stats.popularity)  # no real time span: trending = popularity
