"""The training pipeline behind ``scripts/train.py``: prepare -> fit -> evaluate -> export -> track.

One call, one MLflow run, one output directory holding::

    config.yaml       the resolved configuration
    prepared/         the prepared store: arrays, id maps, catalogue, events, dataset card
                      (journeyrec.data.prepare; absent when data.prepared names an existing store)
    checkpoints/      best.ckpt and last.ckpt (Lightning; ``ckpt_path=last`` resumes)
    bundle/           the serving bundle (journeyrec.bundle.format)
    metrics.json      flat metrics: valid/..., valid_seen_excluded/..., test/..., test_seen_excluded/...
                      (accuracy, beyond accuracy, <key>_ci95_low/high), train_seconds, epochs;
                      with trainer.refit_epochs, valid/... come from the epoch validation picked
                      and test/... from the refitted model (refit_seconds, refit_epochs);
                      test_before_refit/... are the picked epoch's (what refit_epochs=0 gives)
    per_case.parquet  per-case target ranks (for paired comparisons: scripts/compare_runs.py)

In a Hydra multirun every job is a child of one MLflow parent run per sweep directory.

Every file is written atomically; a run that fails leaves no half-written bundle or metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from journeyrec.data.prepare import PreparedData, load_prepared, prepare_store
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.data.sequences import with_validation_targets
from journeyrec.evaluation.metrics import PROTOCOLS, summarise
from journeyrec.evaluation.offline import ItemStats, SystemEvaluation, evaluate_system, per_case_table
from journeyrec.bundle.format import export_bundle
from journeyrec.io import atomic_path, atomic_write_json, atomic_write_text
from journeyrec.models import build_model
from journeyrec.training.callbacks import EpochCurve, IntentValidation, ResumableRNG
from journeyrec.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from journeyrec.evaluation.intent import evaluate_intent
from journeyrec.models.intent import SessionLogit, intent_labels
from journeyrec.models.losses import LossConfig
from journeyrec.training.cold_start import evaluate_cold, hide_items, training_counts
from journeyrec.training.datamodule import SequenceDataModule
from journeyrec.training.module import RecModule
from journeyrec.training.summary import print_summary

__all__ = ["train", "TrainResult", "experiment_name", "launched_rank"]

log = logging.getLogger(__name__)

def loss_config(model_cfg: DictConfig) -> LossConfig:
    """The objective part of a model config."""
    fields = LossConfig.__dataclass_fields__
    return LossConfig(**{k: model_cfg[k] for k in fields if k in model_cfg})


def experiment_name(cfg: DictConfig) -> str:
    """One MLflow experiment per dataset: reader name + file stem (e.g. ``s3rec-Beauty``)."""
    from journeyrec.tracking import experiment_name_for

    return experiment_name_for(cfg.data, cfg.logger.experiment_name)


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def _sweep_dir() -> Path | None:
    """The sweep directory when this job runs inside a Hydra multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
    except (ImportError, ValueError):
        return None


def _make_logger(cfg: DictConfig, out: Path, tags: dict[str, str]) -> tuple[Any, str | None]:
    """The run's MLflow logger (tagged; a child of the sweep's parent run in a multirun) and
    the parent run id (None outside a multirun)."""
    if not cfg.logger.mlflow:
        return None, None
    from journeyrec.tracking import tracking_uri
    from journeyrec.training.mlflow_logger import JourneyMLFlowLogger

    uri = tracking_uri(cfg.logger.tracking_uri)
    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.is_file() and cfg.ckpt_path else None
    from mlflow.tracking import MlflowClient

    from journeyrec.tracking import experiment_id, sweep_parent

    exp_id = experiment_id(MlflowClient(uri), experiment_name(cfg), uri)  # artifacts next to the store
    parent = None
    sweep = _sweep_dir()
    if sweep is not None:
        parent = sweep_parent(MlflowClient(uri), exp_id, sweep, f"sweep-{cfg.model.name}-{sweep.name}", tags)
        tags = {**tags, "mlflow.parentRunId": parent}
    logger = JourneyMLFlowLogger(
        experiment_name=experiment_name(cfg),
        run_name=cfg.logger.run_name or f"{cfg.model.name}-{out.name}",
        tracking_uri=uri,
        run_id=run_id,
        tags=tags,
    )
    atomic_write_text(run_id_file, logger.run_id)
    return logger, parent


