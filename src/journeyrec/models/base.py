"""What every journeyrec sequence model shares: the protocol, rebuilding from ``hparams``,
item attribute tables, and the optional purchase-intent head.

Protocol (all that training, evaluation, FAISS export and serving rely on):

* ``forward(items, features, table=None) -> [B, L, D]`` hidden state per position (``table``:
  a precomputed ``item_table()``, so a training step builds the item rows once);
* ``session_vectors(items, features) -> [B, D]`` the query vector of each sequence;
* ``item_vectors() -> [N + 1, D]`` one vector per item id (row 0 = padding), so that
  ``score = session_vector @ item_vectors.T`` and a FAISS inner-product index reproduce the model;
* ``feature_names``, ``max_len``, ``hparams`` (JSON-able; ``from_hparams(hparams)`` + the
  safetensors state dict rebuild the model exactly: attribute code tables and the ``known``
  mask are buffers, so they travel with the weights);
* ``from_config(cfg, n_items, feature_sizes, catalog, intent_head)`` builds it for training from
  its typed :class:`~journeyrec.models.config.ModelConfig`;
* optionally ``purchase_intent(items, features, table=None) -> [B]`` probabilities (present only when the
  model was built with an intent head);
* optionally ``scores(items, features) -> [B, N + 1]`` (present only when the model was built with a
  learned repeat bias, ``repeat_bias``): the dot products plus the bias on the items of the
  window, which a pure inner-product index cannot express (evaluation adds the bias inside its
  tiled ranking instead, see :func:`journeyrec.evaluation.ranking.rank_batch`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from journeyrec.models.attributes import ItemEmbedding, attribute_codes
from journeyrec.models.config import ModelConfig
from journeyrec.models.losses import window_mask

__all__ = ["SequenceModel", "config_features", "config_attributes"]


def config_features(names: Sequence[str], feature_sizes: Mapping[str, int]) -> dict[str, int]:
    """``{feature: vocabulary size}`` of the per-position features a model reads."""
    unknown = sorted(set(names) - set(feature_sizes))
    if unknown:
        raise ValueError(f"unknown sequence feature(s) {unknown}; available: {sorted(feature_sizes)}")
    return {name: int(feature_sizes[name]) for name in names}


def config_attributes(fields: Sequence[str], catalog: pa.Table | None, extra_rows: int = 0) -> dict[str, np.ndarray]:
    """Code tables of the item attributes a model reads (empty if none)."""
    if not fields:
        return {}
    if catalog is None:
        raise ValueError(f"model.attributes={list(fields)} needs the catalogue; pass catalog= to build_model")
    codes = attribute_codes(catalog, list(fields), extra_rows)
    empty = [f for f, t in codes.items() if not t.any()]
    if len(empty) == len(codes):
        raise ValueError(
            f"model.attributes={list(fields)}: the catalogue has no values for any of them; remove model.attributes"
        )
    return codes


class SequenceModel(nn.Module):
    """Base class: stores ``hparams``, owns the optional intent head, and implements the
    pieces of the protocol that do not depend on the architecture."""

    name = "base"
    causal = True  # position t reads positions <= t only (False: bidirectional, e.g. BERT4Rec)

    def __init__(self, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        self.hparams = {"name": self.name, **dict(hparams)}
        self.max_len = int(hparams["max_len"])
        self.feature_names = tuple((hparams.get("features") or {}).keys())
        if hparams.get("intent_head"):
            d = int(hparams["d_model"])
            self.intent_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
            self.purchase_intent = self._purchase_intent  # the optional protocol method
        if hparams.get("repeat_bias"):
            # one learned logit offset for the items already in the sequence: data where items
            # come back (consumables) make it positive, data where they never do strongly negative
            self.repeat_bias = nn.Parameter(torch.zeros(()))
            self.scores = self._repeat_scores  # the optional protocol method

    # --- building ----------------------------------------------------------------------------
    #: the [MASK]-like rows a model appends to its item table (attribute tables must cover them)
    extra_rows = 0
    #: logits = session . item / temperature when the loss leaves the temperature unset
    default_temperature = 1.0

    @classmethod
    def from_config(
        cls,
        cfg: ModelConfig,
        n_items: int,
        feature_sizes: Mapping[str, int],
        catalog: pa.Table | None = None,
        intent_head: bool = False,
    ) -> SequenceModel:
        """Build the model a typed config describes; its architecture fields are the constructor's
        keyword arguments (the config schemas mirror the constructors)."""
        codes = config_attributes(cfg.attributes, catalog, cls.extra_rows)
        arch = {
            f.name: getattr(cfg, f.name)
            for f in dataclasses.fields(cfg)
            if f.name not in ("name", "features", "attributes")
        }
        if intent_head:
            arch["intent_head"] = True
        build: Callable[..., SequenceModel] = cls  # a subclass: its constructor takes the architecture as keywords
        model = build(
            n_items=n_items,
            features=config_features(cfg.features, feature_sizes),
            attributes=ItemEmbedding.spec(codes),
            **arch,
        )
        if codes:
            model.item_embedding.set_codes(codes)
        return model

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> SequenceModel:
        return cls(**{k: v for k, v in hparams.items() if k != "name"})

    # --- protocol ----------------------------------------------------------------------------
    @property
    def item_embedding(self) -> ItemEmbedding:
        raise NotImplementedError

    def set_known_items(self, known: np.ndarray) -> None:
        """Items without training interactions (0) are represented by their attributes alone."""
        n = len(known)
        full = torch.ones_like(self.item_embedding.known)
        full[:n] = torch.as_tensor(known, dtype=full.dtype)
        self.item_embedding.set_known(full)

    def item_table(self) -> torch.Tensor:
        """All item rows (id + attributes, special tokens included). Training computes it once
        per step and hands it to both ``forward(..., table=)`` and ``item_vectors(table)``."""
        return self.item_embedding()

    def item_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``item_table()[ids]`` without building the table (each id once, sorted, 0 first when
        present). A training step with a sampled loss passes the rows it needs and the step's
        item ids renumbered as positions in ``ids`` wherever this protocol takes item ids or a
        table: the models read item ids only through the table (and ``!= 0`` for padding)."""
        return self.item_embedding.rows(ids)

    def session_vectors(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden state after the newest event. ``table``: a precomputed :meth:`item_table`
        (serving computes it once at load instead of on every request)."""
        return self.last_hidden(items, features, table)

    def last_hidden(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``forward(...)[:, -1]``; encoder models override it to skip the other positions'
        work in the last block (same result, a fraction of the cost)."""
        return self.forward(items, features, table)[:, -1, :]

    def item_vectors(self, table: torch.Tensor | None = None) -> torch.Tensor:
        table = self.item_table() if table is None else table
        return table[: int(self.hparams["n_items"]) + 1]

    def vectors_from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Item vectors of item-table rows built outside the table (e.g. the attribute part of an
        item added after training): what :meth:`item_vectors` does to the table's rows."""
        return rows

    def intent_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Purchase-intent logit of each hidden state [..., D] -> [...]."""
        return self.intent_head(hidden).squeeze(-1)

    def _purchase_intent(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B] probability that the session of the last event ends in a purchase (after it).
        ``table``: a precomputed :meth:`item_table`, as for :meth:`session_vectors`."""
        return torch.sigmoid(self.intent_logits(self.last_hidden(items, features, table)))

    def _repeat_scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """[B, N + 1] ``session . item`` plus ``repeat_bias`` on each item of the window (once per
        item however often it occurs), the logits the training softmax saw."""
        scores = self.session_vectors(items, features) @ self.item_vectors().T
        return scores + window_mask(items, scores.shape[1]) * self.repeat_bias

    @staticmethod
    def _hparams(arguments: Mapping[str, Any]) -> dict[str, Any]:
        """A subclass constructor's own arguments (its ``locals()``, taken before it assigns
        anything else) as JSON-able hparams: exactly what ``from_hparams`` passes back."""
        out = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        out["features"] = dict(out.get("features") or {})
        out["attributes"] = {k: [int(v[0]), int(v[1])] for k, v in (out.get("attributes") or {}).items()}
        return out
