"""Lightning callbacks of the training pipeline."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf

from journeyrec.evaluation.intent import evaluate_intent
from journeyrec.io import atomic_write_json
from journeyrec.models.protocol import has_purchase_intent

__all__ = ["EpochCurve", "EpochProgressBar", "ResumableRNG", "RefitLearningRate", "IntentValidation"]

log = logging.getLogger(__name__)


class EpochCurve(pl.Callback):
    """Per-epoch training time (validation excluded), loss and validation metrics: one log line
    per epoch (numbered from 1, like the progress bar and the MLflow steps), ``curve.json`` in the
    run directory, which time-to-quality comparisons read, and ``epoch_seconds`` /
    ``train_seconds`` in the run's logger at the epoch's step."""

    def __init__(
        self, path: Path, keys: tuple[str, ...] = ("valid/ndcg@10", "valid_seen_excluded/ndcg@10", "valid_intent/auc")
    ) -> None:
        self.path = Path(path)
        self.keys = keys
        self.rows: list[dict[str, float]] = []
        self._total = 0.0
        self.epoch_started = 0.0  # time.perf_counter() at the start of the current epoch
        self._last = 0.0
        self._train_part: float | None = None
        self._valid: dict[str, float] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "total": self._total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])
        self._total = float(state_dict["total"])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_started = self._last = time.perf_counter()
        self._train_part = None
        self._valid = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._last = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._train_part = self._last - self.epoch_started

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._valid = {k: float(trainer.callback_metrics[k]) for k in self.keys if k in trainer.callback_metrics}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = self._train_part if self._train_part is not None else time.perf_counter() - self.epoch_started
        self._total += seconds
        row = {"epoch": float(trainer.current_epoch + 1), "epoch_seconds": seconds, "train_seconds": self._total}
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            row["train/loss"] = float(loss)
        row.update(self._valid)
        self.rows.append(row)
        if trainer.is_global_zero:
            atomic_write_json(self.path, self.rows)
            if trainer.logger is not None:
                trainer.logger.log_metrics(
                    {"epoch_seconds": seconds, "train_seconds": self._total}, step=int(row["epoch"])
                )
            log.info(
                "epoch %d/%d: %s",
                int(row["epoch"]),
                trainer.max_epochs,
                ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
            )


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar with epochs numbered as everywhere else in journeyrec ("Epoch 1/8" ...
    "Epoch 8/8") and without the logger's version number."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        bar = self.train_progress_bar
        bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", refresh=False)
        bar.reset(total=convert_inf(self.total_train_batches))
        bar.initial = 0

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class ResumableRNG(pl.Callback):
    """Stores the torch RNG states in every checkpoint and restores them on resume, so that a
    run killed and resumed from ``last.ckpt`` draws the same dropout masks as an uninterrupted
    run (batch order is already a function of (seed, epoch), see ``EpochBatchSampler``)."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class RefitLearningRate(pl.Callback):
    """Sets every parameter group's learning rate to ``lr`` once the refit has restored the
    picked epoch's optimiser (which brings back that epoch's rate). The refit runs without a
    schedule: a cosine that reached 0 at the end of ``trainer.max_epochs`` would leave every
    refit epoch past it learning nothing, and the refit's epoch count was chosen at a constant
    rate."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr


class IntentValidation(pl.Callback):
    """Logs ``valid_intent/auc`` (purchase-intent AUC on the validation split's held-out
    sessions, :func:`journeyrec.evaluation.intent.evaluate_intent`) after every validation epoch,
    so that ``trainer.monitor=valid_intent/auc`` can drive early stopping and the best checkpoint
    of an intent experiment: the ranking metric peaks epochs before the intent head has learnt."""

    def __init__(self, data: Any, split: Any, batch_size: int = 1024) -> None:
        self.data, self.split, self.batch_size = data, split, batch_size

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        model = pl_module.model
        if not has_purchase_intent(model):
            raise TypeError(f"IntentValidation needs a model with the purchase-intent head, not {type(model).__name__}")
        auc = evaluate_intent(model, self.data, self.split, "valid", self.batch_size)["valid_intent/auc"]
        pl_module.log("valid_intent/auc", auc, prog_bar=True, sync_dist=False, rank_zero_only=False)