def _resolve_ckpt(cfg: DictConfig, ckpt_dir: Path) -> str | None:
    if not cfg.ckpt_path:
        return None
    if cfg.ckpt_path == "last":
        last = ckpt_dir / "last.ckpt"
        return str(last) if last.is_file() else None  # nothing to resume: start fresh
    return str(cfg.ckpt_path)


def _quiet_third_party() -> None:
    """Keep the console to what a person needs: no library tips, loader chatter or deprecations
    from inside dependencies (real warnings about our own usage still show)."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # validation metrics are computed from ranks gathered over all processes (RecModule), so
    # every process logs the same values: there is nothing for sync_dist to add
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")


def launched_rank() -> int:
    """This process's rank as its launcher announced it in the environment, before any process
    group exists: 0 for a single process and for the process that starts the others (Lightning's
    DDP launcher re-runs the command with LOCAL_RANK set; torchrun sets RANK; SLURM
    SLURM_PROCID; other nodes of a multi-node run have NODE_RANK). Only rank 0 prepares data,
    writes the run directory's files, tracks to MLflow and evaluates; the others only fit."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        value = int(os.environ.get(var, "0") or 0)
        if value:
            return value
    return 0


def _weight_averaging(cfg: DictConfig) -> list[pl.Callback]:
    """An exponential moving average of the weights (Lightning's WeightAveraging, updated after
    every optimiser step) when ``trainer.ema_decay`` > 0, else nothing. The average
    is what validation sees and what checkpoints (hence early stopping's best epoch and the
    exported bundle) hold; the raw weights keep training. Buffers are not averaged: ours are
    constants (attribute codes, label tables), some of them integer."""
    decay = float(cfg.trainer.ema_decay)
    if decay == 0.0:
        return []
    if not 0.0 < decay < 1.0:
        raise ValueError(f"trainer.ema_decay={decay}: must be 0 (off) or in (0, 1), e.g. 0.999")
    from pytorch_lightning.callbacks import WeightAveraging
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    # the average lives where the weights train (Lightning would place it before the move).
    # Lightning's EMAWeightAveraging updates parameter by parameter; the foreach form below does the
    # same update about 8x faster (`python -m benchmarks ema`)
    device = "cuda" if str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    return [WeightAveraging(device=device, use_buffers=False, multi_avg_fn=get_ema_multi_avg_fn(decay))]


def _datamodule(cfg: DictConfig, data: PreparedData, features: list[str]) -> SequenceDataModule:
    return SequenceDataModule(
        data, int(cfg.model.max_len), int(cfg.data.batch_size), int(cfg.data.eval_batch_size), features,
        int(cfg.data.num_workers), int(cfg.seed), bool(cfg.data.bucket_by_length),
    )


def _single_process(cfg: DictConfig) -> bool:
    devices = cfg.trainer.devices
    return int(cfg.trainer.num_nodes) == 1 and "ddp" not in str(cfg.trainer.strategy) and str(devices) in ("1", "[0]")


def _refit(cfg: DictConfig, module: RecModule, train_data: PreparedData, features: list[str],
           best_path: str, best_epoch: int) -> float:
    """Train on from the best checkpoint (raw weights, optimiser, weight average and RNG state
    as they were at that epoch) for ``trainer.refit_epochs`` epochs over the training prefixes
    extended by each user's validation targets; returns the seconds it took. No validation
    runs: its targets are now training data."""
    dm = _datamodule(cfg, dataclasses.replace(train_data, split=with_validation_targets(train_data.split)), features)
    trainer = pl.Trainer(
        max_epochs=best_epoch + int(cfg.trainer.refit_epochs), min_epochs=0,
        accelerator=str(cfg.trainer.accelerator), devices=1, precision=cfg.trainer.precision,
        deterministic=bool(cfg.trainer.deterministic), gradient_clip_val=cfg.trainer.gradient_clip_val,
        limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False,
        callbacks=[*_weight_averaging(cfg), ResumableRNG()], plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False, logger=False, enable_progress_bar=bool(cfg.trainer.progress_bar),
        enable_model_summary=False,
    )
    module.train()  # evaluation left it in eval mode, and Lightning keeps each module's mode
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the checkpoint's early-stopping and checkpoint states have no callback here
        warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")
        trainer.fit(module, datamodule=dm, ckpt_path=best_path)
    if trainer.current_epoch != best_epoch + int(cfg.trainer.refit_epochs):
        raise RuntimeError(f"refit stopped at epoch {trainer.current_epoch}, expected "
                           f"{best_epoch + int(cfg.trainer.refit_epochs)}")
    return time.perf_counter() - t0


