"""HTTP load test of a running journeyrec service on this machine (127.0.0.1 only).

    python -m benchmarks loadtest --port 8000 --bundle PATH [--clients 50] [--rate 200] [--duration 60]
        [--max-requests 100000] [--events 50] [--k 20] [--filters '{"in_stock": true}'] [--save]

Design, so that the numbers mean what they say:

* ``--clients`` concurrent connections (HTTP/1.1 keep-alive), one request in flight each.
* ``--rate R`` > 0: **open loop**. Requests are *scheduled* at a fixed total rate R (client i
  sends at t0 + (i + j * clients) / R); latency is measured from the scheduled time, so a
  server that falls behind is charged for the queueing it causes (no coordinated omission).
  ``--rate 0``: **closed loop**, each client sends its next request as soon as it has the
  answer: this measures saturation throughput, and latency is then ~clients / throughput.
* Bounded: stops after ``--duration`` seconds or ``--max-requests`` requests, whichever first.
* Bodies are pre-built (``harness.recommendation_bodies``: ``--events`` random catalogue items of
  the bundle, views with some carts and purchases, timestamps), and the client is a minimal
  asyncio HTTP/1.1 client, so the load generator costs as little CPU as possible (it shares the
  machine with the server).

Reports offered rate, achieved throughput, errors (non-200 answers, connection failures) and
latency percentiles p50 / p95 / p99 / max; ``passed`` is false when there was any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import LOCAL_HOSTS, post_request, recommendation_bodies

__all__ = ["HTTP_SESSION", "add_arguments", "main", "run"]

# the session shape of the HTTP figures: minutes between events, four views per cart and purchase
HTTP_SESSION: dict[str, Any] = {"kinds": ("view",) * 4 + ("cart", "purchase"), "max_gap_ms": 600_000}


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(args: argparse.Namespace, payloads: list[bytes]) -> dict:
    loop = asyncio.get_running_loop()
    lat_sched: list[float] = []
    lat_send: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    t0 = loop.time() + 0.5
    deadline = t0 + args.duration
    interval = args.clients / args.rate if args.rate > 0 else 0.0

    async def client(i: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(args.host, args.port)
        j = 0
        try:
            while True:
                scheduled = t0 + (i / args.rate if args.rate > 0 else 0.0) + j * interval
                now = loop.time()
                if scheduled >= deadline or now >= deadline or sent >= args.max_requests:
                    return
                if scheduled > now:
                    await asyncio.sleep(scheduled - now)
                if sent >= args.max_requests:  # checked again after sleeping: the bound is exact
                    return
                sent += 1
                start = loop.time()
                writer.write(payloads[(i * 7919 + j) % len(payloads)])
                try:
                    status = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(args.host, args.port)
                    j += 1
                    continue
                end = loop.time()
                if status != 200:
                    errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
                lat_send.append(end - start)
                lat_sched.append(end - (scheduled if args.rate > 0 else start))
                j += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(args.clients)))
    wall = time.perf_counter() - started - 0.5
    ms = np.asarray(lat_sched) * 1000
    ms_send = np.asarray(lat_send) * 1000
    pct = lambda a, q: round(float(np.percentile(a, q)), 3) if len(a) else None  # noqa: E731
    return {
        "mode": "open loop" if args.rate > 0 else "closed loop",
        "clients": args.clients,
        "offered_rate_per_s": args.rate if args.rate > 0 else None,
        "duration_s": round(wall, 2),
        "requests": len(ms),
        "throughput_per_s": round(len(ms) / wall, 1) if wall > 0 else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "latency_ms": {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "max": pct(ms, 100)},
        "latency_from_send_ms": {"p50": pct(ms_send, 50), "p95": pct(ms_send, 95), "p99": pct(ms_send, 99)},
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bundle", type=Path, required=True, help="the served bundle (request bodies use its item ids)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rate", type=float, default=200.0, help="total offered requests/s (open loop); 0 = closed loop")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (upper bound)")
    p.add_argument("--max-requests", type=int, default=100_000, help="request count (upper bound)")
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--filters", default="{}", help="JSON object sent as filters")
    p.add_argument("--bodies", type=int, default=500, help="distinct request bodies to cycle through")


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    if args.host not in LOCAL_HOSTS:
        parser.error(f"--host {args.host!r}: this load test only targets this machine ({', '.join(LOCAL_HOSTS)})")
    if not (0 < args.duration <= 600) or not (0 < args.max_requests <= 1_000_000) or not (0 < args.clients <= 1000):
        parser.error("bounds: 0 < duration <= 600 s, 0 < max-requests <= 1e6, 0 < clients <= 1000")
    filters = json.loads(args.filters)
    payloads = [
        post_request(args.host, args.port, b)
        for b in recommendation_bodies(args.bundle, args.bodies, args.events, args.k, filters, **HTTP_SESSION)
    ]
    result = asyncio.run(run(args, payloads))
    result.update(events_per_request=args.events, k=args.k, filters=filters, passed=result["errors"] == 0)
    return [result]
