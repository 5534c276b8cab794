"""The demo shop is deterministic, has the structure the business-rule tests rely on, and its
behaviour depends on the journey as docs/demo_shop.md says (each dependency checked against the
same quantity without it, with a stated margin), including the cart-abandonment ground truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from journeyrec.data.synthetic import DemoShopConfig, generate, generate_carts


@pytest.fixture(scope="module")
def shop():
    return generate(DemoShopConfig(n_customers=400, seed=3))


@pytest.fixture(scope="module")
def big():
    """Enough customers for the behavioural rates below to be far outside their noise."""
    shop = generate(DemoShopConfig(n_customers=1500, seed=11))
    ev = shop.events.to_pandas().sort_values(["user_id", "timestamp"], kind="stable")
    cat = shop.catalog.to_pandas().set_index("item_id")
    ev["leaf"] = cat.category.reindex(ev.item_id).to_numpy()
    # time to the session's next event: how long a viewed item held the customer
    ev["dwell"] = (ev.groupby("session_id").timestamp.shift(-1) - ev.timestamp).dt.total_seconds()
    return shop, ev, cat


def test_deterministic(shop):
    again = generate(DemoShopConfig(n_customers=400, seed=3))
    assert again.events.equals(shop.events) and again.carts.equals(shop.carts)
    assert generate_carts(DemoShopConfig(n_customers=400, seed=3)).equals(shop.carts)
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
    assert set(ev.channel) == {"web", "app", "newsletter", "store", "call_centre"}
    counts = ev.event_type.value_counts()
    assert counts["view"] > counts["cart"] > 0
    online = ev[~ev.channel.isin(["store", "call_centre"])]
    # online purchases follow a cart of the same item in the same session
    buys = online[online.event_type == "purchase"]
    carts = set(zip(online.session_id[online.event_type == "cart"], online.item_id[online.event_type == "cart"]))
    assert all((s, i) in carts for s, i in zip(buys.session_id, buys.item_id))
    assert (ev[ev.channel.isin(["store", "call_centre"])].event_type == "purchase").all()
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


def test_carts_follow_a_view_and_checkout_follows_the_last_view(big):
    _, ev, _ = big
    views = ev[ev.event_type == "view"].groupby(["session_id", "item_id"]).timestamp.min()
    carts = ev[ev.event_type == "cart"].set_index(["session_id", "item_id"]).timestamp
    assert (views.reindex(carts.index).to_numpy() < carts.to_numpy()).all()  # a view of the item came first
    last_view = ev[ev.event_type == "view"].groupby("session_id").timestamp.max()
    online = ev[(ev.event_type == "purchase") & ev.channel.isin(["web", "app"])]
    assert (online.timestamp.to_numpy() > last_view.reindex(online.session_id).to_numpy()).all()


def test_time_on_a_page_shows_interest(big):
    """Viewed items that get carted held the customer several times longer than the rest, and a
    long look without a cart brings the item back (bought later) far more often than a glance."""
    _, ev, _ = big
    views = ev[(ev.event_type == "view") & ev.dwell.notna()].copy()
    carted = set(zip(ev.session_id[ev.event_type == "cart"], ev.item_id[ev.event_type == "cart"]))
    views["carted"] = [(s, i) in carted for s, i in zip(views.session_id, views.item_id)]
    assert views[views.carted].dwell.median() > 3 * views[~views.carted].dwell.median()
    first_buy = ev[ev.event_type == "purchase"].groupby(["user_id", "item_id"]).timestamp.min()
    looked = views[~views.carted].copy()
    looked["bought_later"] = (
        first_buy.reindex(list(zip(looked.user_id, looked.item_id))).to_numpy() > looked.timestamp.to_numpy()
    )
    long, glance = looked[looked.dwell > 60].bought_later.mean(), looked[looked.dwell < 30].bought_later.mean()
    assert long > 2.5 * glance and (looked.dwell > 60).sum() > 1000


def test_offline_purchases_follow_online_browsing(big):
    """A share of shop and call-centre purchases are items the customer looked at online in an
    earlier session, far above what walking in would give (an item's leaf has ~12 models)."""
    _, ev, _ = big
    seen = ev[ev.event_type == "view"].groupby(["user_id", "item_id"]).timestamp.min()
    off = ev[(ev.event_type == "purchase") & ev.channel.isin(["store", "call_centre"])]
    before = seen.reindex(list(zip(off.user_id, off.item_id))).to_numpy() < off.timestamp.to_numpy()
    assert before.mean() > 0.15 and (off.channel == "call_centre").sum() > 10
    calls = off[off.channel == "call_centre"]
    assert before[(off.channel == "call_centre").to_numpy()].all() and calls.leaf.str.startswith("Electronics/").all()


def test_sessions_soon_after_carry_on_the_errand(big):
    """A session within 12 hours of the last one shares its category far more often than one
    that starts a day or more later (a new errand)."""
    _, ev, _ = big
    items = ev[ev.item_id.notna() & (ev.channel != "newsletter")]
    s = (
        items.groupby("session_id")
        .agg(user=("user_id", "first"), start=("timestamp", "min"), end=("timestamp", "max"), leaf=("leaf", "first"))
        .reset_index()
        .sort_values(["user", "start"])
    )
    s["gap_h"] = (s.start - s.groupby("user").end.shift()).dt.total_seconds() / 3600
    s["same"] = s.leaf == s.groupby("user").leaf.shift()
    soon, later = s[s.gap_h < 12], s[s.gap_h >= 24]
    assert len(soon) > 500 and soon.same.mean() > 3 * later.same.mean()


def test_durable_purchases_bring_complements_not_substitutes(big):
    shop, ev, cat = big
    comp = shop.complements.to_pandas()
    buys = ev[ev.event_type == "purchase"]
    durable = buys[cat.repurchase_class.reindex(buys.item_id).to_numpy() == "durable"]
    later_items = buys.groupby("user_id").apply(
        lambda b: list(zip(b.timestamp, b.item_id, b.leaf)), include_groups=False
    )
    partners = comp.groupby("item_id").complement_item_id.apply(set)
    got_partner = same_leaf = n = 0
    for u, t, item, leaf in zip(durable.user_id, durable.timestamp, durable.item_id, durable.leaf):
        after = [(i, lf) for ts, i, lf in later_items[u] if ts > t]
        n += 1
        got_partner += any(i in partners.get(item, set()) for i, _ in after)
        same_leaf += any(lf == leaf and i != item for i, lf in after)
    assert n > 500 and got_partner / n > 4 * same_leaf / n


def test_newsletter_sessions_show_the_weeks_featured_items_and_rarely_convert(big):
    _, ev, _ = big
    nl = ev[ev.channel == "newsletter"]
    views = nl[nl.event_type == "view"]
    week = (views.timestamp - pd.Timestamp("2026-01-01", tz="UTC")).dt.days // 7  # weeks of the generator's calendar
    assert views.groupby(week).item_id.nunique().max() <= 6  # the same mailing for everybody
    web = ev[ev.channel == "web"]
    rate = lambda d: (d.event_type == "purchase").sum() / max((d.event_type == "view").sum(), 1)  # noqa: E731
    assert len(views) > 500 and rate(nl) < 0.5 * rate(web)


def test_abandonment_ground_truth_is_consistent_and_depends_on_the_journey(big):
    shop, ev, _ = big
    carts = shop.carts.to_pandas()
    bought_in = set(ev.session_id[ev.event_type == "purchase"])
    assert not carts[carts.abandoned].session_id.isin(bought_in).any()  # abandoned: nothing bought in it
    assert carts[~carts.abandoned].session_id.isin(bought_in).all()
    assert set(carts.session_id) == set(ev.session_id[ev.event_type == "cart"])
    # calibrated: the recorded probability matches the outcomes (5 standard errors)
    n, p = len(carts), carts.p_abandon.mean()
    assert n > 5000 and abs(carts.abandoned.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # and it moves with the journey, on the realised outcomes
    value = carts.cart_value > carts.cart_value.median()
    assert carts[value].abandoned.mean() > carts[~value].abandoned.mean() + 0.1
    assert (
        carts[carts.views_after_cart >= 3].abandoned.mean() > carts[carts.views_after_cart == 0].abandoned.mean() + 0.15
    )
    assert carts[carts.channel == "app"].abandoned.mean() > carts[carts.channel == "web"].abandoned.mean() + 0.05
    assert carts[carts.earlier_orders >= 3].abandoned.mean() < carts[carts.earlier_orders == 0].abandoned.mean() - 0.1
    # a recovered cart: the customer bought an item of it in a later session
    rec = carts[carts.recovered]
    assert rec.abandoned.all() and 0.2 < len(rec) / carts.abandoned.sum() < 0.7
    carted = ev[ev.event_type == "cart"].groupby("session_id").item_id.apply(set)
    buys = ev[ev.event_type == "purchase"]
    for _, row in rec.head(200).iterrows():
        later = buys[(buys.user_id == row.user_id) & (buys.timestamp > row.session_end)]
        assert set(later.item_id) & carted[row.session_id]
