"""Beyond-accuracy measures, from each case's top-K list
(:func:`journeyrec.evaluation.rank_kernel.topk_items`, same protocol as its ranks):

* ``coverage@K``: share of catalogue items that appear in at least one list;
* ``diversity@K``: intra-list diversity, the mean Jaccard distance between the attribute sets of
  every pair of listed items (with one category per item: the share of pairs from different
  categories); pairs with an item of unknown attributes are left out;
* ``novelty@K``: mean self-information ``-log2 p(i)`` of listed items, ``p(i) = (c_i + 1) / (C + N)``
  from training interaction counts (add-one smoothing keeps unseen items finite);
* ``arp@K``: average recommended popularity (mean training count of listed items);
* ``gini@K``: Gini coefficient of exposure (how often each catalogue item is listed; 0 = equal).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

__all__ = [
    "exposure",
    "catalogue_coverage",
    "gini",
    "self_information",
    "mean_item_value",
    "intra_list_diversity",
    "beyond_accuracy",
]


def exposure(topk: np.ndarray, n_items: int, weights: np.ndarray | None = None) -> np.ndarray:
    """How often each item 1..N is listed over all cases (float64 [N]); id 0 (an unfilled slot)
    is dropped. ``weights`` (one per case) counts a case that many times (bootstrap resamples)."""
    topk = np.asarray(topk, dtype=np.int64)
    w = None if weights is None else np.repeat(np.asarray(weights, dtype=np.float64), topk.shape[1])
    return np.bincount(topk.ravel(), weights=w, minlength=n_items + 1)[1:].astype(np.float64)


def catalogue_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the N catalogue items listed in at least one case's top-K."""
    return float((exposure(topk, n_items) > 0).mean()) if n_items else float("nan")


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, -> 1 when one item takes all."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * (i * x).sum() / (n * total) - (n + 1.0) / n)


def self_information(item_counts: np.ndarray) -> np.ndarray:
    """``-log2 p(i)`` per item id 0..N from training counts ([N + 1], index 0 unused), add-one smoothed."""
    c = np.asarray(item_counts, dtype=np.float64)
    n = len(c) - 1
    p = (c + 1.0) / (c[1:].sum() + n)
    return -np.log2(p)


