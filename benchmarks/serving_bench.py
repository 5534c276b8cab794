"""Serving latency from the suite: in-process ``recommend()`` (``recommend-latency``, whose baseline
is the model alone on the same requests) and HTTP under load (``scripts/serve.py`` on a free
127.0.0.1 port, ``loadtest`` closed-loop for saturation, then open-loop at a fixed offered rate),
each in its own process as in production, one serving thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, served

__all__ = ["run"]


def _benchmark(args: list[str], env: dict[str, str]) -> dict:
    """Run ``python -m benchmarks ARGS`` in a fresh process and return its (single) JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(bundle: str, duration: int = 60, rate: float = 100.0, clients: int = 50, requests: int = 2000) -> list[dict]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    common = ["--events", "50", "--k", "20"]
    results = [
        {
            "benchmark": "serving-inprocess",
            **_benchmark(["recommend-latency", "--bundle", bundle, "--requests", str(requests), *common], env),
        }
    ]
    with tempfile.TemporaryDirectory(prefix="journeyrec-serving-bench-") as tmp:
        with served(Path(bundle), Path(tmp) / "server.log", ["threads=1", "log_level=warning"], env=env) as server:
            for label, offered in (("closed-loop saturation", 0.0), (f"open loop at {rate:g} req/s", rate)):
                load = _benchmark(
                    [
                        "loadtest",
                        "--port",
                        str(server.port),
                        "--bundle",
                        bundle,
                        "--clients",
                        str(clients),
                        "--rate",
                        str(offered),
                        "--duration",
                        str(duration),
                        *common,
                    ],
                    env,
                )
                results.append({**load, "benchmark": "serving-http", "mode": label})
    return results
