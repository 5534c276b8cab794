"""The HTTP service on a real server on 127.0.0.1: endpoints, validation and limits (4xx, never
5xx), A/B variants, metrics, privacy of logs, the no-Lightning/MLflow import path, the CLI and
the load-test script."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks import harness
from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.serving import Recommender
from journeyrec.serving.app import create_app
from journeyrec.serving.observability import configure_logging
from journeyrec.serving.service import Service
from journeyrec.serving.settings import ExperimentConfig, LimitsConfig, VariantConfig

from serving_support import ThreadServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


EXPERIMENT = ExperimentConfig(
    name="own_brand_test",
    variants=[
        VariantConfig(name="control", share=0.5),
        VariantConfig(
            name="boosted", share=0.5, rules={"boosts": [{"attribute": "own_brand", "value": True, "weight": 0.3}]}
        ),
    ],
)


@pytest.fixture(scope="module")
def served(demo_bundle):
    log = io.StringIO()
    configure_logging("info", log)
    service = Service(
        Recommender.load(demo_bundle.path), EXPERIMENT, LimitsConfig(max_events=100, max_k=50, max_body_bytes=65_536)
    )
    service.warm_up()
    with ThreadServer(create_app(service)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client, service, log


def some_events(demo_bundle, n: int = 8, seed: int = 0) -> list[dict]:
    events = demo_bundle.sessions(1, min_len=n, seed=seed)[0][-n:]
    return [
        {"item_id": e.item_id, "event_type": e.event_type, "channel": e.channel, "timestamp": e.timestamp_ms}
        for e in events
    ]


def test_recommendations_roundtrip(served, demo_bundle):
    client, service, _ = served
    events = some_events(demo_bundle)
    r = client.post(
        "/v1/recommendations",
        json={"events": events, "k": 7, "filters": {"in_stock": True}, "user_id": "u-1", "context": {"type": "home"}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # no "intent": SASRec has no intent head
    assert set(body) == {"request_id", "items", "variant", "segment", "bundle_version", "warnings"}
    assert len(body["request_id"]) == 32 and r.headers["x-request-id"] == body["request_id"]
    fields = {"item_id", "score", "model_score", "reason", "new", "title", "category", "price", "in_stock"}
    assert len(body["items"]) == 7 and all(set(x) == fields for x in body["items"])
    catalog = {r["item_id"]: r for r in demo_bundle.catalog.to_pylist()}
    assert all(
        (x["title"], x["category"], x["price"], x["in_stock"])
        == tuple(catalog[x["item_id"]][f] for f in ("title", "category", "price", "in_stock"))
        for x in body["items"]
    )
    lean = client.post("/v1/recommendations", json={"events": events, "k": 7, "item_fields": False}).json()
    assert all(set(x) == {"item_id", "score", "model_score", "reason", "new"} for x in lean["items"])
    assert body["bundle_version"] == service.default.bundle_version and body["variant"] in ("control", "boosted")
    assert all(x["reason"].startswith(("similar to", "after", "goes with", "buy again")) for x in body["items"])
    iso = client.post(
        "/v1/recommendations", json={"events": [dict(e, timestamp="2026-03-01T10:00:00Z") for e in events], "k": 3}
    )
    assert iso.status_code == 200 and len(iso.json()["items"]) == 3


BAD = [
    ({"events": [], "k": 0}, 422, "greater than or equal to 1"),
    ({"events": [{"item_id": "x"}], "k": 1_000_000}, 422, "less than or equal to 50"),
    ({"events": "abc"}, 422, "list"),
    ({"events": [{"item_id": ["x"]}]}, 422, "item_id"),
    ({"events": [{"item_id": "x", "event_type": "teleport"}]}, 422, "event_type"),
    ({"events": [{"item_id": "x", "timestamp": "yesterday"}]}, 422, "timestamp"),
    ({"events": [], "k": "ten"}, 422, "k"),
    ({"events": [], "k": 2.5}, 422, "k"),
    ({"events": [], "consent": "maybe"}, 422, "consent"),
    ({"events": [], "surprise": 1}, 422, "surprise"),
    ({"k": 5}, 422, "events"),
    ({"events": [{"item_id": "x"}] * 101}, 422, "at most 100"),
    ({"events": [], "filters": {"sise": "XL"}}, 422, "unknown filter attribute 'sise'"),
    ({"events": [], "filters": {"price": {"min": "low"}}}, 422, "min"),
    ({"events": [], "filters": {"colour": ["x"] * 101}}, 422, "at most 100"),
    ({"events": [], "context": {"type": "moon"}}, 422, "context"),
]


@pytest.mark.parametrize("body, status, message", BAD)
def test_bad_requests_get_4xx_with_a_clear_message(served, body, status, message):
    client, _, _ = served
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == status, r.text
    assert message in r.text


def test_oversized_and_malformed_bodies(served):
    client, _, _ = served
    big = {"events": [{"item_id": "x" * 1000}] * 80}
    r = client.post("/v1/recommendations", json=big)
    assert r.status_code == 413 and "65536" in r.text
    chunked = client.post(
        "/v1/recommendations",
        content=iter([b'{"events": [', b'{"item_id": "' + b"y" * 70_000 + b'"}]}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    garbage = client.post("/v1/recommendations", content=b"{not json", headers={"content-type": "application/json"})
    assert garbage.status_code == 422


def test_empty_events_and_unknown_ids_only_get_warnings(served):
    client, _, _ = served
    r = client.post("/v1/recommendations", json={"events": [], "k": 5})
    assert r.status_code == 200 and len(r.json()["items"]) == 5 and "no events" in r.json()["warnings"][0]
    r = client.post("/v1/recommendations", json={"events": [{"item_id": "ghost-1"}, {"item_id": 42}], "k": 5})
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 5
    assert "ghost-1" in body["warnings"][0] and "'42'" in body["warnings"][0] and "non-personal" in body["warnings"][1]


def test_item_endpoints(served, demo_bundle):
    client, _, _ = served
    item = demo_bundle.column("item_id")[3]
    sim = client.get(f"/v1/items/{item}/similar", params={"k": 4})
    assert sim.status_code == 200 and len(sim.json()["items"]) == 4
    assert all(x["reason"] == f"similar to {item}" for x in sim.json()["items"])
    filtered = client.get(f"/v1/items/{item}/similar", params={"k": 4, "filters": json.dumps({"category": "Footwear"})})
    cats = dict(zip(demo_bundle.column("item_id"), demo_bundle.column("category")))
    assert filtered.status_code == 200 and all(
        cats[x["item_id"]].startswith("Footwear") for x in filtered.json()["items"]
    )
    comp = client.get(f"/v1/items/{item}/complements")
    assert comp.status_code == 200 and all(cats[x["item_id"]] != cats[item] for x in comp.json()["items"])
    assert client.get("/v1/items/ghost/similar").status_code == 404
    # an id with "/" reaches the handler (unknown item: its 404 names it; over the k limit: 422)
    slash = client.get("/v1/items/a%2Fb/similar")
    assert slash.status_code == 404 and "a/b" in slash.json()["detail"]
    assert client.get("/v1/items/%2F/complements", params={"k": 10_000}).status_code == 422
    assert client.get(f"/v1/items/{item}/similar", params={"k": 0}).status_code == 422
    assert client.get(f"/v1/items/{item}/complements", params={"filters": "[1]"}).status_code == 422
    assert client.get(f"/v1/items/{item}/complements", params={"filters": "{bad"}).status_code == 422


def test_variants_are_stable_per_user_and_carried_in_responses(served, demo_bundle):
    client, service, _ = served
    events = some_events(demo_bundle)
    seen = {}
    for u in range(40):
        variants = {
            client.post("/v1/recommendations", json={"events": events, "k": 3, "user_id": f"user-{u}"}).json()[
                "variant"
            ]
            for _ in range(2)
        }
        assert len(variants) == 1
        seen[u] = variants.pop()
        expected, _ = service.assigner.assign(pseudonymise(f"user-{u}", resolve_key(None, allow_demo_key=True)))
        assert seen[u] == expected.name
    assert set(seen.values()) == {"control", "boosted"}
    anonymous = client.post("/v1/recommendations", json={"events": events, "k": 3}).json()
    no_consent = client.post(
        "/v1/recommendations", json={"events": events, "k": 3, "user_id": "user-1", "consent": False}
    ).json()
    assert anonymous["variant"] == no_consent["variant"] == "control"


def test_no_consent_requests_leave_nothing_personal_in_logs(served, demo_bundle):
    client, service, log = served
    secret = "alice-4711@example.org"
    events = some_events(demo_bundle, n=10, seed=3)
    start = log.tell()
    r = client.post("/v1/recommendations", json={"events": events, "k": 6, "consent": False, "user_id": secret})
    empty = client.post("/v1/recommendations", json={"events": [], "k": 6, "consent": False})
    assert r.status_code == 200 and r.json()["items"] == empty.json()["items"]
    consented = client.post("/v1/recommendations", json={"events": events, "k": 6, "user_id": secret})
    assert consented.status_code == 200
    written = log.getvalue()[start:]
    lines = [json.loads(x) for x in written.splitlines()]
    assert len(lines) == 3 and [x["consent"] for x in lines] == [False, False, True]
    for needle in [secret, pseudonymise(secret, resolve_key(None, allow_demo_key=True))] + [
        e["item_id"] for e in events
    ]:
        assert needle not in written, needle
    metrics = client.get("/metrics").text
    assert 'journeyrec_fallbacks_total{reason="no_consent"}' in metrics


def test_health_readiness_metrics_and_docs(served):
    client, _, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["experiment"] == "own_brand_test"
    text = client.get("/metrics").text
    for name in (
        "journeyrec_requests_total{",
        "journeyrec_request_latency_seconds_bucket{",
        'le="+Inf"',
        "journeyrec_fallbacks_total",
        "journeyrec_variant_requests_total",
    ):
        assert name in text
    assert 'status="422"' in text and 'status="500"' not in text
    spec = client.get("/openapi.json").json()
    assert {"/v1/recommendations", "/v1/items/{item_id}/similar", "/v1/items/{item_id}/complements"} <= set(
        spec["paths"]
    )
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text


def test_docs_load_offline_from_packaged_assets(served):
    """/docs and /redoc reference only this server's own files (no CDN), and those files are there."""
    import re

    client, _, _ = served
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
        urls = [a or b for a, b in urls]
        assert urls and all(u.startswith("/") for u in urls), (page, urls)
        assert "http://" not in html and "https://" not in html, page
        for u in urls:
            r = client.get(u)
            assert r.status_code == 200 and len(r.content) > 100, u
    js = client.get("/static/docs/swagger-ui-bundle.js")
    assert (
        js.headers["content-type"].startswith(("application/javascript", "text/javascript"))
        and b"SwaggerUI" in js.content
    )


