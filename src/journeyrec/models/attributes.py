"""Item attributes as integer code tables, and the item embedding that reads them.

An item's vector is its id embedding plus, for each configured attribute field, the mean of the
embeddings of the item's codes in that field. Because the attribute part is shared between items,
an item never seen in training still gets a meaningful vector (cold start), and rare items borrow
strength from frequent items with the same brand or category.

Fields (from the canonical catalogue, ``journeyrec.data.schema.CATALOG_SCHEMA``):

* ``category``: every prefix of the ``Dept/Sub/Leaf`` path (3 codes), so leaves share their
  department's embedding;
* ``brand``, ``size``, ``colour``, ``repurchase_class``: one code each;
* ``price``: the price decile within the catalogue (one code);
* ``tags``: the list of tags (S3-Rec files: the attribute ids of ``<name>_item2attributes.json``).

The code tables are model *buffers* (saved in the state dict with the weights), so a served
model reproduces the trained one from ``hparams`` + weights alone; ``hparams`` holds each
field's (vocabulary size, width) so the buffers can be allocated before the weights load.
"""

from __future__ import annotations

from typing import Mapping, Sequence, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ATTRIBUTE_FIELDS", "AttributeVocabulary", "attribute_codes", "ItemEmbedding"]

ATTRIBUTE_FIELDS: tuple[str, ...] = ("category", "brand", "price", "size", "colour", "repurchase_class", "tags")
PRICE_BUCKETS = 10


def _price_edges(catalog: pa.Table) -> np.ndarray:
    """Upper edges of the catalogue's price deciles (empty when no price is known)."""
    price = catalog.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(price)
    if not ok.any():
        return np.zeros(0)
    return np.unique(np.quantile(price[ok], np.linspace(0, 1, PRICE_BUCKETS + 1)[1:-1]))


def _lists(catalog: pa.Table, field: str, price_edges: np.ndarray | None = None) -> list[list[str]]:
    """Per catalogue row, the list of string values of ``field`` (empty when null); prices are
    bucketed by ``price_edges`` (default: this catalogue's own deciles)."""
    col = catalog.column(field)
    if field == "tags":
        return [list(v) if v else [] for v in col.to_pylist()]
    if field == "category":
        out = []
        for v in col.to_pylist():
            parts = v.split("/") if v else []
            out.append(["/".join(parts[: i + 1]) for i in range(len(parts))])
        return out
    if field == "price":
        price = col.to_numpy(zero_copy_only=False).astype(np.float64)
        ok = np.isfinite(price)
        if not ok.any():
            return [[] for _ in range(len(price))]
        edges = _price_edges(catalog) if price_edges is None else price_edges
        bucket = np.searchsorted(edges, np.where(ok, price, 0.0), side="right")
        return [[f"p{b}"] if good else [] for b, good in zip(bucket, ok)]
    return [[str(v)] if v is not None else [] for v in pc.cast(col, pa.string()).to_pylist()]


class AttributeVocabulary:
    """The value -> code maps of the attribute fields of one catalogue (codes 1-based in sorted
    value order, price buckets by its deciles): what a model built from that catalogue was
    trained with, so that rows of another table (items added later) get the same codes. A value
    the catalogue never had gets no code (that field then contributes nothing)."""

    def __init__(self, catalog: pa.Table, fields: Sequence[str]) -> None:
        unknown = sorted(set(fields) - set(ATTRIBUTE_FIELDS))
        if unknown:
            raise ValueError(f"unknown item attribute(s) {unknown}; available: {list(ATTRIBUTE_FIELDS)}")
        self.fields = tuple(fields)
        self.price_edges = _price_edges(catalog) if "price" in self.fields else np.zeros(0)
        self.values: dict[str, dict[str, int]] = {}
        self.widths: dict[str, int] = {}
        for field in self.fields:
            rows = _lists(catalog, field, self.price_edges)
            self.values[field] = {v: i + 1 for i, v in enumerate(sorted({x for row in rows for x in row}))}
            self.widths[field] = max((len(row) for row in rows), default=0)

    def codes(
        self, table: pa.Table, first_row: int = 0, extra_rows: int = 0, width: Mapping[str, int] | None = None
    ) -> dict[str, np.ndarray]:
        """``{field: int64 [first_row + rows + extra_rows, width]}``: the rows of ``table`` from
        ``first_row`` on (rows before: no codes, e.g. padding), ``width`` per field by default the
        widest row of the vocabulary's catalogue or of ``table``."""
        n = table.num_rows
        out: dict[str, np.ndarray] = {}
        for field in self.fields:
            vocab = self.values[field]
            rows = [[vocab[x] for x in row if x in vocab] for row in _lists(table, field, self.price_edges)]
            w = (width or {}).get(field) or max(self.widths[field], max((len(r) for r in rows), default=0))
            codes = np.zeros((first_row + n + extra_rows, max(w, 1)), dtype=np.int64)
            lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
            flat = np.fromiter((c for r in rows for c in r), dtype=np.int64, count=int(lens.sum()))
            at = np.repeat(np.arange(first_row, first_row + n), lens)
            cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
            codes[at, cols] = flat
            out[field] = codes
        return out