@dataclasses.dataclass
class TrainResult:
    """What a training run produced: its flat metrics (empty on a data-parallel process other
    than rank 0, which only takes part in the fit) and where its files are."""

    metrics: dict[str, float]
    output_dir: Path
    prepared_dir: Path
    bundle_dir: Path | None  # None when export is off (or on ranks other than 0)


def train(cfg: DictConfig) -> TrainResult:
    """Run the whole pipeline for one configuration (module docstring)."""
    _quiet_third_party()
    averaging = _weight_averaging(cfg)  # a bad setting fails here, before any data is read
    refit_epochs = int(cfg.trainer.refit_epochs)
    if refit_epochs < 0:
        raise ValueError(f"trainer.refit_epochs={refit_epochs}: must be >= 0 (0 = no refit)")
    if refit_epochs and not _single_process(cfg):
        raise ValueError("trainer.refit_epochs needs a single-process fit (devices=1, one node, no ddp): "
                         "set trainer.refit_epochs=0 for data-parallel training")
    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    main_process = launched_rank() == 0
    if main_process:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    t0 = time.perf_counter()
    store = Path(cfg.data.prepared) if cfg.data.get("prepared") else out / "prepared"
    if not cfg.data.get("prepared"):
        if main_process:
            prepare_store(cfg.data, store)
        elif not (store / "prepared.json").is_file():
            raise FileNotFoundError(
                f"rank {launched_rank()}: no prepared store at {store}. Processes started outside "
                "Lightning (torchrun, SLURM, other nodes) do not wait for rank 0 to prepare: run "
                "scripts/prepare_data.py once and pass data.prepared=<its store> to every process")
    prepared: PreparedData = load_prepared(store, mmap=True)
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
    dm = _datamodule(cfg, train_data, features)
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
        compile=bool(cfg.trainer.compile), sparse_item_grad=bool(cfg.model.get("sparse_item_grad", False)),
    )
    ckpt_dir = out / "checkpoints"
    monitor = str(cfg.trainer.monitor)
    # saved at the end of each training epoch, after validation and after EpochCurve has recorded
    # the epoch (Lightning runs checkpoint callbacks last), so last.ckpt holds complete state
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_last=True,
                                 save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=True)
    early = EarlyStopping(monitor=monitor, mode="max", patience=int(cfg.trainer.patience))
    from journeyrec.tracking import run_tags

    logger, parent_run = (_make_logger(cfg, out, run_tags(int(cfg.seed), prepared.fingerprint()))
                          if main_process else (None, None))
    if logger is not None:
        from journeyrec.tracking import flatten
        from journeyrec.training.data_card import log_dataset_card

        logger.log_hyperparams(flatten(resolved))
        log_dataset_card(logger.experiment, logger.run_id, store)
    trainer = pl.Trainer(
        max_epochs=int(cfg.trainer.max_epochs),
        min_epochs=int(cfg.trainer.min_epochs),
        accelerator=str(cfg.trainer.accelerator),
        devices=cfg.trainer.devices,
        num_nodes=int(cfg.trainer.num_nodes),
        strategy=str(cfg.trainer.strategy),
        # the datamodule shards batches and validation cases itself (global batches split per
        # rank, see EpochBatchSampler); Lightning cannot inject a sampler into a batch sampler
        use_distributed_sampler=False,
        precision=cfg.trainer.precision,
        deterministic=bool(cfg.trainer.deterministic),
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        check_val_every_n_epoch=int(cfg.trainer.check_val_every_n_epoch),
        # IntentValidation first: it logs valid_intent/auc before the others read the epoch's metrics,
        # and it runs the model before the averaging callback swaps the raw weights back in
        callbacks=[*([IntentValidation(seqs, prepared.split, int(cfg.data.eval_batch_size))] if intent_weight > 0 else []),
                   *averaging, checkpoint, early, EpochCurve(out / "curve.json"), ResumableRNG()],
        plugins=[AtomicCheckpointIO()],  # atomic checkpoint writes, weights-only reads (resume included)
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
    if not trainer.is_global_zero:
        return TrainResult({}, out, store, None)  # rank 0 evaluates, exports and tracks the run

    best_epoch = -1
    if checkpoint.best_model_path:
        best = load_checkpoint(checkpoint.best_model_path)
        module.load_state_dict(best["state_dict"])
        best_epoch = int(best.get("epoch", -1)) + 1  # 1-based, as in curve.json
    model = module.model.cpu().eval()
    ks = list(cfg.eval.ks)
    stats = ItemStats.from_data(seqs, prepared.split.train_ends)
    # the count baseline of the intent head, fitted on the head's training labels, scored on the same cases
    baseline = (SessionLogit.from_training(train_data.sequences, train_data.split.train_ends)
                if hasattr(model, "purchase_intent") else None)

    def assess(split: str) -> SystemEvaluation:
        # the same evaluation as scripts/evaluate.py (accuracy, beyond accuracy, 95% intervals)
        result = evaluate_system(model, prepared, cfg.eval, stats, splits=(split,),
                                 batch_size=int(cfg.data.eval_batch_size))
        if baseline is not None:
            result.metrics.update(evaluate_intent(model, seqs, prepared.split, split, baseline=baseline))
        return result

    evaluation = assess("valid")
    refit_seconds = None
    before_refit: dict[str, float] = {}
    if refit_epochs and checkpoint.best_model_path:
        # the picked epoch's test figures, i.e. those of the same command with trainer.refit_epochs=0
        # (same seed, same fit): one run gives both protocols, with and without training on validation targets
        before_refit = {k.replace("test", "test_before_refit", 1): v for k, v in assess("test").metrics.items()
                        if k.startswith("test")}
        refit_seconds = _refit(cfg, module, train_data, features, checkpoint.best_model_path, best_epoch)
        model = module.model.cpu().eval()
        log.info("refit %d epochs on the validation targets in %.1fs", refit_epochs, refit_seconds)
    elif refit_epochs:
        log.warning("trainer.refit_epochs=%d: no best checkpoint to refit from (validation never ran); "
                    "the test figures are those of the last epoch, without a refit", refit_epochs)
    evaluation.merge(assess("test"))
    metrics: dict[str, float] = {**evaluation.metrics, **before_refit}
    if hidden is not None:
        metrics.update(evaluate_cold(model, prepared, hidden, counts, ks, int(cfg.data.eval_batch_size)))
    metrics.update(train_seconds=train_seconds, epochs=float(trainer.current_epoch), best_epoch=float(best_epoch))
    if refit_seconds is not None:
        metrics.update(refit_epochs=float(refit_epochs), refit_seconds=refit_seconds)
    with atomic_path(out / "per_case.parquet") as tmp:
        pq.write_table(per_case_table(evaluation, prepared), tmp)

    if cfg.export.enabled:
        export_bundle(out / "bundle", model, prepared, resolved, metrics, cfg.export)
    atomic_write_json(out / "metrics.json", metrics)

    run_id = None
    if logger is not None:
        from journeyrec.tracking import log_metrics, record_child

        client, run_id = logger.experiment, logger.run_id
        curves = set(summarise({p: [0] for p in PROTOCOLS}, ks, "valid"))  # logged epoch by epoch already
        log_metrics(client, run_id, {k: v for k, v in metrics.items() if k not in curves})
        for name in ("config.yaml", "metrics.json", "curve.json", "per_case.parquet"):
            client.log_artifact(run_id, str(out / name))
        for name in ("items.parquet", "users.parquet"):
            client.log_artifact(run_id, str(store / name), "id_maps")
        if checkpoint.best_model_path:
            client.log_artifact(run_id, checkpoint.best_model_path, "checkpoints")
        if cfg.export.enabled:
            client.log_artifacts(run_id, str(out / "bundle"), "bundle")
        logger.finalize("success")
        if parent_run is not None:
            record_child(client, parent_run, run_id, monitor, float(metrics.get(monitor, float("nan"))))
    print_summary(metrics, out, run_id, ks)
    key = f"test_seen_excluded/ndcg@{ks[0]}"
    if f"{key}_ci95_low" in metrics:
        print(f"{key} = {metrics[key]:.4f}, 95% CI [{metrics[key + '_ci95_low']:.4f}, {metrics[key + '_ci95_high']:.4f}]"
              + (f"; sweep parent run {parent_run}" if parent_run else ""))
    return TrainResult(metrics, out, store, out / "bundle" if cfg.export.enabled else None)

