"""GRU4Rec (Hidasi et al., 2016) on the shared inputs: item table (id + attributes) and
per-position features -> GRU -> projection, scored against the same item table, trained like
SASRec (next item at every position, full softmax by default, as in GRU4Rec's later versions).

Sequences are left-padded but a recurrent net must start at the first real event: the batch is
rolled to right padding (one gather), run through ``nn.GRU`` from a zero state (trailing padding
cannot affect earlier outputs), and rolled back, so results do not depend on how much padding
a batch carries and no packing (or host synchronisation) is needed.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from journeyrec.models.attributes import ItemEmbedding
from journeyrec.models.base import SequenceModel
from journeyrec.models.dropout import Dropout
from journeyrec.models.encoder import FeatureEmbeddings, init_weights

__all__ = ["GRU4Rec"]


class GRU4Rec(SequenceModel):
    name = "gru4rec"

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_layers: int = 1,
        max_len: int = 50,
        dropout: float = 0.2,
        features: Mapping[str, int] | None = None,
        attributes: Mapping[str, Sequence[int]] | None = None,
        id_dropout: float = 0.0,
        intent_head: bool = False,
    ) -> None:
        super().__init__(self._hparams(locals()))
        self.d_model = d_model
        self.items = ItemEmbedding(n_items + 1, d_model, attributes, id_dropout)
        self.features = FeatureEmbeddings(features, d_model)
        self.emb_drop = Dropout(dropout)
        self.gru = nn.GRU(
            d_model, d_model, num_layers=n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.out_drop = Dropout(dropout)
        self.proj = nn.Linear(d_model, d_model)
        self.ln = nn.LayerNorm(d_model)
        self.apply(init_weights)

    @property
    def item_embedding(self) -> ItemEmbedding:
        return self.items

    def forward(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, length = items.shape
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        real = items != 0
        table = self.item_table() if table is None else table
        x = F.embedding(items, table) * math.sqrt(self.d_model)
        x = self.emb_drop(self.features(x, features or {}) * real[..., None])
        # left -> right padding: row b shifts left by its padding count
        shift = length - real.sum(dim=1, keepdim=True)
        cols = torch.arange(length, device=items.device)[None, :]
        to_right = ((cols + shift) % length)[..., None].expand(b, length, self.d_model)
        h, _ = self.gru(x.gather(1, to_right))
        back = ((cols - shift) % length)[..., None].expand(b, length, self.d_model)
        h = h.gather(1, back)
        return self.ln(self.proj(self.out_drop(h))) * real[..., None]
