"""MLflow: the one place that knows where runs are tracked, how they are tagged, nested and registered.

Default store: a SQLite file ``mlruns.db`` (and artifacts under ``mlartifacts/``) in the
working directory, i.e. the repository when scripts are run from its root. ``MLFLOW_TRACKING_URI``
overrides it, and a config value (``logger.tracking_uri``) overrides both. Browse runs with::

    mlflow ui --backend-store-uri sqlite:///mlruns.db

Conventions kept here:

* one experiment per dataset (``training.run.experiment_name``);
* every run is tagged with the git commit, the data fingerprint, the seed and the versions of
  the packages that produce numbers (:func:`run_tags`);
* a Hydra multirun (``-m``; grid or Optuna) gets one *parent* run per sweep directory, and every
  job is a child of it (:func:`sweep_parent`); the parent tracks the best child on the monitored
  validation metric (:func:`record_child`);
* the best bundle of a sweep is registered in the Model Registry as a pyfunc model whose loader
  is :mod:`journeyrec.serving.mlflow_model` (the Recommender, no Lightning): see
  :func:`register_bundle` and the Hydra callback :class:`RegisterBestModel`.

MLflow itself is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from hydra.experimental.callback import Callback

from journeyrec.io import atomic_write_text

__all__ = [
    "LoggerConfig",
    "DEFAULT_DB",
    "tracking_uri",
    "mlflow_client",
    "artifact_root",
    "store_exists",
    "flatten",
    "experiment_id",
    "experiment_name_for",
    "mlflow_key",
    "metric_key",
    "git_commit",
    "package_versions",
    "run_tags",
    "log_metrics",
    "sweep_parent",
    "record_child",
    "register_bundle",
    "RegisterBestModel",
    "PARENT_FILE",
    "PYFUNC_NAME",
]

DEFAULT_DB = "mlruns.db"
PARENT_FILE = "mlflow_parent_run_id"  # in a sweep directory: the parent run of its jobs
PYFUNC_NAME = "pyfunc"  # logged model name of a registered bundle
VERSIONED_PACKAGES = (
    "torch",
    "pytorch-lightning",
    "numpy",
    "faiss-cpu",
    "mlflow",
    "hydra-core",
    "pandas",
    "pyarrow",
    "safetensors",
    "journeyrec",
)
SERVING_PACKAGES = ("torch", "faiss-cpu", "numpy", "pyarrow", "pandas", "safetensors")


@dataclass
class LoggerConfig:
    """Where a run is tracked (``logger=mlflow`` | ``logger=none``)."""

    mlflow: bool = True
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite file in the working directory
    experiment_name: Optional[str] = None  # None: derived from the dataset
    run_name: Optional[str] = None


def tracking_uri(configured: str | None = None) -> str:
    """Resolve the tracking URI: config > $MLFLOW_TRACKING_URI > sqlite file in the cwd."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store URI; None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) across processes."""
    import fcntl

    with open(lock_file, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def mlflow_client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` on the store ``uri`` resolves to (:func:`tracking_uri`).

    The first client to open a new SQLite store creates its tables; jobs started together on a new
    store would all try, and all but one fail ("table runs already exists"). Opening a SQLite store
    therefore holds a lock on the hidden file ``.<db name>.lock`` beside it."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(uri)
    db = _sqlite_file(uri)
    if db is None or not db.parent.is_dir():  # a server store, or a path MLflow will refuse itself
        return MlflowClient(uri)
    with _exclusive(db.parent / f".{db.name}.lock"):
        return MlflowClient(uri)  # creates and migrates the store's tables here, under the lock


def store_exists(uri: str) -> bool:
    """False for a sqlite store whose file does not exist (opening it would create it)."""
    db = _sqlite_file(uri)
    return db is None or db.is_file()


def artifact_root(uri: str) -> str:
    """Artifact location for new experiments: ``mlartifacts/`` next to a sqlite store."""
    db = _sqlite_file(uri)
    if db is not None:
        return (db.parent / "mlartifacts").as_uri()
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


def experiment_name_for(data_cfg: Any, configured: str | None = None) -> str:
    """One MLflow experiment per dataset: reader name + file (or directory) stem, e.g. ``s3rec-Beauty``
    for ``.../Beauty.txt`` and ``movielens-ml-1m-subset`` for a dataset directory."""
    if configured:
        return str(configured)
    get = (
        data_cfg.get
        if isinstance(data_cfg, Mapping) or hasattr(data_cfg, "get")
        else lambda k, d=None: getattr(data_cfg, k, d)
    )
    path, name = get("path", None), get("name", None)
    stem = Path(str(path).rstrip("/")).name.split(".")[0] if path else None
    return f"{name}-{stem}" if stem else str(name)


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


def metric_key(mlflow_name: str) -> str:
    """Inverse of :func:`mlflow_key`: ``test/ndcg_at_10`` -> ``test/ndcg@10``."""
    return mlflow_name.replace("_at_", "@")


# --- tags -----------------------------------------------------------------------------------


def git_commit(path: str | Path | None = None) -> tuple[str, bool]:
    """(commit, dirty) of the git checkout holding ``path`` (default: this package's source);
    ("unknown", False) outside a checkout. Dirty = tracked files modified."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return "unknown", False
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", False


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions (from package metadata: nothing is imported)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_tags(seed: int | None = None, fingerprint: str | None = None, **extra: str) -> dict[str, str]:
    """Tags that make a run reproducible: git commit (+ dirty flag), data fingerprint, seed,
    Python and package versions (``pkg.<name>``). Also MLflow's own ``mlflow.source.git.commit``
    so the UI shows the commit."""
    import platform

    commit, dirty = git_commit()
    tags = {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        "python": platform.python_version(),
    }
    if fingerprint is not None:
        tags["data_fingerprint"] = str(fingerprint)
    if seed is not None:
        tags["seed"] = str(seed)
    tags.update({f"pkg.{k}": v for k, v in package_versions().items()})
    tags.update({k: str(v) for k, v in extra.items()})
    return tags


def log_metrics(client: Any, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log many metrics in batches (one request per 1000, not one per metric); NaN is skipped."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(mlflow_key(k), float(v), now, step)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not math.isnan(float(v))
    ]
    for lo in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[lo : lo + 1000])


# --- sweeps: parent and child runs ----------------------------------------------------------


def sweep_parent(
    client: Any, experiment: str, sweep_dir: str | Path, run_name: str, tags: Mapping[str, str] | None = None
) -> str:
    """The parent run of the sweep in ``sweep_dir`` (created by its first job, then reused).

    The id is kept in ``<sweep_dir>/mlflow_parent_run_id``: every job of one Hydra multirun shares
    that directory, whichever launcher runs it (a file lock makes parallel jobs agree on one
    parent). A stale id (another store) is replaced.
    """
    d = Path(sweep_dir)
    d.mkdir(parents=True, exist_ok=True)
    f = d / PARENT_FILE
    with _exclusive(d / f".{PARENT_FILE}.lock"):  # parallel launchers: one job creates the parent
        if f.is_file():
            run_id = f.read_text().strip()
            try:
                client.get_run(run_id)
                client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:  # noqa: BLE001 - an id from another store: start a fresh parent
                pass
        # the children's tags (seed, data fingerprint) describe the parent too, but it is a sweep
        all_tags = {**dict(tags or {}), "journeyrec.kind": "sweep", "journeyrec.sweep_dir": str(d.resolve())}
        run = client.create_run(experiment, run_name=run_name, tags=all_tags)
        atomic_write_text(f, run.info.run_id)
        return run.info.run_id


def record_child(client: Any, parent_id: str, child_id: str, monitor: str, value: float, mode: str = "max") -> bool:
    """After a child finished: keep the parent's best child (tags ``best_run_id``, ``best_value``;
    metric ``best/<monitor>`` step by step) and mark the parent finished. Returns True if the
    child is the new best."""
    import math

    parent = client.get_run(parent_id)
    best = parent.data.tags.get("best_value")
    better = not math.isnan(value) and (best is None or (value > float(best) if mode == "max" else value < float(best)))
    n = int(parent.data.tags.get("n_children", "0")) + 1
    client.set_tag(parent_id, "n_children", str(n))
    client.set_tag(parent_id, "monitor", monitor)
    if better:
        client.set_tag(parent_id, "best_run_id", child_id)
        client.set_tag(parent_id, "best_value", repr(float(value)))
        best = value
    if best is not None:
        client.log_metric(parent_id, mlflow_key(f"best/{monitor}"), float(best), step=n)
    client.set_terminated(parent_id, "FINISHED")
    return better


# --- Model Registry: bundles as pyfunc models -----------------------------------------------


def register_bundle(run_id: str, name: str, uri: str | None = None, bundle_dir: str | Path | None = None) -> Any:
    """Register the bundle of training run ``run_id`` as version N of registered model ``name``.

    The bundle (from ``bundle_dir``, else downloaded from the run's ``bundle`` artifacts) is
    checked, stored as the data of a pyfunc model logged to the run, and registered. Loading
    ``models:/<name>/<version>`` then calls :mod:`journeyrec.serving.mlflow_model`, i.e. serving only.
    Returns the ModelVersion.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    from journeyrec.bundle.format import read_manifest

    uri = tracking_uri(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with tempfile.TemporaryDirectory(prefix="journeyrec-register-") as tmp:
            if bundle_dir is None:
                bundle_dir = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=tmp)
            read_manifest(bundle_dir)  # refuse a damaged bundle before registering it
            versions = package_versions(SERVING_PACKAGES)
            # no defaults here (None): MLflow hands every declared default to predict(), which would then
            # override the bundle's serving rules; the pyfunc applies the service's own defaults instead
            signature = ModelSignature(
                inputs=None,
                params=ParamSchema([ParamSpec("k", "long", None), ParamSpec("exclude_history", "boolean", None)]),
            )
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=PYFUNC_NAME,
                    loader_module="journeyrec.serving.mlflow_model",
                    data_path=str(bundle_dir),
                    pip_requirements=[f"{k}=={v}" for k, v in versions.items() if v != "not installed"],
                    signature=signature,
                )
            version = mlflow.register_model(info.model_uri, name, tags={"source_run_id": run_id})
        mlflow_client(uri).set_tag(run_id, "registered_model", f"{name}/{version.version}")
        return version
    finally:
        mlflow.set_tracking_uri(previous)


class RegisterBestModel(Callback):
    """Hydra callback: at the end of a multirun, register the best child's bundle.

    Configure it in a sweep config (see ``configs/hparams_search/``)::

        hydra:
          callbacks:
            register_best:
              _target_: journeyrec.tracking.RegisterBestModel
              model_name: null      # default: <experiment>-<model>

    The best child is the one the parent run recorded (:func:`record_child`), i.e. the best value
    of ``trainer.monitor``, a validation metric.
    """

    def __init__(self, model_name: str | None = None) -> None:
        self.model_name = model_name

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        f = Path(str(config.hydra.sweep.dir)) / PARENT_FILE
        if not config.logger.mlflow or not f.is_file():
            print("register_best: no MLflow parent run for this sweep; nothing registered")
            return
        uri = tracking_uri(config.logger.tracking_uri)
        store = mlflow_client(uri)
        parent_id = f.read_text().strip()
        parent = store.get_run(parent_id)
        best = parent.data.tags.get("best_run_id")
        if not best:
            print(f"register_best: sweep parent {parent_id} has no finished child; nothing registered")
            return
        exp = store.get_experiment(store.get_run(best).info.experiment_id).name
        name = self.model_name or f"{exp}-{config.model.name}"
        version = register_bundle(best, name, uri)
        store.set_tag(parent_id, "registered_model", f"{name}/{version.version}")
        print("\n" + "=" * 72)
        print(f"sweep parent run : {parent_id}  ({parent.data.tags.get('n_children')} children)")
        monitor, best_value = parent.data.tags.get("monitor"), float(parent.data.tags["best_value"])
        print(f"best child       : {best}  {monitor} = {best_value:.4f}")
        print(f"registered       : models:/{name}/{version.version}")
        print("=" * 72)
