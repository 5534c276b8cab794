"""Accuracy metrics from target ranks: the numbers every split and segment reports.

Ranks come from :mod:`journeyrec.evaluation.rank_kernel` (protocols, tie policy, misses).
From ranks, with one relevant item per case: HR@K = Recall@K = [rank < K];
NDCG@K = 1/log2(rank + 2) if rank < K; MRR@K = MAP@K = 1/(rank + 1) if rank < K. K beyond the
catalogue is allowed (every ranked target counts as a hit; a target that cannot be ranked, one
the protocol excludes or the model does not know, has rank
:data:`journeyrec.evaluation.rank_kernel.MISS_RANK` and never counts).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["DEFAULT_KS", "per_case_metrics", "ranking_metrics", "summarise", "segment_metrics"]

DEFAULT_KS: tuple[int, ...] = (10, 20)


def per_case_metrics(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-case metric arrays (for averages, bootstrap intervals and paired tests)."""
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = r < k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
        out[f"mrr@{k}"] = np.where(hit, 1.0 / (r + 1.0), 0.0)
    return out


def ranking_metrics(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS, prefix: str = "") -> dict[str, float]:
    """Mean HR / NDCG / MRR at each K from target ranks, keys ``<prefix>hr@10`` etc.

    Recall@K equals HR@K and MAP@K equals MRR@K with one target per case; they are reported under
    those names too so tables from other tools can be matched.
    """
    per = per_case_metrics(ranks, ks)
    out = {f"{prefix}{k}": float(v.mean()) if len(v) else float("nan") for k, v in per.items()}
    for k in ks:
        out[f"{prefix}recall@{k}"] = out[f"{prefix}hr@{k}"]
        out[f"{prefix}map@{k}"] = out[f"{prefix}mrr@{k}"]
    return out


def summarise(results: Mapping[str, np.ndarray], ks: Sequence[int], split: str) -> dict[str, float]:
    """Flat metric dict for one split from ranks per protocol: ``<split>/...`` and
    ``<split>_seen_excluded/...`` (the keys of metrics.json)."""
    out: dict[str, float] = {}
    for protocol, ranks in results.items():
        prefix = f"{split}/" if protocol == "all" else f"{split}_{protocol}/"
        out.update(ranking_metrics(ranks, ks, prefix))
    return out


# --- segments -------------------------------------------------------------------------------


def segment_metrics(
    ranks: np.ndarray, labels: np.ndarray, ks: Iterable[int] = DEFAULT_KS, prefix: str = ""
) -> dict[str, dict[str, float]]:
    """``{label: {hr@10: ..., ndcg@10: ..., mrr@10: ..., n_cases: ...}}`` for each segment label."""
    ranks = np.asarray(ranks)
    labels = np.asarray(labels, dtype=object)
    ks = list(ks)
    out: dict[str, dict[str, float]] = {}
    for label in sorted(set(labels.tolist()), key=str):
        sel = labels == label
        m = {
            k: v
            for k, v in ranking_metrics(ranks[sel], ks, prefix).items()
            if not k.startswith((f"{prefix}recall", f"{prefix}map"))
        }
        m[f"{prefix}n_cases"] = float(sel.sum())
        out[str(label)] = m
    return out
