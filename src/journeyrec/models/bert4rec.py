"""BERT4Rec (Sun et al., 2019): a bidirectional transformer trained by masked item prediction.

Training (:meth:`BERT4Rec.training_view`): the whole training window (inputs plus the final
next-item target) is the sequence; each real position is replaced by [MASK] with probability
``mask_prob`` (at least one per sequence: the newest, when the draw picked none) and the loss
predicts the original item there. A share ``mask_last_share`` of the sequences masks only the
newest item instead: the question inference asks (what follows the newest event, with nothing to
its right), which cloze samples alone rarely pose (Sun et al. add such samples for this reason).
The features of a masked position are hidden too (set to padding), because at inference the
[MASK] slot's event type, channel and gap are unknown.

Inference: [MASK] is appended after the newest event (the oldest event drops out if the window
is full) and its hidden state is the session vector. Bidirectional attention sees the future,
so a per-position purchase-intent head would be trained on leaked labels: BERT4Rec has none.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pyarrow as pa
import torch

from journeyrec.models.attributes import ItemEmbedding
from journeyrec.models.base import SequenceModel
from journeyrec.models.config import ModelConfig
from journeyrec.models.encoder import SequenceEncoder

__all__ = ["BERT4Rec"]


class BERT4Rec(SequenceModel):
    name = "bert4rec"
    causal = False

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_blocks: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        mask_prob: float = 0.2,
        mask_last_share: float = 0.0,
        features: Mapping[str, int] | None = None,
        attributes: Mapping[str, Sequence[int]] | None = None,
        id_dropout: float = 0.0,
    ) -> None:
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
        if not 0.0 <= mask_last_share <= 1.0:
            raise ValueError(f"mask_last_share must be in [0, 1], got {mask_last_share}")
        super().__init__(self._hparams(locals()))
        self.mask_prob, self.mask_last_share = mask_prob, mask_last_share
        self.encoder = SequenceEncoder(
            n_items,
            d_model,
            n_blocks,
            n_heads,
            max_len,
            dropout,
            causal=False,
            features=features,
            mask_token=True,
            attributes=attributes,
            id_dropout=id_dropout,
        )
        self.mask_id = n_items + 1

    extra_rows = 1  # the [MASK] row of the item table

    @classmethod
    def from_config(
        cls,
        cfg: ModelConfig,
        n_items: int,
        feature_sizes: Mapping[str, int],
        catalog: pa.Table | None = None,
        intent_head: bool = False,
    ) -> BERT4Rec:
        if intent_head:
            raise ValueError(
                "bert4rec has no purchase-intent head (bidirectional attention sees the future); "
                "set loss.intent_weight=0 or use a causal model (sasrec, gru4rec, two_tower)"
            )
        return super().from_config(cfg, n_items, feature_sizes, catalog)  # type: ignore[return-value]

    @property
    def item_embedding(self) -> ItemEmbedding:
        return self.encoder.items

    def forward(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encoder(items, features, table)

    def training_view(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Masked-item inputs and targets from a next-item training batch (see module docstring).

        The full window is the inputs shifted left by one with the last target appended, so its
        per-position features are exactly the batch's ``target_<feature>`` columns."""
        seq = torch.cat([batch["items"][:, 1:], batch["targets"][:, -1:]], dim=1)
        real = seq != 0
        masked = (torch.rand(seq.shape, device=seq.device) < self.mask_prob) & real
        masked[:, -1] |= ~masked.any(dim=1) & real[:, -1]
        if self.mask_last_share > 0:  # left-padded windows: the newest item is the last column
            last_only = torch.zeros_like(masked)
            last_only[:, -1] = real[:, -1]
            pick = torch.rand(seq.shape[0], 1, device=seq.device) < self.mask_last_share
            masked = torch.where(pick, last_only, masked)
        view = {
            "items": torch.where(masked, torch.full_like(seq, self.mask_id), seq),
            "targets": torch.where(masked, seq, torch.zeros_like(seq)),
            "target_event_type": batch["target_event_type"],
            "sequence": seq,  # the unmasked window: what the user had (for exclude_seen)
        }
        for name in self.feature_names:
            view[name] = batch[f"target_{name}"].masked_fill(masked, 0)
        return view

    def session_vectors(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden state of a [MASK] appended after the newest event."""
        full = items.shape[1] >= self.max_len
        keep = slice(1, None) if full else slice(0, None)
        pad = torch.full_like(items[:, :1], self.mask_id)
        x = torch.cat([items[:, keep], pad], dim=1)
        feats = {k: torch.cat([v[:, keep], torch.zeros_like(v[:, :1])], dim=1) for k, v in (features or {}).items()}
        return self.encoder(x, feats, table, last_only=True)
