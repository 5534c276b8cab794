"""Two-tower retrieval model with side features, built for cold start.

* Item tower: the item table (id embedding + attribute embeddings, see
  :mod:`journeyrec.models.attributes`) -> a residual MLP. An item without training interactions
  (``known = 0``) is represented by its attributes alone, and ``id_dropout`` trains exactly that
  case by hiding random items' id embeddings during training, so an item unseen in training still
  gets a useful vector.
* Query tower: the shared causal encoder over the session (its input rows are the same item
  table, so cold items in a session are read through their attributes too) + per-position
  features (event type, channel, time gap) -> a linear projection.
* Score: dot product; with ``normalize`` both towers are L2-normalised (cosine similarity) and the
  ``temperature`` of the loss scales it. ``session_vectors`` / ``item_vectors`` return the final
  vectors, so FAISS inner-product search reproduces the model exactly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from journeyrec.models.attributes import ItemEmbedding
from journeyrec.models.base import SequenceModel
from journeyrec.models.encoder import SequenceEncoder, init_weights

__all__ = ["TwoTower"]


class TwoTower(SequenceModel):
    name = "two_tower"

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_blocks: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        normalize: bool = True,
        features: Mapping[str, int] | None = None,
        attributes: Mapping[str, Sequence[int]] | None = None,
        id_dropout: float = 0.0,
        intent_head: bool = False,
    ) -> None:
        super().__init__(self._hparams(locals()))
        self.normalize = normalize
        self.encoder = SequenceEncoder(
            n_items,
            d_model,
            n_blocks,
            n_heads,
            max_len,
            dropout,
            causal=True,
            features=features,
            attributes=attributes,
            id_dropout=id_dropout,
        )
        self.query_proj = nn.Linear(d_model, d_model)
        self.item_mlp = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model)
        )
        for m in (self.query_proj, self.item_mlp):
            m.apply(init_weights)

    default_temperature = 0.05  # cosine scores lie in [-1, 1]: sharpen them for the softmax

    @property
    def item_embedding(self) -> ItemEmbedding:
        return self.encoder.items

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def forward(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Query vector at every position [B, L, D] (the next-item objective trains all of them)."""
        return self._finish(self.query_proj(self.encoder(items, features, table)))

    def last_hidden(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._finish(self.query_proj(self.encoder(items, features, table, last_only=True)))

    def item_vectors(self, table: torch.Tensor | None = None) -> torch.Tensor:
        table = (self.item_table() if table is None else table)[: int(self.hparams["n_items"]) + 1]
        vectors = self.vectors_from_rows(table)
        return vectors * (torch.arange(vectors.shape[0], device=vectors.device) > 0)[:, None].to(vectors.dtype)

    def vectors_from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        return self._finish(rows + self.item_mlp(rows))
