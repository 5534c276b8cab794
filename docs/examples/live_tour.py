"""The live knowledge base in six calls, printed as request and answer (docs/live_store.md shows
this script's output):

    python docs/examples/live_tour.py --bundle outputs/<date>/<time>/bundle

It starts scripts/serve.py on a free 127.0.0.1 port with a new SQLite store in a temporary folder,
so nothing of an existing store is touched, and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]


def show(method: str, path: str, body: object, answer: httpx.Response) -> None:
    print(f"$ {method} {path}")
    if body is not None:
        print(json.dumps(body, indent=1))
    print(f"-> {answer.status_code}")
    print(json.dumps(answer.json(), indent=1))
    print()


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 120.0) -> None:
    """Until the server answers /readyz; a server that exits or never gets ready ends the tour with
    the end of its log, instead of a wait without end."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(f"scripts/serve.py exited with {proc.returncode}: " + " | ".join(tail))
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"scripts/serve.py was not ready after {timeout_s:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    args = ap.parse_args()
    catalog = pq.read_table(Path(args.bundle) / "items.parquet").to_pylist()
    coats = [r for r in catalog if r["category"] == "Apparel/Outerwear/Winter coats" and r["in_stock"]]
    cams = [r for r in catalog if r["category"].startswith("Electronics/Cameras/Mirrorless") and r["in_stock"]]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "serve.log", "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "scripts" / "serve.py"),
                f"bundle={args.bundle}",
                f"port={port}",
                f"store.path={tmp}/journeys.sqlite",
                "log_level=warning",
            ],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, url, Path(log.name))
            now = 1_790_000_000_000  # fixed, so that the output is reproducible
            http = httpx.Client(base_url=url, timeout=30)
            calls = [
                (
                    "POST",
                    "/v1/events",
                    {
                        "events": [
                            {
                                "anonymous_id": "cookie-81f2",
                                "session_id": "web-1",
                                "event_type": "view",
                                "item_id": cams[0]["item_id"],
                                "channel": "web",
                                "timestamp": "2026-09-21T08:10:00Z",
                            },
                            {
                                "anonymous_id": "cookie-81f2",
                                "session_id": "web-1",
                                "event_type": "search",
                                "query": "winter coat",
                                "filters": {"size": "L"},
                                "channel": "web",
                                "timestamp": "2026-09-21T08:11:00Z",
                            },
                            {
                                "anonymous_id": "cookie-81f2",
                                "event_type": "teleport",
                                "channel": "web",
                                "timestamp": "2026-09-21T08:12:00Z",
                            },
                        ]
                    },
                ),
                ("POST", "/v1/identify", {"anonymous_id": "cookie-81f2", "customer_id": "C0004711"}),
                (
                    "POST",
                    "/v1/events",
                    {
                        "events": [
                            {
                                "customer_id": "C0004711",
                                "event_type": "purchase",
                                "item_id": coats[0]["item_id"],
                                "channel": "store",
                                "timestamp": "2026-09-21T09:00:00Z",
                                "price": coats[0]["price"],
                            }
                        ]
                    },
                ),
                ("POST", "/v1/customers/C0004711/recommendations", {"context": "call_centre", "k": 3, "now": now}),
                (
                    "PUT",
                    "/v1/catalog/items",
                    {
                        "items": [
                            {
                                "item_id": "NEW-COAT-1",
                                "title": "Winter coat, new season",
                                "category": "Apparel/Outerwear/Winter coats",
                                "brand": coats[1]["brand"],
                                "price": 199.0,
                                "size": "L",
                                "colour": "navy",
                                "in_stock": True,
                            }
                        ]
                    },
                ),
                ("PUT", "/v1/customers/C0004711/consent", {"personalisation": False}),
            ]
            for method, path, body in calls:
                show(method, path, body, http.request(method, path, json=body))
            http.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
