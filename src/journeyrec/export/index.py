"""FAISS indexes over item vectors, described by factory strings (``Flat``, ``HNSW32``, ...).

Scores are inner products, exactly the model's ``session_vector @ item_vector``. The index holds
items 1..N at rows 0..N-1 (padding is never indexed): a FAISS label ``j`` is internal id ``j + 1``.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["build_index", "search"]


def build_index(item_vectors: np.ndarray, factory: str = "Flat") -> faiss.Index:
    """Build an inner-product index over ``item_vectors[1:]`` (row 0 is padding)."""
    vecs = np.ascontiguousarray(item_vectors[1:], dtype=np.float32)
    index = faiss.index_factory(vecs.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vecs)
    index.add(vecs)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k internal item ids (1-based; 0 = no result) and scores for each query row."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    scores, labels = index.search(q, min(k, index.ntotal))
    ids = np.where(labels >= 0, labels + 1, 0)
    return ids, scores
