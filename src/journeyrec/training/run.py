"""The training pipeline behind ``scripts/train.py``, as named stages:

    prepare -> build -> fit -> evaluate valid -> refit -> evaluate test -> baselines -> export -> log

:func:`train` runs them in that order; each stage is a function of typed inputs (the
:class:`~journeyrec.training.config.TrainConfig` and what earlier stages returned), so a notebook
can run any of them on its own. One call, one MLflow run, one output directory holding::

    config.yaml       the resolved configuration
    prepared/         the prepared store: arrays, id maps, catalogue, events, dataset card
                      (journeyrec.data.prepare; absent when data.prepared names an existing store)
    checkpoints/      best.ckpt and last.ckpt (Lightning; ``ckpt_path=last`` resumes, MLflow run included)
    bundle/           the serving bundle (journeyrec.bundle.format)
    curve.json        per-epoch training seconds, loss and validation metrics
    metrics.json      flat metrics: valid/..., valid_seen_excluded/..., test/..., test_seen_excluded/...
                      (accuracy, beyond accuracy, <key>_ci95_low/high), train_seconds, epochs;
                      the popularity and co-occurrence baselines on the same splits under
                      popularity/... and cooccurrence/...; with trainer.refit_epochs, valid/... come
                      from the epoch validation picked and test/... from the refitted model;
                      test_before_refit/... are the picked epoch's test figures when a refit ran
                      (what refit_epochs=0 gives)
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from journeyrec.bundle.format import export_bundle
from journeyrec.data.prepare import PreparedData, load_prepared, prepare_store
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.data.sequences import with_validation_targets
from journeyrec.errors import MissingInputError
from journeyrec.evaluation.intent import evaluate_intent
from journeyrec.evaluation.metrics import summarise
from journeyrec.evaluation.offline import ItemStats, SystemEvaluation, evaluate_system, per_case_table
from journeyrec.evaluation.rank_kernel import PROTOCOLS
from journeyrec.evaluation.segments import case_segments
from journeyrec.io import atomic_path, atomic_write_json, atomic_write_text
from journeyrec.models import build_model
from journeyrec.models.base import SequenceModel
from journeyrec.models.baselines import BASELINES
from journeyrec.models.intent import SessionLogit, intent_labels
from journeyrec.models.protocol import RankingModel, has_purchase_intent
from journeyrec.models.transitions import TransitionBlend
from journeyrec.tracking import (
    experiment_id,
    experiment_name_for,
    flatten,
    log_metrics,
    mlflow_client,
    record_child,
    run_tags,
    sweep_parent,
    tracking_uri,
)
from journeyrec.training.blend import blend_transitions
from journeyrec.training.callbacks import (
    EpochCurve,
    EpochProgressBar,
    IntentValidation,
    RefitLearningRate,
    ResumableRNG,
)
from journeyrec.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from journeyrec.training.cold_start import evaluate_cold, hide_items, training_counts
from journeyrec.training.config import BEFORE_REFIT, TrainConfig, train_config
from journeyrec.training.data_card import log_dataset_card
from journeyrec.training.datamodule import SequenceDataModule
from journeyrec.training.export_run import REFIT_CHECKPOINT, fit_abandonment
from journeyrec.training.module import RecModule
from journeyrec.training.summary import baseline_warnings, print_summary
from journeyrec.training.time_budget import TimeBudget, time_budget
from journeyrec.typed import as_dict

__all__ = [
    "train",
    "TrainResult",
    "Prepared",
    "Built",
    "Fitted",
    "check_settings",
    "output_dir",
    "prepare_stage",
    "build_stage",
    "fit_stage",
    "evaluate_stage",
    "refit_stage",
    "baseline_stage",
    "test_segments",
    "experiment_name",
    "launched_rank",
    "RUN_CONTROL_KEYS",
    "SUMMARY_BASELINES",
]

log = logging.getLogger(__name__)

# keys that steer how a run executes, not what it learns: not MLflow params, so that resuming the
# same run with ckpt_path=last (or printing samples) does not "change" a logged param
RUN_CONTROL_KEYS = ("ckpt_path", "output_dir", "show_samples")
# the cheap baselines every training summary shows beside the model, on the same splits
SUMMARY_BASELINES = ("popularity", "cooccurrence")


@dataclass
class TrainResult:
    """What a training run produced: its flat metrics (empty on a data-parallel process other
    than rank 0, which only takes part in the fit) and where its files are."""

    metrics: dict[str, float]
    output_dir: Path
    prepared_dir: Path
    bundle_dir: Path | None  # None when export is off (or on ranks other than 0)
    run_id: str | None = None  # the MLflow run, when tracked


@dataclass
class Prepared:
    """The prepare stage's output: the data as trained on and where its store lives."""

    data: PreparedData  # everything, for evaluation
    train_data: PreparedData  # what training reads (cold-start items hidden, when eval.cold_items > 0)
    store: Path
    hidden: np.ndarray | None  # [N + 1] items hidden from training (cold start), else None


