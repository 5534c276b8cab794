"""Candidate retrieval under an eligibility mask: FAISS search with over-fetch and post-filtering,
or FAISS ``IDSelector`` pre-filtering when few items are eligible; never fewer results than
``min(n, eligible items)``.

Strategy per request (``eligible`` = items passing filters and rules):

* everything eligible -> plain index search;
* at most ``n`` eligible -> all of them, scored exactly (nothing to search for);
* eligible share below ``prefilter_below`` -> search restricted to eligible ids with an
  ``IDSelectorBitmap`` (an over-fetch would have to read most of the catalogue);
* otherwise -> over-fetch ``n / share`` (+20%) and drop ineligible results; if that leaves fewer
  than ``n`` (filters correlated with the query), repeat with pre-filtering.

Approximate indexes (HNSW with a selector) can still return fewer than asked; then the
eligible items are scored exactly, so the guarantee holds for every index type. Returned scores
are always exact inner products recomputed from the item vectors.

Items added after export (the live catalogue: ``vectors`` longer than the index) are not in the
index, which stays the bundle's: they are few, so they are scored exactly beside the index's
results and the best ``n`` of both are returned.
"""

from __future__ import annotations

import faiss
import numpy as np

from journeyrec.bundle.index import search

__all__ = ["Retriever"]


class Retriever:
    def __init__(self, index: faiss.Index, vectors: np.ndarray, n_indexed: int | None = None) -> None:
        """``n_indexed``: items 1..n_indexed are in ``index`` (default: all rows of ``vectors``)."""
        self.index = index
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n_items = vectors.shape[0] - 1 if n_indexed is None else int(n_indexed)
        self.extra = np.arange(self.n_items + 1, vectors.shape[0], dtype=np.int64)  # live items outside the index
        self.last_strategy = ""
        self._inner = faiss.downcast_index(index)
        self.selector_ok = True  # set False if this index type refuses selectors (then: exact over eligible)

    def _params(self, selector: faiss.IDSelector) -> faiss.SearchParameters:
        """Selector parameters that keep the index's own search settings (efSearch / nprobe)."""
        inner = self._inner
        # the keyword fields come from faiss's Python layer (the stubs know neither them nor the HNSW class)
        if isinstance(inner, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(  # type: ignore[attr-defined]  # faiss stubs: class missing
                sel=selector, efSearch=inner.hnsw.efSearch
            )
        if isinstance(inner, faiss.IndexIVF):
            return faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)  # type: ignore[call-arg]  # faiss stubs: no keyword fields
        return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # faiss stubs: no keyword fields

    def _exact(self, q: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ids, self.vectors[ids] @ q

    def search(
        self,
        q: np.ndarray,
        n: int,
        eligible: np.ndarray | None = None,
        n_eligible: int | None = None,
        prefilter_below: float = 0.05,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` eligible internal ids (int64) with exact scores, best-first for exact indexes."""
        if len(self.extra):
            return self._with_extra(q, n, eligible, prefilter_below)
        return self._search_index(q, n, eligible, n_eligible, prefilter_below)

    def _with_extra(
        self, q: np.ndarray, n: int, eligible: np.ndarray | None, prefilter_below: float
    ) -> tuple[np.ndarray, np.ndarray]:
        indexed = None if eligible is None else eligible[: self.n_items + 1]
        ids, scores = self._search_index(q, n, indexed, None, prefilter_below)
        extra = self.extra if eligible is None else self.extra[eligible[self.extra]]
        if not len(extra):
            return ids, scores
        ids = np.concatenate([ids, extra])
        scores = np.concatenate([scores, self.vectors[extra] @ q])
        best = np.argsort(-scores, kind="stable")[:n]
        return ids[best], scores[best]

    def _search_index(
        self,
        q: np.ndarray,
        n: int,
        eligible: np.ndarray | None,
        n_eligible: int | None,
        prefilter_below: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        if eligible is None:
            self.last_strategy = "plain"
            ids = search(self.index, q[None, :], n)[0][0]
            return self._exact(q, ids[ids > 0])
        if n_eligible is None:
            n_eligible = int(np.count_nonzero(eligible))
        if n_eligible == 0:
            self.last_strategy = "none eligible"
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if n_eligible <= n:
            self.last_strategy = "all eligible"
            return self._exact(q, np.flatnonzero(eligible))
        share = n_eligible / self.n_items
        if share >= prefilter_below:
            self.last_strategy = "post-filter"
            fetch = min(self.n_items, int(n / share * 1.2) + 10)
            ids = search(self.index, q[None, :], fetch)[0][0]
            ids = ids[(ids > 0)]
            ids = ids[eligible[ids]][:n]
            if len(ids) >= n:
                return self._exact(q, ids)
        self.last_strategy = "pre-filter"
        ids = np.zeros(0, np.int64)
        if self.selector_ok:
            bits = np.packbits(eligible[1:], bitorder="little")
            selector = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bits))
            try:
                ids = search(self.index, q[None, :], n, params=self._params(selector))[0][0]
            except RuntimeError:  # e.g. a composite index without selector support
                self.selector_ok = False
            ids = ids[ids > 0]
        if len(ids) < n:  # an approximate index missed some: exact over the (few) eligible items
            self.last_strategy = "pre-filter + exact"
            cand = np.flatnonzero(eligible)
            scores = self.vectors[cand] @ q
            top = np.argpartition(-scores, n - 1)[:n]
            return cand[top], scores[top]
        return self._exact(q, ids)
