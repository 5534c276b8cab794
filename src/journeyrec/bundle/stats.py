"""Rule statistics learned from event-typed sequences at export time, stored in the bundle.

Serving's business rules read these instead of hard-coded knowledge about products:

* **popularity** (all item events) and **trending** (the same, exponentially decayed with the
  age of each event relative to the newest event in the data): non-personal lists, exploration.
* **repeat purchase per category**: buyers, buyers who bought in the category again at least
  ``min_gap_days`` later (the *repurchase rate*), the median gap between such purchases (the
  *typical interval*) and a learned class. The class compares the repurchase frequency per
  buyer-year of follow-up (repeats / time from each buyer's first purchase to the end of the
  data, which corrects for buyers seen only briefly) with ``consumable_per_year``, using a 95%
  Poisson interval: entirely above -> ``consumable``; entirely below (with at least
  ``min_buyers`` buyers) -> ``durable``; otherwise ``unknown`` (serving then falls back to the
  catalogue's declared ``repurchase_class``).
* **complements**: item a -> item b when users who *purchased* a later carted or purchased b
  (within ``complement_max_gap_days`` and ``complement_max_steps`` positions), counted once per
  user, at least ``complement_min_users`` users, excluding b in a's category (a second camera
  is a substitute, not a complement). Strength = users(a->b) / sqrt(n(a) n(b)) (cosine, so a
  popular b does not win everywhere), scaled so each anchor's strongest complement is 1.

Everything is vectorised over the CSR sequences (no per-user Python).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from journeyrec.bundle.settings import StatsConfig
from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import SequenceData

__all__ = ["StatsConfig", "RuleStats", "learn_stats", "category_codes", "CLASS_NAMES", "STATS_ARRAYS", "STATS_JSON"]

DAY_MS = 86_400_000
CLASS_NAMES: tuple[str, ...] = ("unknown", "consumable", "durable")  # code = index
STATS_ARRAYS = "stats.npz"
STATS_JSON = "stats.json"
_CODE = {name: i + 1 for i, name in enumerate(EVENT_TYPES)}


@dataclass
class RuleStats:
    """Learned statistics; item arrays are indexed by internal id (row 0 = padding)."""

    popularity: np.ndarray  # float32 [N + 1]
    trending: np.ndarray  # float32 [N + 1]
    comp_offsets: np.ndarray  # int64 [N + 2]: complements of item a are comp_items[comp_offsets[a]:comp_offsets[a + 1]]
    comp_items: np.ndarray  # int32, strongest first
    comp_strength: np.ndarray  # float32 in (0, 1]
    categories: list[str]  # category vocabulary; code c >= 1 is categories[c - 1], 0 = none
    cat_buyers: np.ndarray  # int64 [C + 1]
    cat_repeat_buyers: np.ndarray  # int64 [C + 1]
    cat_repeats: np.ndarray  # int64 [C + 1] repurchase gaps
    cat_exposure_years: np.ndarray  # float64 [C + 1]
    cat_interval_days: np.ndarray  # float64 [C + 1], NaN = not learned
    cat_class: np.ndarray  # int8 [C + 1] index into CLASS_NAMES
    data_end_ms: int = 0
    anchor_event: str = "purchase"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.popularity) - 1

    def complements(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.comp_offsets[item], self.comp_offsets[item + 1]
        return self.comp_items[lo:hi], self.comp_strength[lo:hi]

    def category_table(self) -> list[dict[str, Any]]:
        """One row per category: what was learned (also written to stats.json for people)."""
        rows = []
        for c, name in enumerate(self.categories, start=1):
            buyers = int(self.cat_buyers[c])
            interval = float(self.cat_interval_days[c])
            rows.append(
                {
                    "category": name,
                    "buyers": buyers,
                    "repurchase_rate": round(int(self.cat_repeat_buyers[c]) / buyers, 4) if buyers else None,
                    "repurchases_per_buyer_year": round(float(self.cat_repeats[c] / self.cat_exposure_years[c]), 4)
                    if self.cat_exposure_years[c] > 0
                    else None,
                    "interval_days": None if math.isnan(interval) else round(interval, 2),
                    "learned_class": CLASS_NAMES[int(self.cat_class[c])],
                }
            )
        return rows

    def save(self, directory: Path) -> list[str]:
        """Write stats.npz (arrays) and stats.json (category table, settings); returns the names."""
        arrays = {k: v for k, v in self.__dict__.items() if isinstance(v, np.ndarray)}
        np.savez(directory / STATS_ARRAYS, allow_pickle=False, **arrays)  # numeric only, as load() reads them
        meta = {
            "categories": self.categories,
            "data_end_ms": self.data_end_ms,
            "anchor_event": self.anchor_event,
            "config": self.config,
            "category_table": self.category_table(),
        }
        (directory / STATS_JSON).write_text(json.dumps(meta, indent=2))
        return [STATS_ARRAYS, STATS_JSON]

    @classmethod
    def empty(cls, catalog: pa.Table) -> RuleStats:
        """No events to learn from: rules that need statistics fall back to the catalogue or do nothing."""
        n = catalog.num_rows + 1
        vocab, _ = category_codes(catalog)
        c = len(vocab) + 1
        zeros = np.zeros(c, dtype=np.int64)
        return cls(
            popularity=np.zeros(n, np.float32),
            trending=np.zeros(n, np.float32),
            comp_offsets=np.zeros(n + 1, np.int64),
            comp_items=np.zeros(0, np.int32),
            comp_strength=np.zeros(0, np.float32),
            categories=vocab,
            cat_buyers=zeros,
            cat_repeat_buyers=zeros.copy(),
            cat_repeats=zeros.copy(),
            cat_exposure_years=np.zeros(c),
            cat_interval_days=np.full(c, np.nan),
            cat_class=np.zeros(c, np.int8),
            anchor_event="none",
        )

    @classmethod
    def load(cls, directory: Path) -> RuleStats:
        meta = json.loads((directory / STATS_JSON).read_text())
        with np.load(directory / STATS_ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(
            categories=list(meta["categories"]),
            data_end_ms=int(meta["data_end_ms"]),
            anchor_event=str(meta["anchor_event"]),
            config=dict(meta["config"]),
            **arrays,
        )


def category_codes(catalog: pa.Table) -> tuple[list[str], np.ndarray]:
    """Category vocabulary and the code of every item, padding row first: codes[i] for internal id i."""
    values = catalog.column("category").to_pylist() if "category" in catalog.column_names else [None] * catalog.num_rows
    vocab = sorted({v for v in values if v})
    lookup = {v: i + 1 for i, v in enumerate(vocab)}
    codes = np.zeros(catalog.num_rows + 1, dtype=np.int32)
    codes[1:] = [lookup.get(v, 0) if v else 0 for v in values]
    return vocab, codes


def _poisson_interval(count: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Approximate 95% interval of a Poisson mean (Byar / Wilson-Hilferty), vectorised."""
    c = count.astype(np.float64)
    safe = np.maximum(c, 1.0)
    lower = np.where(c > 0, c * (1 - 1 / (9 * safe) - z / (3 * np.sqrt(safe))) ** 3, 0.0)
    c1 = c + 1
    upper = c1 * (1 - 1 / (9 * c1) + z / (3 * np.sqrt(c1))) ** 3
    return np.maximum(lower, 0.0), upper