@dataclass
class Built:
    """The build stage's output: the model, its Lightning module and the batches it reads."""

    model: SequenceModel
    module: RecModule
    datamodule: SequenceDataModule
    item_counts: np.ndarray  # training target counts


@dataclass
class Fitted:
    """The fit stage's output."""

    best_path: str | None  # the best checkpoint (None when validation never ran)
    best_epoch: int  # 1-based, as in curve.json; -1 without a best checkpoint
    epochs: int
    train_seconds: float
    logger: Any  # the MLflow logger (None when tracking is off or on ranks other than 0)
    parent_run: str | None  # the sweep's parent run in a Hydra multirun
    global_zero: bool = True  # False on the other processes of a data-parallel fit
    budget: TimeBudget | None = None  # trainer.time_budget_minutes: its clock and whether it stopped the fit


# --------------------------------------------------------------------------- helpers


def experiment_name(cfg: TrainConfig) -> str:
    """One MLflow experiment per dataset: reader name + file stem (e.g. ``s3rec-Beauty``)."""
    return experiment_name_for(cfg.data, cfg.logger.experiment_name)


def output_dir(cfg: TrainConfig) -> Path:
    """``output_dir`` when set, else Hydra's run directory, else ``outputs/<date>/<time>``."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    hydra_dir = _hydra_run_dir()
    return hydra_dir or Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def _hydra_run_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not inside a Hydra job (notebook, test)
        return None


def _sweep_dir() -> Path | None:
    """The sweep directory when this job runs inside a Hydra multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
    except ValueError:
        return None


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


