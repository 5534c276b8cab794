"""Export the bundle of a finished training run (what ``scripts/export_index.py`` calls)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from journeyrec.bundle.format import BundleError, export_bundle, read_manifest
from journeyrec.data.prepare import PreparedData, load_prepared
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.evaluation.abandonment import choose_model
from journeyrec.models import build_model
from journeyrec.models.abandonment import AbandonmentModel
from journeyrec.models.base import SequenceModel
from journeyrec.models.protocol import EmbeddingModel
from journeyrec.tracking import mlflow_client
from journeyrec.training.blend import WEIGHT_METRIC, blend_transitions
from journeyrec.training.config import BEFORE_REFIT, ExportJobConfig, TrainConfig, train_config
from journeyrec.typed import as_dict

__all__ = [
    "export_run",
    "load_run_model",
    "checkpoint_file",
    "before_refit",
    "fit_abandonment",
    "REFIT_CHECKPOINT",
]

log = logging.getLogger(__name__)


def fit_abandonment(cfg: TrainConfig, model: EmbeddingModel, prepared: PreparedData) -> AbandonmentModel | None:
    """The cart-abandonment model a bundle ships (``export.abandonment``): the candidate best on
    validation (``journeyrec.evaluation.abandonment.choose_model``), or None when it is off or the
    data cannot support one (a warning says why)."""
    if not cfg.export.abandonment:
        return None
    if cfg.data.dedup_consecutive:
        log.warning(
            "export.abandonment: skipped, data.dedup_consecutive=true merges a cart into the purchase that "
            "follows it (set data.dedup_consecutive=false to keep the funnel)"
        )
        return None
    try:
        return choose_model(
            prepared.sequences, prepared.split, model, seed=cfg.seed, threads=max(1, int(cfg.trainer.num_threads or 1))
        )
    except ValueError as exc:
        log.warning("export.abandonment: no model (%s)", exc)
        return None


REFIT_CHECKPOINT = "refit.ckpt"  # in <run>/checkpoints: the refitted weights (trainer.refit_epochs)
CHECKPOINTS = "final|best|last|PATH"


def checkpoint_file(run: Path, checkpoint: str = "final") -> Path:
    """The checkpoint ``checkpoint`` names in ``run``: ``final`` is what the run's own bundle holds
    (the refitted weights when the run refitted, else the picked epoch, else the last epoch);
    ``best`` the epoch early stopping picked, ``last`` the fit's last epoch (both before a refit)."""
    ckpts = run / "checkpoints"
    if checkpoint == "final":
        found = [ckpts / n for n in (REFIT_CHECKPOINT, "best.ckpt", "last.ckpt") if (ckpts / n).is_file()]
        if not found:
            raise BundleError(f"{ckpts}: no checkpoint found (checkpoint={CHECKPOINTS})")
        return found[0]
    ckpt = ckpts / f"{checkpoint}.ckpt" if checkpoint in ("best", "last") else Path(checkpoint)
    if not ckpt.is_file():
        raise BundleError(f"{ckpt}: checkpoint not found (checkpoint={CHECKPOINTS})")
    return ckpt


def load_run_model(run: Path, checkpoint: str = "final") -> tuple[SequenceModel, TrainConfig, PreparedData]:
    """The trained model of a run directory (with its typed config and prepared data), from a
    checkpoint (:func:`checkpoint_file`) read with ``weights_only=True`` (tensors and plain
    containers only: nothing is unpickled)."""
    cfg = train_config(OmegaConf.load(run / "config.yaml"))
    ckpt = checkpoint_file(run, checkpoint)
    prepared = load_prepared(Path(cfg.data.prepared) if cfg.data.prepared else run / "prepared")
    # the catalogue gives attribute models (model.attributes) their item code tables
    model = build_model(
        cfg.model,
        prepared.sequences.n_items,
        FEATURE_SIZES,
        prepared.sequences.catalog,
        intent_head=cfg.loss.intent_weight > 0,
    )
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")})
    return model.eval(), cfg, prepared


def before_refit(cfg: TrainConfig, metrics: dict[str, float], picked: bool) -> tuple[TrainConfig, dict[str, float]]:
    """The config and metrics of a checkpoint written before a refit: ``trainer.refit_epochs=0``;
    its test figures are the run's ``test_before_refit...`` for the picked epoch (``picked``), and
    unknown (left out) for another."""
    kept = {k: v for k, v in metrics.items() if not k.startswith("test")}
    if picked:
        kept.update({k.replace(BEFORE_REFIT, "test", 1): v for k, v in metrics.items() if k.startswith(BEFORE_REFIT)})
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, refit_epochs=0)), kept


def export_run(cfg: ExportJobConfig) -> Path:
    """Rebuild the run's model from its checkpoint and write its bundle with ``cfg.export``'s
    index; log it to the run's MLflow run (artifact path ``bundle-<version>``) when it has one."""
    run = Path(cfg.run)
    if not (run / "config.yaml").is_file():
        raise BundleError(f"{run}: not a training run directory (no config.yaml)")
    ckpt = checkpoint_file(run, cfg.checkpoint)
    model, train_cfg, prepared = load_run_model(run, str(ckpt))
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if train_cfg.trainer.refit_epochs and ckpt.name != REFIT_CHECKPOINT:
        log.info("%s: the weights before the refit; the bundle records trainer.refit_epochs=0", ckpt)
        train_cfg, metrics = before_refit(train_cfg, metrics, picked=ckpt.name == "best.ckpt")
    out = Path(cfg.out) if cfg.out else run / "bundle"
    resolved = as_dict(dataclasses.replace(train_cfg, export=cfg.export))
    abandonment = fit_abandonment(dataclasses.replace(train_cfg, export=cfg.export), model, prepared)
    transitions = None
    if metrics.get(WEIGHT_METRIC):  # the weight the run chose on validation; counts of the checkpoint's prefixes
        refit = ckpt.name == REFIT_CHECKPOINT
        transitions, _ = blend_transitions(train_cfg, prepared, prepared, model, metrics[WEIGHT_METRIC], refit)
    export_bundle(out, model, prepared, resolved, metrics, cfg.export, abandonment, transitions)
    run_id_file = run / "mlflow_run_id"
    if cfg.log_mlflow and run_id_file.is_file():
        version = read_manifest(out, verify=False)["bundle_version"]
        client = mlflow_client(train_cfg.logger.tracking_uri)
        run_id = run_id_file.read_text().strip()
        client.log_artifacts(run_id, str(out), f"bundle-{version}")
        client.set_tag(run_id, f"bundle-{version}", cfg.export.index)
    return out
