"""The training pipeline behind ``scripts/train.py``: prepare -> fit -> evaluate -> export -> track.

One call, one MLflow run, one output directory holding::

    config.yaml       the resolved configuration
    prepared/         id maps, catalogue, sequences and split (journeyrec.data.prepare)
    checkpoints/      best.ckpt and last.ckpt (Lightning; ``ckpt_path=last`` resumes)
    bundle/           the serving bundle (journeyrec.export.bundle)
    metrics.json      flat metrics: valid/..., valid_seen_excluded/..., test/..., test_seen_excluded/...,
                      train_seconds, epochs

Every file is written atomically; a run that fails leaves no half-written bundle or metrics.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from journeyrec.console import print_samples, print_summary
from journeyrec.data.prepare import PreparedData, prepare, save_prepared
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.data.sequences import N_TIME_GAP_BUCKETS
from journeyrec.evaluation.ranking import evaluate
from journeyrec.export.bundle import write_bundle
from journeyrec.io import atomic_write_json, atomic_write_text
from journeyrec.models import build_model
from journeyrec.models.intent import evaluate_intent, intent_labels
from journeyrec.models.losses import LossConfig
from journeyrec.training.cold_start import evaluate_cold, hide_items, training_counts
from journeyrec.training.datamodule import SequenceDataModule
from journeyrec.training.module import RecModule

__all__ = ["train", "FEATURE_SIZES", "experiment_name"]

log = logging.getLogger(__name__)

FEATURE_SIZES = {"event_type": len(EVENT_TYPES), "channel": len(CHANNELS), "time_gap": N_TIME_GAP_BUCKETS}


def loss_config(model_cfg: DictConfig) -> LossConfig:
    """The objective part of a model config."""
    fields = LossConfig.__dataclass_fields__
    return LossConfig(**{k: model_cfg[k] for k in fields if k in model_cfg})


def experiment_name(cfg: DictConfig) -> str:
    """One MLflow experiment per dataset: reader name + file stem (e.g. ``s3rec-Beauty``)."""
    if cfg.logger.experiment_name:
        return str(cfg.logger.experiment_name)
    stem = Path(str(cfg.data.path)).stem if cfg.data.path else None
    return f"{cfg.data.name}-{stem}" if stem else str(cfg.data.name)


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def _make_logger(cfg: DictConfig, out: Path) -> Any:
    if not cfg.logger.mlflow:
        return None
    from journeyrec.tracking import tracking_uri
    from journeyrec.training.mlflow_logger import JourneyMLFlowLogger

    uri = tracking_uri(cfg.logger.tracking_uri)
    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.is_file() and cfg.ckpt_path else None
    from mlflow.tracking import MlflowClient

    from journeyrec.tracking import experiment_id

    experiment_id(MlflowClient(uri), experiment_name(cfg), uri)  # artifacts next to the store
    logger = JourneyMLFlowLogger(
        experiment_name=experiment_name(cfg),
        run_name=cfg.logger.run_name or f"{cfg.model.name}-{out.name}",
        tracking_uri=uri,
        run_id=run_id,
    )
    atomic_write_text(run_id_file, logger.run_id)
    return logger


def _resolve_ckpt(cfg: DictConfig, ckpt_dir: Path) -> str | None:
    if not cfg.ckpt_path:
        return None
    if cfg.ckpt_path == "last":
        last = ckpt_dir / "last.ckpt"
        return str(last) if last.is_file() else None  # nothing to resume: start fresh
    return str(cfg.ckpt_path)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run the whole pipeline for one configuration; returns the flat metrics."""
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    t0 = time.perf_counter()
    prepared: PreparedData = prepare(cfg.data)
    save_prepared(prepared, out / "prepared")
    log.info("prepared %s in %.1fs: %s", prepared.source, time.perf_counter() - t0, prepared.stats)

    seqs = prepared.sequences
    model = build_model(cfg.model, seqs.n_items, FEATURE_SIZES, seqs.catalog)
    features = list(cfg.model.get("features", []) or [])
    train_data, hidden = prepared, None
    if float(cfg.eval.cold_items) > 0:
        train_data, hidden = hide_items(prepared, float(cfg.eval.cold_items), int(cfg.eval.cold_seed))
        model.set_known_items(~hidden)
        log.info("cold start: %d items hidden from training", int(hidden.sum()))
    counts = training_counts(train_data.sequences, train_data.split.train_ends)
    dm = SequenceDataModule(
        train_data, int(cfg.model.max_len), int(cfg.data.batch_size), int(cfg.data.eval_batch_size), features,
        int(cfg.data.num_workers), int(cfg.seed), bool(cfg.data.bucket_by_length),
    )
    intent_weight = float(cfg.model.get("intent_weight", 0.0))
    labels = intent_labels(train_data.sequences, train_data.split.train_ends) if intent_weight > 0 else None
    steps_per_epoch = -(-len(dm.train_set) // int(cfg.data.batch_size))
    module = RecModule(
        model, loss=loss_config(cfg.model), lr=float(cfg.model.lr), weight_decay=float(cfg.model.weight_decay),
        ks=list(cfg.eval.ks), item_counts=counts, temperature=float(cfg.model.get("temperature", 1.0)),
        event_type_weights=dict(cfg.model.get("event_type_weights", {}) or {}), intent_labels=labels,
        intent_weight=intent_weight, lr_schedule=str(cfg.model.get("lr_schedule", "constant")),
        warmup_steps=int(cfg.model.get("warmup_steps", 0)), max_steps=steps_per_epoch * int(cfg.trainer.max_epochs),
        contrastive_weight=float(cfg.model.get("contrastive_weight", 0.0)),
        contrastive_temperature=float(cfg.model.get("contrastive_temperature", 0.2)),
    )
    ckpt_dir = out / "checkpoints"
    monitor = str(cfg.trainer.monitor)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_last=True,
                                 save_top_k=1, enable_version_counter=False)
    early = EarlyStopping(monitor=monitor, mode="max", patience=int(cfg.trainer.patience))
    logger = _make_logger(cfg, out)
    if logger is not None:
        from journeyrec.tracking import flatten

        logger.log_hyperparams(flatten(resolved))
    trainer = pl.Trainer(
        max_epochs=int(cfg.trainer.max_epochs),
        min_epochs=int(cfg.trainer.min_epochs),
        accelerator=str(cfg.trainer.accelerator),
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        deterministic=bool(cfg.trainer.deterministic),
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        check_val_every_n_epoch=int(cfg.trainer.check_val_every_n_epoch),
        callbacks=[checkpoint, early],
        logger=logger if logger is not None else False,
        enable_progress_bar=bool(cfg.trainer.progress_bar),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        log_every_n_steps=50,
    )
    t_fit = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=_resolve_ckpt(cfg, ckpt_dir))
    train_seconds = time.perf_counter() - t_fit

    best_epoch = -1
    if checkpoint.best_model_path:
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        module.load_state_dict(best["state_dict"])
        best_epoch = int(best.get("epoch", -1))
    model = module.model.cpu().eval()
    ks = list(cfg.eval.ks)
    metrics: dict[str, float] = {}
    for split_name, cases in (("valid", prepared.split.valid), ("test", prepared.split.test)):
        metrics.update(evaluate(model, seqs, cases, split_name, ks, int(cfg.data.eval_batch_size)).metrics)
    if hasattr(model, "purchase_intent"):
        for which in ("valid", "test"):
            metrics.update(evaluate_intent(model, seqs, prepared.split, which))
    if hidden is not None:
        metrics.update(evaluate_cold(model, prepared, hidden, counts, ks, int(cfg.data.eval_batch_size)))
    metrics.update(train_seconds=train_seconds, epochs=float(trainer.current_epoch), best_epoch=float(best_epoch))

    if cfg.export.enabled:
        write_bundle(out / "bundle", model, seqs.catalog, resolved, metrics, str(cfg.export.index))
    atomic_write_json(out / "metrics.json", metrics)

    run_id = None
    if logger is not None:
        from journeyrec.tracking import mlflow_key

        client, run_id = logger.experiment, logger.run_id
        for key, value in metrics.items():
            if not key.startswith("valid"):  # the validation curve was logged epoch by epoch
                client.log_metric(run_id, mlflow_key(key), float(value))
        client.set_tag(run_id, "data_fingerprint", prepared.fingerprint())
        client.set_tag(run_id, "seed", str(cfg.seed))
        for name in ("config.yaml", "metrics.json"):
            client.log_artifact(run_id, str(out / name))
        for name in ("items.parquet", "users.parquet"):
            client.log_artifact(run_id, str(out / "prepared" / name), "id_maps")
        if checkpoint.best_model_path:
            client.log_artifact(run_id, checkpoint.best_model_path, "checkpoints")
        if cfg.export.enabled:
            client.log_artifacts(run_id, str(out / "bundle"), "bundle")
        logger.finalize("success")
    print_summary(metrics, out, run_id, ks)
    if cfg.show_samples and cfg.export.enabled:
        from journeyrec.serving import Recommender

        print_samples(Recommender.load(out / "bundle"), prepared, int(cfg.show_samples))
    return metrics

