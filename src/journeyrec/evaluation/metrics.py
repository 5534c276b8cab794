"""Full-ranking metrics: the single source of truth for every number journeyrec reports.

Protocol. Each evaluation case has one target item. The model scores *every* item of the
catalogue (column 0, the padding id, never counts). The target's 0-based **rank** is the number
of candidate items with a **strictly higher** score than the target. Tie policy: items tied with
the target do not push it down (the optimistic convention; a model that gives many items the
target's exact score is reported in ``tie_rate``, so a degenerate constant scorer is visible
rather than hidden). A NaN target score gets the worst rank; NaN scores of other items count as
lower than any number.

Two protocols are always computed side by side, because papers mix them silently:

* ``all``: every item is a candidate;
* ``seen_excluded``: the items the user had before the target are removed from the candidates
  (except the target itself, which is always ranked), as in S3-Rec's evaluation code.

From ranks, with one relevant item per case: HR@K = Recall@K = [rank < K];
NDCG@K = 1/log2(rank + 2) if rank < K; MRR@K = MAP@K = 1/(rank + 1) if rank < K.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "DEFAULT_KS",
    "PROTOCOLS",
    "target_ranks",
    "exclusion_mask",
    "per_case_metrics",
    "ranking_metrics",
    "topk_items",
    "summarise",
    "roc_auc",
]

DEFAULT_KS: tuple[int, ...] = (10, 20)
PROTOCOLS: tuple[str, ...] = ("all", "seen_excluded")


def exclusion_mask(
    n_rows: int, n_cols: int, rows: torch.Tensor, cols: torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean [n_rows, n_cols] mask with True at (rows[i], cols[i]); duplicates are harmless."""
    mask = torch.zeros(n_rows, n_cols, dtype=torch.bool, device=device)
    if rows.numel():
        mask[rows.to(mask.device), cols.to(mask.device)] = True
    return mask


@torch.no_grad()
def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each row's target among columns 1..N, and the number of items tied with it.

    Args:
        scores: [B, N + 1] float scores; column 0 is padding and is ignored.
        targets: [B] int64 target column (1..N).
        exclude: optional [B, N + 1] bool mask of candidates to remove (the target never is).

    Returns:
        (ranks, ties): int64 [B] each. ``ranks`` counts strictly higher candidates.
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"scores must be [B, N+1] and targets [B]; got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]):
        raise ValueError("targets must be item ids in 1..N (0 is padding)")
    s = scores.float()
    rows = torch.arange(s.shape[0], device=s.device)
    t = s[rows, targets]
    cand = torch.ones_like(s, dtype=torch.bool)
    cand[:, 0] = False
    if exclude is not None:
        cand &= ~exclude
        cand[rows, targets] = True
    higher = ((s > t[:, None]) & cand).sum(dim=1)
    ties = ((s == t[:, None]) & cand).sum(dim=1) - 1
    worst = cand.sum(dim=1) - 1
    nan_target = torch.isnan(t)
    ranks = torch.where(nan_target, worst, higher)
    ties = torch.where(nan_target, torch.zeros_like(ties), ties)
    return ranks.long(), ties.long()


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


@torch.no_grad()
def topk_items(scores: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item ids (1..N) and scores per row; padding and excluded items never appear.

    If fewer than k candidates exist, the tail is filled with id 0 and score -inf.
    """
    s = scores.float().clone()
    s[:, 0] = -torch.inf
    if exclude is not None:
        s = s.masked_fill(exclude, -torch.inf)
    s = torch.nan_to_num(s, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    k_eff = min(k, s.shape[1])
    vals, idx = torch.topk(s, k_eff, dim=1)
    idx = torch.where(torch.isinf(vals) & (vals < 0), torch.zeros_like(idx), idx)
    if k_eff < k:
        pad = k - k_eff
        idx = torch.cat([idx, idx.new_zeros(idx.shape[0], pad)], dim=1)
        vals = torch.cat([vals, vals.new_full((vals.shape[0], pad), -torch.inf)], dim=1)
    return idx, vals


def summarise(results: Mapping[str, np.ndarray], ks: Sequence[int], split: str) -> dict[str, float]:
    """Flat metric dict for one split from ranks per protocol: ``<split>/...`` and
    ``<split>_seen_excluded/...`` (the keys of metrics.json)."""
    out: dict[str, float] = {}
    for protocol, ranks in results.items():
        prefix = f"{split}/" if protocol == "all" else f"{split}_{protocol}/"
        out.update(ranking_metrics(ranks, ks, prefix))
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of binary ``labels`` (1 = positive) by ``scores``; tied scores
    count one half (Mann-Whitney U with average ranks). NaN when a class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank (1-based) of each run of equal scores
    starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
