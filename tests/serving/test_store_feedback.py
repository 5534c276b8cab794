"""The journey store's feedback loop, on both backends (a SQLite file; a real Redis server):
impressions, reactions attributed once, purchases arriving as events attributed to the list that
showed them, online statistics (decayed trending, per-context popularity, click-through per item
and slot, A/B counts), and privacy (an opted-out or forgotten customer's lists go with them)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from redis_support import redis_server  # noqa: F401 - fixture

from journeyrec.serving.store import Arrival, Impression, Reaction, SQLiteStore, StoredEvent
from journeyrec.serving.store.redis import RedisStore

NOW = 1_800_000_000_000
MIN = 60_000
HOUR = 3_600_000


def open_backend(kind: str, request, tmp_path, **kw):
    if kind == "sqlite":
        return SQLiteStore(tmp_path / f"s{uuid.uuid4().hex[:6]}.sqlite", **kw)
    server = request.getfixturevalue("redis_server")
    return RedisStore(server.url, prefix=f"f{uuid.uuid4().hex[:8]}", **kw)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    opened = []

    def make(**kw):
        s = open_backend(request.param, request, tmp_path, **kw)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def impression(
    rid: str,
    items: list[str],
    t: int = NOW,
    subject: str | None = None,
    context: str = "home",
    variant: str = "control",
    assigned: bool = True,
    experiment: str = "exp",
) -> Impression:
    groups = tuple("A/x" if i in ("a", "b") else "B/y" for i in items)  # a and b share a category
    return Impression(
        rid, t, tuple(items), context, experiment, variant, assigned, "v1", "new", (len(items) - 1,), subject, groups
    )


def test_a_click_is_attributed_to_its_list_and_position_once(backend):
    store = backend()
    store.record_impressions([impression("r1", ["a", "b", "c"]), impression("r2", ["b", "d"])], NOW)
    got = store.impression("r1")
    assert got.impression.items == ("a", "b", "c") and got.impression.explore == (2,) and got.reactions == []
    assert got.impression.subject is None and got.impression.segment == "new"
    out = store.react(
        [
            Reaction("r1", "b", "click", NOW + MIN),
            Reaction("r1", "b", "click", NOW + 2 * MIN),
            Reaction("r1", "c", "click", NOW + 3 * MIN),
        ],
        NOW + HOUR,
    )
    assert [(o.outcome, o.position, o.context, o.variant) for o in out] == [
        ("attributed", 1, "home", "control"),
        ("duplicate", 1, "home", "control"),
        ("attributed", 2, "home", "control"),
    ]
    assert (
        store.react([Reaction("r1", "b", "click", NOW + 4 * MIN)], NOW + HOUR)[0].outcome == "duplicate"
    )  # another call too
    assert [r[:2] for r in store.impression("r1").reactions] == [("b", "click"), ("c", "click")]
    ctr = store.item_ctr("home", ["b", "c", "a", "zz"])
    assert ctr.impressions.tolist() == [2, 1, 1, 0] and ctr.clicks.tolist() == [1, 1, 0, 0]
    assert (ctr.context_impressions, ctr.context_clicks) == (5, 2)
    # the exploration slots alone (each list's last position here): c in r1, d in r2; c was clicked
    ex = store.explore_ctr("home", ["c", "d", "b"], ["B/y", "B/y", "A/x"])
    assert ex.impressions.tolist() == [1, 1, 0] and ex.clicks.tolist() == [1, 0, 0]
    assert ex.group_impressions.tolist() == [2, 2, 0] and ex.group_clicks.tolist() == [1, 1, 0]
    assert (ex.context_impressions, ex.context_clicks) == (2, 1)
    assert store.impression("r2").impression.groups == ("A/x", "B/y")
    assert [(s.position, s.impressions, s.clicks) for s in store.slot_ctr("home")] == [(0, 2, 0), (1, 2, 1), (2, 1, 1)]
    counts = store.ab_counts("exp")[("control", True)]
    assert (counts["impressions"], counts["clicked"], counts["clicks"]) == (2, 1, 2)
    assert store.item_ctr("cart", ["b"]).impressions.tolist() == [0]  # per context


def test_bad_reactions_are_refused_with_their_reason_and_count_nothing(backend):
    store = backend(reaction_window_minutes=60)
    store.record_impressions([impression("r1", ["a", "b"])], NOW)
    out = store.react(
        [
            Reaction("nope", "a", "click", NOW + MIN),
            Reaction("r1", "zz", "click", NOW + MIN),
            Reaction("r1", "a", "click", NOW + 61 * MIN),
            Reaction("r1", "a", "click", NOW - 6 * MIN),
        ],
        NOW + 2 * HOUR,
    )
    assert [o.outcome for o in out] == ["unknown_request", "not_shown", "expired", "before_impression"]
    assert store.item_ctr("home", ["a"]).clicks.tolist() == [0]
    assert store.ab_counts("exp")[("control", True)].get("clicks", 0) == 0
    assert store.impression("r1").reactions == []
    # a list is kept for two windows, then forgotten: its request id becomes unknown
    short = backend(reaction_window_minutes=0.01)  # 600 ms
    t = int(time.time() * 1000)
    short.record_impressions([impression("old", ["a"], t)], t)
    time.sleep(1.5)
    t2 = int(time.time() * 1000)
    short.record_impressions([impression("new", ["a"], t2)], t2)
    assert short.impression("old") is None
    assert short.react([Reaction("old", "a", "click", t2)], t2)[0].outcome == "unknown_request"


def test_purchases_and_carts_sent_as_events_are_attributed_to_the_list_that_showed_them(backend):
    store = backend(reaction_window_minutes=120)
    ev = lambda item, kind, t: StoredEvent(kind, "web", t, item)  # noqa: E731
    store.record_impressions(
        [
            impression("clicked", ["x", "y"], NOW, subject="c1"),
            impression("later", ["y", "x"], NOW + 10 * MIN, subject="c1"),
            impression("other", ["x"], NOW + 10 * MIN, subject="c2", variant="treat"),
        ],
        NOW,
    )
    assert store.react([Reaction("clicked", "x", "click", NOW + MIN)], NOW + MIN)[0].outcome == "attributed"
    res = store.append(
        [
            Arrival(ev("x", "purchase", NOW + 20 * MIN), customer="c1"),  # clicked in "clicked": that list gets it
            Arrival(ev("y", "cart", NOW + 20 * MIN), customer="c1"),  # not clicked: the latest list with y
            Arrival(ev("x", "purchase", NOW + 21 * MIN), customer="c1"),  # the same purchase again: counted once
            Arrival(ev("x", "view", NOW + 21 * MIN), customer="c1"),  # views are not attributed
            Arrival(ev("y", "purchase", NOW + 5 * 60 * MIN), customer="c1"),  # after the window
            Arrival(ev("x", "purchase", NOW + 5 * MIN), customer="c2"),  # before c2's list was shown
            Arrival(ev("x", "purchase", NOW + 20 * MIN), anonymous="a9"),  # nobody's list
        ],
        NOW + 6 * 60 * MIN,
    )
    assert res.stored == list(range(7)) and res.attributed == [0, 1]
    assert store.impression("clicked").reactions == [
        ("x", "click", NOW + MIN, "feedback"),
        ("x", "purchase", NOW + 20 * MIN, "event"),
    ]
    assert store.impression("later").reactions == [("y", "cart", NOW + 20 * MIN, "event")]
    assert store.impression("other").reactions == []
    counts = store.ab_counts("exp")[("control", True)]
    assert (counts["purchased"], counts["purchases"], counts["carted"], counts["clicked"]) == (1, 1, 1, 1)
    # a purchase posted as feedback for the same list and item is the same reaction: not counted again
    assert store.react([Reaction("clicked", "x", "purchase", NOW + 22 * MIN)], NOW + 22 * MIN)[0].outcome == "duplicate"
    assert store.ab_counts("exp")[("control", True)]["purchases"] == 1


def test_trending_is_the_exponentially_decayed_count_of_item_events(backend):
    store = backend(trending_half_life_hours=1.0)
    t0 = NOW
    store.append(
        [Arrival(StoredEvent("view", "web", t0, "a"), customer="c1") for _ in range(3)]
        + [
            Arrival(StoredEvent("purchase", "web", t0 + HOUR, "b"), customer="c2"),
            Arrival(StoredEvent("search", "web", t0 + HOUR, None, query="q"), customer="c2"),
        ],
        t0 + HOUR,
    )
    now = t0 + 2 * HOUR
    tr = store.trending(now, 10)
    assert tr.items == ["a", "b"] and np.allclose(tr.scores, [3 * 0.25, 0.5])
    # a burst of purchases of c overtakes at once
    store.append([Arrival(StoredEvent("purchase", "app", now, "c"), customer=f"u{j}") for j in range(4)], now)
    tr = store.trending(now, 2)
    assert tr.items == ["c", "a"] and np.allclose(tr.scores, [4.0, 0.75])
    # 300 half-lives later (past the landmark's rescaling point) the arithmetic still holds
    late = t0 + 300 * HOUR
    store.append([Arrival(StoredEvent("view", "web", late, "d"), customer="c3")], late)
    tr = store.trending(late + HOUR, 3)
    assert tr.items[0] == "d" and np.isclose(tr.scores[0], 0.5) and np.allclose(tr.scores[1:], 0.0, atol=1e-60)
    earlier = store.trending(now, 3)  # read at an earlier time: the same statistic (rescaling lost nothing)
    assert np.isclose(dict(zip(earlier.items, earlier.scores))["c"], 4.0)
    # a clock set far ahead (year 9999) counts as now (+ the 5-minute skew): no overflow, nothing wiped
    store.append([Arrival(StoredEvent("view", "web", 253_402_300_000_000, "e"), customer="c4")], late + HOUR)
    tr = store.trending(late + HOUR, 3)
    assert dict(zip(tr.items, tr.scores)) == pytest.approx(
        {"d": 0.5, "e": 2.0 ** (5 / 60), "c": 4.0 * 2.0**-299}, rel=1e-9
    )


def test_context_popularity_counts_positive_reactions_in_that_context(backend):
    store = backend(trending_half_life_hours=1.0)
    store.record_impressions(
        [impression("r1", ["a", "b"], context="cart"), impression("r2", ["a"], context="home")], NOW
    )
    store.react(
        [
            Reaction("r1", "b", "click", NOW),
            Reaction("r1", "b", "purchase", NOW),
            Reaction("r1", "a", "dismiss", NOW),
            Reaction("r2", "a", "click", NOW),
        ],
        NOW,
    )
    tr = store.trending(NOW + HOUR, 5, context="cart")
    assert tr.context_items == ["b"] and np.allclose(tr.context_scores, [1.0])  # two reactions, one half-life
    assert tr.items == []  # reactions are not events: global trending counts what /v1/events receives
    assert store.trending(NOW, 5, context="home").context_items == ["a"]


def test_opting_out_or_forgetting_removes_the_customers_lists_but_not_the_counts(backend):
    store = backend()
    store.record_impressions([impression("mine", ["a"], subject="c1"), impression("theirs", ["a"], subject="c2")], NOW)
    assert store.impression("mine").impression.subject == "c1"
    store.set_consent("c1", False)
    assert store.impression("mine") is None and store.impression("theirs") is not None
    store.record_impressions([impression("after", ["a"], subject="c1")], NOW)
    assert store.impression("after").impression.subject is None  # an opted-out customer's list has no owner
    store.forget("c2")
    assert store.impression("theirs") is None
    assert store.item_ctr("home", ["a"]).impressions.tolist() == [3]


def test_forgetting_leaves_no_pseudonym_of_a_list_in_the_sqlite_files(tmp_path):
    store = SQLiteStore(tmp_path / "j.sqlite")
    secret = "u5ecre7c0ffee1234"
    store.record_impressions([impression(f"r{j}", ["a", "b"], NOW + j, subject=secret) for j in range(20)], NOW)
    store.react([Reaction("r3", "a", "click", NOW + MIN)], NOW + MIN)
    store.append([Arrival(StoredEvent("purchase", "web", NOW + 2 * MIN, "a"), customer=secret)], NOW)
    assert secret.encode() in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    store.forget(secret)
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("j.sqlite"))
    store.close()
