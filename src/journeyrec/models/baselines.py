"""Non-neural baselines: global popularity, recent-window popularity, item-to-item co-occurrence.

Every report puts a model next to these, so its lift over "recommend what is popular" is always
visible. They follow the journeyrec model protocol that evaluation relies on (``max_len``,
``feature_names``, ``hparams``) but score with ``scores(items, features) -> [B, N + 1]``, which
:func:`journeyrec.evaluation.ranking.score_batch` prefers over a dot product; hence they are
ranked by exactly the same code, on the same cases, as any neural model.

Fitting uses only the **training prefixes** of a split (``items[offsets[u]:train_ends[u]]``), never
a validation or test target.

Ties. The metric tie policy is optimistic (only strictly higher scores push a target down), which
would flatter a scorer that gives most items the same value (zero co-occurrence, equal counts).
Baselines therefore return **distinct** float64 scores: popularity count first, then a seeded
random order of the items; co-occurrence first, then that popularity order. float64 keeps these
lexicographic keys exact (the metric code does not round float64 scores to float32).

Use::

    from journeyrec.models.baselines import BASELINES, fit_baseline
    pop = fit_baseline("popularity", prepared)           # or Popularity.fit(seqs, train_ends)
    evaluate(pop, prepared.sequences, prepared.split.test, "test")
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from journeyrec.data.sequences import SequenceData, training_positions
from journeyrec.models.transitions import Transitions

__all__ = [
    "BASELINES",
    "Baseline",
    "Popularity",
    "RecentPopularity",
    "CoOccurrence",
    "fit_baseline",
    "training_counts",
    "training_positions",
]

DAY_MS = 86_400_000


def training_counts(data: SequenceData, train_ends: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """Interaction count of each item id 0..N (index 0 = padding, always 0) over training events."""
    pos = training_positions(data, train_ends) if positions is None else positions
    return np.bincount(data.items[pos].astype(np.int64), minlength=data.n_items + 1).astype(np.int64)


def _popularity_scores(counts: np.ndarray, seed: int) -> np.ndarray:
    """Distinct scores 1..N ordered by count, count ties broken by a seeded random item order."""
    n = len(counts) - 1
    tiebreak = np.random.default_rng(seed).permutation(n)
    order = np.lexsort((tiebreak, counts[1:]))  # ascending: least popular first
    scores = np.zeros(n + 1, dtype=np.float64)
    scores[order + 1] = np.arange(1, n + 1, dtype=np.float64)
    return scores


class Baseline(nn.Module):
    """Common protocol: no parameters, no features, scores from fitted tables.

    Subclasses implement ``fit(data, train_ends, **params)`` (a classmethod) and ``scores``.
    """

    name: ClassVar[str] = "baseline"
    feature_names: tuple[str, ...] = ()

    def __init__(self, n_items: int, max_len: int = 1, **hparams: Any) -> None:
        super().__init__()
        self.n_items = int(n_items)
        self.max_len = int(max_len)
        self.hparams = dict(name=self.name, n_items=self.n_items, **hparams)

    @classmethod
    def fit(cls, data: SequenceData, train_ends: np.ndarray, *args: Any, **params: Any) -> Baseline:
        """Each subclass takes its own parameters (``BASELINES`` dispatches by name)."""
        raise NotImplementedError

    def scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.scores(items, features)


class _CountScores(Baseline):
    """The same list for everybody: items by an interaction count (most counted first); what
    :class:`Popularity` and :class:`RecentPopularity` share, each fitting its own counts."""

    order: torch.Tensor

    def __init__(self, counts: np.ndarray, seed: int = 0, **hparams: Any) -> None:
        super().__init__(len(counts) - 1, max_len=1, seed=seed, **hparams)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.register_buffer("order", torch.from_numpy(_popularity_scores(self.counts, seed)), persistent=False)

    def scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.order.to(items.device).expand(items.shape[0], -1)


class Popularity(_CountScores):
    """The same list for everybody: items by training interaction count (most popular first)."""

    name = "popularity"

    @classmethod
    def fit(cls, data: SequenceData, train_ends: np.ndarray, seed: int = 0, **params: Any) -> Popularity:
        if params:
            raise ValueError(f"popularity takes no parameters besides seed; got {sorted(params)}")
        counts = training_counts(data, train_ends)
        return cls(counts, seed=seed, train_events=int(counts.sum()))


class RecentPopularity(_CountScores):
    """Popularity over a recent window only: what is trending rather than what was ever bought.

    The window is either ``window_days`` of wall-clock time before the latest training event, or
    each user's ``last_per_user`` most recent training events (for sources without real time,
    such as S3-Rec files whose timestamps are positions; there a window in days would cover
    everything). ``hparams["window_share"]`` records the share of training events inside the
    window, so a window that covers everything (= global popularity) is visible in reports.
    """

    name = "recent_popularity"

    @classmethod
    def fit(
        cls,
        data: SequenceData,
        train_ends: np.ndarray,
        window_days: float | None = 7.0,
        last_per_user: int | None = None,
        seed: int = 0,
    ) -> RecentPopularity:
        pos = training_positions(data, train_ends)
        if len(pos) == 0:
            raise ValueError("no training events: nothing to count")
        if last_per_user:
            if int(last_per_user) < 1:
                raise ValueError(f"last_per_user must be >= 1, got {last_per_user}")
            ends = np.asarray(train_ends, dtype=np.int64)
            user = np.repeat(np.arange(data.n_users), np.maximum(ends - data.offsets[:-1], 0))
            keep = pos >= ends[user] - int(last_per_user)
            window: dict[str, float] = {"last_per_user": int(last_per_user)}
        elif window_days is not None and float(window_days) > 0:
            ts = data.timestamps[pos]
            keep = ts >= ts.max() - float(window_days) * DAY_MS
            window = {"window_days": float(window_days)}
        else:
            raise ValueError("recent_popularity needs window_days > 0 or last_per_user >= 1")
        counts = training_counts(data, train_ends, pos[keep])
        return cls(counts, seed=seed, train_events=int(keep.sum()), window_share=float(keep.mean()), **window)


class CoOccurrence(Baseline):
    """Item-to-item co-occurrence: "people who had X next had Y".

    The counts of :class:`~journeyrec.models.transitions.Transitions` alone: every ordered pair
    (i, j) of the training prefixes where j follows i within ``window`` positions of the same
    user; a session is scored by the rows of its last ``history`` items, weighted ``history, ..., 1``
    from the most recent back; items with equal co-occurrence (typically zero) are ordered by
    popularity.
    """

    name = "cooccurrence"

    def __init__(self, transitions: Transitions, popularity: np.ndarray, seed: int = 0, **hparams: Any) -> None:
        t = transitions
        super().__init__(t.n_items, max_len=t.history, window=t.window, history=t.history, seed=seed, **hparams)
        self.transitions = t
        self.popularity = popularity  # distinct scores 1..N, float64 [N + 1]

    @classmethod
    def fit(
        cls, data: SequenceData, train_ends: np.ndarray, window: int = 3, history: int = 3, seed: int = 0
    ) -> CoOccurrence:
        t = Transitions.fit(data, train_ends, window=window, history=history)
        pos = training_positions(data, train_ends)
        pop = _popularity_scores(training_counts(data, train_ends, pos), seed)
        return cls(t, pop, seed, pairs=t.pairs, train_events=int(len(pos)))

    def cooccurrence_scores(self, items: np.ndarray) -> np.ndarray:
        """Weighted co-occurrence counts [B, N + 1] of the last ``history`` items of each row."""
        return self.transitions.counts(items)

    def scores(self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        co = self.cooccurrence_scores(items.cpu().numpy())
        # exact lexicographic key: integer co-occurrence first, then the popularity order (< N + 1)
        return torch.from_numpy(co * (self.n_items + 1) + self.popularity[None, :]).to(items.device)


# name -> class; each has ``fit(data, train_ends, **params)``
BASELINES: dict[str, type[Baseline]] = {
    "popularity": Popularity,
    "recent_popularity": RecentPopularity,
    "cooccurrence": CoOccurrence,
}


def fit_baseline(name: str, prepared: Any, **params: Any) -> Baseline:
    """Fit the baseline ``name`` on the training prefixes of a PreparedData (``sequences`` + ``split``)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline '{name}'; available: {sorted(BASELINES)}")
    return BASELINES[name].fit(prepared.sequences, prepared.split.train_ends, **params)
