"""The GPU check's CPU dry run (same code path as on a CUDA machine, tiny sizes), the journey
ablation's summary against a hand computation, the demo-shop benchmark's baseline loader and the
result files the docs are filled from."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARMS_TESTED = ("fp32", "bf16-mixed", "fp32+compile")


@pytest.fixture(scope="module")
def gpu_dry_run(tmp_path_factory):
    """The GPU check on the CPU, every code path once: float32, bf16 autocast, torch.compile (its
    bf16 + compile combination compiles for minutes on a CPU; docs/results/gpu_dry_run.json has
    the run with all four arms)."""
    wd = tmp_path_factory.mktemp("gpu")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gpu", "--dry-run", "--workdir", str(wd), "--arms", *ARMS_TESTED],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), wd


@pytest.mark.slow
def test_gpu_dry_run_trains_every_arm_and_reports_what_the_gpu_run_would(gpu_dry_run):
    from benchmarks.gpu import ARMS

    result, wd = gpu_dry_run
    assert result["dry_run"] and set(result["arms"]) == set(ARMS_TESTED) <= set(ARMS)
    for arm, fig in result["arms"].items():
        assert "failed" not in fig, (arm, fig.get("log_tail"))
        metrics = json.loads((wd / arm.replace("+", "_") / "metrics.json").read_text())
        # the test figures are the run's own, and the throughput follows from its epoch curve
        assert fig["test_seen_excluded/ndcg@10"] == metrics["test_seen_excluded/ndcg@10"]
        assert fig["test_seen_excluded/ndcg@10_ci95"] == [
            metrics["test_seen_excluded/ndcg@10_ci95_low"],
            metrics["test_seen_excluded/ndcg@10_ci95_high"],
        ]
        assert metrics["refit_epochs"] == 1 and fig["refit_seconds"] > 0
        # (both figures are rounded in the file: sequences/s to 0.1, seconds to 0.001, so the
        # median epoch was within half a millisecond of the one written)
        n, median = fig["n_train_sequences"], fig["epoch_seconds_median"]
        assert n / (median + 5e-4) - 0.051 <= fig["sequences_per_second"] <= n / (median - 5e-4) + 0.051
        assert fig["epochs"] == 1 and fig["peak_gpu_memory_mib"] is None  # CPU: no GPU memory to report
        if arm != "fp32":
            pc = fig["test_seen_excluded_ndcg@10_minus_fp32"]
            assert pc["ci95"][0] <= pc["diff"] <= pc["ci95"][1]
    # the compiled arms really compiled; bf16 autocast really changed the arithmetic
    assert "compile" in " ".join(result["arms"]["fp32+compile"]["overrides"])
    # (from the runs' own curves: the result file rounds the loss to 5 decimals, and one tiny epoch
    # with the loss itself kept in float32 moves it by about 1e-5)
    first_loss = {a: json.loads((wd / a / "curve.json").read_text())[0]["train/loss"] for a in ("fp32", "bf16-mixed")}
    assert first_loss["bf16-mixed"] != first_loss["fp32"]
    bar = result["quality_bar"]["valid_seen_excluded_ndcg@10"]
    assert bar == pytest.approx(0.95 * result["arms"]["fp32"]["best_valid"], abs=1e-5)
    steps = result["softmax_steps"]
    assert (
        steps["items"] == 2000 and steps["softmax"]["ms_per_step"] > 0 and steps["sampled_softmax"]["ms_per_step"] > 0
    )
    assert steps["full_over_sampled"] == pytest.approx(
        steps["softmax"]["ms_per_step"] / steps["sampled_softmax"]["ms_per_step"], rel=0.01
    )


def test_time_to_bar_is_the_first_epoch_that_reaches_it():
    from benchmarks.gpu import time_to_bar

    curve = [
        {"train_seconds": 10.0, "valid_seen_excluded/ndcg@10": 0.01},
        {"train_seconds": 20.0, "valid_seen_excluded/ndcg@10": 0.05},
        {"train_seconds": 30.0, "valid_seen_excluded/ndcg@10": 0.04},
    ]
    assert time_to_bar(curve, 0.045) == 20.0 and time_to_bar(curve, 0.06) is None


def test_journey_ablation_summary_matches_a_hand_computation():
    """Seed-averaged per-case metrics, per target kind, with the paired difference to the arm
    before: checked against numbers computed here from the same ranks."""
    from benchmarks.journey_ablation import summarise_arms

    rng = np.random.default_rng(0)
    n = 400
    target_type = rng.choice(np.array(["view", "cart", "purchase"], dtype=object), size=n)
    ranks = {
        arm: [
            {"all": rng.integers(0, 30 - 8 * i, size=n), "seen_excluded": rng.integers(0, 40, size=n)} for _ in range(2)
        ]
        for i, arm in enumerate(["a", "b"])
    }
    out = summarise_arms(ranks, target_type, n_boot=300)
    sel = target_type == "purchase"
    assert out["next_purchase"]["cases"] == int(sel.sum()) and out["next_item"]["cases"] == n
    for arm in ("a", "b"):
        ndcg = np.mean(
            [np.where(r["all"][sel] < 10, 1 / np.log2(r["all"][sel] + 2.0), 0.0) for r in ranks[arm]], axis=0
        )
        row = out["next_purchase"]["all"][arm]
        assert row["ndcg@10"] == pytest.approx(ndcg.mean(), abs=1e-5)
        assert row["ndcg@10_ci95"][0] < row["ndcg@10"] < row["ndcg@10_ci95"][1]
        assert len(row["ndcg@10_per_seed"]) == 2 and np.mean(row["ndcg@10_per_seed"]) == pytest.approx(
            ndcg.mean(), abs=1e-5
        )
    diff = out["next_purchase"]["all"]["b"]["ndcg@10_vs_previous"]
    assert diff["against"] == "a"
    assert diff["diff"] == pytest.approx(
        out["next_purchase"]["all"]["b"]["ndcg@10"] - out["next_purchase"]["all"]["a"]["ndcg@10"], abs=2e-5
    )
    assert diff["diff"] > 0 and diff["ci95"][0] > 0  # b's ranks are drawn from a narrower range: it must win
    assert "ndcg@10_vs_previous" not in out["next_purchase"]["all"]["a"]


def test_arm_overrides_compose_to_the_intended_model_inputs():
    from benchmarks.journey_ablation import ARMS, DATASETS, arm_overrides

    from conftest import compose

    for arm in ARMS:
        cfg = compose("train", [*DATASETS["demo"], *arm_overrides(arm)])
        assert list(cfg.model.features) == ARMS[arm]["features"]
        weights = dict(cfg.loss.event_type_weights or {})
        assert weights == ARMS[arm].get("event_type_weights", {})
    assert dict(compose("train", arm_overrides("e_context_only")).loss.event_type_weights)["view"] == 0.0


def test_baseline_generator_is_read_from_git():
    from benchmarks.demo_shop import baseline_generator
    from journeyrec.data import synthetic

    old = baseline_generator("ba2a47b")
    assert old.generate_catalog(old.DemoShopConfig()).equals(synthetic.generate_catalog())  # the catalogue kept
    assert not hasattr(old, "generate_carts") and hasattr(synthetic, "generate_carts")


def test_result_files_carry_what_the_docs_require(tmp_path):
    from benchmarks.harness import git_commit, write_result

    spec = importlib.util.spec_from_file_location("journeyrec_docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    path = write_result("x", {"ndcg@10": 0.5}, threads=2, directory=tmp_path, command="python -m benchmarks x")
    rec = json.loads(path.read_text())
    assert {"name", "command", "machine", "threads", "date", "commit", "figures"} <= set(rec)
    assert rec["name"] == "x" and rec["threads"] == 2 and rec["figures"] == {"ndcg@10": 0.5}
    assert rec["commit"] == git_commit()[0] and "core" in rec["machine"] and "T" in rec["date"]
    assert math.isfinite(rec["load"])
    # the docs read it like every result file: one row per figure
    assert hooks.load_result("x", tmp_path)["rows"] == [{"figure": "ndcg@10", "value": 0.5}]
