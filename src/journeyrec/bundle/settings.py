"""Typed settings of the export step (plain dataclasses: Hydra schemas in ``journeyrec.config``,
and what :mod:`journeyrec.bundle.stats` and :mod:`journeyrec.bundle.format` read)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StatsConfig"]


@dataclass
class StatsConfig:
    """How rule statistics are learned (recorded in the bundle next to the statistics)."""

    trending_half_life_days: float = 7.0
    min_gap_days: float = 1.0  # two purchases in one category closer than this are one shopping trip
    min_buyers: int = 20  # below this many buyers a category's class stays unknown
    consumable_per_year: float = 0.25  # repurchases per buyer-year separating consumables from durables
    min_interval_gaps: int = 5  # fewer repurchase gaps than this: the interval is not learned
    complement_max_gap_days: float = 30.0
    complement_max_steps: int = 20
    complement_min_users: int = 2
    complements_per_item: int = 50
