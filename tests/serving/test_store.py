"""The journey store's contract, on both backends: a SQLite file and a real Redis server.

Every test runs against a fresh store (a new file; a new key prefix on the module's server)."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis_support import redis_server  # noqa: F401 - fixture

from journeyrec.serving.store import Arrival, SQLiteStore, StoredEvent
from journeyrec.serving.store.base import DAY_MS, OPTED_OUT_EVENTS
from journeyrec.serving.store.redis import RedisStore

NOW = 1_800_000_000_000


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "j.sqlite", max_events=5, max_purchases=3, retention_days=30)
    else:
        server = request.getfixturevalue("redis_server")
        s = RedisStore(server.url, prefix=f"t{uuid.uuid4().hex[:8]}", max_events=5, max_purchases=3, retention_days=30)
    yield s
    s.close()


def ev(item: str | None, etype: str = "view", minutes_ago: float = 1.0, **kw) -> StoredEvent:
    return StoredEvent(etype, kw.pop("channel", "web"), int(NOW - minutes_ago * 60_000), item, **kw)


def test_events_come_back_in_time_order_bounded_by_count_and_retention(store):
    arrivals = [Arrival(ev(f"i{k}", minutes_ago=100 - k), customer="c1") for k in range(8)]
    arrivals.append(Arrival(ev("old", minutes_ago=31 * 24 * 60), customer="c1"))  # older than the 30-day retention
    res = store.append(arrivals, NOW)
    assert res.stored == list(range(8)) and res.expired == [8] and res.opted_out == []
    j = store.journey("c1", NOW)
    assert [e.item_id for e in j.events] == ["i3", "i4", "i5", "i6", "i7"]  # the newest max_events, oldest first
    assert j.known and j.consent is None and j.purchases == []
    assert not store.journey("nobody", NOW).known
    # an event ages out of the retention window on read too
    later = NOW + 30 * DAY_MS - 95 * 60_000
    assert [e.item_id for e in store.journey("c1", later).events] == ["i5", "i6", "i7"]


def test_purchases_outlive_the_event_bound_and_feed_the_timeline(store):
    store.append([Arrival(ev("coat", "purchase", minutes_ago=20 * 24 * 60), customer="c1")], NOW)
    store.append([Arrival(ev(f"v{k}", minutes_ago=10 - k), customer="c1") for k in range(6)], NOW)
    j = store.journey("c1", NOW)
    assert "coat" not in [e.item_id for e in j.events]
    assert [p.item_id for p in j.purchases] == ["coat"]
    assert [e.item_id for e in j.timeline()] == ["coat", "v1", "v2", "v3", "v4", "v5"]


def test_last_search_is_kept_with_its_filters(store):
    store.append(
        [
            Arrival(
                ev(None, "search", minutes_ago=5, query="running trousers", filters='{"size": "XL"}'), customer="c1"
            ),
            Arrival(ev(None, "search", minutes_ago=9, query="older", filters=None), customer="c1"),
        ],
        NOW,
    )
    s = store.journey("c1", NOW).last_search
    assert s is not None and s.query == "running trousers" and s.filters == '{"size": "XL"}'


def test_identify_merges_the_anonymous_journey_and_routes_later_events(store):
    store.append(
        [
            Arrival(ev("a1", minutes_ago=30), anonymous="anon1"),
            Arrival(ev(None, "search", minutes_ago=29, query="q", filters='{"colour": "blue"}'), anonymous="anon1"),
        ],
        NOW,
    )
    assert store.link("anon1", "c1", NOW) == 2
    store.append(
        [
            Arrival(ev("a2", minutes_ago=10), anonymous="anon1"),  # the same device after login, id only
            Arrival(ev("c2", minutes_ago=5), customer="c1"),
        ],
        NOW,
    )
    j = store.journey("c1", NOW)
    assert [e.item_id for e in j.events] == ["a1", None, "a2", "c2"] and j.last_search.query == "q"
    assert not store.journey("anon1", NOW).known
    assert list(store.customers()) == ["c1"]
    # an event naming both ids links them as identify does
    store.append(
        [
            Arrival(ev("b1", minutes_ago=40), anonymous="anon2"),
            Arrival(ev("b2", minutes_ago=3), customer="c3", anonymous="anon2"),
            Arrival(ev("b3", minutes_ago=2), anonymous="anon2"),
        ],
        NOW,
    )
    assert [e.item_id for e in store.journey("c3", NOW).events] == ["b1", "b2", "b3"]
    assert not store.journey("anon2", NOW).known and list(store.customers()) == ["c1", "c3"]


def test_opt_out_deletes_at_once_and_later_events_are_only_counted(store):
    store.append([Arrival(ev("x"), customer="c1"), Arrival(ev("y", "purchase"), customer="c1")], NOW)
    assert store.set_consent("c1", False) == 3  # two events + one purchase
    j = store.journey("c1", NOW)
    assert j.consent is False and j.events == [] and j.purchases == []
    res = store.append([Arrival(ev("z"), customer="c1"), Arrival(ev("w"), customer="c2")], NOW)
    assert res.opted_out == [0] and res.stored == [1]
    assert store.counters()[OPTED_OUT_EVENTS] == 1
    # an anonymous journey linked to the opted-out customer is deleted, not merged
    store.append([Arrival(ev("anon-view"), anonymous="a9")], NOW)
    assert store.link("a9", "c1", NOW) == 0 and store.journey("c1", NOW).events == []
    store.append([Arrival(ev("after"), anonymous="a9")], NOW)
    assert store.journey("c1", NOW).events == [] and store.counters()[OPTED_OUT_EVENTS] == 2
    store.set_consent("c1", True)
    store.append([Arrival(ev("back"), customer="c1")], NOW)
    assert [e.item_id for e in store.journey("c1", NOW).events] == ["back"]


def test_live_catalogue_merges_updates_and_reports_changes_since_a_version(store):
    assert store.catalog_version() == 0 and store.catalog_since(0).items == {}
    v1 = store.put_items({"i1": {"in_stock": False}, "new": {"category": "A/B", "price": 9.5, "tags": []}})
    v2 = store.put_items({"i1": {"price": 20.0}})
    assert (v1, v2) == (1, 2) and store.catalog_version() == 2
    assert store.catalog_since(0).items == {
        "i1": {"in_stock": False, "price": 20.0},
        "new": {"category": "A/B", "price": 9.5, "tags": []},
    }
    changes = store.catalog_since(1)
    assert changes.version == 2 and changes.items == {"i1": {"in_stock": False, "price": 20.0}}
    assert store.journey("c", NOW).catalog_version == 2


def test_sqlite_checkpoints_on_its_own_thread_not_in_a_request(tmp_path):
    """The store's connections never checkpoint in a commit (a request would wait for the disk
    sync); its thread moves the write-ahead log into the main file, and stops on close."""
    import gc
    import time

    slow, fast = (
        SQLiteStore(tmp_path / "slow.sqlite", checkpoint_seconds=3600),
        SQLiteStore(tmp_path / "fast.sqlite", checkpoint_seconds=0.05),
    )
    sizes = {}
    for s in (slow, fast):
        sizes[s] = s.path.stat().st_size
        s.append([Arrival(ev(f"i{k}", minutes_ago=k / 10), customer=f"c{k % 7}") for k in range(300)], NOW)
        for stats in (False, True):
            assert s._con(stats).execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    deadline = time.monotonic() + 10
    while fast.path.stat().st_size == sizes[fast] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fast.path.stat().st_size > sizes[fast]
    assert slow.path.stat().st_size == sizes[slow]  # written to the log only
    for s in (slow, fast):
        s.close()
        assert not s._checkpointer.is_alive()
    assert slow.path.stat().st_size > sizes[slow]  # close checkpoints once more
    forgotten = SQLiteStore(tmp_path / "forgotten.sqlite", checkpoint_seconds=3600)
    thread = forgotten._checkpointer
    del forgotten  # never closed: collecting it stops its thread
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        SQLiteStore(tmp_path / "bad.sqlite", checkpoint_seconds=0)


def test_forget_leaves_nothing_in_the_sqlite_files(tmp_path):
    path = tmp_path / "j.sqlite"
    s = SQLiteStore(path)
    secret = "u5ecre7c0ffee1234"
    s.append([Arrival(ev("anon-item"), anonymous="anonX")], NOW)
    s.link("anonX", secret, NOW)
    s.append(
        [
            Arrival(ev("i1", "purchase", session_id="s-" + secret), customer=secret),
            Arrival(ev(None, "search", query="q", filters='{"size": "M"}'), customer=secret),
        ],
        NOW,
    )
    s.append([Arrival(ev("other"), customer="someone-else")], NOW)
    assert s.forget(secret) == 4  # anon-item (moved), purchase as event and as purchase, search
    files = [p for p in tmp_path.iterdir() if p.name.startswith("j.sqlite")]
    assert any(secret.encode() in p.read_bytes() for p in files) is False
    assert b"anonX" not in b"".join(p.read_bytes() for p in files)
    assert [e.item_id for e in s.journey("someone-else", NOW).events] == ["other"]
    s.close()


def test_forget_leaves_no_redis_key_or_value(redis_server):  # noqa: F811
    prefix = f"t{uuid.uuid4().hex[:8]}"
    s = RedisStore(redis_server.url, prefix=prefix)
    secret = "u5ecre7c0ffee1234"
    s.append([Arrival(ev("anon-item"), anonymous="anonX")], NOW)
    s.link("anonX", secret, NOW)
    s.append([Arrival(ev("i1", "purchase"), customer=secret), Arrival(ev("o"), customer="someone-else")], NOW)
    s.forget(secret)
    r = redis.Redis.from_url(redis_server.url)
    keys = list(r.scan_iter(f"{prefix}:*"))
    assert not [k for k in keys if secret.encode() in k or b"anonX" in k]
    for k in keys:
        t = r.type(k)
        dump = {
            b"string": lambda key: [r.get(key)],
            b"hash": lambda key: list(r.hgetall(key).items()),
            b"set": lambda key: list(r.smembers(key)),
            b"zset": lambda key: r.zrange(key, 0, -1),
        }[t](k)
        assert secret.encode() not in repr(dump).encode() and b"anonX" not in repr(dump).encode(), k
    s.close()
