"""The wall-clock budget of one training run (``trainer.time_budget_minutes``).

Why: a configuration promised to finish a file within so many minutes on a given machine would
otherwise take whatever a larger file, or a slower or busier machine, makes it take. The budget
runs from the start of the run and covers the data preparation, the fit and the refit; the final
evaluation and export come after it. :class:`TimeBudget` is the fit's callback and the refit's
count of epochs; :func:`refit_work_ratio` says how much longer a refit epoch is than a fit epoch.
``python -m benchmarks.time_budget`` replays the same rule on a finished run's log.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytorch_lightning as pl

from journeyrec.data.datasets import TrainWindows
from journeyrec.data.prepare import PreparedData
from journeyrec.data.sequences import with_validation_targets
from journeyrec.training.callbacks import EpochCurve
from journeyrec.training.config import TrainConfig

__all__ = ["TimeBudget", "refit_work_ratio", "time_budget"]

log = logging.getLogger(__name__)


class TimeBudget(pl.Callback):
    """The wall-clock budget of one run (``trainer.time_budget_minutes``), counted from
    ``started`` (a ``time.perf_counter()`` value, the start of the run): data preparation, the fit
    and the refit end within it; the final evaluation and export come after.

    At the end of each epoch the fit stops when the next epoch (at the pace of this one, validation
    included) and the refit (``refit_epochs`` at this epoch's training pace, ``refit_scale`` times
    longer for the targets it adds) would no longer end in time; the refit then trains the whole
    epochs still left (:meth:`refit_epochs_that_fit`). Stopping early costs quality, not
    correctness: the best epoch validated so far is the one kept."""

    def __init__(
        self,
        minutes: float,
        started: float,
        refit_epochs: int = 0,
        refit_scale: float = 1.0,
        curve: EpochCurve | None = None,
    ) -> None:
        self.minutes = float(minutes)
        self.deadline = started + 60.0 * self.minutes
        self.refit_epochs = refit_epochs
        self.refit_scale = refit_scale
        self.curve = curve  # the fit's EpochCurve: it times each epoch; the budget must come after it
        self.train_seconds: float | None = None  # the last epoch's training part (validation excluded)
        self.stopped_after: int | None = None  # the epoch after which the budget stopped the fit

    def seconds_left(self) -> float:
        return self.deadline - time.perf_counter()

    def refit_epochs_that_fit(self, wanted: int) -> int:
        """How many of ``wanted`` refit epochs end within the budget, at the last fit epoch's
        training pace times ``refit_scale`` (all of them when no epoch was timed)."""
        if self.train_seconds is None or self.train_seconds <= 0:
            return wanted
        return max(0, min(wanted, int(self.seconds_left() // (self.train_seconds * self.refit_scale))))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.curve is None or not self.curve.rows:
            raise RuntimeError("TimeBudget reads the fit's EpochCurve: pass it, and list the budget after it")
        now = time.perf_counter()
        epoch, self.train_seconds = now - self.curve.epoch_started, self.curve.rows[-1]["epoch_seconds"]
        reserve = self.refit_epochs * self.train_seconds * self.refit_scale
        stop = trainer.strategy.reduce_boolean_decision(self.deadline - now < epoch + reserve, all=False)
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if not stop or trainer.should_stop or last_epoch:
            return
        trainer.should_stop = True
        self.stopped_after = trainer.current_epoch + 1
        log.warning(
            "time budget (trainer.time_budget_minutes=%g): the fit stops after epoch %d with %.0f s left; "
            "the next epoch would take about %.0f s and the refit %.0f s",
            self.minutes,
            self.stopped_after,
            self.deadline - now,
            epoch,
            reserve,
        )


def refit_work_ratio(cfg: TrainConfig, train: PreparedData) -> float:
    """How much longer a refit epoch takes than a fit epoch: the positions of its training
    windows (the prefixes extended by each user's validation target) over the fit's."""

    def positions(train_ends: np.ndarray) -> float:
        windows = TrainWindows(train.sequences, train_ends, cfg.model.max_len, newest=cfg.loss.targets == "newest")
        return float(windows.lengths.sum())

    return positions(with_validation_targets(train.split).train_ends) / max(positions(train.split.train_ends), 1.0)


def time_budget(cfg: TrainConfig, train: PreparedData, started: float, curve: EpochCurve) -> TimeBudget | None:
    """The run's :class:`TimeBudget` (None without ``trainer.time_budget_minutes``), its clock
    started at ``started``; ``train``: what the fit reads; ``curve``: the fit's epoch timer."""
    minutes = cfg.trainer.time_budget_minutes
    if minutes is None:
        return None
    scale = refit_work_ratio(cfg, train) if cfg.trainer.refit_epochs else 1.0
    return TimeBudget(minutes, started, cfg.trainer.refit_epochs, scale, curve)
