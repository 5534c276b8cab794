"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence, scores by dot
product with the tied item table (id + optional attribute embeddings). Trained by next-item
prediction at every position; with ``causal=False`` every position reads the whole window and
the model trains on the newest position of one window per target (``loss.targets=newest``), as
BSARec and FMLP-Rec do."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from journeyrec.models.attributes import ItemEmbedding
from journeyrec.models.base import SequenceModel
from journeyrec.models.encoder import SequenceEncoder

__all__ = ["SASRec"]


class SASRec(SequenceModel):
    """Transformer recommender, causal unless ``causal=False``; ``hparams`` is everything needed
    to rebuild it."""

    name = "sasrec"

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_blocks: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        features: Mapping[str, int] | None = None,
        attributes: Mapping[str, Sequence[int]] | None = None,
        id_dropout: float = 0.0,
        intent_head: bool = False,
        ffn_mult: int = 4,
        activation: str = "gelu",
        repeat_bias: bool = False,
        positions: str = "from_end",
        mixer: str = "attention",
        filter_alpha: float = 0.7,
        filter_cutoff: int = 3,
        causal: bool = True,
    ) -> None:
        super().__init__(self._hparams(locals()))
        self.causal = causal
        self.encoder = SequenceEncoder(
            n_items,
            d_model,
            n_blocks,
            n_heads,
            max_len,
            dropout,
            causal=causal,
            features=features,
            attributes=attributes,
            id_dropout=id_dropout,
            ffn_mult=ffn_mult,
            activation=activation,
            positions=positions,
            mixer=mixer,
            filter_alpha=filter_alpha,
            filter_cutoff=filter_cutoff,
        )

    @property
    def item_embedding(self) -> ItemEmbedding:
        return self.encoder.items

    def forward(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encoder(items, features, table)

    def last_hidden(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encoder(items, features, table, last_only=True)

    def session_vectors_unpadded(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`session_vectors` of sequences without padding, cheaper (see
        :meth:`SequenceEncoder.last_hidden_unpadded`); serving's one-session fast path."""
        return self.encoder.last_hidden_unpadded(items, features, table)
