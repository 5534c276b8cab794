"""The demo shop is deterministic and has the structure the business-rule tests rely on."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.compute as pc
import pytest

from journeyrec.data.synthetic import DemoShopConfig, generate


@pytest.fixture(scope="module")
def shop():
    return generate(DemoShopConfig(n_customers=400, seed=3))


def test_deterministic(shop):
    again = generate(DemoShopConfig(n_customers=400, seed=3))
    assert again.events.equals(shop.events)
    other = generate(DemoShopConfig(n_customers=400, seed=4))
    assert not other.events.equals(shop.events)


def test_catalogue_structure(shop):
    cat = shop.catalog.to_pandas()
    assert cat.item_id.is_unique
    assert cat.category.str.count("/").eq(2).all()  # Dept/Sub/Leaf
    assert {"consumable", "durable"} <= set(cat.repurchase_class)
    assert cat.own_brand.any() and (~cat.own_brand).any()
    assert cat.loc[cat.repurchase_class == "consumable", "repurchase_days"].gt(0).all()
    assert cat["size"].notna().any() and cat["colour"].notna().any()
    assert (~cat.in_stock).any() and cat.in_stock.mean() > 0.8


def test_cameras_have_their_bags(shop):
    cat = shop.catalog.to_pandas().set_index("item_id")
    comp = shop.complements.to_pandas()
    cams = cat.index[cat.category.str.endswith("Mirrorless cameras")]
    pairs = comp[comp.item_id.isin(cams)]
    partner_cats = set(cat.loc[pairs.complement_item_id, "category"])
    assert partner_cats == {"Electronics/Cameras/Camera bags", "Electronics/Cameras/Memory cards"}
    assert set(pairs.item_id) == set(cams)


def test_funnels_channels_and_events(shop):
    ev = shop.events.to_pandas()
    assert set(ev.event_type) >= {"view", "cart", "purchase", "search", "newsletter_open"}
    assert set(ev.channel) == {"web", "app", "newsletter", "store"}
    counts = ev.event_type.value_counts()
    assert counts["view"] > counts["cart"] > 0
    online = ev[ev.channel != "store"]
    # online purchases follow a cart of the same item in the same session
    buys = online[online.event_type == "purchase"]
    carts = set(zip(online.session_id[online.event_type == "cart"], online.item_id[online.event_type == "cart"]))
    assert all((s, i) in carts for s, i in zip(buys.session_id, buys.item_id))
    assert (ev[ev.channel == "store"].event_type == "purchase").all()
    assert ev[ev.event_type.isin(["search", "newsletter_open"])].item_id.isna().all()


def test_views_after_a_size_search_respect_the_filter(shop):
    ev = shop.events.to_pandas()
    cat = shop.catalog.to_pandas().set_index("item_id")
    searches = ev[(ev.event_type == "search") & ev.filters.notna()]
    checked = 0
    for _, s in searches.iterrows():
        f = json.loads(s.filters)
        views = ev[(ev.session_id == s.session_id) & (ev.event_type == "view")]
        for item in views.item_id:
            if "size" in f:
                assert cat.loc[item, "size"] == f["size"]
            if "colour" in f:
                assert cat.loc[item, "colour"] == f["colour"]
            checked += 1
    assert checked > 50


def test_durables_are_rarely_rebought_and_consumables_come_back(shop):
    ev = shop.events.to_pandas()
    cat = shop.catalog.to_pandas().set_index("item_id")
    buys = ev[ev.event_type == "purchase"].copy()
    buys["leaf"] = cat.loc[buys.item_id, "category"].to_numpy()
    buys["cls"] = cat.loc[buys.item_id, "repurchase_class"].to_numpy()
    per = buys.groupby(["user_id", "leaf", "cls"]).size().reset_index(name="n")
    repeat = per.assign(rep=per.n > 1).groupby("cls").rep.mean()
    assert repeat["consumable"] > 2 * repeat["durable"]


def test_consent_table(shop):
    users = set(shop.events.column("user_id").unique().to_pylist())
    consent = shop.consent.to_pandas()
    assert set(consent.user_id) == users
    assert 0.02 < consent.opted_out.mean() < 0.2
