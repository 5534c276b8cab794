"""Two service processes (scripts/serve.py on 127.0.0.1) sharing one real Redis server see the
same online statistics: a burst of purchases sent to one is trending on the other at its next
request, a list served by one takes feedback through the other, and both report the same
click-through per slot and the same A/B counts."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from redis_support import redis_server  # noqa: F401 - fixture

from benchmarks.harness import served


@pytest.mark.slow
def test_two_replicas_on_one_redis_share_the_online_statistics(live_bundle, redis_server, tmp_path):  # noqa: F811
    store = [
        "store=redis",
        f"store.url={redis_server.url}",
        f"store.prefix=rx{uuid.uuid4().hex[:6]}",
        "log_level=warning",
        "threads=1",
    ]
    with (
        served(live_bundle.path, tmp_path / "a.log", store) as a,
        served(live_bundle.path, tmp_path / "b.log", store) as b,
    ):
        ca, cb = httpx.Client(base_url=a.url, timeout=60), httpx.Client(base_url=b.url, timeout=60)
        now = int(time.time() * 1000)
        ids, stock = live_bundle.column("item_id"), live_bundle.column("in_stock")
        plain = {"events": [], "k": 8, "now": now}
        before = [x["item_id"] for x in cb.post("/v1/recommendations", json=plain).json()["items"]]
        hot = next(i for i, s in zip(ids[::-1], stock[::-1]) if s and i not in before)
        burst = [
            {
                "customer_id": f"b{j}",
                "event_type": "purchase",
                "item_id": hot,
                "channel": "app",
                "timestamp": now - 1000,
            }
            for j in range(40)
        ]
        assert ca.post("/v1/events", json={"events": burst}).json()["stored"] == 40
        on_b = cb.post("/v1/recommendations", json=plain).json()
        assert on_b["items"][0]["item_id"] == hot and on_b["items"][0]["reason"] == "trending"
        # a list served by A, clicked through B, purchased through A's intake
        customer = f"cust-{uuid.uuid4().hex[:8]}"
        views = [
            {
                "customer_id": customer,
                "event_type": "view",
                "item_id": ids[50 + j],
                "channel": "web",
                "timestamp": now - (5 - j) * 60_000,
            }
            for j in range(3)
        ]
        ca.post("/v1/events", json={"events": views})
        shown = ca.post(f"/v1/customers/{customer}/recommendations", json={"k": 6, "now": now}).json()
        item = shown["items"][4]["item_id"]
        r = cb.post("/v1/feedback", json={"request_id": shown["request_id"], "item_id": item, "type": "click"})
        assert r.status_code == 200 and r.json()["position"] == 4
        assert (
            ca.post("/v1/feedback", json={"request_id": shown["request_id"], "item_id": item, "type": "click"}).json()[
                "outcome"
            ]
            == "duplicate"
        )
        bought = ca.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "customer_id": customer,
                        "event_type": "purchase",
                        "item_id": item,
                        "channel": "web",
                        "timestamp": now + 60_000,
                    }
                ]
            },
        ).json()
        assert bought["attributed"] == 1
        stats_a = ca.get("/v1/stats", params={"context": "home", "n": 5}).json()
        stats_b = cb.get("/v1/stats", params={"context": "home", "n": 5}).json()
        assert stats_a["slots"] == stats_b["slots"] and stats_a["trending"][0]["item_id"] == hot
        assert [x["item_id"] for x in stats_a["trending"]] == [x["item_id"] for x in stats_b["trending"]]
        assert next(s for s in stats_b["slots"] if s["position"] == 4)["clicks"] == 1
        assert stats_a["popular_in_context"][0]["item_id"] == item  # a click and a purchase from a home list
        report_a, report_b = ca.get("/v1/ab/report").json(), cb.get("/v1/ab/report").json()
        assert report_a["variants"] == report_b["variants"]
        assert report_a["variants"]["default"]["conversion"]["successes"] == 1
        ca.close(), cb.close()