def attribute_codes(catalog: pa.Table, fields: Sequence[str], extra_rows: int = 0) -> dict[str, np.ndarray]:
    """Code tables ``{field: int64 [n_items + 1 + extra_rows, width]}`` for a catalogue aligned with
    internal item ids (row ``i - 1`` = item ``i``). Codes are 1-based per field, 0 = none; row 0
    (padding) and the ``extra_rows`` special tokens at the end (e.g. [MASK]) have no codes.
    Codes are numbered in sorted value order, so equal catalogues give equal tables."""
    return AttributeVocabulary(catalog, fields).codes(catalog, first_row=1, extra_rows=extra_rows)


class ItemEmbedding(nn.Module):
    """One vector per item row: ``known[i] * id_emb[i] + sum_f mean(attr_emb_f[codes_f[i]])``.

    Args:
        n_rows: rows of the table (n_items + 1 padding + special tokens).
        attributes: ``{field: (vocabulary size, width)}``; the code buffers start as zeros and are
            filled by :meth:`set_codes` (training) or by ``load_state_dict`` (serving).
        id_dropout: training-time probability of hiding an item's id embedding, so the attribute
            part alone is trained to be a usable vector (what cold items get).

    ``known`` is a persistent 0/1 buffer: 0 marks items without training interactions, whose
    id embeddings are untrained noise; they are represented by their attributes alone.
    """

    known: torch.Tensor  # buffer

    def __init__(
        self, n_rows: int, d_model: int, attributes: Mapping[str, Sequence[int]] | None = None, id_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.id_emb = nn.Embedding(n_rows, d_model, padding_idx=0)
        self.id_dropout = id_dropout
        # rows(): the id embedding's gradient as a sparse tensor of the looked-up rows (needs an
        # optimiser that takes sparse gradients, e.g. SparseAdam); not a hyperparameter of the model
        self.sparse_grad = False
        self.attributes = {name: (int(v), int(w)) for name, (v, w) in (attributes or {}).items()}
        self.attr_emb = nn.ModuleDict(
            {name: nn.Embedding(vocab + 1, d_model, padding_idx=0) for name, (vocab, _) in self.attributes.items()}
        )
        for name, (_, width) in self.attributes.items():
            self.register_buffer(f"codes_{name}", torch.zeros(n_rows, width, dtype=torch.long))
        self.register_buffer("known", torch.ones(n_rows))
        self._mean_matrices: dict[str, torch.Tensor] = {}  # derived from the codes; rebuilt when they change

    @staticmethod
    def spec(codes: Mapping[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        """``{field: (vocabulary size, width)}`` of code tables, the form ``hparams`` stores."""
        return {name: (int(t.max()), int(t.shape[1])) for name, t in codes.items()}

    def set_codes(self, codes: Mapping[str, np.ndarray]) -> None:
        for name, table in codes.items():
            getattr(self, f"codes_{name}").copy_(torch.as_tensor(table))
        self._mean_matrices.clear()

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._mean_matrices.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, recurse: bool = True):
        self._mean_matrices.clear()  # device / dtype moves
        return super()._apply(fn, recurse)

    def mean_matrix(self, name: str) -> torch.Tensor:
        """Sparse [n_rows, vocab + 1] matrix with 1 / (number of codes) at each (row, code):
        ``mean_matrix @ attr_emb.weight`` is the per-row mean embedding of the field. One sparse
        matmul (forward and backward) is several times cheaper on CPU than ``embedding_bag``,
        whose backward sorts all indices."""
        m = self._mean_matrices.get(name)
        if m is None:
            codes = getattr(self, f"codes_{name}")
            real = codes > 0
            rows = torch.arange(codes.shape[0], device=codes.device)[:, None].expand_as(codes)[real]
            weight = (1.0 / real.sum(dim=1).clamp_min(1).float())[:, None].expand_as(codes)[real]
            vocab = self.attributes[name][0] + 1
            m = torch.sparse_coo_tensor(
                torch.stack([rows, codes[real]]),
                weight.to(self.id_emb.weight.dtype),
                (codes.shape[0], vocab),
                check_invariants=False,
            ).coalesce()
            self._mean_matrices[name] = m
        return m

    def set_known(self, known: np.ndarray | torch.Tensor) -> None:
        """Mark which rows have a trained id embedding (1) and which rely on attributes only (0)."""
        self.known.copy_(torch.as_tensor(known, dtype=self.known.dtype))

    def attribute_part(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """[n_rows, D] (or [len(ids), D] for the rows ``ids``): the sum over fields of the mean
        attribute embedding (zeros if none). All rows: one sparse matmul per field; a subset:
        the rows' codes gathered and averaged, so nothing catalogue-sized is built."""
        if ids is None:
            # float32 even under bf16 autocast: autocast would cast the dense weight but not the
            # sparse matrix, and the sparse product's backward then fails on the mixed dtypes
            with torch.autocast(device_type=self.id_emb.weight.device.type, enabled=False):
                parts = [torch.sparse.mm(self.mean_matrix(name), emb.weight) for name, emb in self.attr_emb.items()]
            if not parts:
                return self.id_emb.weight.new_zeros(self.id_emb.weight.shape)
            return torch.stack(parts).sum(0) if len(parts) > 1 else parts[0]
        return self.attribute_rows({name: getattr(self, f"codes_{name}")[ids] for name in self.attr_emb}, len(ids))

    def attribute_rows(self, codes: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
        """[n, D] attribute part of ``n`` rows given their codes per field (``[n, width]``, 0 =
        none; any width): what an item with these attributes gets, whether or not it is in the
        table (a live catalogue's new item)."""
        parts = []
        for name, emb in self.attr_emb.items():
            c = codes[name]  # [U, width], 0 = none
            real = (c > 0).to(cast(nn.Embedding, emb).weight.dtype)
            share = real / real.sum(dim=1, keepdim=True).clamp_min(1.0)  # 1 / number of codes, as mean_matrix
            parts.append(torch.einsum("uw,uwd->ud", share, emb(c)))
        if not parts:
            return self.id_emb.weight.new_zeros(n, self.id_emb.weight.shape[1])
        return torch.stack(parts).sum(0) if len(parts) > 1 else parts[0]

    def forward(self) -> torch.Tensor:
        """The whole table [n_rows, D] (compute once per step, then index it)."""
        return self._rows(None)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward()[ids]`` without building the table: a step that needs a few rows (sampled
        losses) costs memory and time in the number of rows, not in the catalogue. With
        ``sparse_grad`` the id embedding's gradient is sparse (the rows only). Pass each id
        once (e.g. ``torch.unique``): id dropout draws one mask per listed row."""
        return self._rows(ids)

    def _rows(self, ids: torch.Tensor | None) -> torch.Tensor:
        keep = self.known if ids is None else self.known[ids]
        if self.training and self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        if ids is None:
            table = self.id_emb.weight * keep[:, None]
        else:
            table = F.embedding(ids, self.id_emb.weight, padding_idx=0, sparse=self.sparse_grad) * keep[:, None]
        if self.attr_emb:
            table = table + self.attribute_part(ids)
        return table
