"""Lightning's MLflow logger with journeyrec's conventions for metric names and steps.

* Names: MLflow rejects ``@``; Lightning's own logger would silently strip it (``ndcg@10`` ->
  ``ndcg10``). :func:`journeyrec.tracking.mlflow_key` maps it one-to-one instead
  (``valid/ndcg@10`` -> ``valid/ndcg_at_10``), the one mapping used for every MLflow metric.
* Steps: every metric journeyrec logs during a fit is an epoch-level figure, so its MLflow step is
  the epoch, numbered from 1 as in ``curve.json`` and on the console (Lightning would use the
  optimiser step and add an ``epoch`` metric beside it).
"""

from __future__ import annotations

from typing import Mapping

from pytorch_lightning.loggers import MLFlowLogger

from journeyrec.tracking import mlflow_key

__all__ = ["JourneyMLFlowLogger"]


class JourneyMLFlowLogger(MLFlowLogger):
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        if epoch is not None:
            step = int(epoch) + 1
        if metrics:
            super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)
