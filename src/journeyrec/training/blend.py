"""The transition blend of a trained model (``transitions.*``, :mod:`journeyrec.models.transitions`):
counts fitted on the prefixes the model trained on, weight chosen on validation. One function for
the training run, the re-export of a finished run and the benchmarks that score finished runs."""

from __future__ import annotations

import logging

from journeyrec.data.prepare import PreparedData
from journeyrec.data.sequences import with_validation_targets
from journeyrec.evaluation.transitions import choose_weight
from journeyrec.models.protocol import EmbeddingModel
from journeyrec.models.transitions import Transitions
from journeyrec.training.config import TrainConfig

__all__ = ["blend_transitions", "candidate_metric", "CANDIDATE_PREFIX", "WEIGHT_METRIC"]

log = logging.getLogger(__name__)

WEIGHT_METRIC = "transitions/weight"  # metrics.json: the weight the run's bundle adds the counts with
CANDIDATE_PREFIX = "/weight_"


def candidate_metric(monitor: str, weight: float) -> str:
    """The metrics.json name of one candidate weight's validation figure,
    ``transitions/<monitor>/weight_<w>`` (characters MLflow accepts once ``@`` is mapped)."""
    return f"transitions/{monitor}{CANDIDATE_PREFIX}{weight:g}"


def blend_transitions(
    cfg: TrainConfig,
    train: PreparedData,
    data: PreparedData,
    model: EmbeddingModel,
    weight: float | None = None,
    refit: bool = False,
) -> tuple[Transitions | None, dict[str, float]]:
    """Transition counts of ``train``'s training prefixes (with each user's validation target too
    when ``refit``: the model trained on them) and the blend weight: ``weight`` when given (a refit
    keeps the weight chosen before it, its validation targets being training data now), otherwise
    chosen on ``data``'s validation split among ``transitions.weights`` and 0 by
    ``trainer.monitor``. Returns None when the blend is off or 0 won, and the metrics
    ``transitions/weight`` plus each candidate's :func:`candidate_metric`."""
    tc = cfg.transitions
    if not tc.weights:
        return None, {}
    ends = with_validation_targets(train.split).train_ends if refit else train.split.train_ends
    t = Transitions.fit(train.sequences, ends, window=tc.window, history=tc.history)
    metrics: dict[str, float] = {}
    if weight is None:
        monitor = cfg.trainer.monitor
        weight, table = choose_weight(
            model, t, data.sequences, data.split.valid, tc.weights, monitor, cfg.eval.ks, cfg.data.eval_batch_size
        )
        metrics = {candidate_metric(monitor, w): m[monitor] for w, m in table.items()}
        log.info(
            "transition blend: weight %g chosen on validation (%s %.4f; the model alone %.4f)",
            weight,
            monitor,
            table[weight][monitor],
            table[0.0][monitor],
        )
    metrics[WEIGHT_METRIC] = float(weight)
    return (t.with_weight(weight) if weight else None), metrics
