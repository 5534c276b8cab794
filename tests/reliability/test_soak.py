"""benchmarks/soak.py end to end, briefly: it starts a real server on 127.0.0.1, offers a fixed rate
of mixed requests, samples the server's memory, stops it, and reports (the 10-minute run and its
figures are in the README's Reliability section)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_reports_no_errors_and_memory(demo_bundle, tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--bundle", str(demo_bundle.path),
                           "--duration", "6", "--rate", "20", "--clients", "4", "--sample-every", "0.5",
                           "--json", str(out), "--", "threads=1", f"store.path={tmp_path / 'journeys.sqlite'}"],
                          capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["passed"] and report["load"]["errors"] == 0 and report["server"]["log_error_lines"] == 0
    assert report["load"]["requests"] >= 100  # 20/s offered for 6 s
    served = report["server"]["requests_by_status"]
    assert set(served) == {"200"} and served["200"] >= report["load"]["requests"]
    assert report["server"]["alive_at_end"] and report["server"]["exit_code"] == 0  # stopped cleanly
    rss = report["rss"]
    assert rss["samples"] >= 8 and 50 < rss["at_start_mb"] <= rss["max_mb"]
    assert report["server"]["log_lines"] >= report["load"]["requests"]  # one JSON line per request


def test_soak_refuses_unbounded_runs_and_missing_bundles(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    p = run("--bundle", str(tmp_path), "--duration", "100000")
    assert p.returncode == 2 and "duration" in p.stderr
    p = run("--bundle", str(tmp_path))
    assert p.returncode == 2 and "no manifest.json" in p.stderr
