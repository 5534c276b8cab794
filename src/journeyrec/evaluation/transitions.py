"""Choosing the transition blend's weight on validation (:mod:`journeyrec.models.transitions`).

The weight scales count evidence against the model's logits, whose scale each training run
learns anew, so it is chosen per run on the validation split (like the early-stopping epoch),
never on the test split. The session vectors are computed once per batch; every candidate weight
is ranked from them by the same tiled rank code as :func:`~journeyrec.evaluation.ranking.evaluate`
(the blend's sparse bonus added inside the tiles).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from journeyrec.data.datasets import EvalBatchSampler, EvalWindows
from journeyrec.data.sequences import EvalCases, SequenceData
from journeyrec.evaluation.metrics import DEFAULT_KS, summarise
from journeyrec.evaluation.rank_kernel import rank_vectors
from journeyrec.evaluation.ranking import model_inputs
from journeyrec.models.protocol import EmbeddingModel, embedding_model
from journeyrec.models.transitions import TransitionBlend, Transitions

__all__ = ["choose_weight"]


@torch.no_grad()
def choose_weight(
    model: EmbeddingModel,
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
    features = getattr(model, "feature_names", ())
    ds = EvalWindows(data, cases, model.max_len, features)
    embedding = embedding_model(model)
    item_vectors = embedding.item_vectors()
    ranks: dict[float, dict[str, list[np.ndarray]]] = {w: {"all": [], "seen_excluded": []} for w in candidates}
    for indices in EvalBatchSampler(ds.lengths, batch_size):
        batch = ds.__getitems__(indices)
        items, feats = model_inputs(batch, features)
        queries = embedding.session_vectors(items, feats)  # once per batch; each weight only re-ranks
        for w in candidates:
            rows, cols, values = TransitionBlend(model, transitions.with_weight(w)).bonus_pairs(items)
            out = rank_vectors(
                queries,
                item_vectors,
                batch["targets"],
                batch["history_rows"],
                batch["history_items"],
                window=(rows, cols),
                window_values=values,
            )
            ranks[w]["all"].append(out["all"].numpy())
            ranks[w]["seen_excluded"].append(out["seen_excluded"].numpy())
    model.train(was_training)
    table = {
        w: summarise({p: np.concatenate(r[p]) if r[p] else np.zeros(0, np.int64) for p in r}, ks, split)
        for w, r in ranks.items()
    }
    if monitor not in table[0.0]:
        raise ValueError(f"monitor {monitor!r} is not a validation metric; known: {sorted(table[0.0])[:6]} ...")
    best = max(candidates, key=lambda w: (table[w][monitor], -w))
    return best, table
