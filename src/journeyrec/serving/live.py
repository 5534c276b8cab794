"""The live catalogue over an immutable bundle: the live records laid over it, and vectors for
the items it does not have.

A new item is represented the way the model represents an item it has no trained id embedding
for (``known = 0``): the attribute part of its item-table row (:mod:`journeyrec.models.attributes`:
the mean embedding of its codes per attribute field) through the model's item tower
(``vectors_from_rows``: identity for the sequence models, the MLP of the two-tower model). Codes
come from the bundle catalogue's own vocabularies, which are checked at load to reproduce the
model's code tables exactly; values the catalogue never had contribute nothing. No retraining.

A model that reads no attributes has no attribute part: a new item then gets the mean vector of
the bundle's items in its category (its deepest category prefix that has items), and an item
whose category is unknown too gets no vector and is not served until a re-export.

:class:`LiveLayer` keeps the live records (stock, price and attribute changes, new items) apart
from the bundle, which stays as exported, and lays them over it: in place for stock and price
changes of bundle items, else as a rebuilt catalogue with new items appended after the bundle's,
scored exactly beside the index (the session encoder reads the bundle's items only).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from journeyrec.bundle.stats import RuleStats
from journeyrec.data.schema import CATALOG_SCHEMA, conform_catalog
from journeyrec.models.attributes import AttributeVocabulary
from journeyrec.models.base import SequenceModel
from journeyrec.models.protocol import EmbeddingModel
from journeyrec.serving.catalog import Catalog

__all__ = ["LiveCatalogue", "LiveLayer", "NewItemVectors", "VECTOR_SOURCES"]

log = logging.getLogger(__name__)

VECTOR_SOURCES = ("attributes", "category", "none")
_IN_PLACE_FIELDS = frozenset({"in_stock", "price"})  # live changes written in place (no rebuild)
_NOT_ATTRIBUTES = frozenset({"in_stock", "title"})  # live fields a new item's vector does not read


class NewItemVectors:
    def __init__(self, model: EmbeddingModel, catalog: pa.Table, vectors: np.ndarray) -> None:
        self.model = model
        self.vocab: AttributeVocabulary | None = None
        fields = list((getattr(model, "hparams", {}) or {}).get("attributes") or {})
        embedding = getattr(model, "item_embedding", None) if fields else None
        if embedding is not None:
            vocab = AttributeVocabulary(catalog, fields)
            n = catalog.num_rows + 1
            widths = {f: int(getattr(embedding, f"codes_{f}").shape[1]) for f in fields}
            ours = vocab.codes(catalog, first_row=1, width=widths)
            if all(torch.equal(torch.as_tensor(ours[f]), getattr(embedding, f"codes_{f}")[:n].cpu()) for f in fields):
                self.vocab, self.embedding, self.widths = vocab, embedding, widths
            else:
                log.warning(
                    "the bundle catalogue does not reproduce the model's attribute codes; "
                    "new items get their category's mean vector"
                )
        # category prefix -> mean vector of the bundle's items under it
        self._category_mean: dict[str, np.ndarray] = {}
        sums: dict[str, tuple[np.ndarray, int]] = {}
        for i, c in enumerate(
            catalog.column("category").to_pylist() if "category" in catalog.column_names else [], start=1
        ):
            parts = c.split("/") if c else []
            for depth in range(1, len(parts) + 1):
                key = "/".join(parts[:depth])
                total, count = sums.get(key, (np.zeros(vectors.shape[1], np.float64), 0))
                sums[key] = (total + vectors[i], count + 1)
        self._category_mean = {k: (t / c).astype(np.float32) for k, (t, c) in sums.items()}
        self.dim = int(vectors.shape[1])

    @property
    def from_attributes(self) -> bool:
        return self.vocab is not None

    def vectors(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str]]:
        """float32 [len(records), D] and each vector's source (one of :data:`VECTOR_SOURCES`)."""
        out = np.zeros((len(records), self.dim), np.float32)
        source = ["none"] * len(records)
        if not records:
            return out, source
        table = conform_catalog({f.name: [r.get(f.name) for r in records] for f in CATALOG_SCHEMA})
        if self.vocab is not None:
            codes = self.vocab.codes(table)
            has_code = np.zeros(len(records), bool)
            for c in codes.values():
                has_code |= (c > 0).any(axis=1)
            with torch.no_grad():
                rows = self.embedding.attribute_rows({f: torch.from_numpy(c) for f, c in codes.items()}, len(records))
                # only a SequenceModel has attribute fields (an ensemble's hparams name none)
                assert isinstance(self.model, SequenceModel)
                vec = self.model.vectors_from_rows(rows).float().cpu().numpy()
            out[has_code] = vec[has_code]
            for j in np.flatnonzero(has_code).tolist():
                source[j] = "attributes"
        for j, r in enumerate(records):
            if source[j] != "none":
                continue
            parts = str(r.get("category") or "").strip("/").split("/")
            for depth in range(len(parts), 0, -1):
                mean = self._category_mean.get("/".join(parts[:depth]))
                if mean is not None:
                    out[j], source[j] = mean, "category"
                    break
        return out, source


@dataclass
class LiveCatalogue:
    """The bundle with the live layer over it, as the Recommender's per-item arrays are built from:
    rows 1..n_bundle are the bundle's items (live values), the rest new items."""

    table: pa.Table
    vectors: np.ndarray  # float32 [N + 1, D]
    stats: RuleStats  # the bundle's, new items appended with nothing bought or seen
    is_new: np.ndarray  # bool [N + 1]
    servable: np.ndarray  # bool [N + 1]; False: a new item without a vector
    sources: dict[str, str]  # new item -> where its vector came from (VECTOR_SOURCES)


