"""Python's garbage collector in a serving process, with the start-up objects left to it and
frozen out of it (:func:`journeyrec.serving.collector.freeze_startup`, what ``scripts/serve.py``
does once warm):

    python -m benchmarks gc-pauses --bundle PATH [--requests 15000] [--rounds 2] [--save]

The service is built as ``scripts/serve.py`` builds it (``build_service`` with a SQLite store
recording impressions, and its FastAPI app), then the same requests (50 events, k = 20, from
``recommend_latency.make_requests``, made 500 at a time so that they do not fill the heap
themselves) go through ``Service.recommend`` in alternating phases: the baseline with every
object in the collected generations (``gc.unfreeze``), then frozen. Each phase reports the
collections the interpreter ran by itself per generation (count, total and longest pause), one
forced full collection, and the requests' latency percentiles. One thread, as a server runs.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--requests", type=int, default=15000, help="requests per phase")
    p.add_argument("--rounds", type=int, default=2, help="baseline / frozen pairs")
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)


CHUNK = 500  # requests made at a time: a whole phase's requests held at once would be most of the heap


def _requests(rec: Any, n: int, events: int, k: int) -> Iterator[Any]:
    """The same ``n`` requests every phase, made ``CHUNK`` at a time (seeded by chunk)."""
    from benchmarks.recommend_latency import make_requests

    for start in range(0, n, CHUNK):
        yield from make_requests(rec, min(CHUNK, n - start), events, k, {}, seed=start)


def _phase(service: Any, args: argparse.Namespace, frozen: bool) -> dict[str, Any]:
    from journeyrec.serving.collector import GCPauses, freeze_startup

    gc.unfreeze()
    gc.collect()
    held = freeze_startup() if frozen else 0
    t = time.perf_counter()
    gc.collect()
    forced_ms = (time.perf_counter() - t) * 1e3
    pauses = GCPauses().install()
    latencies = np.empty(args.requests)
    try:
        for i, request in enumerate(_requests(service.default, args.requests, args.events, args.k)):
            t = time.perf_counter()
            service.recommend(request, f"gc-{frozen}-{i}")
            latencies[i] = time.perf_counter() - t
    finally:
        pauses.uninstall()
    ms = latencies * 1e3
    return {
        "phase": "start-up objects frozen" if frozen else "baseline: every object collected",
        "frozen_objects": held,
        "tracked_objects": len(gc.get_objects()),
        "forced_full_collection_ms": round(forced_ms, 2),
        **{f"gen{g}_collections": pauses.collections[g] for g in range(3)},
        **{f"gen{g}_pause_total_ms": round(pauses.seconds[g] * 1e3, 2) for g in range(3)},
        **{f"gen{g}_pause_max_ms": round(pauses.longest[g] * 1e3, 2) for g in range(3)},
        "requests": args.requests,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    import faiss
    import torch

    from journeyrec.config import ServeConfig
    from journeyrec.serving.app import create_app
    from journeyrec.serving.server import build_service
    from journeyrec.serving.settings import StoreConfig

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServeConfig(bundle=str(args.bundle), threads=args.threads, store=StoreConfig(path=f"{tmp}/store.db"))
        service = build_service(cfg)
        create_app(service)  # what a server holds: its app's routes, models and schemas
        rows = []
        for round_ in range(args.rounds):
            for frozen in (False, True):
                rows.append({"round": round_ + 1, **_phase(service, args, frozen)})
        base = [r for r in rows if not r["frozen_objects"]]
        for r in rows:
            r["ratio_forced_collection_vs_baseline"] = round(
                r["forced_full_collection_ms"] / np.mean([b["forced_full_collection_ms"] for b in base]), 4
            )
        gc.unfreeze()
        if service.store is not None:
            service.store.close()
    return rows
