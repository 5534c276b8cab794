"""The serving process keeps its start-up objects out of the garbage collector's walks and
reports its collections: GCPauses counts each collection by generation, freeze_startup takes the
live objects out of the tracked generations, and a real scripts/serve.py process shows both at
/metrics."""

from __future__ import annotations

import gc
import json

import httpx
import pytest

from benchmarks.harness import served
from journeyrec.serving.collector import GCPauses, freeze_startup


def test_gc_pauses_counts_each_collection_by_generation_until_uninstalled():
    pauses = GCPauses().install()
    try:
        gc.collect(2)
        gc.collect(0)
        assert pauses.collections[2] >= 1 and pauses.collections[0] >= 1
        assert pauses.seconds[2] > 0 and 0 < pauses.longest[2] <= pauses.seconds[2]
        assert pauses.install() is pauses and gc.callbacks.count(pauses._callback) == 1  # once only
    finally:
        pauses.uninstall()
    before = list(pauses.collections)
    gc.collect(2)
    assert pauses.collections == before and pauses._callback not in gc.callbacks
    lines = pauses.render()
    assert f'journeyrec_gc_collections_total{{generation="2"}} {before[2]}' in lines


def test_freeze_startup_takes_the_live_objects_out_of_the_collected_generations():
    live = [{"n": i} for i in range(50_000)]  # long-lived containers, as a loaded service holds
    try:
        frozen = freeze_startup()
        assert frozen >= len(live) and gc.get_freeze_count() == frozen
        assert len(gc.get_objects()) < len(live)  # no generation holds them any more
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0 and len(gc.get_objects()) >= len(live)


@pytest.mark.slow  # a real scripts/serve.py process
def test_the_server_freezes_its_start_up_and_shows_its_collections(demo_bundle, tmp_path):
    item = str(demo_bundle.column("item_id")[0])
    body = {"events": [{"item_id": item, "event_type": "view"}], "k": 5}
    with served(demo_bundle.path, tmp_path / "server.log", ["threads=1"]) as server:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as c:
            for _ in range(200):
                assert c.post("/v1/recommendations", json=body).status_code == 200
            metrics = dict(
                line.rsplit(" ", 1) for line in c.get("/metrics").text.splitlines() if line.startswith("journeyrec_gc")
            )
    # torch, FastAPI and the bundle: far more objects than 200 requests leave behind
    assert int(metrics["journeyrec_gc_frozen_objects"]) > 50_000
    assert int(metrics['journeyrec_gc_collections_total{generation="0"}']) > 0
    assert float(metrics['journeyrec_gc_pause_seconds_total{generation="0"}']) > 0
    ready = next(json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if '"ready"' in line)
    # frozen once, at the start: the count only loses the frozen objects freed since
    assert (
        0.99 * ready["gc_frozen_objects"] <= int(metrics["journeyrec_gc_frozen_objects"]) <= ready["gc_frozen_objects"]
    )
