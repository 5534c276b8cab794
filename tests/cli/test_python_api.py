"""The Python API runs the scripts' jobs: prepare, train, evaluate and load_bundle, composed from
the same configs, end to end on a tiny demo shop; and importing journeyrec stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

TINY = [
    "experiment=demo",
    "data.options.n_customers=150",
    "model.d_model=16",
    "model.n_blocks=1",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
    "logger=none",
    "show_samples=0",
    "eval.bootstrap=0",
]


def test_importing_journeyrec_loads_no_framework():
    code = (
        "import sys, journeyrec; print(sorted(m for m in ('torch', 'pytorch_lightning', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_prepare_train_evaluate_and_recommend_from_python(tmp_path):
    import journeyrec

    prepared = journeyrec.prepare(["data.options.n_customers=150"], output_dir=tmp_path / "prep")
    assert prepared.sequences.n_users > 100 and (tmp_path / "prep" / "prepared" / "prepared.json").is_file()

    run = journeyrec.train(TINY, output_dir=tmp_path / "run")
    assert run.bundle_dir == tmp_path / "run" / "bundle" and run.metrics["epochs"] == 2
    saved = (tmp_path / "run" / "metrics.json").read_text()
    assert f'"test_seen_excluded/ndcg@10": {run.metrics["test_seen_excluded/ndcg@10"]}' in saved

    report = journeyrec.evaluate(
        [f"bundle={run.bundle_dir}", "logger=none", "report=false", "eval.bootstrap=0", "eval.baselines=[popularity]"],
        output_dir=tmp_path / "eval",
    )
    # the same model on the same prepared store: evaluate.py reproduces training's figures
    assert report.metrics["test_seen_excluded/ndcg@10"] == pytest.approx(run.metrics["test_seen_excluded/ndcg@10"])

    rec = journeyrec.load_bundle(run.bundle_dir, epsilon=0.0, diversity_lambda=1.0)
    assert rec.rules.epsilon == 0.0 and rec.rules.diversity_lambda == 1.0
    items = [str(x) for x in rec.item_ids[:3]]
    answer = rec.recommend(journeyrec.RecommendRequest.from_items(items, k=5))
    assert len(answer.items) == 5 and not set(items) & {r.item_id for r in answer.items}
    with pytest.raises(ValueError, match="unknown rule setting"):
        journeyrec.load_bundle(run.bundle_dir, epsilom=0.1)
