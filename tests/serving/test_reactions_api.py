"""The feedback loop through the HTTP API on 127.0.0.1, on both store backends (a SQLite file; a
real Redis server): request ids in every answer, impressions, feedback attributed to the right
list and position, purchases sent as events attributed, online trending, bad feedback, the A/B
report from the stored data (and scripts/ab_report.py --store), per-segment rules.

The service runs the contexts of ``configs/serve.yaml`` and an A/B experiment of two variants."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from omegaconf import OmegaConf
from redis_support import redis_server  # noqa: F401 - fixture

from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.serving import Recommender
from journeyrec.serving.app import create_app
from journeyrec.serving.service import Service
from journeyrec.serving.settings import ExperimentConfig, StoreConfig, VariantConfig
from journeyrec.serving.store import open_store

from conftest import compose
from serving_support import ThreadServer, items_of, uid

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
KEY = resolve_key(None, allow_demo_key=True)
MIN = 60_000
HOUR = 60 * MIN
EXPERIMENT = ExperimentConfig(
    name="reactions",
    variants=[
        VariantConfig(name="control", share=0.5),
        VariantConfig(
            name="boosted", share=0.5, rules={"boosts": [{"attribute": "own_brand", "value": True, "weight": 0.2}]}
        ),
    ],
)


class Live:
    def __init__(self, client: httpx.Client, service: Service, backend: str, store_cfg: StoreConfig) -> None:
        self.client, self.service, self.backend, self.store_cfg = client, service, backend, store_cfg
        self.store = service.store

    def events(self, events: list[dict]) -> dict:
        r = self.client.post("/v1/events", json={"events": events})
        assert r.status_code == 200, r.text
        return r.json()

    def customer(self, customer: str, **body) -> dict:
        r = self.client.post(f"/v1/customers/{customer}/recommendations", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == r.json()["request_id"]
        return r.json()

    def feedback(self, **body) -> httpx.Response:
        return self.client.post("/v1/feedback", json=body)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def live(request, live_bundle, tmp_path_factory):
    cfg = OmegaConf.to_object(compose("serve", [f"bundle={live_bundle.path}"]))
    if request.param == "sqlite":
        store_cfg = StoreConfig(backend="sqlite", path=str(tmp_path_factory.mktemp("store") / "journeys.sqlite"))
    else:
        url = request.getfixturevalue("redis_server").url
        store_cfg = StoreConfig(backend="redis", url=url, prefix=f"react{uuid.uuid4().hex[:6]}")
    store = open_store(store_cfg)
    rec = Recommender.load(
        live_bundle.path,
        rules=cfg.rules,
        contexts={k: v.rules for k, v in cfg.contexts.items()},
        segment_rules={k: v.segments for k, v in cfg.contexts.items()},
        segments=cfg.segments,
    )
    service = Service(rec, EXPERIMENT, allow_demo_key=True, store=store, contexts=cfg.contexts)
    service.warm_up()
    with ThreadServer(create_app(service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Live(client, service, request.param, store_cfg)
    store.close()


def views(live_bundle, now: int, first: int = 40, n: int = 4) -> list[dict]:
    ids = live_bundle.column("item_id")
    return [
        {"event_type": "view", "item_id": ids[first + j], "channel": "web", "timestamp": now - (10 - j) * MIN}
        for j in range(n)
    ]


def test_every_answer_carries_its_request_id_and_is_stored_as_an_impression(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    live.events([dict(e, customer_id=customer) for e in views(live_bundle, now)])
    item = live_bundle.column("item_id")[40]
    answers = {
        "customer": live.client.post(f"/v1/customers/{customer}/recommendations", json={"k": 6, "now": now}),
        "stateless": live.client.post(
            "/v1/recommendations", json={"events": views(live_bundle, now), "k": 5, "now": now, "user_id": customer}
        ),
        "no_consent": live.client.post(
            "/v1/recommendations", json={"events": [], "k": 4, "consent": False, "now": now}
        ),
        "similar": live.client.get(f"/v1/items/{item}/similar", params={"k": 3}),
        "complements": live.client.get(f"/v1/items/{item}/complements", params={"k": 3}),
    }
    ids = set()
    for name, r in answers.items():
        assert r.status_code == 200, (name, r.text)
        body = r.json()
        assert r.headers["x-request-id"] == body["request_id"] and len(body["request_id"]) == 32, name
        ids.add(body["request_id"])
        held = live.store.impression(body["request_id"])
        assert held is not None and list(held.impression.items) == items_of(body), name
    assert len(ids) == len(answers)
    pseudonym = pseudonymise(customer, KEY)
    stored = {name: live.store.impression(r.json()["request_id"]).impression for name, r in answers.items()}
    assert (
        stored["customer"].subject == pseudonym and stored["stateless"].subject == pseudonym
    )  # a pseudonym, never the id
    assert stored["no_consent"].subject is None and stored["similar"].subject is None
    assert (stored["customer"].context, stored["similar"].context, stored["complements"].context) == (
        "home",
        "product_page",
        "cart",
    )
    assert stored["customer"].variant == answers["customer"].json()["variant"] and stored["customer"].assigned
    assert stored["customer"].bundle_version == live.service.default.bundle_version
    assert stored["customer"].segment == answers["customer"].json()["segment"] == "new"
    assert stored["no_consent"].segment == "anonymous" and not stored["no_consent"].assigned


def test_a_click_is_attributed_to_the_right_impression_and_position(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    live.events([dict(e, customer_id=customer) for e in views(live_bundle, now, first=60)])
    first = live.customer(customer, k=8, now=now)
    second = live.customer(customer, k=8, now=now + 1)
    assert first["request_id"] != second["request_id"]
    slots_before = {
        s["position"]: s["clicks"] for s in live.client.get("/v1/stats", params={"context": "home"}).json()["slots"]
    }
    item = second["items"][3]["item_id"]
    r = live.feedback(request_id=second["request_id"], item_id=item, type="click")
    assert r.status_code == 200 and r.json() == {
        "attributed": True,
        "outcome": "attributed",
        "position": 3,
        "context": "home",
        "variant": second["variant"],
    }
    assert [x[:2] for x in live.store.impression(second["request_id"]).reactions] == [(item, "click")]
    assert live.store.impression(first["request_id"]).reactions == []
    stats = live.client.get("/v1/stats", params={"context": "home"}).json()
    slots = {s["position"]: s["clicks"] for s in stats["slots"]}
    assert slots[3] == slots_before.get(3, 0) + 1 and all(slots[p] == slots_before.get(p, 0) for p in slots if p != 3)
    assert live.store.item_ctr("home", [item]).clicks[0] >= 1


def test_a_purchase_event_after_a_click_is_attributed_to_that_list(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    live.events([dict(e, customer_id=customer) for e in views(live_bundle, now, first=80)])
    shown = live.customer(customer, k=6, now=now)
    later = live.customer(customer, k=6, now=now + MIN)  # shows the same items, not clicked
    item = shown["items"][2]["item_id"]
    assert item in items_of(later)
    assert live.feedback(request_id=shown["request_id"], item_id=item, type="click").json()["position"] == 2
    before = live.client.get("/v1/ab/report").json()["variants"][shown["variant"]]["conversion"]["successes"]
    answer = live.events(
        [
            {
                "customer_id": customer,
                "event_type": "cart",
                "item_id": item,
                "channel": "app",
                "timestamp": now + 3 * MIN,
            },
            {
                "customer_id": customer,
                "event_type": "purchase",
                "item_id": item,
                "channel": "store",
                "timestamp": now + 9 * MIN,
            },
        ]
    )
    assert answer["stored"] == 2 and answer["attributed"] == 2
    reactions = live.store.impression(shown["request_id"]).reactions
    assert [(i, k, s) for i, k, _, s in reactions] == [
        (item, "click", "feedback"),
        (item, "cart", "event"),
        (item, "purchase", "event"),
    ]
    assert live.store.impression(later["request_id"]).reactions == []
    after = live.client.get("/v1/ab/report").json()["variants"][shown["variant"]]["conversion"]["successes"]
    assert after == before + 1
    # the same purchase sent again is not counted twice
    again = live.events(
        [
            {
                "customer_id": customer,
                "event_type": "purchase",
                "item_id": item,
                "channel": "web",
                "timestamp": now + 10 * MIN,
            }
        ]
    )
    assert again["attributed"] == 0
    assert live.client.get("/v1/ab/report").json()["variants"][shown["variant"]]["conversion"]["successes"] == after


def test_trending_reacts_within_one_request_to_a_burst_of_purchases(live, live_bundle):
    now = int(time.time() * 1000)
    body = {"events": [], "k": 10, "now": now}
    before = live.client.post("/v1/recommendations", json=body).json()
    ids, stock, cats = (live_bundle.column(c) for c in ("item_id", "in_stock", "category"))
    shown = set(items_of(before))
    hot = next(i for i, s, c in zip(ids[::-1], stock[::-1], cats[::-1]) if s and i not in shown and "Cameras" in c)
    live.events(
        [
            {
                "customer_id": uid("burst"),
                "event_type": "purchase",
                "item_id": hot,
                "channel": "web",
                "timestamp": now - 5_000,
            }
            for _ in range(60)
        ]
    )
    after = live.client.post("/v1/recommendations", json=body).json()
    assert after["items"][0]["item_id"] == hot and after["items"][0]["reason"] == "trending"
    trending = live.client.get("/v1/stats", params={"context": "home", "n": 3}).json()["trending"]
    assert trending[0]["item_id"] == hot and trending[0]["score"] >= 59.9  # 60 events seconds old, week-long half-life
    # "popular in <category>" reads the same statistic
    cat = live.client.post(
        "/v1/recommendations", json={**body, "context": {"type": "search", "category": cats[ids.index(hot)]}}
    )
    assert cat.json()["items"][0]["item_id"] == hot


def test_bad_feedback_gets_a_4xx_or_is_ignored_and_never_counts_twice(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    live.events([dict(e, customer_id=customer) for e in views(live_bundle, now, first=100)])
    shown = live.customer(customer, k=5, now=now)
    rid, item = shown["request_id"], shown["items"][1]["item_id"]
    old = live.customer(customer, k=5, now=now - 30 * HOUR)  # shown 30 hours ago: past the 24-hour window
    counted = lambda: int(live.store.item_ctr("home", [item]).clicks[0])  # noqa: E731
    start = counted()
    assert live.feedback(request_id=rid, item_id=item, type="click").status_code == 200
    for _ in range(3):  # a client's retries: answered, ignored
        r = live.feedback(request_id=rid, item_id=item, type="click")
        assert r.status_code == 200 and r.json()["outcome"] == "duplicate" and "warning" in r.json()
    cases = [
        ({"request_id": uuid.uuid4().hex, "item_id": item, "type": "click"}, 404, "request_id"),
        ({"request_id": old["request_id"], "item_id": old["items"][0]["item_id"], "type": "click"}, 410, "window"),
        ({"request_id": rid, "item_id": "SKU-never-shown", "type": "click"}, 422, "not in the list"),
        ({"request_id": rid, "item_id": item, "type": "purchase", "timestamp": now - 20 * MIN}, 422, "before"),
        ({"request_id": rid, "item_id": item, "type": "like"}, 422, "type"),
        ({"request_id": rid, "item_id": item}, 422, "type"),
        ({"request_id": "", "item_id": item, "type": "click"}, 422, "request_id"),
        ({"request_id": rid, "item_id": item, "type": "click", "extra": 1}, 422, "extra"),
        ({"request_id": rid, "item_id": [item], "type": "click"}, 422, "item_id"),
        ({"request_id": rid, "item_id": item, "type": "click", "timestamp": 2**63}, 422, "timestamp"),
    ]
    for body, status, message in cases:
        r = live.feedback(**body)
        assert r.status_code == status and message in r.text, (body, r.status_code, r.text)
    assert counted() == start + 1
    units = live.client.get("/v1/ab/report").json()["variants"][shown["variant"]]
    assert units["impressions"] >= 2
    metrics = live.client.get("/metrics").text
    assert 'journeyrec_feedback_total{outcome="duplicate"}' in metrics and 'status="5' not in metrics


def test_ab_report_from_the_stored_impressions_and_reactions(live, live_bundle, tmp_path):
    now = int(time.time() * 1000)
    clicked_by_variant: dict[str, int] = {}
    report0 = live.client.get("/v1/ab/report")
    base = report0.json()["variants"] if report0.status_code == 200 else {}
    shown_by_variant: dict[str, int] = {}
    for j in range(12):
        customer = uid("ab")
        answer = live.customer(customer, k=4, now=now, context="home")
        v = answer["variant"]
        shown_by_variant[v] = shown_by_variant.get(v, 0) + 1
        if j % 3 == 0:
            live.feedback(request_id=answer["request_id"], item_id=answer["items"][0]["item_id"], type="click")
            live.feedback(request_id=answer["request_id"], item_id=answer["items"][1]["item_id"], type="click")
            clicked_by_variant[v] = clicked_by_variant.get(v, 0) + 1
    report = live.client.get("/v1/ab/report").json()
    assert (
        report["experiment"] == "reactions" and report["control"] == "control" and report["source"] == "journey store"
    )
    for v, n in shown_by_variant.items():
        row, was = report["variants"][v], base.get(v, {"impressions": 0, "ctr": {"successes": 0}})
        assert row["impressions"] - was["impressions"] == n
        assert row["ctr"]["successes"] - was["ctr"]["successes"] == clicked_by_variant.get(v, 0)
        lo, hi = row["ctr"]["ci"]
        assert lo <= row["ctr"]["value"] <= hi
    assert set(report["variants"]["control"]) >= {"ctr", "add_to_cart", "conversion", "impressions"}
    assert "lift" in report["variants"]["boosted"]["ctr"]
    assert live.client.get("/v1/ab/report", params={"experiment": "never-run"}).status_code == 404
    assert live.client.get("/v1/ab/report", params={"control": "nope"}).status_code == 422
    assert live.client.get("/v1/ab/report", params={"alpha": 2}).status_code == 422
    # the script reads the same store and prints the same figures
    cmd = [sys.executable, str(ROOT / "scripts" / "ab_report.py"), "--experiment", "reactions", "--json", "--store"]
    cmd += (
        [live.store_cfg.path] if live.backend == "sqlite" else [live.store_cfg.url, "--prefix", live.store_cfg.prefix]
    )
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""}
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["variants"] == live.client.get("/v1/ab/report").json()["variants"]


def test_contexts_set_rules_per_segment(live, live_bundle):
    """configs/contexts/default.yaml: in the newsletter, new customers (nothing bought) get a fifth of
    the slots explored; customers who bought do not; the segment comes with the answer."""
    now = int(time.time() * 1000)
    new, buyer, lapsed = uid("new"), uid("buyer"), uid("lapsed")
    ids = live_bundle.column("item_id")
    live.events([dict(e, customer_id=c) for c in (new, buyer, lapsed) for e in views(live_bundle, now, first=120)])
    live.events(
        [
            {
                "customer_id": buyer,
                "event_type": "purchase",
                "item_id": ids[300],
                "channel": "web",
                "timestamp": now - 3 * 24 * HOUR,
            },
            {
                "customer_id": lapsed,
                "event_type": "purchase",
                "item_id": ids[300],
                "channel": "web",
                "timestamp": now - 200 * 24 * HOUR,
            },
        ]
    )
    explored = lambda a: sum(x["reason"] == "explore" for x in a["items"])  # noqa: E731
    for _ in range(3):
        a_new = live.customer(new, k=10, now=now, context="newsletter")
        a_buyer = live.customer(buyer, k=10, now=now, context="newsletter")
        assert (a_new["segment"], a_buyer["segment"]) == ("new", "active")
        assert explored(a_new) == 2 and explored(a_buyer) == 0  # epsilon 0.2 of 10 slots, exactly
    assert live.customer(new, k=10, now=now, context="home")["segment"] == "new"
    assert explored(live.customer(new, k=10, now=now, context="home")) == 0  # home has no segment rules
    assert live.customer(lapsed, k=10, now=now, context="newsletter")["segment"] == "lapsed"
    anonymous = live.client.post(
        "/v1/recommendations", json={"events": [], "consent": False, "k": 5, "now": now}
    ).json()
    assert anonymous["segment"] == "anonymous"
