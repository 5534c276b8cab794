"""Sweeps in MLflow: a 4-configuration Hydra multirun is one parent run with four children; the
Optuna sweeper runs 4 trials on the validation metric, registers the best bundle as a pyfunc model,
and that model answers predict() in a fresh Python process without Lightning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run_script

SWEEP_TINY = [
    "experiment=demo",
    "data.options.n_customers=150",
    "model.n_blocks=1",
    "trainer.max_epochs=1",
    "trainer.progress_bar=false",
    "show_samples=0",
    "eval.bootstrap=50",
]
MONITOR = "valid_seen_excluded/ndcg@10"


def sweep_runs(uri: str, sweep_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent_id = (sweep_dir / "mlflow_parent_run_id").read_text().strip()
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return client, parent, children


def child_value(client, run) -> float:
    """The monitored validation metric of a child, from its logged metrics.json (the best epoch's)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="metrics.json", tracking_uri=client.tracking_uri
    )
    return json.loads(Path(local).read_text())[MONITOR]


@pytest.mark.slow
def test_grid_multirun_is_one_parent_with_four_children(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    sweep = tmp_path / "sweep"
    run_script(
        "train.py", ["-m", *SWEEP_TINY, "model.d_model=8,16", "model.dropout=0.1,0.3", f"hydra.sweep.dir={sweep}"], uri
    )
    client, parent, children = sweep_runs(uri, sweep)
    assert parent.data.tags["journeyrec.kind"] == "sweep" and parent.info.status == "FINISHED"
    assert len(children) == 4 and parent.data.tags["n_children"] == "4"
    combos = {(r.data.params["model.d_model"], r.data.params["model.dropout"]) for r in children}
    assert combos == {("8", "0.1"), ("8", "0.3"), ("16", "0.1"), ("16", "0.3")}
    assert all(r.info.status == "FINISHED" and r.data.tags["seed"] == "42" for r in children)
    values = {r.info.run_id: child_value(client, r) for r in children}
    best = max(values, key=values.get)
    assert parent.data.tags["best_run_id"] == best
    assert float(parent.data.tags["best_value"]) == pytest.approx(values[best])
    # every run of the experiment is the parent or one of its children: nothing left dangling
    all_runs = client.search_runs([parent.info.experiment_id])
    assert len(all_runs) == 5


@pytest.mark.slow
def test_optuna_sweep_registers_the_best_bundle_and_pyfunc_predicts_in_a_fresh_process(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py",
        [
            "hparams_search=sasrec_optuna",
            *SWEEP_TINY,
            "hydra.sweeper.n_trials=4",
            f"hydra.sweep.dir={sweep}",
            # merged into the config's
            "hydra.sweeper.params={model.d_model:'choice(8,16)',model.n_blocks:'choice(1)'}",
        ],
        uri,
    )
    client, parent, children = sweep_runs(uri, sweep)
    assert len(children) == 4
    values = {r.info.run_id: child_value(client, r) for r in children}
    best = max(values, key=values.get)
    assert parent.data.tags["best_run_id"] == best
    # Optuna optimised the validation metric that train.py returns
    logged = float(re.search(r"Best value: ([0-9.eE+-]+)", proc.stdout + proc.stderr).group(1))
    assert logged == pytest.approx(values[best])
    version = client.get_model_version("demo-sasrec", "1")
    assert version.tags["source_run_id"] == best
    assert parent.data.tags["registered_model"] == "demo-sasrec/1"

    # a fresh interpreter: load from the registry, predict on a DataFrame of sessions
    import mlflow

    bundle = Path(
        mlflow.artifacts.download_artifacts(
            run_id=best, artifact_path="bundle", dst_path=str(tmp_path / "b"), tracking_uri=uri
        )
    )
    from journeyrec.serving import Recommender
    from journeyrec.serving.request import RecommendRequest

    rec = Recommender.load(bundle)
    items = [str(x) for x in rec.item_ids]
    sessions = {"s1": items[:3], "s2": items[40:45]}
    script = textwrap.dedent(f"""
        import json, sys
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model("models:/demo-sasrec/1")
        df = pd.DataFrame({{"session_id": ["s1", "s2"], "item_ids": {json.dumps(list(sessions.values()))}}})
        out = model.predict(df, params={{"k": 5}})
        events = pd.DataFrame({{"session_id": ["e"] * 3, "item_id": {json.dumps(items[:3])},
                                "event_type": ["view", "cart", "view"]}})
        out2 = model.predict(events)
        print(json.dumps({{"wide": out.to_dict("records"), "long_rows": len(out2),
                          "lightning": any(m.startswith(("pytorch_lightning", "lightning")) for m in sys.modules)}}))
    """)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT / "src"))
    fresh = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    res = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert res["lightning"] is False and res["long_rows"] == 10
    for sid, hist in sessions.items():
        got = [r["item_id"] for r in res["wide"] if r["session_id"] == sid]
        assert [r["rank"] for r in res["wide"] if r["session_id"] == sid] == [1, 2, 3, 4, 5]
        assert got == [r.item_id for r in rec.recommend(RecommendRequest.from_items(hist, k=5)).items]
