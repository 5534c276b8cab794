"""LightningModule: next-item training with a configurable loss, full-ranking validation.

Validation calls :func:`journeyrec.evaluation.ranking.rank_batch` and
:func:`journeyrec.evaluation.metrics.summarise`, the same functions offline evaluation uses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from journeyrec.evaluation.metrics import DEFAULT_KS, summarise
from journeyrec.evaluation.ranking import model_inputs, rank_batch
from journeyrec.models.losses import compute_loss

__all__ = ["RecModule"]


class RecModule(pl.LightningModule):
    """Wraps any journeyrec sequence model (see ``journeyrec.models``) for Lightning."""

    def __init__(
        self,
        model: nn.Module,
        loss: str = "softmax",
        n_negatives: int = 1,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ks: Sequence[int] = DEFAULT_KS,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_name = loss
        self.n_negatives = n_negatives
        self.lr = lr
        self.weight_decay = weight_decay
        self.ks = tuple(ks)
        self._eval: dict[str, list[dict[str, torch.Tensor]]] = {}
        self.last_ranks: dict[str, dict[str, np.ndarray]] = {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        items, feats = model_inputs(batch, self.model.feature_names)
        hidden = self.model(items, feats)
        targets = batch["targets"]
        mask = (targets != 0) & (items != 0)
        loss = compute_loss(self.loss_name, hidden[mask], self.model.item_vectors(), targets[mask], self.n_negatives)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=int(mask.sum()))
        return loss

    # --- evaluation: collect ranks per case, summarise at epoch end --------------------------
    def _eval_step(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        ranks = rank_batch(self.model, batch)
        ranks["case_index"] = batch["case_index"]
        self._eval.setdefault(split, []).append({k: v.detach() for k, v in ranks.items()})

    def _eval_end(self, split: str) -> None:
        parts = self._eval.pop(split, [])
        if not parts:
            return
        cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        if self.trainer is not None and self.trainer.world_size > 1:
            cat = {k: self.all_gather(v).reshape(-1) for k, v in cat.items()}
        # distributed samplers may repeat cases to even out ranks: keep each case once, in order
        idx = cat["case_index"].cpu().numpy()
        _, first = np.unique(idx, return_index=True)
        ranks = {p: cat[p].cpu().numpy()[first] for p in ("all", "seen_excluded")}
        self.last_ranks[split] = ranks
        metrics = summarise(ranks, self.ks, split)
        self.log_dict(metrics, prog_bar=False, sync_dist=False, rank_zero_only=False)
        key = f"{split}_seen_excluded/ndcg@10"
        if key in metrics:
            self.log(f"{split}_ndcg10", metrics[key], prog_bar=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("valid", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("valid")

    def configure_optimizers(self) -> Any:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.dim() < 2 or "emb" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.lr, betas=(0.9, 0.98))