def _repeat_stats(
    seqs: SequenceData, item_cat: np.ndarray, n_cat: int, cfg: StatsConfig, end_ms: int
) -> dict[str, np.ndarray]:
    user = np.repeat(np.arange(seqs.n_users, dtype=np.int64), seqs.lengths)
    bought = seqs.event_types == _CODE["purchase"]
    cat = item_cat[seqs.items[bought]].astype(np.int64)
    keep = cat > 0
    u, c, t = user[bought][keep], cat[keep], seqs.timestamps[bought][keep]
    order = np.lexsort((t, c, u))
    u, c, t = u[order], c[order], t[order]
    out = {k: np.zeros(n_cat + 1, dtype=np.int64) for k in ("cat_buyers", "cat_repeat_buyers", "cat_repeats")}
    exposure = np.zeros(n_cat + 1, dtype=np.float64)
    interval = np.full(n_cat + 1, np.nan)
    if len(u):
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (c[1:] != c[:-1])
        np.add.at(out["cat_buyers"], c[first], 1)
        np.add.at(exposure, c[first], (end_ms - t[first]) / (365.25 * DAY_MS))
        # a repurchase: same user and category, at least min_gap after the previous *counted* purchase
        # (approximated by the previous purchase; trips of several items collapse through min_gap)
        gap = np.diff(t).astype(np.float64) / DAY_MS
        repeat = ~first[1:] & (gap >= cfg.min_gap_days)
        rc = c[1:][repeat]
        np.add.at(out["cat_repeats"], rc, 1)
        pair = np.unique(np.stack([u[1:][repeat], rc], axis=1), axis=0) if repeat.any() else np.empty((0, 2), np.int64)
        np.add.at(out["cat_repeat_buyers"], pair[:, 1], 1)
        gaps = gap[repeat]
        for code in np.unique(rc):
            g = gaps[rc == code]
            if len(g) >= cfg.min_interval_gaps:
                interval[code] = float(np.median(g))
    lower, upper = _poisson_interval(out["cat_repeats"])
    years = np.maximum(exposure, 1e-12)
    cls = np.zeros(n_cat + 1, dtype=np.int8)
    cls[(lower / years > cfg.consumable_per_year) & (exposure > 0)] = 1
    cls[(upper / years < cfg.consumable_per_year) & (out["cat_buyers"] >= cfg.min_buyers)] = 2
    return {**out, "cat_exposure_years": exposure, "cat_interval_days": interval, "cat_class": cls}


