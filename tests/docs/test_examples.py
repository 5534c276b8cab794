"""The runnable examples under docs/examples/ run, and their answers say what the docs say of them
(docs/live_store.md prints live_tour.py's output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]


def tour_answers(stdout: str) -> list[tuple[str, int, dict]]:
    """live_tour.py's printout as (request line, status, answer) per call."""
    calls = []
    for block in stdout.split("$ ")[1:]:
        request, _, rest = block.partition("\n")
        status_line = next(line for line in rest.splitlines() if line.startswith("-> "))
        answer = rest.split(status_line + "\n", 1)[1]
        calls.append((request.strip(), int(status_line[3:]), json.loads(answer)))
    return calls


def test_live_tour_runs_against_a_real_server_and_answers_as_documented(demo_bundle):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "live_tour.py"), "--bundle", str(demo_bundle.path)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = tour_answers(proc.stdout)
    assert [c[0] for c in calls] == [
        "POST /v1/events",
        "POST /v1/identify",
        "POST /v1/events",
        "POST /v1/customers/C0004711/recommendations",
        "PUT /v1/catalog/items",
        "PUT /v1/customers/C0004711/consent",
    ]
    assert [c[1] for c in calls] == [200] * 6
    intake, identify, purchase, recs, new_item, consent = (c[2] for c in calls)
    # the unknown event type is rejected by index with its reason; the two others are stored
    assert (intake["received"], intake["stored"]) == (3, 2)
    assert [(r["index"], r["reason"]) for r in intake["rejected"]] == [(2, "unknown_event_type")]
    # the anonymous visitor's events move to the customer on identification
    assert identify == {"linked": True, "events_moved": 2}
    assert purchase["stored"] == 1
    # three recommendations, none of them the coat just bought (a durable inside its repurchase window)
    catalog = pq.read_table(demo_bundle.path / "items.parquet").to_pylist()
    coat = next(r for r in catalog if r["category"] == "Apparel/Outerwear/Winter coats" and r["in_stock"])
    ids = [item["item_id"] for item in recs["items"]]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert coat["item_id"] not in ids
    # a model without item attributes gives a new item its category's vector
    assert new_item["new"] == {"NEW-COAT-1": {"vector": "category"}}
    # withdrawn consent deletes everything stored of the customer: the 2 moved events, the purchase
    # and the impression of the recommendations call
    assert consent == {"personalisation": False, "events_deleted": 4}
