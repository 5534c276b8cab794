"""MLflow: the one place that knows where runs are tracked.

Default store: a SQLite file ``mlruns.db`` (and artifacts under ``mlartifacts/``) in the
working directory, i.e. the repository when scripts are run from its root. ``MLFLOW_TRACKING_URI``
overrides it, and a config value (``logger.tracking_uri``) overrides both. Browse runs with::

    mlflow ui --backend-store-uri sqlite:///mlruns.db
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["DEFAULT_DB", "tracking_uri", "artifact_root", "flatten", "experiment_id", "mlflow_key"]

DEFAULT_DB = "mlruns.db"


def tracking_uri(configured: str | None = None) -> str:
    """Resolve the tracking URI: config > $MLFLOW_TRACKING_URI > sqlite file in the cwd."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def artifact_root(uri: str) -> str:
    """Artifact location for new experiments: ``mlartifacts/`` next to a sqlite store."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.replace("file://", "")).as_uri()
    return ""


def experiment_id(client: Any, name: str, uri: str) -> str:
    """Get or create an experiment (with artifacts next to a local store)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat ``{"model.d_model": 64, ...}`` (lists as strings) for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out


def mlflow_key(key: str) -> str:
    """MLflow metric names may not contain '@': ``test/ndcg@10`` is logged as ``test/ndcg_at_10``."""
    return key.replace("@", "_at_")
