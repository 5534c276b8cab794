"""Choosing the transition blend's weight on validation (:mod:`journeyrec.models.transitions`).

The weight scales count evidence against the model's logits, whose scale each training run
learns anew, so it is chosen per run on the validation split (like the early-stopping epoch),
never on the test split. The model's scores and the counts are computed once per batch; every
candidate weight is ranked from them with the same rank code as :func:`~journeyrec.evaluation.ranking.evaluate`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from journeyrec.data.datasets import EvalBatchSampler, EvalWindows
from journeyrec.data.sequences import EvalCases, SequenceData
from journeyrec.evaluation.metrics import DEFAULT_KS, summarise
from journeyrec.evaluation.rank_kernel import exclusion_mask, target_ranks_many
from journeyrec.evaluation.ranking import score_batch
from journeyrec.models.protocol import RankingModel
from journeyrec.models.transitions import Transitions

__all__ = ["choose_weight"]


@torch.no_grad()
def choose_weight(
    model: RankingModel,
    transitions: Transitions,
    data: SequenceData,
    cases: EvalCases,
    weights: Sequence[float],
    monitor: str,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The weight among ``weights`` and 0 (the model alone) with the highest ``monitor`` (a metric
    key of the validation split, e.g. ``valid_seen_excluded/ndcg@10``; the smaller weight wins a
    tie), and every candidate's validation metrics."""
    split = monitor.split("/")[0].removesuffix("_seen_excluded")
    candidates = sorted({0.0, *(float(w) for w in weights)})
    was_training = model.training
    model.eval()
    ds = EvalWindows(data, cases, model.max_len, getattr(model, "feature_names", ()))
    ranks: dict[float, dict[str, list[np.ndarray]]] = {w: {"all": [], "seen_excluded": []} for w in candidates}
    for indices in EvalBatchSampler(ds.lengths, batch_size):
        batch = ds.__getitems__(indices)
        scores = score_batch(model, batch)
        log_counts = torch.log1p(torch.from_numpy(transitions.counts(batch["items"].numpy(), scores.shape[1])))
        excl = exclusion_mask(
            scores.shape[0], scores.shape[1], batch["history_rows"], batch["history_items"], scores.device
        )
        for w in candidates:
            blended = scores + (w * log_counts).to(scores.dtype) if w else scores
            (r_all, _), (r_seen, _) = target_ranks_many(blended, batch["targets"], [None, excl])
            ranks[w]["all"].append(r_all.numpy())
            ranks[w]["seen_excluded"].append(r_seen.numpy())
    model.train(was_training)
    table = {
        w: summarise({p: np.concatenate(r[p]) if r[p] else np.zeros(0, np.int64) for p in r}, ks, split)
        for w, r in ranks.items()
    }
    if monitor not in table[0.0]:
        raise ValueError(f"monitor {monitor!r} is not a validation metric; known: {sorted(table[0.0])[:6]} ...")
    best = max(candidates, key=lambda w: (table[w][monitor], -w))
    return best, table
