"""``python -m benchmarks soak`` end to end, briefly: it starts a real server on 127.0.0.1, offers a
fixed rate of mixed requests, samples the server's memory, stops it, and reports (the 10-minute
run and its figures are on the docs site's Reliability page)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))


def benchmark(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=ENV
    )


@pytest.mark.slow
def test_short_soak_reports_no_errors_and_memory(demo_bundle):
    proc = benchmark(
        "soak",
        "--bundle",
        str(demo_bundle.path),
        "--duration",
        "6",
        "--rate",
        "20",
        "--clients",
        "4",
        "--sample-every",
        "0.5",
        "--serve-override",
        "threads=1",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["passed"] and report["load"]["errors"] == 0 and report["server"]["log_error_lines"] == 0
    assert report["load"]["requests"] >= 100  # 20/s offered for 6 s
    served = report["server"]["requests_by_status"]
    assert set(served) == {"200"} and served["200"] >= report["load"]["requests"]
    assert report["server"]["alive_at_end"] and report["server"]["exit_code"] == 0  # stopped cleanly
    rss = report["rss"]
    assert rss["samples"] >= 8 and 50 < rss["at_start_mb"] <= rss["max_mb"]
    assert report["server"]["log_lines"] >= report["load"]["requests"]  # one JSON line per request


def test_soak_refuses_unbounded_runs_and_missing_bundles(tmp_path):
    p = benchmark("soak", "--bundle", str(tmp_path), "--duration", "100000")
    assert p.returncode == 2 and "duration" in p.stderr
    p = benchmark("soak", "--bundle", str(tmp_path))
    assert p.returncode == 2 and "no manifest.json" in p.stderr
