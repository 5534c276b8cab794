"""The live store across real service processes (scripts/serve.py on 127.0.0.1): two replicas
sharing one Redis see each other's writes at once, and a SIGKILL of the service during a stream of
intake requests loses no event whose request was answered 2xx (the embedded backend)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from redis_support import redis_server  # noqa: F401 - fixture

from benchmarks.harness import Server, free_port, start_server
from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.serving.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
MIN = 60_000


def serve(bundle: Path, log: Path, *overrides: str) -> Server:
    """scripts/serve.py in its own process on a free 127.0.0.1 port, ready to answer (the harness's
    launcher: its output in ``log``, shown when it fails to start)."""
    port = free_port()
    return Server(start_server(Path(bundle), port, log, ["log_level=warning", *overrides]), port, log)


@pytest.mark.slow
def test_two_replicas_sharing_one_redis_see_each_others_writes(live_bundle, redis_server, tmp_path):  # noqa: F811
    store = ["store=redis", f"store.url={redis_server.url}", f"store.prefix=rep{uuid.uuid4().hex[:6]}"]
    a = serve(live_bundle.path, tmp_path / "a.log", *store)
    b = serve(live_bundle.path, tmp_path / "b.log", *store)
    try:
        now = int(time.time() * 1000)
        customer = f"cust-{uuid.uuid4().hex[:8]}"
        items = live_bundle.column("item_id")
        events = [
            {"event_type": "view", "item_id": items[40 + j], "channel": "web", "timestamp": now - (10 - j) * MIN}
            for j in range(4)
        ]
        before = httpx.post(
            f"{b.url}/v1/customers/{customer}/recommendations", json={"k": 8, "now": now}, timeout=30
        ).json()
        r = httpx.post(
            f"{a.url}/v1/events", json={"events": [dict(e, customer_id=customer) for e in events]}, timeout=30
        )
        assert r.status_code == 200 and r.json()["stored"] == 4
        after = httpx.post(
            f"{b.url}/v1/customers/{customer}/recommendations", json={"k": 8, "now": now}, timeout=30
        ).json()
        stateless = httpx.post(
            f"{b.url}/v1/recommendations", json={"events": events, "k": 8, "now": now, "user_id": customer}, timeout=30
        ).json()
        assert before["warnings"] and [x["item_id"] for x in after["items"]] == [
            x["item_id"] for x in stateless["items"]
        ]
        assert [x["item_id"] for x in after["items"]] != [x["item_id"] for x in before["items"]]
        # the live catalogue too: out of stock on A is gone from B's next answer; a new item on A is served by B
        gone = after["items"][0]["item_id"]
        new_id = f"NEW-{uuid.uuid4().hex[:6]}"
        cat = live_bundle.column("category")[items.index(gone)]
        r = httpx.put(
            f"{a.url}/v1/catalog/items",
            json={
                "items": [{"item_id": gone, "in_stock": False}, {"item_id": new_id, "category": cat, "in_stock": True}]
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        again = httpx.post(
            f"{b.url}/v1/customers/{customer}/recommendations", json={"k": 8, "now": now}, timeout=30
        ).json()
        assert gone not in [x["item_id"] for x in again["items"]]
        similar = httpx.get(f"{b.url}/v1/items/{new_id}/similar", params={"k": 3}, timeout=30)
        assert similar.status_code == 200 and len(similar.json()["items"]) == 3
    finally:
        a.stop(), b.stop()


@pytest.mark.slow
def test_sigkill_during_intake_loses_no_acknowledged_event(live_bundle, tmp_path):
    path = tmp_path / "journeys.sqlite"
    served = serve(
        live_bundle.path,
        tmp_path / "serve.log",
        f"store.path={path}",
        "store.max_events=100000",
        "store.max_purchases=100000",
    )
    items = live_bundle.column("item_id")
    now = int(time.time() * 1000)
    acked: dict[str, set[int]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    answered = threading.Semaphore(0)

    def stream(worker: int) -> None:
        customer = f"kill-{worker}"
        acked[customer] = set()
        n = 0
        with httpx.Client(base_url=served.url, timeout=10) as client:
            while not stop.is_set() and n < 20_000:
                batch = [
                    {
                        "customer_id": customer,
                        "event_type": "view",
                        "item_id": items[(n + j) % len(items)],
                        "channel": "app",
                        "timestamp": now - 100 * MIN + worker * 10 + (n + j) * 1000,
                    }
                    for j in range(25)
                ]
                n += 25
                try:
                    r = client.post("/v1/events", json={"events": batch})
                except httpx.TransportError:
                    return  # the service is gone: this request was never acknowledged
                if r.status_code == 200 and r.json()["stored"] == len(batch):
                    with lock:
                        acked[customer].update(e["timestamp"] for e in batch)
                    answered.release()

    workers = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
    for t in workers:
        t.start()
    for _ in range(40):  # let some requests be acknowledged, then kill mid-stream
        assert answered.acquire(timeout=60)
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait(timeout=30)
    stop.set()
    for t in workers:
        t.join(timeout=30)
    total = sum(len(v) for v in acked.values())
    assert total >= 40 * 25
    restarted = serve(live_bundle.path, tmp_path / "restart.log", f"store.path={path}", "store.max_events=100000")
    # (it opened the same file)
    restarted.stop()
    store = SQLiteStore(path, max_events=100_000)
    key = resolve_key(None, allow_demo_key=True)
    for customer, stamps in acked.items():
        held = {e.timestamp_ms for e in store.journey(pseudonymise(customer, key), now).events}
        assert stamps <= held, f"{customer}: {len(stamps - held)} acknowledged events lost"
    store.close()
