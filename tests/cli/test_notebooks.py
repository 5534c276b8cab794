"""The notebooks run the way notebooks/README.md tells users to run them: every command it shows
is installed by the development install, ``jupyter lab`` serves the notebooks (a real server on
127.0.0.1), and the headless command executes each notebook end to end (a real kernel, started in
the notebook's folder as Jupyter starts kernels) on tiny data, so none of them can rot."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from conftest import ROOT, compose

NOTEBOOKS = ROOT / "notebooks"
JUPYTER = str(Path(sys.executable).with_name("jupyter"))  # the environment's own, as an activated env finds it


def readme_commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", (NOTEBOOKS / "README.md").read_text(), re.S)
    assert block, "notebooks/README.md shows no commands"
    return [
        shlex.split(line) for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def execute(name: str, tmp_path: Path, **env: str) -> nbformat.NotebookNode:
    """Run ``name`` with the README's headless command (its output directory moved to ``tmp_path``)."""
    (cmd,) = [c for c in readme_commands() if c[:2] == ["jupyter", "nbconvert"]]
    cmd = [JUPYTER] + [str(NOTEBOOKS / name) if arg.endswith(".ipynb") else arg for arg in cmd[1:]]
    cmd[cmd.index("--output-dir") + 1] = str(tmp_path)
    proc = subprocess.run(
        [*cmd, "--ExecutePreprocessor.timeout=300"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return nbformat.read(tmp_path / name, as_version=4)


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


@pytest.mark.slow
def test_every_command_of_the_readme_is_installed():
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["jupyter", "lab"], ["jupyter", "nbconvert"]]
    for c in commands:
        proc = subprocess.run([JUPYTER, c[1], "--version"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and re.match(r"\d+\.\d+", proc.stdout.strip()), (
            c,
            proc.stdout,
            proc.stderr[-2000:],
        )


@pytest.mark.slow
def test_jupyter_lab_serves_the_notebooks(tmp_path):
    (cmd,) = [c for c in readme_commands() if c[:2] == ["jupyter", "lab"]]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "journeyrec-test"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    with open(tmp_path / "lab.log", "wb") as log:
        server = subprocess.Popen(
            [
                JUPYTER,
                *cmd[1:],
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],  # CI containers run as root
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                try:
                    listing = httpx.get(f"{base}/api/contents", params={"token": token}, timeout=5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
                    time.sleep(0.5)
            assert listing.status_code == 200
            assert {"explore_dataset.ipynb", "compare_runs.ipynb"} <= {f["name"] for f in listing.json()["content"]}
            page = httpx.get(f"{base}/lab", params={"token": token}, timeout=30)
            assert page.status_code == 200 and "JupyterLab" in page.text
        finally:
            server.terminate()
            server.wait(timeout=60)


@pytest.mark.slow
def test_explore_dataset_notebook_runs(tiny_trained_run, tmp_path):
    # a path relative to the repository, as a user passes one: the kernel starts in notebooks/
    prepared = os.path.relpath(tiny_trained_run.out / "prepared", ROOT)
    nb = execute("explore_dataset.ipynb", tmp_path, JOURNEYREC_PREPARED=prepared)
    text = outputs(nb)
    assert "demo shop" in text and "share_of_customers" in text and "evaluation cases" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_compare_runs_notebook_runs(tiny_trained_run, tmp_path):
    from journeyrec.evaluation.pipeline import run_evaluation

    # an evaluation run in the store, so the notebook has a model and a baseline to pair
    run_evaluation(
        compose(
            "evaluate",
            [
                f"bundle={tiny_trained_run.out / 'bundle'}",
                f"logger.tracking_uri={tiny_trained_run.uri}",
                "splits=[test]",
                "eval.baselines=[popularity]",
                "eval.bootstrap=100",
                "report=false",
                "eval.progress=false",
                f"output_dir={tmp_path / 'eval'}",
            ],
        )
    )
    nb = execute("compare_runs.ipynb", tmp_path, MLFLOW_TRACKING_URI=tiny_trained_run.uri, JOURNEYREC_EXPERIMENT="demo")
    text = outputs(nb)
    assert "runs in demo" in text and "test/ndcg@10" in text
    assert "95% CI of B - A" in text and "system popularity" in text  # the paired comparison ran
    assert sum(1 for c in nb.cells for o in c.get("outputs", []) if o.get("data", {}).get("image/png")) >= 2
    assert not (NOTEBOOKS / "mlruns.db").exists()
