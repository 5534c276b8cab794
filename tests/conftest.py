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
