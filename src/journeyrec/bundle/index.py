"""FAISS indexes over item vectors, described by factory strings (``Flat``, ``HNSW32``,
``IVF1024,PQ16x4fs``, ...), with their search-time parameter tuned and their quality measured.

Scores are inner products, exactly the model's ``session_vector @ item_vector``. The index holds
items 1..N at rows 0..N-1 (padding is never indexed): a FAISS label ``j`` is internal id ``j + 1``.

An approximate index is only as good as its search-time parameter (``efSearch`` for HNSW,
``nprobe`` for IVF, plus the re-ranked candidates ``k_factor_rf`` behind ``RFlat``).
:func:`tune_and_measure` therefore picks the first setting (cheapest first) that reaches
``target_recall`` (recall@k against exact search) on one half of held-out query vectors and
reports recall@K and single-query QPS on the *other* half, so the recorded recall is not the one
it was tuned on. The reference top-k is an exact NumPy matmul; the QPS baseline is exact search as
serving could do it instead, one query at a time: a single-threaded torch matvec + topk.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import faiss
import numpy as np
import torch

__all__ = ["build_index", "search", "set_search_params", "tune_and_measure", "exact_topk"]

# candidate values of the one search-time knob of each index family, cheapest first
_EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
_NPROBE = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096)


def build_index(item_vectors: np.ndarray, factory: str = "Flat") -> faiss.Index:
    """Build an inner-product index over ``item_vectors[1:]`` (row 0 is padding).

    Graph indexes (``HNSW...``) are built on vectors augmented with one extra coordinate
    ``sqrt(M^2 - |x|^2)`` (M = the largest norm), so that every item has norm M: a query padded
    with 0 has exactly the same inner products, but the graph is built over vectors of equal norm,
    where it works (on raw embeddings, whose norms vary with popularity, HNSW32 reached recall@10
    0.64 on Beauty even at efSearch 1024). :func:`search` pads the queries. Quantised indexes keep
    the raw dimension (product quantisers need it divisible by their sub-quantiser count).
    """
    vecs = np.ascontiguousarray(item_vectors[1:], dtype=np.float32)
    if "HNSW" in factory:
        norms2 = (vecs.astype(np.float64) ** 2).sum(axis=1)
        extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
        vecs = np.ascontiguousarray(np.hstack([vecs, extra[:, None]]))
    index = faiss.index_factory(vecs.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vecs)
    index.add(vecs)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k internal item ids (1-based; 0 = no result) and scores for each query row."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] == index.d - 1:  # an augmented (equal-norm) index: the query's extra coordinate is 0
        q = np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), np.float32)]))
    scores, labels = index.search(q, min(k, index.ntotal), params=params)
    ids = np.where(labels >= 0, labels + 1, 0)
    return ids, scores


def _unwrap(index: faiss.Index) -> tuple[faiss.Index, bool]:
    """The innermost index under pre-transforms and refinement, and whether there is a refinement."""
    inner, refine = faiss.downcast_index(index), False
    while isinstance(inner, (faiss.IndexPreTransform, faiss.IndexRefine)):
        refine |= isinstance(inner, faiss.IndexRefine)
        inner = faiss.downcast_index(inner.index if isinstance(inner, faiss.IndexPreTransform) else inner.base_index)
    return inner, refine


def _candidates(index: faiss.Index) -> list[dict[str, int]]:
    """Search-time settings to try, in the order tuning tries them (roughly cheapest first):
    ``nprobe`` for IVF, ``efSearch`` for HNSW, and for a refined index (``...,RFlat``) also the
    number of candidates re-ranked exactly (``k_factor_rf`` x k). Exact indexes: nothing."""
    inner, refine = _unwrap(index)
    if faiss.try_extract_index_ivf(index) is not None:
        nlist = faiss.extract_index_ivf(index).nlist
        base = [{"nprobe": v} for v in _NPROBE if v <= nlist] or [{"nprobe": nlist}]
    elif isinstance(inner, faiss.IndexHNSW):
        base = [{"efSearch": v} for v in _EF_SEARCH]
    else:
        base = [{}]
    if refine:
        return [{**b, "k_factor_rf": f} for f in (1, 2, 4, 8, 16, 32) for b in base]
    return [] if base == [{}] else base


def set_search_params(index: faiss.Index, params: dict[str, int]) -> None:
    """Apply recorded search-time parameters (e.g. ``{"efSearch": 64}``) to a loaded index."""
    if params:
        param_string = ",".join(f"{k}={v}" for k, v in params.items())
        faiss.ParameterSpace().set_index_parameters(index, param_string)  # type: ignore[arg-type]  # faiss stubs: no @overload


def exact_topk(item_vectors: np.ndarray, queries: np.ndarray, k: int, chunk_elements: int = 1 << 26) -> np.ndarray:
    """Exact top-k internal ids (1-based) by a matmul over all items (padding row excluded),
    a block of queries at a time so that memory stays bounded for million-item catalogues."""
    items = item_vectors[1:]
    step = max(1, chunk_elements // max(len(items), 1))
    out = []
    for lo in range(0, len(queries), step):
        scores = queries[lo : lo + step] @ items.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1) + 1)
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def _recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def _single_query_qps(fn, queries: np.ndarray, min_seconds: float = 0.3) -> float:
    """Queries per second answering one query at a time (how serving uses the index)."""
    n, start = 0, time.perf_counter()
    while True:
        for q in queries:
            fn(q[None, :])
        n += len(queries)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed


def tune_and_measure(
    index: faiss.Index,
    item_vectors: np.ndarray,
    queries: np.ndarray,
    ks: Sequence[int] = (10, 20, 100),
    target_recall: float = 0.95,
    tune_k: int = 10,
    query_source: str = "",
    qps_seconds: float = 0.3,
) -> dict[str, Any]:
    """Tune the index's search-time parameter and measure it (see module docstring).

    Returns the manifest's ``index.quality`` record: chosen ``search_params``, recall@K on the
    evaluation half, single-query QPS of the index and of exact search (both single-threaded
    here, whatever the caller's thread settings), and whether ``target_recall`` was reached.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if len(queries) < 2:
        raise ValueError("tune_and_measure needs at least 2 held-out query vectors")
    half = len(queries) // 2
    tune_q, eval_q = queries[:half], queries[half:]
    vecs = np.ascontiguousarray(item_vectors, dtype=np.float32)
    kmax = min(max(max(ks), tune_k), index.ntotal)
    truth_tune = exact_topk(vecs, tune_q, kmax)
    truth_eval = exact_topk(vecs, eval_q, kmax)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        chosen: dict[str, int] = {}
        tuning = []
        tuned = _recall(search(index, tune_q, tune_k)[0], truth_tune, tune_k)
        for setting in _candidates(index):
            set_search_params(index, setting)
            tuned = _recall(search(index, tune_q, tune_k)[0], truth_tune, tune_k)
            tuning.append({**setting, f"recall@{tune_k}": round(tuned, 4)})
            chosen = setting
            if tuned >= target_recall:
                break
        set_search_params(index, chosen)
        # each recall@K from a search for K results (as serving asks; a longer list re-ranked would flatter it)
        recall = {f"recall@{k}": round(_recall(search(index, eval_q, k)[0], truth_eval, k), 4) for k in ks if k <= kmax}
        qps = _single_query_qps(lambda q: search(index, q, tune_k), eval_q[:200], qps_seconds)
        exact_vecs = torch.from_numpy(np.ascontiguousarray(vecs[1:]))
        threads_torch = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            exact_qps = _single_query_qps(
                lambda q: torch.topk(exact_vecs @ torch.from_numpy(q[0]), tune_k), eval_q[:200], qps_seconds
            )
        finally:
            torch.set_num_threads(threads_torch)
    finally:
        faiss.omp_set_num_threads(threads)
    return {
        "search_params": chosen,
        "target_recall": target_recall,
        "reached_target": tuned >= target_recall,  # on the tuning half; recall@K below is on the other half
        f"tuned_recall@{tune_k}": round(tuned, 4),
        "tuned_on": int(len(tune_q)),
        "evaluated_on": int(len(eval_q)),
        "query_source": query_source,
        **recall,
        "qps_single_query": round(qps, 1),
        "qps_exact_torch": round(exact_qps, 1),
        "threads": 1,
        "tuning": tuning,
    }
