"""Shared fixtures. Tests run real components (MLflow sqlite store, FAISS, Hydra, Lightning)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


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
