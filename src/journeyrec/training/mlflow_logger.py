"""Lightning's MLflow logger with journeyrec's metric-name mapping (``@`` -> ``_at_``).

Lightning's own logger silently strips characters MLflow rejects (``ndcg@10`` -> ``ndcg10``);
mapping them explicitly keeps MLflow names predictable and one-to-one with metrics.json.
"""

from __future__ import annotations

from typing import Mapping

from pytorch_lightning.loggers import MLFlowLogger

from journeyrec.tracking import mlflow_key

__all__ = ["JourneyMLFlowLogger"]


class JourneyMLFlowLogger(MLFlowLogger):
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)
