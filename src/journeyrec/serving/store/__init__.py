"""The journey store: one interface (:class:`JourneyStore`), two backends.

``open_store(cfg)`` opens the backend a :class:`~journeyrec.serving.settings.StoreConfig` names:
``sqlite`` (embedded, the default) or ``redis`` (imported only when used).
"""

from __future__ import annotations

from journeyrec.serving.settings import StoreConfig
from journeyrec.serving.store.base import (
    OPTED_OUT_EVENTS,
    REACTION_TYPES,
    AppendResult,
    Arrival,
    CatalogChanges,
    Impression,
    Journey,
    JourneyStore,
    Reaction,
    ReactionResult,
    StoredEvent,
)
from journeyrec.serving.store.sqlite import SQLiteStore

__all__ = [
    "open_store",
    "JourneyStore",
    "StoredEvent",
    "Arrival",
    "Journey",
    "AppendResult",
    "CatalogChanges",
    "OPTED_OUT_EVENTS",
    "SQLiteStore",
    "Impression",
    "Reaction",
    "ReactionResult",
    "REACTION_TYPES",
]


def open_store(cfg: StoreConfig) -> JourneyStore:
    store = _open(cfg)
    store.trending_top = int(cfg.trending_top)
    return store


def _open(cfg: StoreConfig) -> JourneyStore:
    if cfg.backend == "redis":
        from journeyrec.serving.store.redis import RedisStore  # the client library loads only for this backend

        return RedisStore(
            str(cfg.url),
            prefix=cfg.prefix,
            max_events=cfg.max_events,
            max_purchases=cfg.max_purchases,
            retention_days=cfg.retention_days,
            reaction_window_minutes=cfg.reaction_window_minutes,
            trending_half_life_hours=cfg.trending_half_life_hours,
        )
    return SQLiteStore(
        cfg.path,
        max_events=cfg.max_events,
        max_purchases=cfg.max_purchases,
        retention_days=cfg.retention_days,
        reaction_window_minutes=cfg.reaction_window_minutes,
        trending_half_life_hours=cfg.trending_half_life_hours,
    )
