"""scripts/export_index.py re-exports a run's bundle with another index and logs it to MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from journeyrec.config import compose_cli
from journeyrec.data.prepare import prepare, save_prepared
from journeyrec.models import build_model

ROOT = Path(__file__).resolve().parents[2]


def fake_run(tmp: Path, uri: str) -> tuple[Path, str, dict]:
    """A run directory as training leaves it (config, prepared data, a checkpoint, an MLflow run),
    of a model with item attributes (rebuilding it needs the run's catalogue)."""
    from mlflow.tracking import MlflowClient

    from journeyrec.data.schema import FEATURE_SIZES

    cfg = compose_cli(
        str(ROOT / "configs"),
        "train",
        [
            "experiment=demo",
            "data.options.n_customers=300",
            "model.d_model=16",
            "model.n_blocks=1",
            "model.attributes=[category,brand]",
            f"logger.tracking_uri={uri}",
        ],
    )
    run = tmp / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml")
    prepared = prepare(cfg.data)
    save_prepared(prepared, run / "prepared")
    torch.manual_seed(0)
    model = build_model(cfg.model, prepared.sequences.n_items, FEATURE_SIZES, prepared.sequences.catalog)
    (run / "checkpoints").mkdir()
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 1},
        run / "checkpoints" / "best.ckpt",
    )
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("demo-export")).info.run_id
    (run / "mlflow_run_id").write_text(run_id)
    return run, run_id, model.state_dict()


@pytest.mark.slow
def test_export_index_script_builds_a_tuned_bundle_from_a_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run, run_id, state = fake_run(tmp_path, uri)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "export_index.py"),
            f"run={run}",
            "export=hnsw",
            "export.n_queries=200",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    quality = manifest["index"]["quality"]
    assert manifest["index"]["factory"] == "HNSW32" and "efSearch" in manifest["index"]["search_params"]
    assert quality["query_source"] == "validation session vectors" and quality["evaluated_on"] == 100
    assert quality["reached_target"] and quality["recall@10"] >= 0.9
    from journeyrec.serving import Recommender

    rec = Recommender.load(run / "bundle")
    served = rec.model.state_dict()
    assert set(served) == set(state)  # the bundle holds the checkpoint's weights, every tensor
    assert all(torch.equal(served[name], state[name]) for name in state)
    assert rec.stats.category_table()  # statistics learned from the run's prepared events
    arts = {a.path for a in MlflowClient(uri).list_artifacts(run_id)}
    assert f"bundle-{manifest['bundle_version']}" in arts
    from journeyrec.bundle.format import BundleError
    from journeyrec.training.export_run import export_run

    with pytest.raises(BundleError, match="not a training run directory"):
        export_run(compose_cli(str(ROOT / "configs"), "export_index", [f"run={tmp_path}"]))