def _quiet_third_party() -> None:
    """Keep the console to what a person needs: no library tips, loader chatter or deprecations
    from inside dependencies (real warnings about our own usage still show)."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # validation metrics are computed from ranks gathered over all processes (RecModule), so
    # every process logs the same values: there is nothing for sync_dist to add
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")


def _single_process(cfg: TrainConfig) -> bool:
    t = cfg.trainer
    return t.num_nodes == 1 and "ddp" not in t.strategy and str(t.devices) in ("1", "[0]")


def _weight_averaging(cfg: TrainConfig) -> list[pl.Callback]:
    """An exponential moving average of the weights (Lightning's WeightAveraging, updated after
    every optimiser step) when ``trainer.ema_decay`` > 0, else nothing. The average is what
    validation sees and what checkpoints (hence early stopping's best epoch and the exported
    bundle) hold; the raw weights keep training. Buffers are not averaged: ours are constants
    (attribute codes, label tables), some of them integer."""
    decay = cfg.trainer.ema_decay
    if decay == 0.0:
        return []
    if not 0.0 < decay < 1.0:
        raise ValueError(f"trainer.ema_decay={decay}: must be 0 (off) or in (0, 1), e.g. 0.999")
    from pytorch_lightning.callbacks import WeightAveraging
    from torch.optim.swa_utils import get_ema_multi_avg_fn

    # the average lives where the weights train (Lightning would place it before the move).
    # Lightning's EMAWeightAveraging updates parameter by parameter; the foreach form below does the
    # same update about 8x faster (`python -m benchmarks ema`)
    gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return [
        WeightAveraging(device="cuda" if gpu else "cpu", use_buffers=False, multi_avg_fn=get_ema_multi_avg_fn(decay))
    ]


def _refit_datamodule(cfg: TrainConfig, prepared: Prepared) -> SequenceDataModule:
    """The refit's batches: the training prefixes extended by each user's validation target."""
    train = prepared.train_data
    return _datamodule(cfg, dataclasses.replace(train, split=with_validation_targets(train.split)))


def _datamodule(cfg: TrainConfig, data: PreparedData) -> SequenceDataModule:
    d = cfg.data
    return SequenceDataModule(
        data,
        cfg.model.max_len,
        d.batch_size,
        d.eval_batch_size,
        cfg.model.features,
        d.num_workers,
        cfg.seed,
        d.bucket_by_length,
        newest_targets=cfg.loss.targets == "newest",
    )


def check_settings(cfg: TrainConfig) -> None:
    """Settings that cannot work, refused before any data is read."""
    _weight_averaging(cfg)
    if cfg.trainer.refit_epochs < 0:
        raise ValueError(f"trainer.refit_epochs={cfg.trainer.refit_epochs}: must be >= 0 (0 = no refit)")
    budget = cfg.trainer.time_budget_minutes
    if budget is not None and not budget > 0:
        raise ValueError(f"trainer.time_budget_minutes={budget}: must be > 0 (null = no budget)")
    if cfg.trainer.refit_epochs and not _single_process(cfg):
        raise ValueError(
            "trainer.refit_epochs needs a single-process fit (devices=1, one node, no ddp): "
            "set trainer.refit_epochs=0 for data-parallel training"
        )


# --------------------------------------------------------------------------- stages


def prepare_stage(cfg: TrainConfig, out: Path, main_process: bool = True) -> Prepared:
    """Prepare the data into ``<out>/prepared`` (or open ``data.prepared``), memory-mapped;
    with ``eval.cold_items`` > 0, hide that share of items from training."""
    t0 = time.perf_counter()
    store = Path(cfg.data.prepared) if cfg.data.prepared else out / "prepared"
    if not cfg.data.prepared:
        if main_process:
            prepare_store(cfg.data, store)
        elif not (store / "prepared.json").is_file():
            raise MissingInputError(
                f"rank {launched_rank()}: no prepared store at {store}. Processes started outside "
                "Lightning (torchrun, SLURM, other nodes) do not wait for rank 0 to prepare: run "
                "scripts/prepare_data.py once and pass data.prepared=<its store> to every process"
            )
    data = load_prepared(store, mmap=True)
    action = "loaded the prepared store of" if cfg.data.prepared else "prepared"
    log.info("%s %s in %.1fs: %s", action, data.source, time.perf_counter() - t0, data.stats)
    train_data, hidden = data, None
    if cfg.eval.cold_items > 0:
        train_data, hidden = hide_items(data, cfg.eval.cold_items, cfg.eval.cold_seed)
        log.info("cold start: %d items hidden from training", int(hidden.sum()))
    return Prepared(data, train_data, store, hidden)


def build_stage(cfg: TrainConfig, prepared: Prepared) -> Built:
    """The model for this catalogue, its Lightning module and data module."""
    seqs = prepared.data.sequences
    intent = cfg.loss.intent_weight > 0
    model = build_model(cfg.model, seqs.n_items, FEATURE_SIZES, seqs.catalog, intent_head=intent)
    if prepared.hidden is not None:
        model.set_known_items(~prepared.hidden)
    train_data = prepared.train_data
    counts = training_counts(train_data.sequences, train_data.split.train_ends)
    dm = _datamodule(cfg, train_data)
    labels = intent_labels(train_data.sequences, train_data.split.train_ends) if intent else None
    steps_per_epoch = -(-len(dm.train_set) // cfg.data.batch_size)
    module = RecModule(
        model,
        cfg.loss,
        cfg.optim,
        ks=cfg.eval.ks,
        item_counts=counts,
        intent_labels=labels,
        max_steps=steps_per_epoch * cfg.trainer.max_epochs,
        compile=cfg.trainer.compile,
    )
    return Built(model, module, dm, counts)


def _make_logger(cfg: TrainConfig, out: Path, tags: dict[str, str], resume: bool) -> tuple[Any, str | None]:
    """The run's MLflow logger (tagged; a child of the sweep's parent run in a multirun) and
    the parent run id (None outside a multirun). A resumed run (``resume``) continues the MLflow
    run recorded in ``<out>/mlflow_run_id``."""
    from journeyrec.training.mlflow_logger import JourneyMLFlowLogger

    uri = tracking_uri(cfg.logger.tracking_uri)
    run_id_file = out / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if resume and run_id_file.is_file() else None
    client = mlflow_client(uri)
    exp_id = experiment_id(client, experiment_name(cfg), uri)  # artifacts next to the store
    parent = None
    sweep = _sweep_dir()
    if sweep is not None:
        parent = sweep_parent(client, exp_id, sweep, f"sweep-{cfg.model.name}-{sweep.name}", tags)
        tags = {**tags, "mlflow.parentRunId": parent}
    logger = JourneyMLFlowLogger(
        experiment_name=experiment_name(cfg),
        run_name=cfg.logger.run_name or f"{cfg.model.name}-{out.name}",
        tracking_uri=uri,
        run_id=run_id,
        tags=tags,
    )
    if logger.run_id is None:
        raise RuntimeError("the MLflow logger has no run id")
    atomic_write_text(run_id_file, logger.run_id)
    if run_id:
        log.info("resuming MLflow run %s", run_id)
    return logger, parent


def _resolve_ckpt(cfg: TrainConfig, ckpt_dir: Path) -> str | None:
    if not cfg.ckpt_path:
        return None
    if cfg.ckpt_path == "last":
        last = ckpt_dir / "last.ckpt"
        return str(last) if last.is_file() else None  # nothing to resume: start fresh
    return str(cfg.ckpt_path)


def fit_stage(
    cfg: TrainConfig,
    prepared: Prepared,
    built: Built,
    out: Path,
    main_process: bool = True,
    started: float | None = None,
) -> Fitted:
    """Lightning fit with early stopping on ``trainer.monitor`` (and on ``trainer.time_budget_minutes``
    counted from ``started``, a ``time.perf_counter()`` value; default: now), best and last
    checkpoints, per-epoch curve, and the MLflow run (params, dataset card, per-epoch metrics)."""
    ckpt_dir = out / "checkpoints"
    monitor = cfg.trainer.monitor
    # saved at the end of each training epoch, after validation and after EpochCurve has recorded
    # the epoch (Lightning runs checkpoint callbacks last), so last.ckpt holds complete state
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode="max",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    early = EarlyStopping(monitor=monitor, mode="max", patience=cfg.trainer.patience)
    logger, parent = None, None
    if main_process and cfg.logger.mlflow:
        tags = run_tags(cfg.seed, prepared.data.fingerprint(), **{"journeyrec.kind": "training"})
        logger, parent = _make_logger(cfg, out, tags, resume=bool(cfg.ckpt_path))
        params = {k: v for k, v in as_dict(cfg).items() if k not in RUN_CONTROL_KEYS}
        logger.log_hyperparams(flatten(params))
        log_dataset_card(logger.experiment, logger.run_id, prepared.store)
    intent_cb = (
        [IntentValidation(prepared.data.sequences, prepared.data.split, cfg.data.eval_batch_size)]
        if cfg.loss.intent_weight > 0
        else []
    )
    t = cfg.trainer
    curve = EpochCurve(out / "curve.json")
    budget = time_budget(cfg, prepared.train_data, time.perf_counter() if started is None else started, curve)
    trainer = pl.Trainer(
        max_epochs=t.max_epochs,
        min_epochs=t.min_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        # the datamodule shards batches and validation cases itself (global batches split per
        # rank, see EpochBatchSampler); Lightning cannot inject a sampler into a batch sampler
        use_distributed_sampler=False,
        precision=t.precision,  # type: ignore[arg-type]
        deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip_val,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        # IntentValidation first: it logs valid_intent/auc before the others read the epoch's metrics,
        # and it runs the model before the averaging callback swaps the raw weights back in
        callbacks=[
            *intent_cb,
            *_weight_averaging(cfg),
            checkpoint,
            early,
            curve,
            *([budget] if budget is not None else []),  # after the curve: it reads the epoch's timing
            ResumableRNG(),
            *([EpochProgressBar()] if t.progress_bar else []),
        ],
        plugins=[AtomicCheckpointIO()],  # atomic checkpoint writes, weights-only reads (resume included)
        logger=logger if logger is not None else False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        log_every_n_steps=50,
    )
    t0 = time.perf_counter()
    trainer.fit(built.module, datamodule=built.datamodule, ckpt_path=_resolve_ckpt(cfg, ckpt_dir))
    seconds = time.perf_counter() - t0
    best_path = checkpoint.best_model_path or None
    best_epoch = -1
    if best_path and trainer.is_global_zero:
        best = load_checkpoint(best_path)
        built.module.load_state_dict(best["state_dict"])
        best_epoch = int(best.get("epoch", -1)) + 1  # 1-based, as in curve.json
    return Fitted(
        best_path, best_epoch, int(trainer.current_epoch), seconds, logger, parent, trainer.is_global_zero, budget
    )


def test_segments(cfg: TrainConfig, prepared: Prepared) -> dict[str, dict[str, np.ndarray]]:
    """Breakdowns of the test split by target event type (next purchase, next cart, ...), new vs
    returning user and length, as scripts/evaluate.py gives them."""
    data = prepared.data
    return {"test": case_segments(data.sequences, data.split.test, list(cfg.eval.length_edges))}


def evaluate_stage(
    cfg: TrainConfig,
    prepared: Prepared,
    model: RankingModel,
    split: str,
    segments: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> SystemEvaluation:
    """The same evaluation as scripts/evaluate.py (accuracy, beyond accuracy, 95% intervals, the
    ``segments`` breakdowns) on one split; with an intent head, its AUC beside the count
    baseline's on the same cases."""
    data = prepared.data
    stats = ItemStats.from_data(data.sequences, data.split.train_ends)
    result = evaluate_system(
        model, data, cfg.eval, stats, segments, splits=(split,), batch_size=cfg.data.eval_batch_size
    )
    if has_purchase_intent(model):
        train = prepared.train_data
        baseline = SessionLogit.from_training(train.sequences, train.split.train_ends)
        result.metrics.update(evaluate_intent(model, data.sequences, data.split, split, baseline=baseline))
    return result


