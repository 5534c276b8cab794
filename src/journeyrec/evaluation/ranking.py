"""Apply a model to evaluation cases: score every item, rank the target under both protocols.

:func:`rank_batch` is the one function that turns a batch into ranks; training-time validation
(the LightningModule) and offline evaluation (:func:`evaluate`) both call it, so their numbers
agree exactly on the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from journeyrec.data.datasets import EvalBatchSampler, EvalWindows
from journeyrec.data.sequences import EvalCases, SequenceData, repeated_targets
from journeyrec.evaluation.metrics import DEFAULT_KS, ranking_metrics, summarise
from journeyrec.evaluation.rank_kernel import exclusion_mask, rank_vectors, sampled_ranks, target_ranks_many, topk_items
from journeyrec.models.losses import window_pairs
from journeyrec.models.protocol import RankingModel, embedding_model

__all__ = ["EvalResult", "score_batch", "rank_batch", "evaluate", "model_inputs"]


def model_inputs(
    batch: Mapping[str, torch.Tensor], feature_names: Iterable[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(items, features) for a model from a batch dict."""
    return batch["items"], {name: batch[name] for name in feature_names}


@torch.no_grad()
def score_batch(model: RankingModel, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Scores [B, N + 1] of every item for each sequence of the batch.

    Embedding models score by ``session_vectors @ item_vectors.T`` (what a FAISS index
    reproduces); models that are not dot products (popularity, co-occurrence) provide
    ``scores(items, features)`` instead, and it takes precedence.
    """
    items, feats = model_inputs(batch, getattr(model, "feature_names", ()))
    if hasattr(model, "scores"):
        return model.scores(items, feats)
    embedding = embedding_model(model)
    return embedding.session_vectors(items, feats) @ embedding.item_vectors().T


@torch.no_grad()
def rank_batch(
    model: RankingModel,
    batch: Mapping[str, torch.Tensor],
    topk: int = 0,
    sampled: int = 0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Ranks (and ties) of the targets of one evaluation batch under both protocols.

    With ``topk`` > 0 also the top-k lists under both protocols (``top_all``,
    ``top_seen_excluded``) for beyond-accuracy metrics, from the same scores. With ``sampled`` > 0
    also ``sampled``: ranks among that many random negatives drawn from items the user had not
    seen (the usual sampled protocol; on request only).
    """
    targets = batch["targets"]
    bias = getattr(model, "repeat_bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    bonus_pairs = getattr(model, "bonus_pairs", None)  # the optional protocol method (the transition blend)
    if (bonus_pairs is not None or bias is not None or not hasattr(model, "scores")) and not sampled:
        # dot-product models, plus a repeat bias on the window's items or a sparse bonus (the
        # transition blend), the whole of their ``scores``: tile over the catalogue, the bonus
        # added inside the tiles, never materialising [B, N + 1] scores
        items, feats = model_inputs(batch, getattr(model, "feature_names", ()))
        window, values = None, None
        if bonus_pairs is not None:
            rows, cols, values = bonus_pairs(items)
            window = (rows, cols)
        elif bias is not None:
            window = window_pairs(items)
        embedding = embedding_model(model)
        return rank_vectors(
            embedding.session_vectors(items, feats),
            embedding.item_vectors(),
            targets,
            batch["history_rows"],
            batch["history_items"],
            topk=topk,
            window=window,
            window_bonus=float(bias) if bias is not None else 0.0,  # unused where values are given
            window_values=values,
        )
    scores = score_batch(model, batch)
    excl = exclusion_mask(
        scores.shape[0], scores.shape[1], batch["history_rows"], batch["history_items"], scores.device
    )
    (r_all, t_all), (r_seen, t_seen) = target_ranks_many(scores, targets, [None, excl])
    out = {"all": r_all, "seen_excluded": r_seen, "ties_all": t_all, "ties_seen_excluded": t_seen}
    if topk:
        out["top_all"] = topk_items(scores, topk)[0]
        out["top_seen_excluded"] = topk_items(scores, topk, excl)[0]
    if sampled:
        out["sampled"] = sampled_ranks(scores, targets, sampled, excl, generator)
    return out


@dataclass
class EvalResult:
    """Per-case ranks for each protocol, and the flat metrics derived from them.

    ``topk`` holds the top-k lists per protocol when asked for (int64 [n_cases, k]);
    ``sampled`` the sampled-protocol ranks when asked for.
    """

    ranks: dict[str, np.ndarray]
    metrics: dict[str, float]
    ties: dict[str, np.ndarray] = field(default_factory=dict)
    topk: dict[str, np.ndarray] = field(default_factory=dict)
    sampled: np.ndarray | None = None


@torch.no_grad()
def evaluate(
    model: RankingModel,
    data: SequenceData,
    cases: EvalCases,
    split: str,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
    progress: bool = False,
    topk: int = 0,
    sampled_negatives: int = 0,
    seed: int = 0,
) -> EvalResult:
    """Full-ranking evaluation of ``model`` on ``cases``; metric keys ``<split>/ndcg@10``,
    ``<split>_seen_excluded/ndcg@10``, ... plus ``<split>/tie_rate`` and
    ``<split>/repeat_target_share`` (cases whose target repeats an earlier item of the user: misses
    under ``seen_excluded``). With ``sampled_negatives`` = n > 0 also ``<split>_sampled<n>/...``
    (labelled, never the default)."""
    was_training = model.training
    model.eval()
    ds = EvalWindows(data, cases, model.max_len, getattr(model, "feature_names", ()))
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed)) if sampled_negatives else None
    out: dict[str, list[torch.Tensor]] = {}
    name = getattr(model, "hparams", {}).get("name", type(model).__name__)
    for indices in tqdm(
        EvalBatchSampler(ds.lengths, batch_size),
        desc=f"eval {name} {split}",
        disable=not progress,
        leave=False,
        unit="batch",
    ):
        batch = {k: v.to(device) for k, v in ds.__getitems__(indices).items()}
        ranked = rank_batch(model, batch, topk, sampled_negatives, gen)
        ranked["case_index"] = batch["case_index"]
        for key, val in ranked.items():
            out.setdefault(key, []).append(val.cpu())
    model.train(was_training)
    # batches come shortest window first: put every result back in case order
    back = np.argsort(torch.cat(out.pop("case_index")).numpy()) if out else np.zeros(0, dtype=np.int64)
    cat = {k: torch.cat(v).numpy()[back] if v else np.zeros(0, dtype=np.int64) for k, v in out.items()}
    ranks = {p: cat.get(p, np.zeros(0, dtype=np.int64)) for p in ("all", "seen_excluded")}
    ties = {p: cat.get(f"ties_{p}", np.zeros(0, dtype=np.int64)) for p in ("all", "seen_excluded")}
    metrics = summarise(ranks, ks, split)
    metrics[f"{split}/tie_rate"] = float((ties["all"] > 0).mean()) if len(ties["all"]) else 0.0
    metrics[f"{split}/n_cases"] = float(len(cases))
    metrics[f"{split}/repeat_target_share"] = float(repeated_targets(data, cases).mean()) if len(cases) else 0.0
    tops = (
        {p: cat.get(f"top_{p}", np.zeros((0, topk), dtype=np.int64)) for p in ("all", "seen_excluded")} if topk else {}
    )
    sampled = None
    if sampled_negatives:
        sampled = cat.get("sampled", np.zeros(0, dtype=np.int64))
        metrics.update(ranking_metrics(sampled, ks, f"{split}_sampled{int(sampled_negatives)}/"))
    return EvalResult(ranks=ranks, metrics=metrics, ties=ties, topk=tops, sampled=sampled)
