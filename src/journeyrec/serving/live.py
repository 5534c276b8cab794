"""The live catalogue over an immutable bundle: vectors for items the bundle does not have.

A new item is represented the way the model represents an item it has no trained id embedding
for (``known = 0``): the attribute part of its item-table row (:mod:`journeyrec.models.attributes`:
the mean embedding of its codes per attribute field) through the model's item tower
(``vectors_from_rows``: identity for the sequence models, the MLP of the two-tower model). Codes
come from the bundle catalogue's own vocabularies, which are checked at load to reproduce the
model's code tables exactly; values the catalogue never had contribute nothing. No retraining.

A model that reads no attributes has no attribute part: a new item then gets the mean vector of
the bundle's items in its category (its deepest category prefix that has items), and an item
whose category is unknown too gets no vector and is not served until a re-export.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch

from journeyrec.data.schema import CATALOG_SCHEMA, conform_catalog
from journeyrec.models.attributes import AttributeVocabulary
from journeyrec.models.base import SequenceModel
from journeyrec.models.protocol import EmbeddingModel

__all__ = ["NewItemVectors", "VECTOR_SOURCES"]

log = logging.getLogger(__name__)

VECTOR_SOURCES = ("attributes", "category", "none")


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
