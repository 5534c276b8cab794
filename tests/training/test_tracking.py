"""What a training run leaves in MLflow and on the console reads like the run: per-epoch figures at
epoch steps 1..E under the one name mapping of metrics.json (``@`` -> ``_at_``), each once, the
epoch's seconds, the job log as an artifact, every run tagged with its kind; the console numbers
each epoch once, from 1."""

from __future__ import annotations

import json
import re

import pytest

from journeyrec.tracking import metric_key, mlflow_key

from conftest import ROOT, run_script

pytestmark = pytest.mark.slow  # training runs with MLflow through the CLI

EPOCHS = 3
TINY = [
    "experiment=demo",
    "data.options.n_customers=150",
    "model.d_model=16",
    "model.n_blocks=1",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.min_epochs={EPOCHS}",
    "trainer.patience=10",
    "trainer.progress_bar=false",
    "show_samples=0",
    "eval.bootstrap=0",
    "export.enabled=false",
    "transitions.weights=[1]",  # the blend's candidate figures are metrics too
]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    proc = run_script("train.py", [*TINY, f"hydra.run.dir={tmp / 'run'}"], uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run_id = (tmp / "run" / "mlflow_run_id").read_text().strip()
    return client, run_id, tmp, proc, uri


def test_epoch_metrics_sit_at_epoch_steps_once_each(tracked_run):
    client, run_id, *_ = tracked_run
    run = client.get_run(run_id)
    names = set(run.data.metrics)
    assert "epoch" not in names and "valid_ndcg10" not in names
    for name in ("valid_seen_excluded/ndcg_at_10", "valid/hr_at_20", "train/loss", "epoch_seconds"):
        history = client.get_metric_history(run_id, name)
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), name
    assert all(m.value > 0 for m in client.get_metric_history(run_id, "epoch_seconds"))


def test_mlflow_names_are_the_metrics_json_names_mapped_one_to_one(tracked_run):
    client, run_id, tmp, *_ = tracked_run
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    logged = set(client.get_run(run_id).data.metrics)
    # every metrics.json figure is in MLflow under mlflow_key, and the mapping inverts exactly
    missing = [k for k in metrics if mlflow_key(k) not in logged]
    assert not missing, missing[:5]
    assert all(metric_key(mlflow_key(k)) == k for k in metrics)
    assert not any("@" in name for name in logged)


def test_job_log_is_an_artifact_and_runs_carry_their_kind(tracked_run):
    client, run_id, tmp, _, uri = tracked_run
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "train.log" in artifacts
    assert client.get_run(run_id).data.tags["journeyrec.kind"] == "training"
    out = tmp / "prep"
    run_script("prepare_data.py", ["data.options.n_customers=80", f"hydra.run.dir={out}"], uri)
    prep = [
        r
        for r in client.search_runs([client.get_run(run_id).info.experiment_id])
        if r.info.run_name and r.info.run_name.startswith("prepare-")
    ]
    assert len(prep) == 1 and prep[0].data.tags["journeyrec.kind"] == "prepare"


def test_console_numbers_each_epoch_once_from_one(tracked_run):
    *_, proc, _ = tracked_run
    text = proc.stdout + proc.stderr
    numbered = re.findall(r"epoch (\d+)/(\d+):", text)
    assert numbered == [(str(e), str(EPOCHS)) for e in range(1, EPOCHS + 1)]
    assert not re.search(r"epoch 0\b", text)


def test_progress_bar_counts_epochs_from_one(tmp_path):
    """The bar of a 2-epoch run ends at 'Epoch 2/2' (Lightning's own would show 'Epoch 1')."""
    import subprocess
    import sys

    args = [
        "experiment=demo",
        "data.options.n_customers=150",
        "model.d_model=16",
        "model.n_blocks=1",
        "trainer.max_epochs=2",
        "trainer.min_epochs=2",
        "trainer.progress_bar=true",
        "logger=none",
        "show_samples=0",
        "eval.bootstrap=0",
        "export.enabled=false",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr  # Lightning's bar writes to stdout
    bars = re.findall(r"Epoch (\d+)(?:/(\d+))?", text)
    assert bars and bars[-1] == ("2", "2") and all(total == "2" for _, total in bars), sorted(set(bars))
