"""Soak test: a fixed request rate against a server this script starts on 127.0.0.1, for a bounded
time, reporting errors and the server's memory growth (run it under the CPU lock):

    flock /tmp/journeyrec-cpu.lock python -m benchmarks.soak --bundle PATH [--duration 600] [--rate 50]
        [--clients 8] [--warmup 60] [--sample-every 5] [--json OUT] [-- serve.py overrides ...]

What it does, so that the figures mean what they say:

* starts ``scripts/serve.py bundle=PATH host=127.0.0.1 port=<free port>`` (JSON request log on,
  written to a file) and waits until ``/readyz`` answers 200;
* offers ``--rate`` requests/s in open loop for ``--duration`` seconds with the client of
  ``benchmarks/loadtest.py`` (latency from the scheduled send time), cycling through a mix of
  request kinds: personal recommendations (some with unknown item ids), no-consent requests,
  product-page context, similar and complement items;
* samples the server's resident memory (``/proc/<pid>/status`` VmRSS) every ``--sample-every``
  seconds. Growth is measured from the end of the warm-up (``--warmup`` seconds of load: caches,
  allocator pools and lazily built structures settle there) to the end, and as a least-squares
  slope over the samples after the warm-up;
* counts errors on both sides: non-200 answers and connection failures seen by the client, 5xx
  in the server's own ``/metrics``, error lines in its log, and whether it is still alive.

Exit status 0 when there were no errors and the growth stayed under ``--max-rss-growth`` (default
10%); the report is printed as JSON (and written to ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_DURATION_S = 3600.0


def _loadtest():
    """benchmarks/loadtest.py, whose HTTP client and request bodies the soak reuses."""
    spec = importlib.util.spec_from_file_location("journeyrec_loadtest", HERE / "loadtest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:  # noqa: S310 - loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_server(bundle: Path, port: int, log_path: Path, overrides: list[str], timeout: float = 180.0,
                 env: dict | None = None) -> subprocess.Popen:
    """scripts/serve.py on 127.0.0.1:port, its log in ``log_path``; returns once /readyz is 200."""
    env = dict(env if env is not None else os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), f"bundle={bundle}", "host=127.0.0.1", f"port={port}", *overrides]
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it until it exits
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if http_get(port, "/readyz", timeout=2)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def build_mix(lt, bundle: Path, port: int, n: int, events: int, k: int, filters: dict, seed: int = 0) -> list[bytes]:
    """Raw HTTP requests cycling through the request kinds the service answers."""
    import pyarrow.parquet as pq

    items = pq.read_table(bundle / "items.parquet", columns=["item_id"]).column("item_id").to_pylist()
    rng = np.random.default_rng(seed + 1)
    out = []
    for j, raw in enumerate(lt.build_bodies(bundle, n, events, k, filters, seed)):
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
            item = urllib.request.quote(str(items[int(rng.integers(len(items)))]), safe="")
            out.append(f"GET /v1/items/{item}/{endpoint}?k={k} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        else:
            out.append(lt.request_bytes("127.0.0.1", port, json.dumps(body).encode()))
    return out


async def soak(lt, args: argparse.Namespace, payloads: list[bytes], pid: int) -> tuple[dict, list[tuple[float, int]]]:
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
            except asyncio.TimeoutError:
                pass

    load_args = argparse.Namespace(host="127.0.0.1", port=args.port, clients=args.clients, rate=args.rate,
                                   duration=args.duration, max_requests=10**9)
    task = asyncio.create_task(sampler())
    try:
        result = await lt.run(load_args, payloads)
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


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1 :]
    else:
        overrides = []
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = p.parse_args(argv)
    if not (0 < args.duration <= MAX_DURATION_S) or args.rate <= 0 or not (0 < args.clients <= 1000):
        p.error(f"bounds: 0 < duration <= {MAX_DURATION_S:.0f} s, rate > 0, 0 < clients <= 1000")
    if not (args.bundle / "manifest.json").is_file():
        p.error(f"--bundle {args.bundle}: no manifest.json (export one with scripts/export_index.py run=<run>)")
    args.port = args.port or free_port()
    args.warmup = min(args.warmup, args.duration / 3)
    lt = _loadtest()

    with tempfile.TemporaryDirectory(prefix="journeyrec-soak-") as tmp:
        log_path = args.log or Path(tmp) / "server.log"
        t_start = time.perf_counter()
        proc = start_server(args.bundle, args.port, log_path, overrides)
        startup = time.perf_counter() - t_start
        payloads = build_mix(lt, args.bundle, args.port, args.bodies, args.events, args.k, json.loads(args.filters))
        try:
            result, samples = asyncio.run(soak(lt, args, payloads, proc.pid))
            alive = proc.poll() is None
            statuses = server_statuses(args.port) if alive else {}
            healthy = alive and http_get(args.port, "/healthz")[0] == 200
        finally:
            code = stop_server(proc)
        log_lines = log_path.read_text(errors="replace").splitlines()
    errors_logged = sum(1 for line in log_lines if '"level": "error"' in line or "Traceback" in line)
    server_5xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    rss = rss_report(samples, args.warmup)
    report = {
        "bundle": str(args.bundle),
        "server": {"startup_s": round(startup, 1), "alive_at_end": alive, "healthz_at_end": healthy, "exit_code": code,
                   "requests_by_status": statuses, "log_lines": len(log_lines), "log_error_lines": errors_logged,
                   "overrides": overrides},
        "load": {k: result[k] for k in ("mode", "clients", "offered_rate_per_s", "duration_s", "requests",
                                        "throughput_per_s", "errors", "error_kinds", "latency_ms")},
        "rss": rss,
        "goal": {"errors": 0, "rss_growth_pct_below": round(100 * args.max_rss_growth, 2)},
    }
    report["passed"] = bool(result["errors"] == 0 and server_5xx == 0 and errors_logged == 0 and healthy
                            and rss["growth_after_warmup_pct"] < 100 * args.max_rss_growth)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from journeyrec.io import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
