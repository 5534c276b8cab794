"""Business rules as vectorised functions over candidate arrays (no per-item Python).

* :class:`PreparedRules` -- what a rule configuration turns into over the catalogue, once: the
  boost vector and the diversity groups.
* :class:`RepeatPolicy` -- what a customer's purchases exclude or bring back, from the repeat
  statistics learned at export (per category class and typical interval), falling back to the
  catalogue's declared ``repurchase_class`` / ``repurchase_days`` where nothing was learned.
* :func:`session_complements` -- the complements of the session's purchased and carted items.
* :func:`mmr_order` -- maximal marginal relevance with category similarity, in closed form.
* :func:`exploration_slots` -- which of the k slots are given to exploration.
* :func:`thompson_top` -- which candidates fill them: Thompson sampling on clicks / impressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyrec.bundle.stats import CLASS_NAMES, RuleStats
from journeyrec.data.schema import EVENT_CODE
from journeyrec.serving.catalog import Catalog
from journeyrec.serving.settings import RulesConfig

__all__ = [
    "PreparedRules",
    "RepeatPolicy",
    "RepeatDecision",
    "first_occurrences",
    "session_complements",
    "mmr_order",
    "mmr_scores",
    "exploration_slots",
    "minmax",
    "thompson_top",
]

DAY_MS = 86_400_000
CONSUMABLE, DURABLE = CLASS_NAMES.index("consumable"), CLASS_NAMES.index("durable")


class PreparedRules:
    """Per-rules arrays computed once (boost vector, diversity groups)."""

    def __init__(self, rules: RulesConfig, attrs: Catalog) -> None:
        self.rules = rules
        self.boost = np.zeros(attrs.n, dtype=np.float32)
        for b in rules.boosts:
            if b.weight and attrs.has(b.attribute):
                self.boost += b.weight * attrs.attribute_mask(b.attribute, b.value)
        self.any_boost = bool(self.boost.any())
        attr = rules.diversity_attribute
        self.groups = attrs.codes(attr) if attr and attrs.has(attr) else np.zeros(attrs.n, dtype=np.int64)


@dataclass
class RepeatDecision:
    excluded_items: np.ndarray  # internal ids never to show now
    excluded_groups: np.ndarray  # category codes whose items are all excluded (durable substitutes)
    due_items: np.ndarray  # consumables whose next purchase is due: allowed back, reason "buy again"


class RepeatPolicy:
    """Per-item repurchase class and interval, resolved once at load.

    Class: learned for the item's category when the data were conclusive, else the catalogue's
    declared class, else unknown (an unknown item bought before is simply not shown again while
    ``exclude_seen`` is on). Interval: learned median gap, else the median declared
    ``repurchase_days`` of the category's items, else ``RulesConfig.default_interval_days``.
    """

    def __init__(self, catalog: Catalog, stats: RuleStats) -> None:
        self.groups = catalog.codes("category")  # substitutes = same category (0: none known)
        stats_code = {name: i + 1 for i, name in enumerate(stats.categories)}
        cat_values = [None] + [catalog.value("category", i) for i in range(1, catalog.n)]
        item_stat = np.asarray([stats_code.get(v, 0) if v else 0 for v in cat_values], dtype=np.int64)
        learned = np.where(item_stat > 0, stats.cat_class[item_stat], 0).astype(np.int8)
        interval = np.where(item_stat > 0, stats.cat_interval_days[item_stat], np.nan)
        declared_codes = catalog.codes("repurchase_class")
        declared_vocab = {v: i + 1 for i, v in enumerate(catalog.vocabulary("repurchase_class"))}
        declared = np.zeros(catalog.n, dtype=np.int8)
        for name in ("consumable", "durable"):
            if name in declared_vocab:
                declared[declared_codes == declared_vocab[name]] = CLASS_NAMES.index(name)
        self.item_class = np.where(learned > 0, learned, declared).astype(np.int8)
        days = catalog.numbers("repurchase_days")
        # declared days per category: median over its items (one value per category in practice)
        declared_days = days.copy()
        for g in np.unique(self.groups[self.groups > 0]):
            members = self.groups == g
            vals = days[members]
            vals = vals[np.isfinite(vals)]
            if len(vals):
                declared_days[members] = np.median(vals)
        self.item_interval = np.where(np.isfinite(interval), interval, declared_days)
        self.source = np.where(learned > 0, 1, np.where(declared > 0, 2, 0)).astype(np.int8)  # 1 learned, 2 declared

    def class_of(self, item: int) -> str:
        return CLASS_NAMES[int(self.item_class[item])]

    def decide(self, items: np.ndarray, times_ms: np.ndarray, now_ms: int, rules: RulesConfig) -> RepeatDecision:
        """Purchased ``items`` at ``times_ms`` -> what is excluded or due at ``now_ms``."""
        empty = np.zeros(0, dtype=np.int64)
        if not rules.repeat_policy or len(items) == 0:
            return RepeatDecision(empty, empty, empty)
        items = np.asarray(items, dtype=np.int64)
        times = np.asarray(times_ms, dtype=np.int64)
        # only purchases of a known class (consumable / durable) can exclude or bring back anything
        known = self.item_class[items] > 0
        if not known.any():
            return RepeatDecision(empty, empty, empty)
        items, times = items[known], times[known]
        # the latest purchase of each item decides
        order = np.lexsort((times, items))
        items, times = items[order], times[order]
        last = np.ones(len(items), dtype=bool)
        last[:-1] = items[1:] != items[:-1]
        items, times = items[last], times[last]
        age_days = (now_ms - times) / DAY_MS
        cls = self.item_class[items]
        durable_recent = (cls == DURABLE) & (age_days < rules.durable_window_days)
        interval = self.item_interval[items]
        interval = np.where(np.isfinite(interval), interval, rules.default_interval_days)
        consumable = cls == CONSUMABLE
        due = consumable & (age_days >= rules.due_fraction * interval)
        not_due = consumable & ~due
        groups = self.groups[items[durable_recent]]
        return RepeatDecision(
            excluded_items=np.concatenate([items[durable_recent], items[not_due]]),
            excluded_groups=np.unique(groups[groups > 0]),
            due_items=items[due],
        )


def first_occurrences(ids: np.ndarray) -> np.ndarray:
    """``ids`` without repeats, each kept at its first position (a session's few dozen ids: a
    dict keeps insertion order, several times cheaper here than np.unique + sort)."""
    return np.fromiter(dict.fromkeys(ids.tolist()), dtype=np.int64)


def session_complements(
    stats: RuleStats, items: np.ndarray, etypes: np.ndarray, eligible: np.ndarray, rules: RulesConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eligible complements of the session's purchased and carted ``items`` (event codes
    ``etypes``), up to ``complements_per_anchor`` of each of the 10 newest anchors: (items, bonus =
    strength x ``complement_weight``, anchor), newest anchor first."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
    if rules.complement_weight <= 0 or rules.complements_per_anchor <= 0:
        return empty
    anchor_mask = (etypes == EVENT_CODE["purchase"]) | (etypes == EVENT_CODE["cart"])
    anchors = items[anchor_mask][::-1]  # newest first: its complements win reason ties
    if not len(anchors):
        return empty
    anchors = first_occurrences(anchors)[:10]
    # each anchor's first complements_per_anchor entries of the CSR complement lists, gathered
    # in one vectorised step (anchor order kept: newest anchor first)
    off = stats.comp_offsets
    lo = off[anchors]
    counts = np.minimum(off[anchors + 1] - lo, rules.complements_per_anchor)
    total = int(counts.sum())
    if total <= 0:
        return empty
    starts = np.cumsum(counts) - counts
    pos = np.repeat(lo - starts, counts) + np.arange(total)
    c = stats.comp_items[pos].astype(np.int64)
    s = stats.comp_strength[pos] * rules.complement_weight
    a = np.repeat(anchors, counts).astype(np.int64)
    keep = eligible[c]
    return c[keep], s[keep].astype(np.float32), a[keep]


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (all equal -> all 1): relevance that rule weights can add to."""
    if len(x) == 0:
        return x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12:
        return np.ones(len(x), dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def mmr_order(relevance: np.ndarray, groups: np.ndarray, lam: float) -> np.ndarray:
    """Greedy MMR order of candidates with similarity 1 within a group and 0 across groups.

    Greedy MMR picks argmax lam * rel - (1 - lam) * max_sim(selected). With 0/1 group
    similarity an item's penalty is 1 exactly when a better item of its group precedes it, and
    the best item of a group always precedes the others, so the greedy order equals sorting by
    ``lam * rel - (1 - lam) * [not the best of its group]``: computed here in one sort.
    Items with group <= 0 (attribute missing) are their own groups.
    """
    n = len(relevance)
    if n == 0 or lam >= 1.0:
        return np.argsort(-relevance, kind="stable")
    by_rel = np.argsort(-relevance, kind="stable")
    g = groups[by_rel]
    first = np.ones(n, dtype=bool)
    known = g > 0
    if known.any():
        _, first_pos = np.unique(g[known], return_index=True)
        first[known] = False
        first[np.flatnonzero(known)[first_pos]] = True
    adjusted = lam * relevance[by_rel] - (1.0 - lam) * (~first)
    return by_rel[np.argsort(-adjusted, kind="stable")]


def mmr_scores(relevance: np.ndarray, groups: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mmr_order` and the blended score it sorts by, in relevance units:
    ``relevance - (1 - lam) / lam * [not the best of its group]`` (a positive multiple of MMR's
    objective, so the order is the same; with ``lam`` = 0 the penalty is 1000). An item that is
    the best of its group keeps its relevance; the list's scores never increase down the order."""
    order = mmr_order(relevance, groups, lam)
    if len(relevance) == 0 or lam >= 1.0:
        return order, relevance.astype(np.float32)
    n = len(relevance)
    g = groups[order]
    penalty = np.zeros(n, dtype=np.float32)
    known = g > 0
    if known.any():  # in MMR order, the first item of each group is its best
        _, first_pos = np.unique(g[known], return_index=True)
        first = np.zeros(n, bool)
        first[np.flatnonzero(known)[first_pos]] = True
        penalty[known & ~first] = 1.0
    blended = np.empty(n, dtype=np.float32)
    blended[order] = relevance[order] - (1.0 - lam) / max(lam, 1e-3) * penalty
    return order, blended


def exploration_slots(k: int, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Positions (0-based) of the slots given to exploration: floor(eps k) slots plus one more
    with probability frac(eps k), so the expected share is exactly epsilon; positions uniform."""
    if epsilon <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    expected = epsilon * k
    n = int(expected) + int(rng.random() < expected - int(expected))
    # a uniform random subset: the first n of a permutation (Generator.choice without replacement
    # draws the same distribution with several times the per-call overhead)
    return np.sort(rng.permutation(k)[: min(n, k)]) if n else np.zeros(0, dtype=np.int64)


def thompson_top(
    clicks: np.ndarray,
    impressions: np.ndarray,
    n: int,
    prior_mean: float | np.ndarray,
    prior_strength: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices of the ``n`` candidates with the largest draws from their click-through posteriors,
    ``Beta(m s + clicks, (1 - m) s + impressions - clicks)`` with prior mean ``m`` (one, or one per
    candidate) and strength ``s`` pseudo-impressions: a candidate is shown with the probability that
    it is among the best, so unknown ones are tried (their posterior is wide) and ones that earned
    clicks come back."""
    clicks = np.asarray(clicks, dtype=np.float64)
    misses = np.maximum(np.asarray(impressions, dtype=np.float64) - clicks, 0.0)
    m = np.clip(np.asarray(prior_mean, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    draws = rng.beta(m * prior_strength + clicks, (1.0 - m) * prior_strength + misses)
    return np.argsort(-draws, kind="stable")[: max(int(n), 0)]