def refit_stage(cfg: TrainConfig, prepared: Prepared, built: Built, fitted: Fitted, epochs: int) -> float:
    """Train on from the best checkpoint (raw weights, optimiser, weight average and RNG state
    as they were at that epoch) for ``epochs`` epochs (``trainer.refit_epochs``, or fewer within
    the time budget) over the training prefixes extended by each user's validation target, at
    ``optim.lr`` without a schedule; returns the seconds it took. No validation runs: its targets
    are now training data."""
    if fitted.best_path is None:
        raise ValueError("refit needs the best checkpoint of the fit")
    dm = _refit_datamodule(cfg, prepared)
    t = cfg.trainer
    end_epoch = fitted.best_epoch + epochs
    # a constant rate (optim.lr): configure_optimizers then builds no schedule, and the
    # checkpoint's decayed rate is replaced once the optimiser is restored
    built.module.optim_cfg = dataclasses.replace(cfg.optim, lr_schedule="constant", warmup_steps=0)
    trainer = pl.Trainer(
        max_epochs=end_epoch,
        min_epochs=0,
        accelerator=t.accelerator,
        devices=1,
        precision=t.precision,  # type: ignore[arg-type]
        deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip_val,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=[
            *_weight_averaging(cfg),
            ResumableRNG(),
            RefitLearningRate(cfg.optim.lr),
            *([EpochProgressBar()] if t.progress_bar else []),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
    )
    built.module.train()  # evaluation left it in eval mode, and Lightning keeps each module's mode
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the checkpoint's early-stopping and checkpoint states have no callback here
        warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")
        trainer.fit(built.module, datamodule=dm, ckpt_path=fitted.best_path)
    if trainer.current_epoch != end_epoch:
        raise RuntimeError(f"refit stopped at epoch {trainer.current_epoch}, expected {end_epoch}")
    seconds = time.perf_counter() - t0
    # the refitted weights (the weight average, as the bundle holds them) for re-exports: the fit's
    # own checkpoints keep the picked epoch
    state = {f"model.{k}": v for k, v in built.module.model.state_dict().items()}
    with atomic_path(Path(fitted.best_path).parent / REFIT_CHECKPOINT) as tmp:
        torch.save({"state_dict": state, "epoch": end_epoch}, tmp)
    return seconds


def baseline_stage(
    cfg: TrainConfig,
    prepared: Prepared,
    splits: tuple[str, ...] = ("valid", "test"),
    names: tuple[str, ...] = SUMMARY_BASELINES,
) -> dict[str, float]:
    """Accuracy of cheap baselines fitted on the same training prefixes and scored on the same
    cases as the model (keys ``<baseline>/<split>[_seen_excluded]/<metric>@K``), so the summary
    can say when the model is below them. No intervals or beyond-accuracy metrics: evaluate.py
    reports those."""
    data = prepared.train_data
    light = dataclasses.replace(cfg.eval, bootstrap=0, beyond_accuracy=False, sampled_negatives=0)
    out: dict[str, float] = {}
    for name in names:
        baseline = BASELINES[name].fit(data.sequences, data.split.train_ends, seed=cfg.eval.seed)
        ev = evaluate_system(
            baseline, prepared.data, light, splits=splits, name=name, batch_size=cfg.data.eval_batch_size
        )
        out.update({f"{name}/{k}": v for k, v in ev.metrics.items()})
    return out


def _log_run(
    cfg: TrainConfig, out: Path, prepared: Prepared, fitted: Fitted, metrics: dict[str, float], bundle: Path | None
) -> str:
    """Final metrics and artifacts of the MLflow run; returns its id."""
    logger = fitted.logger
    client, run_id = logger.experiment, logger.run_id
    curves = set(
        summarise({p: np.zeros(1, dtype=np.int64) for p in PROTOCOLS}, cfg.eval.ks, "valid")
    )  # logged epoch by epoch already
    log_metrics(client, run_id, {k: v for k, v in metrics.items() if k not in curves})
    for name in ("config.yaml", "metrics.json", "curve.json", "per_case.parquet"):
        if (out / name).is_file():
            client.log_artifact(run_id, str(out / name))
    for name in ("items.parquet", "users.parquet"):
        client.log_artifact(run_id, str(prepared.store / name), "id_maps")
    if fitted.best_path:
        client.log_artifact(run_id, fitted.best_path, "checkpoints")
    if bundle is not None:
        client.log_artifacts(run_id, str(bundle), "bundle")
    logger.finalize("success")
    if fitted.parent_run is not None:
        monitor = cfg.trainer.monitor
        record_child(client, fitted.parent_run, run_id, monitor, float(metrics.get(monitor, float("nan"))))
    return str(run_id)


def log_job_file(run_id: str | None, cfg: TrainConfig, path: Path) -> None:
    """Attach a file written while the run went on (Hydra's ``train.log``) to the MLflow run."""
    if run_id is None or not path.is_file():
        return
    mlflow_client(cfg.logger.tracking_uri).log_artifact(run_id, str(path))


# --------------------------------------------------------------------------- the pipeline


def train(cfg: Any) -> TrainResult:
    """Run every stage for one configuration (a TrainConfig, or a composed / stored config that
    converts to one; see the module docstring)."""
    started = time.perf_counter()  # trainer.time_budget_minutes counts from here
    cfg = train_config(cfg)
    _quiet_third_party()
    check_settings(cfg)
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    main_process = launched_rank() == 0
    if main_process:
        import yaml  # PyYAML ships with Hydra; the resolved config is written as YAML

        atomic_write_text(out / "config.yaml", yaml.safe_dump(as_dict(cfg), sort_keys=False))

    prepared = prepare_stage(cfg, out, main_process)
    built = build_stage(cfg, prepared)
    fitted = fit_stage(cfg, prepared, built, out, main_process, started)
    if not fitted.global_zero:
        return TrainResult({}, out, prepared.store, None)  # rank 0 evaluates, exports and tracks the run

    model = built.module.model.cpu().eval()
    segments = test_segments(cfg, prepared)
    transitions, blend_metrics = blend_transitions(cfg, prepared.train_data, prepared.data, model)
    scorer = TransitionBlend(model, transitions) if transitions else model
    evaluation = evaluate_stage(cfg, prepared, scorer, "valid", segments)
    refit_seconds = None
    refit_epochs = cfg.trainer.refit_epochs
    before_refit: dict[str, float] = {}
    before: SystemEvaluation | None = None
    if refit_epochs and fitted.best_path:
        # the picked epoch's test figures, i.e. those of the same command with trainer.refit_epochs=0
        # (same seed, same fit): one run gives the figures with and without training on validation targets
        before = evaluate_stage(cfg, prepared, scorer, "test", segments)
        before_refit = {
            k.replace("test", BEFORE_REFIT, 1): v for k, v in before.metrics.items() if k.startswith("test")
        }
        if fitted.budget is not None:
            refit_epochs = fitted.budget.refit_epochs_that_fit(refit_epochs)
            if refit_epochs < cfg.trainer.refit_epochs:
                log.warning(
                    "time budget (trainer.time_budget_minutes=%g): %.0f s left, time for %d of the %d refit epochs",
                    fitted.budget.minutes,
                    fitted.budget.seconds_left(),
                    refit_epochs,
                    cfg.trainer.refit_epochs,
                )
    if refit_epochs and fitted.best_path:
        refit_seconds = refit_stage(cfg, prepared, built, fitted, refit_epochs)
        model = built.module.model.cpu().eval()
        log.info("refit %d epochs on the validation targets in %.1fs", refit_epochs, refit_seconds)
        if transitions:
            transitions = blend_transitions(
                cfg, prepared.train_data, prepared.data, model, transitions.weight, refit=True
            )[0]
        scorer = TransitionBlend(model, transitions) if transitions else model
    elif cfg.trainer.refit_epochs and not fitted.best_path:
        log.warning(
            "trainer.refit_epochs=%d: no best checkpoint to refit from (validation never ran); "
            "the test figures are those of the last epoch, without a refit",
            cfg.trainer.refit_epochs,
        )
    # no refit epoch within the time budget: the test figures are the picked epoch's, just computed
    evaluation.merge(
        before
        if before is not None and refit_seconds is None
        else evaluate_stage(cfg, prepared, scorer, "test", segments)
    )
    metrics: dict[str, float] = {**evaluation.metrics, **before_refit, **blend_metrics}
    if prepared.hidden is not None:
        metrics.update(
            evaluate_cold(
                model, prepared.data, prepared.hidden, built.item_counts, cfg.eval.ks, cfg.data.eval_batch_size
            )
        )
    metrics.update(train_seconds=fitted.train_seconds, epochs=float(fitted.epochs), best_epoch=float(fitted.best_epoch))
    if before_refit:  # the refit ran, or the time budget left none of its epochs
        metrics.update(refit_epochs=float(refit_epochs), refit_seconds=refit_seconds or 0.0)
    if fitted.budget is not None:
        metrics.update(
            time_budget_minutes=fitted.budget.minutes,
            fit_stopped_by_time_budget=float(fitted.budget.stopped_after is not None),
        )
    metrics.update(baseline_stage(cfg, prepared))
    with atomic_path(out / "per_case.parquet") as tmp:
        pq.write_table(per_case_table(evaluation, prepared.data, segments), tmp)

    bundle = None
    if cfg.export.enabled:
        # the bundle's config says how many refit epochs its weights had (fewer within a time budget)
        done = refit_epochs if refit_seconds is not None else 0
        held = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, refit_epochs=done))
        bundle = export_bundle(
            out / "bundle",
            model,
            prepared.data,
            as_dict(held),
            metrics,
            cfg.export,
            fit_abandonment(cfg, model, prepared.data),
            transitions,
        )
    atomic_write_json(out / "metrics.json", metrics)
    run_id = _log_run(cfg, out, prepared, fitted, metrics, bundle) if fitted.logger is not None else None
    print_summary(
        metrics, out, run_id, cfg.eval.ks, SUMMARY_BASELINES, fitted.parent_run, tracking_uri(cfg.logger.tracking_uri)
    )
    for line in baseline_warnings(metrics, cfg.eval.ks[0], SUMMARY_BASELINES):
        log.warning(line)
    for job_log in sorted(out.glob("*.log")):  # Hydra's job log (train.log), complete up to here
        log_job_file(run_id, cfg, job_log)
    return TrainResult(metrics, out, prepared.store, bundle, run_id)
