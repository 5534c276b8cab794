"""End to end through the real CLI: Hydra -> Lightning fit -> full-ranking eval -> bundle ->
MLflow (sqlite file). Tiny demo shop so it runs in well under a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from journeyrec.data.prepare import load_prepared
from journeyrec.data.sequences import repeated_targets
from journeyrec.evaluation.rank_kernel import MISS_RANK

pytestmark = pytest.mark.slow  # a training run through the CLI

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.options.n_customers=250",
    "model.d_model=16",
    "model.n_blocks=1",
    "trainer.max_epochs=3",
    "trainer.progress_bar=false",
    "show_samples=1",
]


def run_train(args, out: Path, uri: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    out = tmp / "out"
    proc = run_train(["experiment=demo", *TINY], out, uri)
    return out, uri, proc


def test_metrics_json_has_both_protocols(demo_run):
    out, _, proc = demo_run
    m = json.loads((out / "metrics.json").read_text())
    # every figure is the mean over the run's own per-case ranks, recomputed here from the formulas
    per_case = pq.read_table(out / "per_case.parquet").to_pandas()
    for split in ("valid", "test"):
        cases = per_case[per_case.split == split]
        assert len(cases) == m[f"{split}/n_cases"] > 0
        for proto, column in (("", "rank_all"), ("_seen_excluded", "rank_seen_excluded")):
            r = cases[column].to_numpy()
            for k in (10, 20):
                hit = r < k
                assert m[f"{split}{proto}/hr@{k}"] == pytest.approx(hit.mean())
                assert m[f"{split}{proto}/ndcg@{k}"] == pytest.approx(np.where(hit, 1 / np.log2(r + 2), 0).mean())
                assert m[f"{split}{proto}/mrr@{k}"] == pytest.approx(np.where(hit, 1 / (r + 1), 0).mean())
    assert m["epochs"] == 3 and m["train_seconds"] > 0
    curve = json.loads((out / "curve.json").read_text())
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    assert all(0 < r["epoch_seconds"] <= m["train_seconds"] for r in curve)
    assert curve[-1]["train_seconds"] == pytest.approx(sum(r["epoch_seconds"] for r in curve))
    assert all("valid_seen_excluded/ndcg@10" in r and "train/loss" in r for r in curve)
    # excluding seen items can only move a target up, unless the target is one of them: then it is
    # a miss (S3-Rec's rule); the demo shop has both kinds of test case
    prep = load_prepared(out / "prepared")
    repeat = repeated_targets(prep.sequences, prep.split.test)
    cases = pq.read_table(out / "per_case.parquet").to_pandas().query("split == 'test'").sort_values("case")
    r_all, r_seen = cases.rank_all.to_numpy(), cases.rank_seen_excluded.to_numpy()
    assert 0 < repeat.sum() < len(repeat) and m["test/repeat_target_share"] == pytest.approx(repeat.mean())
    assert (r_seen[repeat] == MISS_RANK).all() and (r_seen[~repeat] <= r_all[~repeat]).all()
    assert np.mean(r_seen < 10) == pytest.approx(m["test_seen_excluded/hr@10"])
    assert "recommended next" in proc.stdout and "customer" in proc.stdout


def test_bundle_and_recommender(demo_run):
    from journeyrec.bundle.format import FORMAT_VERSION
    from journeyrec.serving import Recommender, RecommendRequest

    out, _, _ = demo_run
    rec = Recommender.load(out / "bundle")
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert set(manifest["files"]) >= {"model.safetensors", "index.faiss", "items.parquet", "stats.npz", "stats.json"}
    quality = manifest["index"]["quality"]
    assert quality["query_source"] == "validation session vectors" and quality["recall@10"] == 1.0  # Flat is exact
    assert rec.stats.popularity.sum() > 0 and len(rec.stats.comp_items) > 0  # learned from the run's events
    some = [str(x) for x in rec.item_ids[:3]]
    res = rec.recommend(RecommendRequest.from_items(some, k=7))
    assert len(res.items) == 7 and all(r.item_id in set(map(str, rec.item_ids)) for r in res.items)


def test_mlflow_run_has_params_curves_metrics_artifacts(demo_run):
    from mlflow.tracking import MlflowClient

    out, uri, _ = demo_run
    client = MlflowClient(uri)
    run_id = (out / "mlflow_run_id").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "demo"
    assert run.data.params["model.d_model"] == "16"
    curve = client.get_metric_history(run_id, "valid_seen_excluded/ndcg_at_10")
    assert len(curve) == 3
    assert len(client.get_metric_history(run_id, "train/loss")) == 3
    m = json.loads((out / "metrics.json").read_text())
    assert run.data.metrics["test/ndcg_at_10"] == pytest.approx(m["test/ndcg@10"])
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "curve.json", "id_maps", "checkpoints", "bundle"} <= arts
    assert {a.path for a in client.list_artifacts(run_id, "checkpoints")} == {"checkpoints/best.ckpt"}


def test_failed_run_leaves_no_bundle_or_metrics(tmp_path):
    out = tmp_path / "out"
    proc = run_train(
        ["experiment=demo", *TINY, "trainer.max_epochs=1", "export.index=NotAFaissIndex"],
        out,
        f"sqlite:///{tmp_path / 'm.db'}",
        check=False,
    )
    assert proc.returncode != 0
    assert not (out / "metrics.json").exists()
    assert not (out / "bundle").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_unknown_config_key_fails_before_reading_data(tmp_path):
    proc = run_train(
        ["data=s3rec", "data.path=/does/not/exist.txt", "model.d_modle=8"],
        tmp_path / "o",
        f"sqlite:///{tmp_path / 'm.db'}",
        check=False,
    )
    assert proc.returncode != 0
    assert "d_modle" in proc.stderr
    assert "does/not/exist" not in proc.stderr  # failed at composition, not when reading


def test_weight_averaging_is_what_validation_checkpoints_and_evaluation_see(tmp_path):
    """trainer.ema_decay: the checkpoint holds the average as its state_dict (the raw weights
    beside it, for resuming), and the final evaluation of the best checkpoint reproduces the
    validation figure logged for that epoch, which only holds if validation also ran on the
    average."""
    import torch

    out = tmp_path / "ema"
    run_train(
        ["experiment=demo", *TINY, "show_samples=0", "logger=none", "export.enabled=false", "trainer.ema_decay=0.9"],
        out,
        f"sqlite:///{tmp_path / 'mlruns.db'}",
    )
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    average, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert average.keys() == raw.keys()
    assert int(ckpt["averaging_state"]["n_averaged"]) == ckpt["global_step"]  # one update per optimiser step
    assert any(not torch.equal(average[k], raw[k]) for k in average)
    m = json.loads((out / "metrics.json").read_text())
    curve = json.loads((out / "curve.json").read_text())
    best = curve[int(m["best_epoch"]) - 1]
    assert m["valid_seen_excluded/ndcg@10"] == pytest.approx(best["valid_seen_excluded/ndcg@10"], rel=1e-5)


@pytest.mark.parametrize("decay", [1.0, -0.5])
def test_bad_ema_decay_is_named(decay):
    from journeyrec.training.run import _weight_averaging

    from conftest import compose

    with pytest.raises(ValueError, match="trainer.ema_decay"):
        _weight_averaging(compose("train", ["experiment=demo", f"trainer.ema_decay={decay}"]))