def _complements(
    seqs: SequenceData, item_cat: np.ndarray, cfg: StatsConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    n = seqs.n_items + 1
    et = seqs.event_types
    anchor_name = next((name for name in ("purchase", "cart") if (et == _CODE[name]).any()), "any")
    anchor_codes = [_CODE[anchor_name]] if anchor_name != "any" else list(_CODE.values())
    target_codes = [_CODE["cart"], _CODE["purchase"]] if anchor_name != "any" else list(_CODE.values())
    user = np.repeat(np.arange(seqs.n_users, dtype=np.int64), seqs.lengths)
    pos = np.nonzero(np.isin(et, anchor_codes + target_codes))[0]
    u, it, t = user[pos], seqs.items[pos].astype(np.int64), seqs.timestamps[pos]
    is_anchor, is_target = np.isin(et[pos], anchor_codes), np.isin(et[pos], target_codes)
    max_gap = cfg.complement_max_gap_days * DAY_MS
    keys, users = [], []
    for d in range(1, cfg.complement_max_steps + 1):
        if d >= len(u):
            break
        ok = (u[d:] == u[:-d]) & (t[d:] - t[:-d] <= max_gap) & is_anchor[:-d] & is_target[d:]
        a, b = it[:-d][ok], it[d:][ok]
        other = (a != b) & ((item_cat[a] != item_cat[b]) | (item_cat[a] == 0))
        keys.append(a[other] * n + b[other])
        users.append(u[:-d][ok][other])
    empty = (np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), anchor_name)
    if not keys or not sum(len(k) for k in keys):
        return empty
    pairs = np.unique(np.stack([np.concatenate(users), np.concatenate(keys)], axis=1), axis=0)  # once per user
    key, count = np.unique(pairs[:, 1], return_counts=True)
    a, b = key // n, key % n
    keep = count >= cfg.complement_min_users
    a, b, count = a[keep], b[keep], count[keep].astype(np.float64)
    if not len(a):
        return empty
    n_a = np.bincount(it[is_anchor], minlength=n).astype(np.float64)
    n_b = np.bincount(it[is_target], minlength=n).astype(np.float64)
    strength = count / np.sqrt(n_a[a] * n_b[b])
    order = np.lexsort((b, -strength, a))
    a, b, strength = a[order], b[order], strength[order]
    start = np.searchsorted(a, a, side="left")
    rank = np.arange(len(a)) - start
    keep = rank < cfg.complements_per_item
    a, b, strength = a[keep], b[keep], strength[keep]
    best = strength[np.searchsorted(a, a, side="left")]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=offsets[1:])
    return offsets, b.astype(np.int32), (strength / best).astype(np.float32), anchor_name


def learn_stats(seqs: SequenceData, cfg: StatsConfig | Mapping[str, Any] | None = None) -> RuleStats:
    """Learn popularity, trending, per-category repeat purchase and complements from ``seqs``."""
    if cfg is None:
        cfg = StatsConfig()
    elif not isinstance(cfg, StatsConfig):
        cfg = StatsConfig(**dict(cfg))
    n = seqs.n_items + 1
    end_ms = int(seqs.timestamps.max()) if seqs.n_events else 0
    popularity = np.bincount(seqs.items, minlength=n).astype(np.float32)
    age_days = (end_ms - seqs.timestamps).astype(np.float64) / DAY_MS
    decay = np.exp2(-age_days / cfg.trending_half_life_days)
    trending = np.bincount(seqs.items, weights=decay, minlength=n).astype(np.float32)
    vocab, item_cat = category_codes(seqs.catalog)
    repeat = _repeat_stats(seqs, item_cat, len(vocab), cfg, end_ms)
    offsets, items, strength, anchor = _complements(seqs, item_cat, cfg)
    return RuleStats(
        popularity=popularity,
        trending=trending,
        comp_offsets=offsets,
        comp_items=items,
        comp_strength=strength,
        categories=vocab,
        data_end_ms=end_ms,
        anchor_event=anchor,
        config=asdict(cfg),
        **repeat,
    )
