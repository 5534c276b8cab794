"""The notebooks execute end to end (nbclient, a real kernel) on tiny data, so they cannot rot:
the dataset explorer on a prepared directory, the run comparison on a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import nbformat
from conftest import ROOT, compose
from nbclient import NotebookClient

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.append(str(out.get("data", {}).get("text/plain", "")))
            assert out.get("output_type") != "error", out
    return "\n".join(text)


def test_every_notebook_is_covered():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {"explore_dataset.ipynb", "compare_runs.ipynb"}


def test_explore_dataset_notebook_runs(tiny_trained_run, monkeypatch, tmp_path):
    monkeypatch.setenv("JOURNEYREC_PREPARED", str(tiny_trained_run.out / "prepared"))
    nb = execute("explore_dataset.ipynb", tmp_path)
    text = outputs(nb)
    assert "demo shop" in text and "share_of_customers" in text and "evaluation cases" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in c.get("outputs", []))


def test_compare_runs_notebook_runs(tiny_trained_run, monkeypatch, tmp_path):
    from journeyrec.evaluation.pipeline import run_evaluation

    # an evaluation run in the store, so the notebook has a model and a baseline to pair
    run_evaluation(compose("evaluate", [f"bundle={tiny_trained_run.out / 'bundle'}", f"logger.tracking_uri={tiny_trained_run.uri}",
                                        "splits=[test]", "eval.baselines=[popularity]", "eval.bootstrap=100", "report=false",
                                        "eval.progress=false", f"output_dir={tmp_path / 'eval'}"]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tiny_trained_run.uri)
    monkeypatch.setenv("JOURNEYREC_EXPERIMENT", "demo")
    nb = execute("compare_runs.ipynb", tmp_path)
    text = outputs(nb)
    assert "runs in demo" in text and "test/ndcg@10" in text
    assert "95% CI of B - A" in text and "system popularity" in text  # the paired comparison ran
    assert sum(1 for c in nb.cells for o in c.get("outputs", []) if o.get("data", {}).get("image/png")) >= 2
