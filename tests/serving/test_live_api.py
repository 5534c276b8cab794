"""The live knowledge base through its HTTP API on 127.0.0.1, on both store backends (a SQLite
file; a real Redis server): intake, identity across channels, consent and forgetting, customer
recommendations at every touchpoint, search filters, the live catalogue, and 4xx on bad input.

The service's contexts are those of ``configs/serve.yaml`` (composed with Hydra)."""

from __future__ import annotations

import time
import uuid

import httpx
import numpy as np
import pytest
import redis
import torch
from omegaconf import OmegaConf
from redis_support import redis_server  # noqa: F401 - fixture

from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.serving import Recommender
from journeyrec.serving.app import create_app
from journeyrec.serving.request import Context, Event, RecommendRequest
from journeyrec.serving.service import ANONYMOUS_NAMESPACE, Service
from journeyrec.serving.settings import CONTEXT_TYPES, StoreConfig, merge_rules
from journeyrec.serving.store import open_store

from conftest import compose
from serving_support import ThreadServer, items_of, uid

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = resolve_key(None, allow_demo_key=True)
MIN = 60_000


class Live:
    def __init__(self, client: httpx.Client, service: Service, backend: str, where: object) -> None:
        self.client, self.service, self.backend, self.where = client, service, backend, where

    def post_events(self, events: list[dict]) -> dict:
        r = self.client.post("/v1/events", json={"events": events})
        assert r.status_code == 200, r.text
        return r.json()

    def recommend(self, customer: str, **body) -> dict:
        r = self.client.post(f"/v1/customers/{customer}/recommendations", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def stored_bytes(self) -> bytes:
        """Everything the store holds, as bytes: the SQLite files, or every Redis key and value."""
        if self.backend == "sqlite":
            return b"".join(p.read_bytes() for p in self.where.parent.iterdir() if p.name.startswith(self.where.name))
        r = redis.Redis.from_url(self.where[0])
        out = []
        for k in r.scan_iter(f"{self.where[1]}:*"):
            t = r.type(k)
            value = {
                b"string": r.get,
                b"hash": r.hgetall,
                b"set": r.smembers,
                b"zset": lambda key: r.zrange(key, 0, -1),
            }[t](k)
            out.append(k + b"=" + repr(value).encode())
        return b"\n".join(out)


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def live(request, live_bundle, tmp_path_factory):
    cfg = OmegaConf.to_object(compose("serve", [f"bundle={live_bundle.path}"]))
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "journeys.sqlite"
        store_cfg, where = StoreConfig(backend="sqlite", path=str(path)), path
    else:
        url = request.getfixturevalue("redis_server").url
        prefix = f"live{uuid.uuid4().hex[:6]}"
        store_cfg, where = StoreConfig(backend="redis", url=url, prefix=prefix), (url, prefix)
    store = open_store(store_cfg)
    rec = Recommender.load(live_bundle.path, rules=cfg.rules, contexts={k: v.rules for k, v in cfg.contexts.items()})
    service = Service(rec, allow_demo_key=True, store=store, contexts=cfg.contexts)
    service.warm_up()
    with ThreadServer(create_app(service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Live(client, service, request.param, where)
    store.close()


def category_items(live_bundle, prefix: str, in_stock: bool = True) -> list[str]:
    return [
        i
        for i, c, s in zip(
            live_bundle.column("item_id"), live_bundle.column("category"), live_bundle.column("in_stock")
        )
        if c.startswith(prefix) and (s or not in_stock)
    ]


def journey_events(live_bundle, now: int) -> tuple[list[dict], list[dict], list[dict]]:
    """One customer over four channels: web views before login, a cart in the app, a store purchase."""
    coats = category_items(live_bundle, "Apparel/Outerwear/Winter coats")
    cameras = category_items(live_bundle, "Electronics/Cameras/Mirrorless")
    web = [
        {"event_type": "view", "item_id": cameras[j], "channel": "web", "timestamp": now - (50 - j) * MIN}
        for j in range(3)
    ]
    app = [
        {"event_type": "view", "item_id": coats[1], "channel": "app", "timestamp": now - 30 * MIN},
        {"event_type": "cart", "item_id": coats[1], "channel": "app", "timestamp": now - 29 * MIN},
    ]
    store = [
        {
            "event_type": "purchase",
            "item_id": coats[2],
            "channel": "store",
            "timestamp": now - 10 * MIN,
            "price": 179.99,
        }
    ]
    return web, app, store


def test_four_channels_make_one_journey_answered_as_the_stateless_endpoint(live, live_bundle):
    now = int(time.time() * 1000)
    customer, anonymous = uid("cust"), uid("anon")
    web, app, store = journey_events(live_bundle, now)
    assert live.post_events([dict(e, anonymous_id=anonymous, session_id="s-web") for e in web])["stored"] == 3
    r = live.client.post("/v1/identify", json={"anonymous_id": anonymous, "customer_id": customer})
    assert r.status_code == 200 and r.json() == {"linked": True, "events_moved": 3}
    assert live.post_events([dict(e, customer_id=customer) for e in app])["stored"] == 2
    assert live.post_events([dict(e, customer_id=customer) for e in store])["stored"] == 1
    by_id = live.recommend(customer, context="call_centre", k=10, now=now)
    stateless = live.client.post(
        "/v1/recommendations",
        json={
            "events": [{k: v for k, v in e.items() if k != "price"} for e in web + app + store],
            "k": 10,
            "now": now,
            "context": {"type": "call_centre"},
            "user_id": customer,
        },
    ).json()
    assert items_of(by_id) == items_of(stateless) and len(items_of(by_id)) == 10
    assert [x["score"] for x in by_id["items"]] == [x["score"] for x in stateless["items"]]
    assert by_id["variant"] == stateless["variant"]


def test_a_durable_bought_in_the_store_is_not_recommended_on_the_web(live, live_bundle):
    now = int(time.time() * 1000)
    coats = category_items(live_bundle, "Apparel/Outerwear/Winter coats")
    views = [
        {"event_type": "view", "item_id": coats[j], "channel": "web", "timestamp": now - (60 - j) * MIN}
        for j in range(4)
    ]
    outerwear = {"category": "Apparel/Outerwear"}
    control, buyer = uid("cust"), uid("cust")
    live.post_events([dict(e, customer_id=c) for c in (control, buyer) for e in views])
    before = live.recommend(control, context="home", k=10, filters=outerwear, now=now)
    assert any(x["category"].endswith("Winter coats") for x in before["items"])  # the model does suggest coats
    live.post_events(
        [
            {
                "customer_id": buyer,
                "event_type": "purchase",
                "item_id": coats[5],
                "channel": "store",
                "timestamp": now - 5 * MIN,
            }
        ]
    )
    after = live.recommend(buyer, context="home", k=10, filters=outerwear, now=now)
    assert after["items"] and not any(x["category"].endswith("Winter coats") for x in after["items"])


def test_opt_out_removes_the_stored_journey_and_nothing_is_stored_afterwards(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    web, app, store = journey_events(live_bundle, now)
    live.post_events([dict(e, customer_id=customer) for e in web + app + store])
    pseudonym = pseudonymise(customer, KEY)
    assert live.service.store.journey(pseudonym, now).events
    r = live.client.put(f"/v1/customers/{customer}/consent", json={"personalisation": False})
    assert r.status_code == 200 and r.json() == {"personalisation": False, "events_deleted": 7}  # 6 events + 1 purchase
    j = live.service.store.journey(pseudonym, now)
    assert j.events == [] and j.purchases == [] and j.consent is False
    counted = live.service.store.counters().get("opted_out_events", 0)
    answer = live.post_events([dict(e, customer_id=customer) for e in app])
    assert answer["stored"] == 0 and answer["not_stored"]["opted_out"] == [0, 1] and answer["rejected"] == []
    assert live.service.store.journey(pseudonym, now).events == []
    assert live.service.store.counters()["opted_out_events"] == counted + 2
    assert 'journeyrec_intake_events_total{outcome="opted_out"}' in live.client.get("/metrics").text
    # their recommendations are the non-personal path, whatever the request carries
    mine = live.recommend(
        customer, context="home", k=8, now=now, events=[{k: v for k, v in e.items() if k != "price"} for e in web]
    )
    anonymous = live.client.post(
        "/v1/recommendations", json={"events": [], "k": 8, "consent": False, "now": now}
    ).json()
    assert items_of(mine) == items_of(anonymous)
    assert all(x["reason"].startswith(("trending", "popular in")) for x in mine["items"])
    # a visitor linked to them later brings nothing in
    anon = uid("anon")
    live.post_events([dict(web[0], anonymous_id=anon)])
    live.client.post("/v1/identify", json={"anonymous_id": anon, "customer_id": customer})
    live.post_events([dict(web[1], anonymous_id=anon)])
    assert live.service.store.journey(pseudonym, now).events == []


def test_delete_leaves_nothing_of_the_customer_in_the_store(live, live_bundle):
    now = int(time.time() * 1000)
    customer, anonymous, session = uid("cust"), uid("anon"), uid("sess")
    web, app, store = journey_events(live_bundle, now)
    live.post_events([dict(e, anonymous_id=anonymous, session_id=session) for e in web])
    live.client.post("/v1/identify", json={"anonymous_id": anonymous, "customer_id": customer})
    live.post_events(
        [dict(e, customer_id=customer, session_id=session) for e in app + store]
        + [
            {
                "customer_id": customer,
                "event_type": "search",
                "query": "warm coat",
                "filters": {"size": "L"},
                "channel": "web",
                "timestamp": now - MIN,
            }
        ]
    )
    live.client.put(f"/v1/customers/{customer}/consent", json={"personalisation": True})
    needles = [
        pseudonymise(customer, KEY),
        pseudonymise(ANONYMOUS_NAMESPACE + anonymous, KEY),
        pseudonymise(session, KEY),
    ]
    held = live.stored_bytes()
    assert all(n.encode() in held for n in needles)  # the search below can find what it looks for
    r = live.client.delete(f"/v1/customers/{customer}")
    assert r.status_code == 200 and r.json()["events_deleted"] == 8  # 3 web + 2 app + 1 store + search, + the purchase
    held = live.stored_bytes()
    assert [n for n in needles if n.encode() in held] == []
    assert customer.encode() not in held and anonymous.encode() not in held  # raw ids never reached the store
    assert live.recommend(customer, k=3, now=now)["warnings"][0].startswith("customer unknown to the store")


def test_search_filters_carry_into_the_next_product_page(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    page = category_items(live_bundle, "Sports/Running/Running shoes")[0]
    live.post_events(
        [
            {
                "customer_id": customer,
                "event_type": "search",
                "query": "running trousers, XL, blue",
                "filters": {"size": "XL", "colour": "blue"},
                "channel": "web",
                "timestamp": now - 2 * MIN,
            },
            {"customer_id": customer, "event_type": "view", "item_id": page, "channel": "web", "timestamp": now - MIN},
        ]
    )
    size = dict(zip(live_bundle.column("item_id"), live_bundle.column("size")))
    colour = dict(zip(live_bundle.column("item_id"), live_bundle.column("colour")))
    carried = live.recommend(customer, context="product_page", item_id=page, k=6, now=now)
    assert len(carried["items"]) == 6 and all(size[i] == "XL" and colour[i] == "blue" for i in items_of(carried))
    own = live.recommend(customer, context="product_page", item_id=page, k=6, now=now, filters={"colour": "black"})
    assert own["items"] and all(
        size[i] == "XL" and colour[i] == "black" for i in items_of(own)
    )  # the page's filter wins per key
    off = live.recommend(customer, context="product_page", item_id=page, k=6, now=now, use_search_filters=False)
    assert not all(size[i] == "XL" and colour[i] == "blue" for i in items_of(off))
    home = live.recommend(customer, context="home", k=6, now=now)  # home does not carry search filters (serve.yaml)
    assert not all(size[i] == "XL" and colour[i] == "blue" for i in items_of(home))
    stale = live.recommend(customer, context="product_page", item_id=page, k=6, now=now + 31 * MIN)
    assert not all(
        size[i] == "XL" and colour[i] == "blue" for i in items_of(stale)
    )  # older than search_filters_minutes


def test_an_item_set_out_of_stock_disappears_from_the_next_answer(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    web, app, _ = journey_events(live_bundle, now)
    live.post_events([dict(e, customer_id=customer) for e in web + app])
    first = live.recommend(customer, context="home", k=10, now=now)
    gone = first["items"][0]["item_id"]
    assert first["items"][0]["in_stock"] is True
    r = live.client.put("/v1/catalog/items", json={"items": [{"item_id": gone, "in_stock": False, "price": 1.5}]})
    assert r.status_code == 200 and r.json()["updated"] == [gone] and r.json()["new"] == {}
    try:
        second = live.recommend(customer, context="home", k=10, now=now)
        assert gone not in items_of(second) and len(items_of(second)) == 10
        stateless = live.client.post("/v1/recommendations", json={"events": [], "k": 50, "now": now}).json()
        assert gone not in items_of(stateless) and all(x["in_stock"] for x in stateless["items"])
        # the live price is what the answer shows, and what a price filter reads
        cheap = live.client.post(
            "/v1/recommendations",
            json={"events": [], "k": 5, "filters": {"price": {"max": 2.0}, "in_stock": False}, "now": now},
        ).json()
        assert cheap["items"] == [] or gone in items_of(cheap)
    finally:
        live.client.put(
            "/v1/catalog/items",
            json={
                "items": [
                    {
                        "item_id": gone,
                        "in_stock": True,
                        "price": live_bundle.column("price")[live_bundle.column("item_id").index(gone)],
                    }
                ]
            },
        )
    assert gone in items_of(live.recommend(customer, context="home", k=10, now=now))


def test_a_new_item_is_recommended_in_its_category_without_retraining(live, live_bundle):
    now = int(time.time() * 1000)
    ids = live_bundle.column("item_id")
    rec = live.service.default
    # the twin: a sweater whose nearest neighbour an item with its very attributes would be (an
    # untrained model's id embeddings are random, so not every item qualifies; one must)
    candidates = category_items(live_bundle, "Apparel/Tops/Sweaters")
    rows = torch.tensor([rec.internal_id(c) for c in candidates])
    with torch.no_grad():
        attr = rec.model.vectors_from_rows(rec.model.item_embedding.attribute_part(rows)).numpy()
    attr /= np.linalg.norm(attr, axis=1, keepdims=True)
    own = rec.unit[rows.numpy()]
    others = own @ rec.unit[1:].T
    others[np.arange(len(rows)), rows.numpy() - 1] = -np.inf
    margin = (own * attr).sum(axis=1) - others.max(axis=1)
    assert margin.max() > 0, "no sweater of this bundle has its attribute vector as its nearest neighbour"
    twin = candidates[int(np.argmax(margin))]
    row = {k: live_bundle.column(k)[ids.index(twin)] for k in ("category", "brand", "price", "size", "colour")}
    new_id = uid("NEW")
    r = live.client.put(
        "/v1/catalog/items",
        json={"items": [{"item_id": new_id, "title": "Sweater, new season", "in_stock": True, **row}]},
    )
    assert r.status_code == 200 and r.json()["new"] == {new_id: {"vector": "attributes"}}
    # its vector is the model's attribute part for these attributes: the twin's, computed from the model's own tables
    with torch.no_grad():
        twin_attr = rec.model.item_embedding.attribute_part(torch.tensor([rec.internal_id(twin)]))
        reference = rec.model.vectors_from_rows(twin_attr)[0].numpy()
    assert np.allclose(rec.vectors[rec.internal_id(new_id)], reference, atol=1e-6)
    # the twin's product page shows it, marked new, first among the similar items (exact cosine)
    similar = live.client.get(f"/v1/items/{twin}/similar", params={"k": 5}).json()
    assert similar["items"][0]["item_id"] == new_id and similar["items"][0]["new"] is True
    assert similar["items"][0]["title"] == "Sweater, new season" and similar["items"][0]["category"] == row["category"]
    assert all(not x["new"] for x in similar["items"][1:])
    # and so does the page's non-personal answer (a shopper without consent)
    page = live.client.post(
        "/v1/recommendations",
        json={
            "events": [],
            "consent": False,
            "k": 10,
            "now": now,
            "context": {"type": "product_page", "item_id": twin},
        },
    ).json()
    assert page["items"][0]["item_id"] == new_id and page["items"][0]["reason"] == f"similar to {twin}"
    # the new item's own page: its nearest items by exact cosine, as for any catalogue item
    own = live.client.get(f"/v1/items/{new_id}/similar", params={"k": 3}).json()
    new_row = rec.internal_id(new_id)
    cos = rec.unit @ rec.unit[new_row]
    cos[[0, new_row]] = -np.inf
    cos[~rec.stock_ok] = -np.inf
    expected = [rec._ext(int(i)) for i in np.argsort(-cos, kind="stable")[:3]]
    assert [x["item_id"] for x in own["items"]] == expected


def test_a_batch_of_100_with_3_bad_events_stores_97_and_names_the_3(live, live_bundle):
    now = int(time.time() * 1000)
    customer = uid("cust")
    items = live_bundle.column("item_id")
    events = [
        {
            "customer_id": customer,
            "event_type": "view",
            "item_id": items[j],
            "channel": "app",
            "timestamp": now - (200 - j) * MIN,
        }
        for j in range(100)
    ]
    events[7]["event_type"] = "teleport"
    del events[42]["item_id"]
    events[99]["timestamp"] = "yesterday"
    answer = live.post_events(events)
    assert answer["received"] == 100 and answer["stored"] == 97
    assert [(x["index"], x["reason"]) for x in answer["rejected"]] == [
        (7, "unknown_event_type"),
        (42, "missing_item_id"),
        (99, "unparseable_timestamp"),
    ]
    assert "teleport" in answer["rejected"][0]["detail"] and "yesterday" in answer["rejected"][2]["detail"]
    stored = live.service.store.journey(pseudonymise(customer, KEY), now).events
    assert [e.item_id for e in stored] == [items[j] for j in range(99) if j not in (7, 42)]


BAD = [
    ("post", "/v1/customers/c1/recommendations", {"context": "moon"}, 422, "context"),
    ("post", "/v1/customers/c1/recommendations", {"k": 0}, 422, "k"),
    ("post", "/v1/customers/c1/recommendations", {"filters": {"sise": "XL"}}, 422, "unknown filter attribute 'sise'"),
    ("post", "/v1/customers/c1/recommendations", {"events": [{"item_id": "x", "channel": "pigeon"}]}, 422, "channel"),
    ("post", "/v1/events", {"events": [{}] * 1001}, 422, "at most 1000"),
    ("post", "/v1/events", {"evnts": []}, 422, "evnts"),
    ("post", "/v1/identify", {"anonymous_id": "a"}, 422, "customer_id"),
    ("put", "/v1/customers/c1/consent", {"personalisation": "maybe"}, 422, "personalisation"),
    ("put", "/v1/catalog/items", {"items": [{"item_id": "x", "price": -3}]}, 422, "price"),
    ("put", "/v1/catalog/items", {"items": [{"item_id": "x", "colour": "red", "flavour": "salty"}]}, 422, "flavour"),
    ("put", "/v1/catalog/items", {"items": [{"item_id": "brand-new", "in_stock": True}]}, 422, "category"),
    ("put", "/v1/catalog/items", {"items": []}, 422, "items"),
]


@pytest.mark.parametrize("method, path, body, status, message", BAD)
def test_bad_input_gets_a_4xx_naming_the_field(live, method, path, body, status, message):
    r = getattr(live.client, method)(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.text


def test_an_unknown_customer_gets_a_warning_and_the_non_personal_path(live):
    now = int(time.time() * 1000)
    answer = live.recommend(uid("stranger"), context="home", k=5, now=now)
    assert len(answer["items"]) == 5 and answer["warnings"][0].startswith("customer unknown to the store")
    plain = live.client.post("/v1/recommendations", json={"events": [], "k": 5, "now": now}).json()
    assert items_of(answer) == items_of(plain)
    assert 'status="500"' not in live.client.get("/metrics").text


@pytest.mark.parametrize("context", CONTEXT_TYPES)
def test_every_shipped_context_answers_with_its_own_settings(live, live_bundle, context):
    """The HTTP answer at each touchpoint equals the Recommender called directly with that
    context's rule overrides as configs/serve.yaml states them."""
    now = int(time.time() * 1000)
    customer = uid("cust")
    web, app, store = journey_events(live_bundle, now)
    live.post_events([dict(e, customer_id=customer) for e in web + app + store])
    page = web[0]["item_id"] if context in ("product_page", "search") else None
    answer = live.recommend(customer, context=context, item_id=page, k=8, now=now)
    cfg = OmegaConf.to_object(compose("serve", ["bundle=x"]))
    assert set(cfg.contexts) == set(CONTEXT_TYPES)
    rules = merge_rules(cfg.rules, cfg.contexts[context].rules)
    direct = Recommender.load(live_bundle.path)  # no context overrides of its own: the rules are passed in
    events = [Event(e["item_id"], e["event_type"], e["channel"], e["timestamp"]) for e in web + app + store]
    expected = direct.recommend(RecommendRequest(events, k=8, context=Context(context, page), now_ms=now), rules)
    assert items_of(answer) == [x.item_id for x in expected.items]
    assert [x["score"] for x in answer["items"]] == [round(x.score, 6) for x in expected.items]
    scores = [x["score"] for x in answer["items"]]
    assert scores == sorted(scores, reverse=True)
