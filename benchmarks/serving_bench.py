"""Serving latency from the suite: in-process ``recommend()`` (benchmarks/recommend_latency.py, whose
baseline is the model alone on the same requests) and HTTP under load (scripts/serve.py on a
free 127.0.0.1 port, benchmarks/loadtest.py closed-loop for saturation, then open-loop at a fixed
offered rate), each in its own process as in production, one serving thread."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the service on port {port} did not become ready within {timeout:.0f} s")


def run(bundle: str, duration: int = 60, rate: float = 100.0, clients: int = 50, requests: int = 2000) -> list[dict]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    common = ["--events", "50", "--k", "20"]
    scripts = ROOT / "scripts"
    out = subprocess.run([sys.executable, "-m", "benchmarks.recommend_latency", "--bundle", bundle,
                          "--requests", str(requests), *common], env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    results = [{"benchmark": "serving-inprocess", **json.loads(out.stdout)}]
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(scripts / "serve.py"), f"bundle={bundle}", "host=127.0.0.1",
                               f"port={port}", "threads=1", "log_level=warning"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        for label, offered in (("closed-loop saturation", 0.0), (f"open loop at {rate:g} req/s", rate)):
            out = subprocess.run([sys.executable, "-m", "benchmarks.loadtest", "--port", str(port), "--bundle", bundle,
                                  "--clients", str(clients), "--rate", str(offered), "--duration", str(duration), *common],
                                 env=env, check=True, capture_output=True, text=True, cwd=ROOT)
            results.append({"benchmark": "serving-http", "mode": label, **json.loads(out.stdout)})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results
