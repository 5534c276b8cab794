"""Item-to-item transition counts, and a sequence model's logits with them added.

Why: a transformer trained with heavy dropout generalises across items but under-fits the pairs
that follow one another again and again (the next part of a set, the refill of a device), which
plain counting remembers exactly. :class:`Transitions` counts, over the training prefixes, every
ordered pair (i, j) where j followed i within ``window`` positions of the same user; a session's
transition count of item j is the sum of the rows of its last ``history`` items, weighted
``history, ..., 1`` from the newest back. :class:`TransitionBlend` scores
``model logits + weight * log(1 + count)``: the model alone where nothing followed the session's
items, the counts' evidence on top where something did (``log`` so that one very frequent pair
does not drown the model). The weight is chosen on validation
(:func:`journeyrec.evaluation.transitions.choose_weight`).

Serving stays exact with a nearest-neighbour index: the bonus is never negative and is zero for
every item that followed none of the session's last items, so the best k of the blend are among
the index's best k by dot product and the items with a count (:meth:`Transitions.neighbours`).

The :class:`~journeyrec.models.baselines.CoOccurrence` baseline is these counts alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from journeyrec.data.sequences import SequenceData, training_positions
from journeyrec.models.losses import window_pairs

__all__ = ["Transitions", "TransitionBlend", "TRANSITIONS_FILE"]

TRANSITIONS_FILE = "transitions.npz"


@dataclass
class Transitions:
    """Pair counts as CSR rows: the items that followed item i are ``indices[indptr[i]:indptr[i + 1]]``
    (ascending), with their counts in ``values``. ``weight``: the blend weight (0 = counts only fitted,
    not used)."""

    n_items: int
    indptr: np.ndarray  # int64 [N + 2]
    indices: np.ndarray  # int64 [pairs]
    values: np.ndarray  # float64 [pairs]
    window: int = 3
    history: int = 3
    weight: float = 0.0

    @classmethod
    def fit(cls, data: SequenceData, train_ends: np.ndarray, window: int = 3, history: int = 3) -> Transitions:
        """Count the pairs of the training prefixes ``offsets[u]:train_ends[u]`` (vectorised)."""
        if window < 1 or history < 1:
            raise ValueError(
                f"item-to-item counts need window >= 1 and history >= 1; got window={window}, history={history}"
            )
        n = data.n_items
        pos = training_positions(data, train_ends)
        ends = np.asarray(train_ends, dtype=np.int64)
        user_end = np.repeat(ends, np.maximum(ends - data.offsets[:-1], 0))
        src, dst = [], []
        for d in range(1, window + 1):
            ok = pos + d < user_end
            src.append(data.items[pos[ok]])
            dst.append(data.items[pos[ok] + d])
        src_a = np.concatenate(src).astype(np.int64)
        dst_a = np.concatenate(dst).astype(np.int64)
        keys, counts = np.unique(src_a * (n + 1) + dst_a, return_counts=True)
        rows, cols = keys // (n + 1), keys % (n + 1)
        indptr = np.zeros(n + 2, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n + 1), out=indptr[1:])
        return cls(n, indptr, cols.astype(np.int64), counts.astype(np.float64), int(window), int(history))

    @property
    def pairs(self) -> int:
        return int(len(self.indices))

    def _rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of each pair, item j, weighted count) over the last ``history`` items of each row of
        ``items`` [B, L] (0 = padding), weighted ``history, ..., 1`` from the newest back."""
        b = items.shape[0]
        last = items[:, -self.history :]
        weights = np.arange(1, last.shape[1] + 1, dtype=np.float64)[None, :].repeat(b, axis=0)
        rows = np.arange(b)[:, None].repeat(last.shape[1], axis=1)
        real = (last > 0) & (last <= self.n_items)  # items added after the fit have no row
        x, w, r = last[real].astype(np.int64), weights[real], rows[real]
        lo, hi = self.indptr[x], self.indptr[x + 1]
        lens = hi - lo
        flat = np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        return np.repeat(r, lens), self.indices[flat], np.repeat(w, lens) * self.values[flat]

    def pairs_of(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The nonzero entries of :meth:`counts` as (row, item, ``weight * log(1 + count)``), each
        (row, item) once: the sparse form evaluation adds inside its tiles."""
        rows, cols, vals = self._rows(np.asarray(items))
        n1 = self.n_items + 1
        key, inverse = np.unique(rows * n1 + cols, return_inverse=True)
        total = np.bincount(inverse, weights=vals, minlength=len(key))
        return key // n1, key % n1, self.weight * np.log1p(total)

    def counts(self, items: np.ndarray, width: int | None = None) -> np.ndarray:
        """Weighted transition counts [B, width] (default ``N + 1`` columns; column 0 = padding, 0)."""
        width = self.n_items + 1 if width is None else int(width)
        rows, cols, vals = self._rows(np.asarray(items))
        keep = cols < width
        out = np.bincount(rows[keep] * width + cols[keep], weights=vals[keep], minlength=items.shape[0] * width)
        return out.reshape(items.shape[0], width)

    def bonus(self, items: torch.Tensor, width: int) -> torch.Tensor:
        """``weight * log(1 + counts)`` [B, width] as float32 on ``items``' device."""
        c = torch.from_numpy(self.counts(items.cpu().numpy(), width)).to(torch.float32)
        return (self.weight * torch.log1p(c)).to(items.device)

    def neighbours(self, session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The items with a count after one session (1-D internal ids, oldest first) and their
        bonus ``weight * log(1 + count)``: every item the blend can lift (serving's extra candidates)."""
        _, ids, bonus = self.pairs_of(np.asarray(session, dtype=np.int64)[None, :])
        return ids, bonus.astype(np.float32)

    def with_weight(self, weight: float) -> Transitions:
        return Transitions(self.n_items, self.indptr, self.indices, self.values, self.window, self.history, weight)

    def info(self) -> dict[str, Any]:
        """What a bundle's manifest records about the blend."""
        return {"weight": self.weight, "window": self.window, "history": self.history, "pairs": self.pairs}

    def save(self, directory: Path) -> str:
        """Write ``transitions.npz`` into ``directory``; returns the file name."""
        np.savez(
            directory / TRANSITIONS_FILE,
            indptr=self.indptr,
            indices=self.indices,
            values=self.values,
            settings=np.array([self.n_items, self.window, self.history], dtype=np.int64),
            weight=np.array([self.weight], dtype=np.float64),
        )
        return TRANSITIONS_FILE

    @classmethod
    def load(cls, directory: Path) -> Transitions:
        with np.load(directory / TRANSITIONS_FILE, allow_pickle=False) as z:
            n, window, history = (int(v) for v in z["settings"])
            return cls(n, z["indptr"], z["indices"], z["values"], window, history, float(z["weight"][0]))


class TransitionBlend(nn.Module):
    """``model``'s logits (its ``scores`` when it has them, e.g. a repeat bias, otherwise
    ``session . item``) plus ``transitions.bonus``: :meth:`scores` is the dense definition;
    evaluation ranks it tile by tile from the model's session and item vectors (what the index
    holds) plus :meth:`bonus_pairs`."""

    def __init__(self, model: Any, transitions: Transitions) -> None:
        super().__init__()
        self.model = model
        self.transitions = transitions
        if hasattr(model, "purchase_intent"):  # the optional protocol method, unchanged by the blend
            self.purchase_intent = model.purchase_intent

    @property
    def max_len(self) -> int:
        return int(self.model.max_len)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "feature_names", ()))

    @property
    def hparams(self) -> Mapping[str, Any]:
        return self.model.hparams

    def session_vectors(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.model.session_vectors(items, features)

    def item_vectors(self) -> torch.Tensor:
        return self.model.item_vectors()

    def bonus_pairs(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :meth:`scores` adds to ``session . item``, as (row, item, value) pairs: the counts'
        bonus and the model's repeat bias on each window item (once per item), so evaluation ranks
        the blend tile by tile (``rank_vectors(window=..., window_values=...)``) without building
        [B, N + 1] scores."""
        r, c, v = self.transitions.pairs_of(items.cpu().numpy())
        rows, cols, vals = torch.from_numpy(r), torch.from_numpy(c), torch.from_numpy(v).to(torch.float32)
        bias = getattr(self.model, "repeat_bias", None)
        if isinstance(bias, torch.Tensor):
            win_rows, win_items = window_pairs(items.cpu())
            rows, cols = torch.cat([rows, win_rows]), torch.cat([cols, win_items])
            vals = torch.cat([vals, torch.full(win_rows.shape, float(bias))])
        return rows.to(items.device), cols.to(items.device), vals.to(items.device)

    def scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        if hasattr(self.model, "scores"):
            base = self.model.scores(items, features)
        else:
            base = self.model.session_vectors(items, features) @ self.model.item_vectors().T
        return base + self.transitions.bonus(items, base.shape[1])
