"""API robustness: property-based requests generated from the service's own OpenAPI schema
(hypothesis), sent to a real ``scripts/serve.py`` process on 127.0.0.1. No input gets a 5xx,
the size limits hold (events, k, filter values, body bytes), and the service stays up.

The strategy walks the schema served at ``/openapi.json`` (``$ref``, ``anyOf``, objects with
required and optional properties, arrays with ``maxItems``, bounded integers, enums, date-times)
and, at every node, sometimes substitutes an arbitrary JSON value (wrong types, NaN, huge
numbers, unicode) or oversteps a bound by a little, so that both the deep paths (real item ids,
real catalogue filter attributes and values) and the validation edges are exercised. Examples
are bounded (``JOURNEYREC_FUZZ_EXAMPLES``, default 300 per endpoint kind) and the database is
off (nothing written to the repository).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness import served

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"max_events": 40, "max_k": 30, "max_body_bytes": 16_384, "max_filter_values": 8}
EXAMPLES = int(os.environ.get("JOURNEYREC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


class Server:
    def __init__(self, proc, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


@pytest.fixture(scope="module")
def server(demo_bundle, tmp_path_factory):
    log = tmp_path_factory.mktemp("api-fuzz") / "server.log"
    with served(demo_bundle.path, log, [f"limits.{k}={v}" for k, v in LIMITS.items()] + ["threads=1"]) as running:
        s = Server(running.proc, running.port, log)
        try:
            yield s
        finally:
            s.client.close()


# --------------------------------------------------------------------------- strategies
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


class SchemaStrategies:
    """Hypothesis strategies for JSON documents of an OpenAPI schema, with domain hints for the
    fields whose valid values come from the bundle (item ids, filter attributes and values).
    ``strict``: documents the schema accepts (most get a 200, reaching the whole pipeline);
    otherwise any node may also be an arbitrary JSON value, an unknown key or a bound overstepped."""

    def __init__(
        self, openapi: dict, item_ids: list[str], filter_values: dict[str, list], strict: bool = False
    ) -> None:
        self.components = openapi.get("components", {}).get("schemas", {})
        self.item_ids = st.sampled_from(item_ids)
        self.filter_values = filter_values
        self.strict = strict

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.components[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def valid(self, node: dict, name: str = "") -> st.SearchStrategy:
        node = self.resolve(node)
        if name == "item_id":
            return st.one_of(*[self.item_ids] * (8 if self.strict else 2), st.text(max_size=20), st.integers(-5, 10**6))
        if name == "filters":
            return self.filters(node)
        for key in ("anyOf", "oneOf"):
            if key in node:
                return st.one_of([self.node(sub, name) for sub in node[key]])
        if "allOf" in node and len(node["allOf"]) == 1:
            return self.node(node["allOf"][0], name)
        if "enum" in node:
            return (
                st.sampled_from(node["enum"])
                if self.strict
                else st.one_of(st.sampled_from(node["enum"]), st.text(max_size=12))
            )
        if "const" in node:
            return st.just(node["const"])
        kind = node.get("type")
        if kind == "object":
            props = node.get("properties", {})
            required = set(node.get("required", []))
            extra = st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=1)
            base = st.fixed_dictionaries(
                {k: self.node(v, k) for k, v in props.items() if k in required},
                optional={k: self.node(v, k) for k, v in props.items() if k not in required},
            )
            return base if self.strict else st.one_of(base, base, base, st.builds(lambda a, b: {**b, **a}, base, extra))
        if kind == "array":
            limit = node.get("maxItems")
            items = self.node(node.get("items", {}), name)
            sizes = (
                st.integers(0, 6) if limit is None else st.one_of(st.integers(0, 6), st.integers(limit - 1, limit + 2))
            )
            if self.strict:
                sizes = st.integers(0, min(8, limit if limit is not None else 8))
            return sizes.flatmap(lambda n: st.lists(items, min_size=n, max_size=n))
        if kind == "integer":
            lo, hi = node.get("minimum"), node.get("maximum")
            if lo is None and hi is None:
                return st.one_of(st.integers(-(2**64), 2**64), st.integers(1_600_000_000_000, 1_800_000_000_000))
            lo = -(2**40) if lo is None else lo
            hi = 2**40 if hi is None else hi
            if self.strict:
                return st.integers(lo, hi)
            return st.one_of(
                st.integers(lo, min(hi, lo + 50)), st.integers(lo - 2, lo + 1), st.integers(hi - 1, hi + 2)
            )
        if kind == "number":
            return st.floats(allow_nan=not self.strict, allow_infinity=not self.strict)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "string":
            if node.get("format") == "date-time":
                iso = st.datetimes().map(lambda d: d.isoformat() + "Z")
                return iso if self.strict else st.one_of(iso, st.text(max_size=25))
            return st.text(max_size=(node.get("maxLength") or 30) + (0 if self.strict else 5))
        return ANY_JSON

    def node(self, node: dict, name: str = "") -> st.SearchStrategy:
        """A valid value (most of the time, when not strict: else an arbitrary JSON value)."""
        return self.valid(node, name) if self.strict else st.one_of(*([self.valid(node, name)] * 6), ANY_JSON)

    def filters(self, node: dict) -> st.SearchStrategy:
        limit = LIMITS["max_filter_values"]

        def value(attr: str) -> st.SearchStrategy:
            known = self.filter_values.get(attr) or [None]
            if self.strict:
                return st.one_of(st.sampled_from(known), st.lists(st.sampled_from(known), min_size=1, max_size=limit))
            one = st.one_of(st.sampled_from(known), JSON_SCALARS)
            return st.one_of(
                one,
                st.lists(one, min_size=0, max_size=limit + 2),
                st.fixed_dictionaries({}, optional={"min": JSON_SCALARS, "max": JSON_SCALARS}),
                ANY_JSON,
            )

        if self.strict:
            attr = st.sampled_from(sorted(self.filter_values))
            return st.one_of(st.just({}), attr.flatmap(lambda a: value(a).map(lambda v: {a: v})))
        attrs = st.one_of(st.sampled_from(sorted(self.filter_values)), st.text(max_size=10))
        return (
            attrs.flatmap(lambda a: st.tuples(st.just(a), value(a))).map(lambda kv: {kv[0]: kv[1]})
            | st.dictionaries(st.text(max_size=6), ANY_JSON, max_size=2)
            | st.just({})
        )


@pytest.fixture(scope="module")
def schema(server, demo_bundle) -> tuple[dict, SchemaStrategies]:
    openapi = server.client.get("/openapi.json").json()
    catalog = demo_bundle.catalog
    values = {}
    for name in catalog.column_names:
        if name == "item_id":
            continue
        col = catalog.column(name).to_pylist()
        flat = [x for v in col[:500] for x in (v if isinstance(v, list) else [v]) if x is not None]
        values[name] = sorted(set(flat), key=str)[:50]
    ids = [str(x) for x in catalog.column("item_id").to_pylist()]
    return openapi, SchemaStrategies(openapi, ids, values), SchemaStrategies(openapi, ids, values, strict=True)


def body_schema(openapi: dict, path: str) -> dict:
    return openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def assert_answered(r: httpx.Response, sent: object) -> None:
    assert r.status_code < 500, f"{r.status_code} for {sent!r:.2000}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith(("application/json", "text/plain")), r.headers


def encode(doc: object) -> bytes:
    # Python's encoder writes NaN / Infinity (non-standard JSON that Python's decoder, and so the
    # server, accepts): exactly the kind of input that must not reach the pipeline as a number
    return json.dumps(doc, allow_nan=True).encode()


# --------------------------------------------------------------------------- properties
@pytest.mark.slow
def test_openapi_schema_carries_the_limits(schema):
    openapi, _, _ = schema
    body = SchemaStrategies(openapi, ["x"], {}).resolve(body_schema(openapi, "/v1/recommendations"))
    props = body["properties"]
    assert props["events"]["maxItems"] == LIMITS["max_events"]
    k = SchemaStrategies(openapi, ["x"], {}).resolve(props["k"])
    assert k["maximum"] == LIMITS["max_k"] and k["minimum"] == 1


@pytest.mark.slow
def test_recommendations_never_5xx(server, schema):
    openapi, fuzzy, strict = schema
    body = body_schema(openapi, "/v1/recommendations")
    docs = st.one_of(strict.node(body), fuzzy.node(body))

    @FUZZ
    @given(doc=docs)
    def check(doc):
        raw = encode(doc)
        r = server.client.post("/v1/recommendations", content=raw, headers={"content-type": "application/json"})
        assert_answered(r, doc)
        if len(raw) > LIMITS["max_body_bytes"]:
            assert r.status_code == 413, r.text[:300]
            return
        if isinstance(doc, dict) and isinstance(doc.get("events"), list) and len(doc["events"]) > LIMITS["max_events"]:
            assert r.status_code == 422 and "events" in r.text
        if (
            isinstance(doc, dict)
            and isinstance(doc.get("k"), int)
            and not isinstance(doc["k"], bool)
            and doc["k"] > LIMITS["max_k"]
        ):
            assert r.status_code == 422 and "k" in r.text
        if r.status_code == 200:
            answer = r.json()
            k = doc.get("k", 10)
            assert len(answer["items"]) <= k and all(math.isfinite(x["score"]) for x in answer["items"])

    check()


def test_item_endpoints_never_5xx(server, schema):
    openapi, fuzzy, strict = schema
    item = st.one_of(strict.item_ids, strict.item_ids, st.text(min_size=1, max_size=30))
    k = st.one_of(st.none(), st.integers(1, LIMITS["max_k"]), st.integers(-3, LIMITS["max_k"] + 3), st.text(max_size=5))
    filters = st.one_of(
        st.none(),
        strict.filters({}).map(json.dumps),
        fuzzy.filters({}).map(lambda f: json.dumps(f, allow_nan=True)),
        st.text(max_size=30),
    )

    @FUZZ
    @given(kind=st.sampled_from(["similar", "complements"]), item=item, k=k, filters=filters)
    def check(kind, item, k, filters):
        params = {key: v for key, v in (("k", k), ("filters", filters)) if v is not None}
        r = server.client.get(f"/v1/items/{quote(item, safe='')}/{kind}", params=params)
        assert_answered(r, (kind, item, params))
        if isinstance(k, int) and k > LIMITS["max_k"]:
            assert r.status_code == 422
        if r.status_code == 200:
            assert len(r.json()["items"]) <= (k if isinstance(k, int) else 10)

    check()


def test_arbitrary_bytes_and_headers_never_5xx(server):
    @FUZZ
    @given(
        raw=st.binary(max_size=3000),
        ctype=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
    )
    def check(raw, ctype):
        r = server.client.post("/v1/recommendations", content=raw, headers={"content-type": ctype} if ctype else {})
        assert_answered(r, raw)
        assert 400 <= r.status_code < 500  # 400 undecodable, 413 too large, 422 invalid

    check()


def test_feedback_and_report_endpoints_never_5xx_and_never_count_twice(server, schema, demo_bundle):
    """POST /v1/feedback with generated bodies (real request ids and items of lists this server
    served, among arbitrary ones), GET /v1/ab/report and /v1/stats with generated parameters: no
    5xx; and however often a reaction comes back among them, it is counted once."""
    openapi, fuzzy, strict = schema
    c = server.client
    item = str(demo_bundle.column("item_id")[0])
    lists = [
        c.post("/v1/recommendations", json={"events": [{"item_id": item}], "k": 5, "user_id": f"fz{j}"}).json()
        for j in range(4)
    ]
    rids = st.sampled_from([x["request_id"] for x in lists])
    shown = st.sampled_from(sorted({i["item_id"] for x in lists for i in x["items"]}))
    body = body_schema(openapi, "/v1/feedback")
    real = st.fixed_dictionaries(
        {"request_id": rids, "item_id": shown, "type": st.sampled_from(["click", "cart", "purchase", "dismiss"])}
    )
    docs = st.one_of(real, real.map(lambda d: {**d, "extra": 1}), strict.node(body), fuzzy.node(body))

    def clicks() -> int:
        return sum(s["clicks"] for s in c.get("/v1/stats", params={"context": "home"}).json()["slots"])

    @FUZZ
    @given(doc=docs)
    def post(doc):
        raw = encode(doc)
        r = c.post("/v1/feedback", content=raw, headers={"content-type": "application/json"})
        assert_answered(r, doc)
        assert r.status_code in (200, 404, 410, 413, 422), r.text
        if r.status_code == 200:
            assert r.json()["outcome"] in ("attributed", "duplicate")

    post()
    # every (list, item, click) counted at most once, whatever the fuzzer sent: the clicks counted
    # equal the distinct clicks held by the lists
    held = 0
    for x in lists:
        for i in x["items"]:
            for _ in range(3):
                c.post("/v1/feedback", json={"request_id": x["request_id"], "item_id": i["item_id"], "type": "click"})
            held += 1
    assert clicks() == held

    text = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["control", "none", "default"]))
    number = st.one_of(
        st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=6)
    )

    @FUZZ
    @given(path=st.sampled_from(["/v1/ab/report", "/v1/stats"]), a=text, b=text, x=number)
    def get(path, a, b, x):
        params = {
            k: v
            for k, v in (("experiment", a), ("control", b), ("alpha", x), ("context", a), ("n", x))
            if v is not None
        }
        r = c.get(path, params=params)
        assert_answered(r, (path, params))

    get()


def test_size_limits_hold(server, demo_bundle):
    c = server.client
    item = str(demo_bundle.column("item_id")[0])
    events = [{"item_id": item}] * (LIMITS["max_events"] + 1)
    r = c.post("/v1/recommendations", json={"events": events})
    assert r.status_code == 422 and f"at most {LIMITS['max_events']}" in r.text
    assert c.post("/v1/recommendations", json={"events": events[:-1], "k": LIMITS["max_k"]}).status_code == 200
    r = c.post("/v1/recommendations", json={"events": [], "k": LIMITS["max_k"] + 1})
    assert r.status_code == 422 and f"less than or equal to {LIMITS['max_k']}" in r.text
    r = c.post(
        "/v1/recommendations", json={"events": [], "filters": {"tags": ["x"] * (LIMITS["max_filter_values"] + 1)}}
    )
    assert r.status_code == 422 and f"at most {LIMITS['max_filter_values']}" in r.text
    big = b'{"events": [], "user_id": "' + b"x" * LIMITS["max_body_bytes"] + b'"}'
    r = c.post("/v1/recommendations", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(LIMITS["max_body_bytes"]) in r.text
    chunks = iter([b'{"events": [], "user_id": "', b"y" * LIMITS["max_body_bytes"], b'"}'])  # no content-length
    r = c.post("/v1/recommendations", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_out_of_range_times_get_422(server, demo_bundle):
    """Found by the fuzzer: a timestamp of 2**63 overflowed the pipeline's int64 arithmetic (500)."""
    item = str(demo_bundle.column("item_id")[0])
    for body in (
        {"events": [{"item_id": item, "timestamp": 2**63}]},
        {"events": [{"item_id": item}], "now": -(2**63) - 1},
        {"events": [{"item_id": item, "timestamp": 253_402_300_800_000}]},
    ):
        r = server.client.post("/v1/recommendations", json=body)
        assert r.status_code == 422 and ("timestamp" in r.text or "now" in r.text), r.text
    edge = server.client.post(
        "/v1/recommendations",
        json={
            "events": [
                {"item_id": item, "timestamp": "0001-01-01T00:00:00"},
                {"item_id": item, "timestamp": 253_402_300_799_999},
            ]
        },
    )
    assert edge.status_code in (200, 422), edge.text


@pytest.mark.slow  # after the property-based tests above (slow), in the same server
def test_service_stays_up(server, demo_bundle):
    """Run last in this module: after everything above, the same process answers, and its log
    holds no traceback or error line."""
    assert server.proc.poll() is None, "server process died"
    c = server.client
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    item = str(demo_bundle.column("item_id")[0])
    r = c.post("/v1/recommendations", json={"events": [{"item_id": item, "event_type": "view"}], "k": 5})
    assert r.status_code == 200 and len(r.json()["items"]) == 5
    metrics = c.get("/metrics").text
    assert 'status="5' not in metrics, [line for line in metrics.splitlines() if 'status="5' in line]
    # the generated requests reached the whole pipeline, not only validation
    ok = next(
        line
        for line in metrics.splitlines()
        if line.startswith('journeyrec_requests_total{endpoint="/v1/recommendations",status="200"}')
    )
    assert int(ok.rsplit(" ", 1)[1]) >= EXAMPLES // 10, ok
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and '"level": "error"' not in log, log[-3000:]
