"""Exploration in a personal list: which items fill the slots that
:func:`journeyrec.serving.rules.exploration_slots` gives to exploration, and where they go.

Two modes (``RulesConfig.exploration``): ``bandit``, Thompson sampling on each candidate's clicks
and impressions in the context's exploration slots (:func:`bandit_picks`), and ``random``,
trending items or the least-exposed of the unshown candidates (:func:`random_picks`). Either
draws from the unshown candidates (``rest``: the pool below the list's cut) and the eligible
trending items. :func:`take_slots` puts the picks in place of the list's weakest items.

The randomness (``rng``) and the exposure counts are the Recommender's, passed in, so that a
replay can reset them (:meth:`journeyrec.serving.recommender.Recommender.reset_exploration`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from journeyrec.serving.online import OnlineStats
from journeyrec.serving.rules import thompson_top
from journeyrec.serving.settings import RulesConfig

__all__ = ["bandit_picks", "random_picks", "take_slots", "trending_pool"]


def trending_pool(n: int, eligible: np.ndarray, taken: set[int], trending_order: np.ndarray) -> list[int]:
    """Up to 20 eligible trending items not in ``taken``, best first (from the top max(100, 10 n))."""
    top = trending_order[: max(100, 10 * n)]
    return [i for i in top[eligible[top]].tolist() if i not in taken][:20]


def bandit_picks(
    n: int,
    eligible: np.ndarray,
    chosen: np.ndarray,
    rest: np.ndarray,
    trending_order: np.ndarray,
    rules: RulesConfig,
    context: str,
    online: OnlineStats | None,
    ext_ids: Sequence[str],
    groups_of: Callable[[Sequence[int]], list[str]],
    rng: np.random.Generator,
) -> list[int]:
    """n exploration items from the unshown candidates and the trending ones, by Thompson
    sampling on each one's clicks and impressions in this context's exploration slots (where
    the bandit put it, not where the model ranked it for its likeliest clickers). The prior is
    hierarchical (empirical Bayes): centred on what the item's category earned in exploration
    slots, itself shrunk towards the context's, so an item nobody has explored yet starts from
    its category (a few dozen categories learn in a few hundred lists; items take far more).
    ``ext_ids``: external id by internal id; ``groups_of``: each item's group (its category)."""
    taken = set(chosen.tolist())
    pool = list(
        dict.fromkeys(
            [
                *(i for i in rest.tolist() if i not in taken),
                *trending_pool(n, eligible, taken, trending_order),
            ]
        )
    )
    if not pool:
        return []
    s = rules.bandit_prior_strength
    if online is None:
        clicks = impressions = np.zeros(len(pool), np.int64)
        prior: float | np.ndarray = 0.5
    else:
        ctr = online.explore_ctr(context, [ext_ids[i] for i in pool], groups_of(pool))
        clicks, impressions = ctr.clicks, ctr.impressions
        in_context = (ctr.context_clicks + 1.0) / (ctr.context_impressions + 2.0)
        prior = (ctr.group_clicks + in_context * s) / (ctr.group_impressions + s)
    best = thompson_top(clicks, impressions, n, prior, s, rng)
    return [pool[j] for j in best.tolist()]


def random_picks(
    n: int,
    eligible: np.ndarray,
    chosen: np.ndarray,
    rest: np.ndarray,
    rules: RulesConfig,
    trending_order: np.ndarray,
    exposure: np.ndarray,
    rng: np.random.Generator,
) -> list[int]:
    """n exploration items: trending ones, or the least-exposed of the unshown candidates
    (``exposure``: how often each item was shown)."""
    taken = set(chosen.tolist())
    picks: list[int] = []
    trending = trending_pool(n, eligible, taken, trending_order)
    under = [i for i in rest.tolist() if i not in taken]
    for _ in range(n):
        use_trending = rng.random() < rules.explore_trending_share
        source = trending if (use_trending and trending) or not under else under
        if not source:
            break
        if source is trending:
            p = trending.pop(int(rng.integers(len(trending))))
        else:
            exp = exposure[np.asarray(under)]
            best = np.flatnonzero(exp == exp.min())
            p = under.pop(int(best[rng.integers(len(best))]))
        if p in taken:
            continue
        taken.add(p)
        picks.append(p)
    return picks


def take_slots(
    chosen: np.ndarray, reasons: list[str | None], slots: np.ndarray, picks: list[int]
) -> tuple[np.ndarray, list[str | None]]:
    """The list with the exploration ``picks`` at the drawn ``slots`` (the first len(picks)) and
    reason "explore". The picks take the drawn positions (and their places in the order: scores);
    what makes way is the weakest of the list (its last items), not whatever held a position."""
    if not picks:
        return chosen, reasons
    slots = slots[: len(picks)]
    kept = np.setdiff1d(np.arange(len(chosen)), slots)
    n_keep = len(chosen) - len(picks)
    shifted = np.empty_like(chosen)
    shifted[kept], shifted[slots] = chosen[:n_keep], picks
    shifted_reasons: list[str | None] = ["explore"] * len(chosen)
    for pos, r in zip(kept.tolist(), reasons[:n_keep]):
        shifted_reasons[pos] = r
    return shifted, shifted_reasons
