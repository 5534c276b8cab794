"""Soak test: a fixed request rate against a server this script starts on 127.0.0.1, for a bounded
time, reporting errors and the server's memory growth (run it under the CPU lock):

    flock /tmp/journeyrec-cpu.lock python -m benchmarks soak --bundle PATH [--duration 600] [--rate 50]
        [--clients 8] [--warmup 60] [--sample-every 5] [--save] [--serve-override KEY=VALUE ...]

What it does, so that the figures mean what they say:

* starts ``scripts/serve.py bundle=PATH host=127.0.0.1 port=<free port>`` (JSON request log on,
  written to a file) and waits until ``/readyz`` answers 200;
* offers ``--rate`` requests/s in open loop for ``--duration`` seconds with the client of
  ``benchmarks.loadtest`` (latency from the scheduled send time), cycling through a mix of
  request kinds: personal recommendations (some with unknown item ids), no-consent requests,
  product-page context, similar and complement items;
* samples the server's resident memory (``/proc/<pid>/status`` VmRSS) every ``--sample-every``
  seconds. Growth is measured from the end of the warm-up (``--warmup`` seconds of load: caches,
  allocator pools and lazily built structures settle there) to the end, and as a least-squares
  slope over the samples after the warm-up;
* counts errors on both sides: non-200 answers and connection failures seen by the client, 5xx
  in the server's own ``/metrics``, error lines in its log, and whether it is still alive.

``passed`` (and the exit status 0) when there were no errors and the growth stayed under
``--max-rss-growth`` (default 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from benchmarks import loadtest
from benchmarks.harness import bundle_item_ids, http_get, post_request, recommendation_bodies, served

__all__ = ["add_arguments", "main", "rss_bytes", "rss_report"]

MAX_DURATION_S = 3600.0


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError as exc:
        raise RuntimeError(f"process {pid} is gone (or this is not Linux: the soak reads /proc/<pid>/status)") from exc
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def build_mix(bundle: Path, port: int, n: int, events: int, k: int, filters: dict, seed: int = 0) -> list[bytes]:
    """Raw HTTP requests cycling through the request kinds the service answers."""
    items = bundle_item_ids(bundle)
    rng = np.random.default_rng(seed + 1)
    out = []
    for j, raw in enumerate(recommendation_bodies(bundle, n, events, k, filters, seed, **loadtest.HTTP_SESSION)):
        body = json.loads(raw)
        kind = j % 8
        if kind == 1:  # unknown ids among known ones (reported in warnings)
            body["events"][::3] = [dict(e, item_id=f"unknown-{j}-{i}") for i, e in enumerate(body["events"][::3])]
        elif kind == 2:  # no consent: non-personal path, events and id ignored
            body["consent"] = False
        elif kind == 3:  # product page
            body["context"] = {"type": "product_page", "item_id": items[int(rng.integers(len(items)))]}
        elif kind == 4:  # cart context, short session
            body["events"] = body["events"][-3:]
            body["context"] = {"type": "cart"}
        if kind in (5, 6):
            endpoint = "similar" if kind == 5 else "complements"
            item = urllib.parse.quote(str(items[int(rng.integers(len(items)))]), safe="")
            out.append(f"GET /v1/items/{item}/{endpoint}?k={k} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        else:
            out.append(post_request("127.0.0.1", port, json.dumps(body).encode()))
    return out


async def soak(args: argparse.Namespace, payloads: list[bytes], pid: int) -> tuple[dict, list[tuple[float, int]]]:
    samples: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def sampler() -> None:
        t0 = time.perf_counter()
        while True:
            samples.append((time.perf_counter() - t0, rss_bytes(pid)))
            try:
                await asyncio.wait_for(done.wait(), timeout=args.sample_every)
                samples.append((time.perf_counter() - t0, rss_bytes(pid)))
                return
            except TimeoutError:
                pass

    load_args = argparse.Namespace(
        host="127.0.0.1",
        port=args.port,
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        max_requests=10**9,
    )
    task = asyncio.create_task(sampler())
    try:
        result = await loadtest.run(load_args, payloads)
    finally:
        done.set()
        await task
    return result, samples


def server_statuses(port: int) -> dict[str, int]:
    """Requests by HTTP status as the server counted them (its Prometheus text)."""
    status, text = http_get(port, "/metrics")
    counts: dict[str, int] = {}
    if status != 200:
        return {"metrics_unavailable": status}
    for line in text.decode().splitlines():
        if line.startswith("journeyrec_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            code = labels.split('status="')[1].split('"')[0]
            counts[code] = counts.get(code, 0) + int(float(value))
    return counts


def rss_report(samples: list[tuple[float, int]], warmup: float) -> dict:
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples]) / 2**20
    after = t >= warmup
    if after.sum() < 2:  # a run shorter than its warm-up: measure over all of it
        after = np.ones_like(after)
    base = float(mb[after][0])
    slope = float(np.polyfit(t[after], mb[after], 1)[0] * 60) if after.sum() >= 3 else float("nan")
    return {
        "at_start_mb": round(float(mb[0]), 1),
        "after_warmup_mb": round(base, 1),
        "end_mb": round(float(mb[-1]), 1),
        "max_mb": round(float(mb.max()), 1),
        "growth_after_warmup_pct": round(100 * (float(mb[-1]) - base) / base, 2),
        "slope_after_warmup_mb_per_min": round(slope, 3),
        "samples": int(len(mb)),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 10 minutes)")
    p.add_argument("--rate", type=float, default=50.0, help="offered requests/s (open loop)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--warmup", type=float, default=60.0, help="seconds of load before the memory baseline")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--filters", default="{}", help="JSON object sent as filters with the recommendation requests")
    p.add_argument("--bodies", type=int, default=400)
    p.add_argument("--max-rss-growth", type=float, default=0.10, help="goal: growth after warm-up below this fraction")
    p.add_argument("--port", type=int, default=0, help="0 = a free port")
    p.add_argument("--log", type=Path, default=None, help="keep the server's log here (default: a temporary file)")
    p.add_argument(
        "--serve-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a scripts/serve.py override (repeatable), e.g. threads=1",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    if not (0 < args.duration <= MAX_DURATION_S) or args.rate <= 0 or not (0 < args.clients <= 1000):
        parser.error(f"bounds: 0 < duration <= {MAX_DURATION_S:.0f} s, rate > 0, 0 < clients <= 1000")
    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"--bundle {args.bundle}: no manifest.json (export one with scripts/export_index.py run=<run>)")
    args.warmup = min(args.warmup, args.duration / 3)
    overrides = list(args.serve_override)

    with tempfile.TemporaryDirectory(prefix="journeyrec-soak-") as tmp:
        log_path = args.log or Path(tmp) / "server.log"
        t_start = time.perf_counter()
        with served(args.bundle, log_path, overrides, port=args.port) as server:
            startup = time.perf_counter() - t_start
            args.port = server.port
            payloads = build_mix(args.bundle, server.port, args.bodies, args.events, args.k, json.loads(args.filters))
            result, samples = asyncio.run(soak(args, payloads, server.proc.pid))
            alive = server.proc.poll() is None
            statuses = server_statuses(server.port) if alive else {}
            healthy = alive and http_get(server.port, "/healthz")[0] == 200
        log_lines = log_path.read_text(errors="replace").splitlines()
    errors_logged = sum(1 for line in log_lines if '"level": "error"' in line or "Traceback" in line)
    server_5xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    rss = rss_report(samples, args.warmup)
    report = {
        "benchmark": "soak",
        "bundle": str(args.bundle),
        "server": {
            "startup_s": round(startup, 1),
            "alive_at_end": alive,
            "healthz_at_end": healthy,
            "exit_code": server.exit_code,
            "requests_by_status": statuses,
            "log_lines": len(log_lines),
            "log_error_lines": errors_logged,
            "overrides": overrides,
        },
        "load": {
            k: result[k]
            for k in (
                "mode",
                "clients",
                "offered_rate_per_s",
                "duration_s",
                "requests",
                "throughput_per_s",
                "errors",
                "error_kinds",
                "latency_ms",
            )
        },
        "rss": rss,
        "goal": {"errors": 0, "rss_growth_pct_below": round(100 * args.max_rss_growth, 2)},
    }
    report["passed"] = bool(
        result["errors"] == 0
        and server_5xx == 0
        and errors_logged == 0
        and healthy
        and rss["growth_after_warmup_pct"] < 100 * args.max_rss_growth
    )
    return [report]
