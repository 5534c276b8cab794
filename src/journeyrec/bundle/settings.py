"""Typed settings of the export step: the index and the rule statistics a bundle is built with
(plain dataclasses; Hydra schemas registered by ``journeyrec.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

__all__ = ["StatsConfig", "ExportConfig", "EnsembleJobConfig"]


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


@dataclass
class ExportConfig:
    """How a trained model becomes a bundle (``export=flat|hnsw|ivfpq``)."""

    enabled: bool = True
    index: str = "Flat"  # FAISS factory string (Flat, HNSW32, IVF1024,PQ16x4fs, ...)
    target_recall: float = 0.95  # the search-time parameter is tuned to reach this recall@10 vs exact search
    n_queries: int = 2000  # held-out validation session vectors used to tune (half) and measure (half) the index
    # fit the cart-abandonment models, ship the one best on validation (needs cart and purchase events kept
    # apart: data.dedup_consecutive=false); serving returns its risk with cart / checkout recommendations
    abandonment: bool = False
    stats: StatsConfig = field(default_factory=StatsConfig)  # how rule statistics are learned


@dataclass
class EnsembleJobConfig:
    """scripts/ensemble.py: one bundle that scores items by the mean of several bundles' scores
    (seeds of one configuration, or models of different families on one catalogue)."""

    bundles: List[str] = MISSING  # two or more bundle directories trained on the same catalogue
    out: str = MISSING  # the ensemble's bundle directory
    index: Optional[str] = None  # FAISS factory string of its index; None: the first bundle's