def mean_item_value(topk: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per case, the mean of ``values[item]`` over its listed items (NaN when the list is empty)."""
    topk = np.asarray(topk, dtype=np.int64)
    real = topk > 0
    v = np.where(real, np.asarray(values, dtype=np.float64)[topk], 0.0)
    n = real.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, v.sum(axis=1) / np.maximum(n, 1), np.nan)


def intra_list_diversity(topk: np.ndarray, item_attributes: np.ndarray, chunk_elements: int = 1 << 25) -> np.ndarray:
    """Per case, the mean Jaccard distance between the attribute sets of all pairs of listed items.

    Args:
        topk: int [B, K] item ids (0 = empty slot).
        item_attributes: int [N + 1, T] attribute codes per item, padded with -1 (one column holding
            the category code, or the item's tags); row 0 and items without attributes are all -1
            and take no part in any pair.

    Returns:
        float64 [B]; NaN where a list has fewer than two items with attributes.
    """
    topk = np.asarray(topk, dtype=np.int64)
    return _diversity_at(topk, item_attributes, [topk.shape[1]], chunk_elements)[topk.shape[1]]


def _diversity_at(
    topk: np.ndarray, item_attributes: np.ndarray, ks: Iterable[int], chunk_elements: int = 1 << 25
) -> dict[int, np.ndarray]:
    """Diversity of the top-k prefix for every k in ``ks`` from one pass over the pairwise
    distances of the full lists (the k-prefix uses the leading k x k block).

    Pairwise intersections: with a modest attribute vocabulary the sets become dense 0/1 rows and
    one batched matrix product per chunk counts them (BLAS); otherwise codes are compared
    directly ([c, K, K, T, T], fine for the few tags an item has)."""
    topk = np.asarray(topk, dtype=np.int64)
    b, kmax = topk.shape
    ks = [min(int(k), kmax) for k in ks]
    codes = np.asarray(item_attributes, dtype=np.int64)
    out = {k: np.full(b, np.nan) for k in ks}
    if b == 0 or kmax < 2 or codes.ndim != 2 or codes.shape[1] == 0 or (codes < 0).all():
        return out
    n_attr = int(codes.max()) + 1
    item_size = torch.from_numpy((codes >= 0).sum(axis=1))
    dense = codes.shape[1] > 1 and codes.shape[0] * n_attr * 4 <= 256 << 20  # one code per item: compare codes
    if dense:
        onehot = np.zeros((codes.shape[0], n_attr), dtype=np.float32)
        rows, cols = np.nonzero(codes >= 0)
        onehot[rows, codes[rows, cols]] = 1.0
        feats = torch.from_numpy(onehot)
        step = max(1, int(chunk_elements // (kmax * n_attr)))
    else:
        feats = torch.from_numpy(codes)
        step = max(1, int(chunk_elements // (kmax * kmax * codes.shape[1] ** 2)))
    upper = torch.triu(torch.ones(kmax, kmax, dtype=torch.bool), diagonal=1)
    for lo in range(0, b, step):
        idx = torch.from_numpy(topk[lo : lo + step])
        x = feats[idx]  # [c, K, F] one-hot or [c, K, T] codes
        size = item_size[idx]
        if dense:
            inter = torch.bmm(x, x.transpose(1, 2)).double()
        else:
            valid = x >= 0
            same = (
                (x[:, :, None, :, None] == x[:, None, :, None, :])
                & valid[:, :, None, :, None]
                & valid[:, None, :, None, :]
            )
            inter = same.sum(dim=(3, 4)).double()
        union = (size[:, :, None] + size[:, None, :]).double() - inter
        ok = (size[:, :, None] > 0) & (size[:, None, :] > 0) & upper
        dist = torch.where(ok, 1.0 - inter / union.clamp_min(1e-9), torch.zeros_like(inter))
        for k in ks:
            pairs = ok[:, :k, :k].sum(dim=(1, 2))
            val = dist[:, :k, :k].sum(dim=(1, 2)) / pairs.clamp_min(1).double()
            out[k][lo : lo + step] = torch.where(pairs > 0, val, torch.full_like(val, float("nan"))).numpy()
    return out


def beyond_accuracy(
    topk: np.ndarray,
    ks: Iterable[int],
    item_counts: np.ndarray,
    item_attributes: np.ndarray | None = None,
    prefix: str = "",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Coverage, diversity, novelty, ARP and Gini at each K from the top-max(K) lists.

    Returns (aggregates, per-case arrays); the per-case arrays (diversity, novelty, arp) are the
    ones a bootstrap interval applies to. Keys ``<prefix>coverage@10`` etc.
    """
    topk = np.asarray(topk, dtype=np.int64)
    counts = np.asarray(item_counts, dtype=np.float64)
    n_items = len(counts) - 1
    info = self_information(counts)
    agg: dict[str, float] = {}
    per: dict[str, np.ndarray] = {}
    ks = list(ks)
    diversity = _diversity_at(topk, item_attributes, ks) if item_attributes is not None else {}
    for k in ks:
        top = topk[:, :k]
        exp = exposure(top, n_items)
        agg[f"{prefix}coverage@{k}"] = float((exp > 0).mean()) if n_items else float("nan")
        agg[f"{prefix}gini@{k}"] = gini(exp)
        per[f"{prefix}novelty@{k}"] = mean_item_value(top, info)
        per[f"{prefix}arp@{k}"] = mean_item_value(top, counts)
        if item_attributes is not None:
            per[f"{prefix}diversity@{k}"] = diversity[min(k, topk.shape[1])]
    for key, v in per.items():
        agg[key] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return agg, per
