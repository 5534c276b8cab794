"""Shared fixtures. Tests run real components (MLflow sqlite store, FAISS, Hydra, Lightning)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from journeyrec.data.schema import conform_events

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# The demo shop with its shopping funnel kept (a cart is not merged into the purchase after it),
# split by time: what the intent and abandonment tests read.
DEMO_FUNNEL = {
    "name": "demo",
    "path": None,
    "options": {"n_customers": 400, "seed": 7},
    "dedup_consecutive": False,
    "allow_demo_key": True,
    "split": "global_time",
}


def events_table(rows):
    """Canonical events from ``(user, item, event_type, ts_seconds)`` rows, for hand-made cases."""
    u, i, e, t = zip(*rows)
    return conform_events(
        pa.table(
            {
                "user_id": pa.array(u, pa.string()),
                "item_id": pa.array(i, pa.string()),
                "event_type": pa.array(e, pa.string()),
                "timestamp": pa.array([x * 1000 for x in t], pa.timestamp("ms", tz="UTC")),
            }
        )
    )


def shared_file(relative: str) -> Path:
    """A file from ../shared/data: under CI a missing file fails the test, locally it skips."""
    path = SHARED / relative
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing: CI must run with ../shared/data beside the repository")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# --- a tiny trained model shared by the evaluation tests (one real training run per session) ---
TINY_DEMO = [
    "experiment=demo",
    "data.options.n_customers=200",
    "model.d_model=16",
    "model.n_blocks=1",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
    "show_samples=0",
    "eval.bootstrap=200",
]


def run_script(script: str, args: list[str], uri: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run scripts/<script> with the tracking store ``uri``; fail with its output if it fails."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONUNBUFFERED="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@dataclass
class TrainedRun:
    out: Path  # training output directory (bundle/, prepared/, metrics.json, per_case.parquet)
    uri: str  # its MLflow store
    run_id: str


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    tmp = tmp_path_factory.mktemp("tiny_run")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    run_script("train.py", [*TINY_DEMO, f"hydra.run.dir={tmp / 'train'}"], uri)
    return TrainedRun(tmp / "train", uri, (tmp / "train" / "mlflow_run_id").read_text().strip())


def compose(name: str, overrides: list[str]):
    """A config of configs/<name>.yaml composed in process, as its script would (Hydra compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from journeyrec.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(name, overrides=overrides)


# a tiny in-process training run: real Hydra composition and a real Lightning fit, in seconds
TINY_TRAIN = [
    "data.options.n_customers=150",
    "model.d_model=16",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
    "logger=none",
    "show_samples=0",
]


def train_tiny(tmp_path: Path, overrides: list[str]) -> tuple[dict, Path]:
    """``scripts/train.py`` in process on a tiny config; returns (metrics, output directory)."""
    from journeyrec.training.run import train

    return train(compose("train", [*TINY_TRAIN, *overrides, f"output_dir={tmp_path}"])).metrics, tmp_path


@pytest.fixture
def one_thread():
    """Serving runs single-threaded (one query at a time); on a busy 2-core machine a second
    intra-op thread makes each tiny forward pass wait for a core (10x slower, measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory: pytest.TempPathFactory):
    """The demo shop exported as a serving bundle (tests/serving_support.py), built once."""
    from serving_support import build_demo_bundle

    return build_demo_bundle(tmp_path_factory.mktemp("demo-bundle") / "bundle")


@pytest.fixture(scope="session")
def live_bundle(tmp_path_factory: pytest.TempPathFactory):
    """The demo shop's bundle with a model that reads item attributes (new items get vectors)."""
    from serving_support import LIVE_ATTRIBUTES, build_demo_bundle

    return build_demo_bundle(tmp_path_factory.mktemp("live-bundle") / "bundle", attributes=LIVE_ATTRIBUTES)
