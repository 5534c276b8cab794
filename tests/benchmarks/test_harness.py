"""The benchmark harness: the requests every serving benchmark sends (the same draws that produced
the committed figures), the result record written to docs/results/, ``--save`` on the command
line, and a served bundle that fails loudly when the server cannot start."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.__main__ import main as benchmarks_main
from benchmarks.loadtest import HTTP_SESSION

ROOT = Path(__file__).resolve().parents[2]


def reference_bodies(items: list[str], n: int, events: int, k: int, filters: dict) -> list[bytes]:
    """The request bodies of the committed HTTP figures, written out independently: uniform items,
    gaps of 5 s to 10 min, four views per cart and purchase, one user id per body."""
    rng = np.random.default_rng(0)
    kinds = np.array(["view", "view", "view", "view", "cart", "purchase"])
    out = []
    for r in range(n):
        picks = rng.integers(0, len(items), size=events)
        ts = 1_770_000_000_000 + np.cumsum(rng.integers(5_000, 600_000, size=events))
        ev = [
            {"item_id": items[i], "event_type": str(rng.choice(kinds)), "channel": "web", "timestamp": int(t)}
            for i, t in zip(picks, ts)
        ]
        out.append(
            json.dumps(
                {"events": ev, "k": k, "filters": filters, "user_id": f"load-{r}", "now": int(ts[-1]) + 60_000}
            ).encode()
        )
    return out


@pytest.mark.slow
def test_http_bodies_are_the_draws_the_committed_figures_used(demo_bundle):
    filters = {"in_stock": True}
    got = harness.recommendation_bodies(demo_bundle.path, 30, 12, 10, filters, **HTTP_SESSION)
    assert got == reference_bodies(harness.bundle_item_ids(demo_bundle.path), 30, 12, 10, filters)


def test_random_sessions_follow_the_mix_and_the_clock():
    items = [f"SKU{i}" for i in range(50)]
    sessions = harness.random_sessions(items, 400, 30, seed=3)
    assert sessions == harness.random_sessions(items, 400, 30, seed=3)
    assert sessions != harness.random_sessions(items, 400, 30, seed=4)
    types = [e["event_type"] for s, _ in sessions for e in s]
    share = {t: types.count(t) / len(types) for t in set(types)}
    assert set(share) == {"view", "cart", "purchase"} and abs(share["view"] - 6 / 8) < 0.02
    for events, now in sessions:
        ts = np.array([e["timestamp"] for e in events])
        gaps = np.diff(ts)
        assert (gaps >= 5_000).all() and (gaps < 3_600_000).all() and now == ts[-1] + 60_000
        assert {e["item_id"] for e in events} <= set(items)


def test_result_record_says_where_when_and_how(tmp_path):
    record = harness.result_record(
        "tiny", [{"x": 1.0, "ratio_vs_base": 2.0}], harness.command_line(["ema"]), 1, title="a title"
    )
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert record["commit"] == head and isinstance(record["dirty"], bool)
    assert record["command"] == "python -m benchmarks ema" and record["threads"] == 1 and record["title"] == "a title"
    assert record["machine"].startswith(f"{os.cpu_count()}-core ") and ("GPU" in record["machine"])
    assert dt.datetime.fromisoformat(record["date"]).tzinfo is not None
    path = harness.save_result(record, tmp_path)
    assert path == tmp_path / "tiny.json" and json.loads(path.read_text()) == record


def test_save_writes_the_rows_it_printed_with_the_exact_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    assert benchmarks_main(["softmax", "--positions", "40", "--items", "300", "--save", "tiny_softmax"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    saved = json.loads((tmp_path / "tiny_softmax.json").read_text())
    assert saved["rows"] == printed and saved["rows"][0]["ratio_vs_plain"]["plain"] == 1.0
    assert saved["command"] == "python -m benchmarks softmax --positions 40 --items 300 --save tiny_softmax"
    assert saved["name"] == "tiny_softmax" and saved["threads"] == 1
    with pytest.raises(SystemExit):
        benchmarks_main(["softmax", "--save", "../escape"])
    assert not list(tmp_path.parent.glob("escape*"))


@pytest.mark.slow
def test_a_server_that_cannot_start_fails_with_its_log(tmp_path):
    with pytest.raises(RuntimeError, match="exited with"):
        with harness.served(tmp_path / "no-bundle", tmp_path / "server.log", timeout=120):
            pass
    assert (tmp_path / "server.log").read_text()  # its output is kept for the reader
