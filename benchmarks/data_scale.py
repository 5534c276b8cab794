"""Data-layer throughput and memory at scale: generate N demo events streamed to Parquet, then
prepare them (the full pipeline: consent, validation, HMAC, staging, sort, dedup, sessions,
split, store, card). One JSON line per size:

    flock /tmp/journeyrec-cpu.lock python -m benchmarks.data_scale                  # 1M, 10M, 50M
    python -m benchmarks.data_scale --sizes 200000 --workdir /tmp/jr-bench          # a quick look

Each phase runs in its own process, so ``peak_rss_mb`` is that phase's own high-water mark
(``ru_maxrss``). ``ratio_vs_first`` compares events/s with the first size of the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(phase: str, directory: Path, customers: int) -> dict:
    t0 = time.perf_counter()
    if phase == "generate":
        from journeyrec.data.synthetic import DemoShopConfig, write_parquet

        counts = write_parquet(DemoShopConfig(n_customers=customers, seed=7), directory)
        return {"seconds": time.perf_counter() - t0, "events": counts["events"], "peak_rss_mb": _peak_rss_mb()}
    from journeyrec.data.prepare import prepare_store

    card = prepare_store({"name": "events", "path": str(directory / "events.parquet"), "allow_demo_key": True,
                          "consent_path": str(directory / "consent.parquet"), "split": "leave_one_out"}, directory / "prepared")
    return {"seconds": time.perf_counter() - t0, "events": card["rows_read"], "peak_rss_mb": _peak_rss_mb(),
            "events_kept": card["events"]["total"], "users": card["sequences"]["users"], "items": card["sequences"]["items"],
            "item_events": card["sequences"]["item_events"], "sessions": card["events"]["sessions"]}


def _run_child(phase: str, directory: Path, customers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--dir", str(directory), "--customers", str(customers)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _events_per_customer() -> float:
    """Calibrate the demo shop's events per customer on a small sample (same generator)."""
    from journeyrec.data.synthetic import DemoShopConfig, generate_events

    n = 4000
    return sum(b.num_rows for b in generate_events(DemoShopConfig(n_customers=n, seed=7))) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 5e7], help="target event counts")
    ap.add_argument("--workdir", default=None, help="where the generated data and stores go (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and stores")
    ap.add_argument("--write", action="store_true", help="also write docs/results/data_scale.json")
    ap.add_argument("--child", choices=["generate", "prepare"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, Path(args.dir), args.customers)))
        return 0

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="journeyrec-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    per_customer = _events_per_customer()
    first_rate = None
    results = []
    if args.write:
        from benchmarks.results import started_commit

        started_commit()
    try:
        for size in args.sizes:
            target = int(size)
            customers = max(1, math.ceil(target / per_customer))
            d = root / f"n{target}"
            shutil.rmtree(d, ignore_errors=True)
            gen = _run_child("generate", d, customers)
            prep = _run_child("prepare", d, customers)
            rate = prep["events"] / prep["seconds"]
            first_rate = first_rate or rate
            disk = {name: round(f.stat().st_size / 2**20, 1) for name, f in
                    (("generated", d / "events.parquet"), ("store_events", d / "prepared" / "events.parquet"))}
            results.append({
                "events_target": target, "events": gen["events"], "customers": customers,
                "generate": {"seconds": round(gen["seconds"], 1), "events_per_s": round(gen["events"] / gen["seconds"]),
                             "peak_rss_mb": round(gen["peak_rss_mb"])},
                "prepare": {"seconds": round(prep["seconds"], 1), "events_per_s": round(rate), "ratio_vs_first": round(rate / first_rate, 3),
                            "peak_rss_mb": round(prep["peak_rss_mb"]),
                            **{k: prep[k] for k in ("events_kept", "sessions", "users", "items", "item_events")}},
                "parquet_mb": disk, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            })
            print(json.dumps(results[-1]), flush=True)
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    if args.write:
        from benchmarks.results import write_result

        write_result("data_scale", {"sizes": results}, threads=os.cpu_count() or 0,
                     command="python -m benchmarks.data_scale " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
