"""Micro-benchmarks of the suite (softmax step, EMA update) run their real code paths and report
every variant against the baseline of the same run (tiny shapes here; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_softmax_benchmark_reports_every_variant_against_plain():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "softmax", "--positions", "40", "--items", "300"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    names = {"plain", "exclude_seen", "repeat_bias", "repeat_bias+exclude_seen"}
    assert set(result["ms_per_step"]) == names == set(result["ratio_vs_plain"])
    assert result["ratio_vs_plain"]["plain"] == 1.0
    assert all(v > 0 for v in result["ms_per_step"].values())
    assert (result["items"], result["positions"], result["threads"]) == (300, 40, 1)


def test_ema_benchmark_times_both_update_paths_on_one_model():
    from benchmarks.ema_update import run

    result = run(items=200, updates=3)
    assert set(result["ms_per_update"]) == {"per_parameter", "foreach"}
    assert all(v > 0 for v in result["ms_per_update"].values())
    assert result["tensors"] > 2 and result["parameters"] > 200 * 64  # the item table and the blocks


def test_interleaved_medians_alternates_variants_and_skips_warmup():
    from benchmarks.interleaved import interleaved_medians

    calls: list[str] = []
    result = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=2)
    assert calls == ["a", "b"] * 5  # one call of each variant per round, warm-up rounds included
    assert set(result) == {"a", "b"} and all(v >= 0 for v in result.values())


def test_validation_benchmark_times_both_paths_and_they_rank_alike():
    """The validation benchmark composes a real experiment, prepares its data and times the
    evaluation in use against the straightforward path on one model with a repeat bias: both
    must give the same ranks up to float rounding (what the speed-up is worth)."""
    from benchmarks.validation_pass import run

    result = run(
        experiment="demo",
        threads=1,
        bias=-0.5,
        overrides=["data.options.n_customers=500", "model.repeat_bias=true", "model.d_model=16"],
    )
    assert result["repeat_bias"] == -0.5 and result["users"] > 50
    assert min(result["ranks_equal"].values()) >= 0.98 and max(result["max_rank_difference"].values()) <= 5
    n = result["ndcg@10_seen_excluded"]
    assert n["in_use"] > 0 and abs(n["in_use"] - n["straightforward"]) < 1e-3
    assert all(v > 0 for v in result["seconds"].values()) and result["speedup"] > 0
