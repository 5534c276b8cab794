"""Nothing reaches the network at import or on the critical path: the pipeline runs with every
non-loopback connection and DNS lookup blocked (tests/netblock/sitecustomize.py), and no
attempt is recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETBLOCK = Path(__file__).resolve().parents[1] / "netblock"


def blocked_env(tmp_path: Path) -> tuple[dict, Path]:
    log = tmp_path / "attempts.log"
    env = dict(os.environ, JOURNEYREC_NETBLOCK_LOG=str(log), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    env["PYTHONPATH"] = os.pathsep.join([str(NETBLOCK), env.get("PYTHONPATH", "")])
    return env, log


def test_blocker_is_active(tmp_path):
    env, log = blocked_env(tmp_path)
    code = (
        "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
        "except OSError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "network blocked" in out.stdout
    assert log.read_text().strip()


@pytest.mark.slow
def test_pipeline_runs_offline(tmp_path):
    env, log = blocked_env(tmp_path)
    code = (
        "import journeyrec, journeyrec.data.prepare, journeyrec.serving, journeyrec.training.run, journeyrec.tracking\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    out = tmp_path / "run"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "experiment=demo",
            "data.options.n_customers=200",
            "model.d_model=16",
            "model.n_blocks=1",
            "trainer.max_epochs=1",
            "trainer.progress_bar=false",
            "show_samples=1",
            f"hydra.run.dir={out}",
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    assert (out / "bundle" / "manifest.json").exists()
    assert not log.exists() or not log.read_text().strip(), log.read_text()
