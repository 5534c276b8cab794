"""Online statistics the pipeline reads from the journey store, so that every replica serves from
the same, current numbers (docs/reactions.md):

* **trending**: item events counted with exponential time decay (forward decay: each event adds
  ``2^((t - L) / half_life)`` for a landmark ``L``, so the ranking is a sorted set and "now" is one
  factor), continuing the bundle's own trending statistic, which is decayed further from the end
  of its data with the same half-life;
* **per-context popularity**: clicks, carts and purchases on the lists of one touchpoint, decayed
  the same way;
* **click-through** per item and per slot (position) in each context: impressions and clicks; and
  of the exploration slots alone, per item and per item group (category): what the bandit learns.

:class:`OnlineStats` is what the Recommender needs of a store (both backends implement it); the
dataclasses are what it returns; :func:`trending_now` is how the pipeline reads trending: the
bundle's statistic with the store's live counts on top. Without a store, trending is the bundle's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

import numpy as np

__all__ = [
    "OnlineStats",
    "Trending",
    "ItemCTR",
    "decay_factor",
    "landmark_factor",
    "trending_now",
    "MAX_HALF_LIVES_BACK",
]


@dataclass
class Trending:
    """The top items of the online statistics at one moment, best first: ``scores`` are decayed
    counts at the time asked for; ``raw`` the stored forward-decay values (count x 2^((t - L) / h)
    for the landmark ``landmark_ms``), which combine with other statistics without overflow."""

    items: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # decayed event counts now
    context_items: list[str] = field(default_factory=list)
    context_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # decayed reactions in the context
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    context_raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    landmark_ms: int | None = None


@dataclass
class ItemCTR:
    """Impressions and clicks of some items in one context, of their groups (categories) in it, and
    of the whole context: of every list (``item_ctr``), or of the exploration slots alone
    (``explore_ctr``, what the bandit learns from)."""

    clicks: np.ndarray  # int64 per item asked for
    impressions: np.ndarray
    context_clicks: int = 0
    context_impressions: int = 0
    group_clicks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per item asked for: its group's
    group_impressions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class OnlineStats(Protocol):
    trend_half_life_ms: int
    trending_top: int

    def trending(self, now_ms: int, n: int, context: str | None = None) -> Trending: ...

    def explore_ctr(self, context: str, item_ids: Sequence[str], groups: Sequence[str]) -> ItemCTR: ...


def decay_factor(elapsed_ms: float, half_life_ms: float) -> float:
    """``2^(-elapsed / half_life)``: what an event counts ``elapsed_ms`` after it happened."""
    return float(np.exp2(-float(elapsed_ms) / float(half_life_ms)))


# how far a read may look before the landmark (a replay's "now"): 2^512 x a stored value stays finite
MAX_HALF_LIVES_BACK = 512.0


def landmark_factor(now_ms: float, landmark_ms: float, half_life_ms: float) -> float:
    """The factor that turns stored forward-decay values into decayed counts at ``now_ms``
    (bounded for a "now" far before the landmark, so that it never overflows)."""
    return decay_factor(max(float(now_ms) - float(landmark_ms), -MAX_HALF_LIVES_BACK * half_life_ms), half_life_ms)


def trending_now(
    online: OnlineStats | None,
    now: int,
    context: str | None,
    bundle_score: np.ndarray,
    bundle_order: np.ndarray,
    data_end_ms: int,
    index_of: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Items by trending score (best first) and the score of every item: the bundle's statistic
    (``bundle_score``, its items in ``bundle_order``), decayed from the end of its data
    (``data_end_ms``), plus the store's live counts and the context's reactions, as decayed counts
    at ``now`` (at the later of the two references for a replay before it). Both parts decay with
    the store's half-life, so their ratio does not depend on ``now``: each is scaled down to the
    later reference (never up), which cannot overflow. ``index_of``: external id -> internal id."""
    if online is None:
        return bundle_order, bundle_score
    live = online.trending(now, online.trending_top, context)
    if live.landmark_ms is None:
        return bundle_order, bundle_score
    h = online.trend_half_life_ms
    ref = max(live.landmark_ms, data_end_ms)
    to_now = decay_factor(max(now - ref, 0), h)
    score = bundle_score.astype(np.float64) * (decay_factor(ref - data_end_ms, h) * to_now)
    live_scale = decay_factor(ref - live.landmark_ms, h) * to_now
    row_of = index_of.get
    boosted = []
    for ids, raw in ((live.items, live.raw), (live.context_items, live.context_raw)):
        rows = [row_of(i) for i in ids]
        keep = [j for j, r in enumerate(rows) if r is not None]
        if keep:
            at = np.asarray([rows[j] for j in keep], np.int64)
            np.add.at(score, at, np.asarray(raw, np.float64)[keep] * live_scale)
            boosted.append(at)
    if not boosted:
        return bundle_order, score  # one factor for every item: the bundle's order stands
    # the boosted items merged into the bundle's order of the others (their scores kept its order)
    up = np.unique(np.concatenate(boosted))
    is_up = np.zeros(len(score), bool)
    is_up[up] = True
    rest = bundle_order[~is_up[bundle_order]]
    up = up[np.argsort(-score[up], kind="stable")]
    at = np.searchsorted(-score[rest], -score[up], side="right")
    return np.insert(rest, at, up), score