@pytest.mark.slow  # a real (tiny) Lightning fit with a refit, exported and evaluated twice
def test_a_refit_run_reexports_its_refitted_weights_by_default_and_the_picked_epoch_on_request(tmp_path):
    import numpy as np

    import journeyrec
    from journeyrec.bundle.format import read_bundle
    from journeyrec.training.config import ExportJobConfig
    from journeyrec.training.export_run import export_run

    from conftest import train_tiny

    metrics, run = train_tiny(tmp_path / "run", ["trainer.refit_epochs=1", "eval.bootstrap=0"])
    assert (run / "checkpoints" / "refit.ckpt").is_file()
    assert compose_cli(str(ROOT / "configs"), "export_index", [f"run={run}"]).checkpoint == "final"

    def test_ndcg(bundle: Path) -> float:
        out = journeyrec.evaluate(
            [f"bundle={bundle}", "splits=[test]", "eval.baselines=[]", "eval.bootstrap=0", "logger=none"],
            output_dir=bundle.parent / f"eval_{bundle.name}",
        )
        return out.metrics["test_seen_excluded/ndcg@10"]

    final = export_run(ExportJobConfig(run=str(run), out=str(tmp_path / "final"), log_mlflow=False))
    picked = export_run(
        ExportJobConfig(run=str(run), out=str(tmp_path / "picked"), checkpoint="best", log_mlflow=False)
    )
    # the default re-export holds the run's own bundle's weights, the refit included
    np.testing.assert_array_equal(read_bundle(final).vectors, read_bundle(run / "bundle").vectors)
    assert test_ndcg(final) == pytest.approx(metrics["test_seen_excluded/ndcg@10"])
    # checkpoint=best: the epoch early stopping picked, said so in its config and metrics
    bundle = read_bundle(picked)
    assert not np.array_equal(bundle.vectors, read_bundle(final).vectors)
    assert bundle.config["trainer"]["refit_epochs"] == 0
    assert test_ndcg(picked) == pytest.approx(metrics["test_before_refit_seen_excluded/ndcg@10"])
    stored = json.loads((picked / "metrics.json").read_text())
    assert stored["test_seen_excluded/ndcg@10"] == pytest.approx(metrics["test_before_refit_seen_excluded/ndcg@10"])
    assert not any(k.startswith("test_before_refit") for k in stored)


@pytest.mark.slow  # a real (tiny) Lightning fit with a refit and the transition blend, exported and evaluated
def test_the_transition_blend_is_chosen_on_validation_and_travels_with_each_bundle(tmp_path):
    import journeyrec
    from journeyrec.bundle.format import read_bundle
    from journeyrec.data.prepare import load_prepared
    from journeyrec.data.sequences import with_validation_targets
    from journeyrec.models.transitions import Transitions
    from journeyrec.training.blend import candidate_metric
    from journeyrec.training.config import ExportJobConfig
    from journeyrec.training.export_run import export_run

    from conftest import train_tiny

    metrics, run = train_tiny(
        tmp_path / "run", ["trainer.refit_epochs=1", "eval.bootstrap=0", "transitions.weights=[1,4]"]
    )
    monitor = "valid_seen_excluded/ndcg@10"
    tried = {w: metrics[candidate_metric(monitor, w)] for w in (0.0, 1.0, 4.0)}
    weight = metrics["transitions/weight"]
    assert weight == max(tried, key=lambda w: (tried[w], -w)) and weight > 0  # the demo's journeys repeat
    assert metrics[monitor] == pytest.approx(tried[weight])  # the run's validation figures are the blend's

    def test_ndcg(bundle: Path) -> float:
        out = journeyrec.evaluate(
            [f"bundle={bundle}", "splits=[test]", "eval.baselines=[]", "eval.bootstrap=0", "logger=none"],
            output_dir=bundle.parent / f"eval_{bundle.name}",
        )
        return out.metrics["test_seen_excluded/ndcg@10"]

    prep = load_prepared(run / "prepared")
    s, split = prep.sequences, prep.split
    # the run's bundle: the refitted weights, with the validation targets counted too
    final = read_bundle(run / "bundle")
    assert final.transitions is not None and final.transitions.weight == weight
    assert final.transitions.values.sum() == Transitions.fit(s, with_validation_targets(split).train_ends).values.sum()
    assert test_ndcg(run / "bundle") == pytest.approx(metrics["test_seen_excluded/ndcg@10"])
    # the picked epoch re-exported: the same weight, the training prefixes' counts, the before-refit figures
    picked = export_run(
        ExportJobConfig(run=str(run), out=str(tmp_path / "picked"), checkpoint="best", log_mlflow=False)
    )
    blend = read_bundle(picked).transitions
    assert blend is not None and blend.weight == weight
    assert blend.values.sum() == Transitions.fit(s, split.train_ends).values.sum() < final.transitions.values.sum()
    assert test_ndcg(picked) == pytest.approx(metrics["test_before_refit_seen_excluded/ndcg@10"])
