"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence, scores by dot
product with the tied item-embedding table. Trained by next-item prediction at every position."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from journeyrec.models.encoder import SequenceEncoder

__all__ = ["SASRec"]


class SASRec(nn.Module):
    """Causal transformer recommender; ``hparams`` is everything needed to rebuild it."""

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_blocks: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        features: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            name="sasrec", n_items=n_items, d_model=d_model, n_blocks=n_blocks, n_heads=n_heads,
            max_len=max_len, dropout=dropout, features=dict(features or {}),
        )
        self.max_len = max_len
        self.feature_names = tuple((features or {}).keys())
        self.encoder = SequenceEncoder(
            n_items, d_model, n_blocks, n_heads, max_len, dropout, causal=True, features=features
        )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], n_items: int, feature_sizes: Mapping[str, int]) -> "SASRec":
        feats = {name: feature_sizes[name] for name in cfg.get("features", []) or []}
        return cls(
            n_items=n_items, d_model=int(cfg["d_model"]), n_blocks=int(cfg["n_blocks"]), n_heads=int(cfg["n_heads"]),
            max_len=int(cfg["max_len"]), dropout=float(cfg["dropout"]), features=feats,
        )

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> "SASRec":
        h = {k: v for k, v in hparams.items() if k != "name"}
        return cls(**h)

    def forward(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.encoder(items, features)

    def session_vectors(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.forward(items, features)[:, -1, :]

    def item_vectors(self) -> torch.Tensor:
        return self.encoder.item_emb.weight[: self.encoder.n_items + 1]