class LiveLayer:
    """The live records (item id -> every live field of the item, as the store merges them) kept
    apart from the bundle as exported, and each new item's vector (recomputed only when its
    attributes change)."""

    def __init__(self, model: EmbeddingModel, catalog: pa.Table, vectors: np.ndarray, stats: RuleStats) -> None:
        self.model = model
        self.catalog = catalog  # the bundle's, as exported
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.stats = stats
        self.n_bundle = catalog.num_rows
        self.records: dict[str, dict[str, Any]] = {}
        self._new_vectors: dict[str, tuple[str, np.ndarray, str]] = {}  # item -> (attribute key, vector, source)
        self._new_item_vectors: NewItemVectors | None = None

    def in_bundle(self, row: int | None) -> bool:
        """Whether an internal id (None: unknown) is one of the bundle's items, not a live addition."""
        return row is not None and row <= self.n_bundle

    def add(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Record changed live records (each replaces the item's previous one)."""
        self.records.update({str(k): dict(v) for k, v in items.items()})

    def write_in_place(
        self, items: Mapping[str, Mapping[str, Any]], index_of: Mapping[str, int], attrs: Catalog
    ) -> bool:
        """When ``items`` are all bundle items changing only stock or price, write those into
        ``attrs`` (rows by ``index_of``): True. False, with nothing written, when the per-item
        arrays must be rebuilt instead (:meth:`rebuild`)."""
        in_bundle = [k for k in items if self.in_bundle(index_of.get(str(k)))]
        if len(in_bundle) < len(items) or not all(set(items[k]) <= _IN_PLACE_FIELDS for k in items):
            return False
        rows = np.asarray([index_of[str(k)] for k in in_bundle], np.int64)
        for name in _IN_PLACE_FIELDS:
            has = [j for j, k in enumerate(in_bundle) if name in items[k]]
            if has:
                attrs.set_values(name, rows[has], [items[in_bundle[j]][name] for j in has])
        return True

    def rebuild(self) -> LiveCatalogue:
        """The bundle with every live record laid over it, new items appended in first-seen order."""
        bundle_index = {str(x): i for i, x in enumerate(self.catalog.column("item_id").to_pylist())}
        new_ids = [k for k in self.records if k not in bundle_index]
        columns = {}
        for f in CATALOG_SCHEMA:
            values = self.catalog.column(f.name).to_pylist()
            for k, rec in self.records.items():
                if f.name in rec and k in bundle_index:
                    values[bundle_index[k]] = rec[f.name]
            columns[f.name] = values + [k if f.name == "item_id" else self.records[k].get(f.name) for k in new_ids]
        table = conform_catalog(columns, source="live catalogue")
        new_item_vectors = self._new_item_vectors
        if new_item_vectors is None and new_ids:
            new_item_vectors = NewItemVectors(self.model, self.catalog, self.vectors)
            self._new_item_vectors = new_item_vectors
        todo = []
        for k in new_ids:  # vectors depend on the attributes only: recomputed when they change
            key = json.dumps(
                {n: v for n, v in self.records[k].items() if n not in _NOT_ATTRIBUTES}, sort_keys=True, default=str
            )
            if self._new_vectors.get(k, ("",))[0] != key:
                todo.append((k, key))
        if todo:
            assert new_item_vectors is not None  # todo is empty without new ids
            vecs, sources = new_item_vectors.vectors([{**self.records[k], "item_id": k} for k, _ in todo])
            for (k, key), v, src in zip(todo, vecs, sources):
                self._new_vectors[k] = (key, v, src)
        n_new = len(new_ids)
        vectors = np.concatenate(
            [
                self.vectors,
                np.asarray([self._new_vectors[k][1] for k in new_ids], np.float32).reshape(
                    n_new, self.vectors.shape[1]
                ),
            ]
        )
        is_new = np.zeros(self.n_bundle + 1 + n_new, bool)
        is_new[self.n_bundle + 1 :] = True
        servable = np.ones(len(is_new), bool)
        servable[self.n_bundle + 1 :] = [self._new_vectors[k][2] != "none" for k in new_ids]
        return LiveCatalogue(
            table,
            vectors,
            _extend_stats(self.stats, n_new),
            is_new,
            servable,
            {k: self._new_vectors[k][2] for k in new_ids},
        )

    def vector_source(self, item_id: str) -> str | None:
        """Where a live item's vector came from (:data:`VECTOR_SOURCES`); None for bundle items."""
        entry = self._new_vectors.get(str(item_id))
        return entry[2] if entry else None


def _extend_stats(stats: RuleStats, n_new: int) -> RuleStats:
    """Rule statistics with ``n_new`` items appended that nobody has bought or seen yet."""
    if not n_new:
        return stats
    return dataclasses.replace(
        stats,
        popularity=np.concatenate([stats.popularity, np.zeros(n_new, stats.popularity.dtype)]),
        trending=np.concatenate([stats.trending, np.zeros(n_new, stats.trending.dtype)]),
        comp_offsets=np.concatenate(
            [stats.comp_offsets, np.full(n_new, stats.comp_offsets[-1], stats.comp_offsets.dtype)]
        ),
    )