def test_intent_is_returned_when_the_model_has_an_intent_head(demo_bundle):
    import torch

    from journeyrec.models.sasrec import SASRec

    class WithIntent(SASRec):
        def purchase_intent(self, items, features=None, table=None):
            return torch.sigmoid(self.session_vectors(items, features, table).sum(-1))

    base = Recommender.load(demo_bundle.path)
    model = WithIntent.from_hparams(base.model.hparams)
    model.load_state_dict(base.model.state_dict())
    rec = Recommender(base.bundle_dir, base.manifest, model.eval(), base.index, base.vectors, base.catalog, base.stats)
    with ThreadServer(create_app(Service(rec, allow_demo_key=True))) as url:
        events = some_events(demo_bundle)
        r = httpx.post(f"{url}/v1/recommendations", json={"events": events, "k": 3}, timeout=30)
        assert r.status_code == 200 and 0.0 < r.json()["intent"] < 1.0
        r = httpx.post(f"{url}/v1/recommendations", json={"events": events, "k": 3, "consent": False}, timeout=30)
        assert r.json()["intent"] is None  # no personal prediction without consent


@pytest.mark.slow
def test_serving_path_imports_neither_lightning_nor_mlflow(demo_bundle):
    code = (
        "import sys; import journeyrec.serving.app, journeyrec.serving.server, journeyrec.config; "
        "from journeyrec.serving import Recommender, RecommendRequest; "
        f"r = Recommender.load({str(demo_bundle.path)!r}); "
        "r.recommend(RecommendRequest.from_items([str(r.item_ids[0])], k=3)); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'mlflow')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_loadtest_benchmark_reports_latency_and_errors(served, demo_bundle):
    client, _, _ = served
    port = client.base_url.port
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "loadtest",
            "--port",
            str(port),
            "--bundle",
            str(demo_bundle.path),
            "--clients",
            "4",
            "--rate",
            "60",
            "--duration",
            "2",
            "--max-requests",
            "80",
            "--events",
            "20",
            "--k",
            "10",
            "--filters",
            '{"in_stock": true}',
            "--bodies",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == 0 and report["mode"] == "open loop" and report["offered_rate_per_s"] == 60
    assert 20 <= report["requests"] <= 80 and report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["passed"] is True
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "loadtest",
            "--host",
            "10.0.0.1",
            "--port",
            "1",
            "--bundle",
            str(demo_bundle.path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert refused.returncode != 0 and "only targets this machine" in refused.stderr


@pytest.mark.slow
def test_serve_cli_starts_answers_and_logs_json(demo_bundle, tmp_path):
    log = tmp_path / "serve.log"
    with harness.served(demo_bundle.path, log, ["ab=own_brand", "rules.epsilon=0.1"]) as server:
        r = httpx.post(
            f"{server.url}/v1/recommendations",
            json={"events": [{"item_id": demo_bundle.column("item_id")[0]}], "k": 5, "user_id": "cli-user"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["variant"] in ("control", "own_brand")
    err = log.read_text()  # the service's whole output, once it has stopped
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert any(x.get("event") == "ready" for x in lines) and any(x.get("event") == "impression" for x in lines)
    assert (
        "cli-user" not in err and "POST /v1/recommendations" not in err
    )  # no access log: client addresses are personal
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "serve.py"), "bundle=/x", "rules.epsilonn=1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    assert bad.returncode != 0 and "epsilonn" in bad.stderr


def test_damaged_bundle_is_refused_at_start(demo_bundle, tmp_path):
    import shutil

    from journeyrec.bundle.format import BundleError

    d = tmp_path / "b"
    shutil.copytree(demo_bundle.path, d)
    (d / "stats.npz").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="stats.npz"):
        Recommender.load(d)
