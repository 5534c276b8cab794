"""Typed settings of the serving path: business rules, request limits, the server.

Plain dataclasses that import nothing heavy, so that ``journeyrec.config`` can register them as
Hydra schemas (``configs/serve.yaml`` is validated against them) and the Recommender, the A/B
variants and tests build them directly. One definition per setting: change a default here.

Scores are normalised per request before rules act: the retrieved candidates' model scores are
mapped to *relevance* in [0, 1] (best candidate 1, weakest 0), so every weight below is in
"fractions of the candidate pool's score range" whatever the model's score scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from omegaconf import MISSING

__all__ = [
    "CONTEXT_TYPES",
    "RISK_CONTEXTS",
    "STORE_BACKENDS",
    "EXPLORATION_MODES",
    "SEGMENTS",
    "SegmentsConfig",
    "ActionWhen",
    "ActionRule",
    "BoostRule",
    "ContextConfig",
    "StoreConfig",
    "RulesConfig",
    "LimitsConfig",
    "VariantConfig",
    "ExperimentConfig",
    "ServeConfig",
    "BatchRecommendConfig",
    "merge_rules",
    "rules_from_mapping",
]

# Touchpoints a request can come from; ``context.type`` must be one of these.
CONTEXT_TYPES: tuple[str, ...] = (
    "home",
    "product_page",
    "search",
    "cart",
    "checkout",
    "newsletter",
    "app_push",
    "store",
    "call_centre",
)
# Contexts whose answers carry the session's cart-abandonment risk and the actions it triggers.
RISK_CONTEXTS: tuple[str, ...] = ("cart", "checkout")


@dataclass
class ActionWhen:
    """When an action fires: every condition given holds (strictly above its threshold); a
    condition left out (None) always holds. Only sessions with an open cart have a risk."""

    risk_above: Optional[float] = None  # P(the session ends without a purchase) > this
    cart_value_above: Optional[float] = None  # the value of the session's carted items (catalogue prices) > this

    def __post_init__(self) -> None:
        if self.risk_above is not None and not 0.0 <= self.risk_above <= 1.0:
            raise ValueError(f"actions: when.risk_above={self.risk_above} (must be within [0, 1])")


@dataclass
class ActionRule:
    """``{when: {risk_above: 0.7, cart_value_above: 50}, do: free_shipping_banner}``: the answer
    to a cart or checkout request lists ``do`` in ``actions`` when ``when`` holds, for the shop's
    page to act on within the session (a banner, a chat offer)."""

    when: ActionWhen = field(default_factory=ActionWhen)
    do: str = MISSING

    def __post_init__(self) -> None:
        if not isinstance(self.when, ActionWhen):
            self.when = ActionWhen(**dict(self.when))
        if not isinstance(self.do, str) or not self.do.strip():
            raise ValueError(f"actions: do={self.do!r} must name the action (e.g. free_shipping_banner)")


# How the exploration slots are filled: a Thompson-sampling bandit on each candidate's clicks and
# impressions in the context (shared through the journey store), or at random (trending or least shown).
EXPLORATION_MODES: tuple[str, ...] = ("bandit", "random")

# Customer segments (serving/segments.py): RFM-style, from the purchases the request's journey holds.
SEGMENTS: tuple[str, ...] = ("anonymous", "new", "active", "loyal", "vip", "lapsed")


@dataclass
class BoostRule:
    """Add ``weight`` to the relevance of items whose ``attribute`` equals ``value`` (or is in it,
    when ``value`` is a list). Attributes are catalogue columns (own_brand, brand, category, ...);
    ``category`` matches the path or any ancestor ("Apparel" boosts every apparel item)."""

    attribute: str = "own_brand"
    value: Any = True
    weight: float = 0.1


@dataclass
class RulesConfig:
    """Business rules applied after retrieval, in this order: eligibility (filters, stock, seen,
    repeat-purchase policy) -> complement / replenishment candidates -> boosts -> diversity ->
    exploration. Every rule degrades to "no effect" when the catalogue lacks its attribute."""

    # --- eligibility
    exclude_seen: bool = True  # items in the request's events are not shown again (due consumables excepted)
    in_stock_only: bool = True  # items known to be out of stock are never shown (unknown stock passes)
    # --- repeat-purchase policy (classes and intervals learned per category at export time)
    repeat_policy: bool = True
    durable_window_days: float = (
        365.0  # a durable bought this recently: the item and its same-category substitutes are excluded
    )
    due_fraction: float = 0.8  # a consumable is due again after due_fraction x its category's typical interval
    default_interval_days: float = 30.0  # consumables whose interval is neither learned nor declared
    replenish_weight: float = 0.3  # relevance bonus of a due consumable (reason "buy again"); 0 = only allow it back
    # --- complements of purchased / carted items in the session (reason "goes with <item>")
    complement_weight: float = 0.2  # bonus x the pair's strength (strongest complement of an anchor = 1)
    complements_per_anchor: int = 5
    # --- strategy
    boosts: List[BoostRule] = field(default_factory=list)
    # --- diversity: MMR with similarity 1 between items sharing ``diversity_attribute``, else 0
    diversity_lambda: float = 0.7  # 1 = relevance only; lower = more variety
    diversity_attribute: str = "category"
    # --- exploration: a share epsilon of the k slots shows items of the candidate pool the list did not
    # take, or trending ones (reason "explore"), chosen by ``exploration`` (EXPLORATION_MODES)
    epsilon: float = 0.0
    exploration: str = "bandit"  # bandit: Thompson sampling on clicks / impressions in the context; random
    bandit_prior_strength: float = 10.0  # pseudo-impressions of the Beta prior, centred on the context's CTR
    explore_trending_share: float = 0.5  # random: share of slots from trending; the rest under-exposed candidates
    # --- retrieval
    overfetch: int = 4  # candidate pool = overfetch x k (at least k + 20) before re-ranking
    prefilter_below: float = 0.05  # FAISS IDSelector pre-filtering when fewer than this share of items is eligible
    seed: Optional[int] = None  # exploration randomness (None: fresh entropy; set in tests for reproducibility)

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.epsilon <= 1.0:
            problems.append(f"epsilon={self.epsilon} (must be within [0, 1])")
        if not 0.0 <= self.diversity_lambda <= 1.0:
            problems.append(f"diversity_lambda={self.diversity_lambda} (must be within [0, 1])")
        if not 0.0 <= self.explore_trending_share <= 1.0:
            problems.append(f"explore_trending_share={self.explore_trending_share} (must be within [0, 1])")
        if self.overfetch < 1:
            problems.append(f"overfetch={self.overfetch} (must be >= 1)")
        if self.exploration not in EXPLORATION_MODES:
            problems.append(f"exploration={self.exploration!r} (one of {list(EXPLORATION_MODES)})")
        if not self.bandit_prior_strength > 0:
            problems.append(f"bandit_prior_strength={self.bandit_prior_strength} (must be > 0)")
        if self.durable_window_days < 0 or self.due_fraction < 0 or self.default_interval_days <= 0:
            problems.append("durable_window_days and due_fraction must be >= 0, default_interval_days > 0")
        self.boosts = [b if isinstance(b, BoostRule) else BoostRule(**dict(b)) for b in self.boosts]
        if problems:
            raise ValueError("invalid rules: " + "; ".join(problems))

    @classmethod
    def raw(cls) -> RulesConfig:
        """No rules at all: the model's top-k as the index returns it (for checks and baselines)."""
        return cls(
            exclude_seen=False,
            in_stock_only=False,
            repeat_policy=False,
            replenish_weight=0.0,
            complement_weight=0.0,
            boosts=[],
            diversity_lambda=1.0,
            epsilon=0.0,
        )


@dataclass
class LimitsConfig:
    """Request limits of the HTTP API (larger requests get a 4xx naming the limit)."""

    max_events: int = 500  # the model reads its last max_len events; older ones still feed the repeat policy
    max_k: int = 200
    max_body_bytes: int = 262_144
    max_filter_values: int = 100
    max_batch_events: int = 1000  # POST /v1/events: events per batch
    max_catalog_items: int = 1000  # PUT /v1/catalog/items: items per call


@dataclass
class ContextConfig:
    """What one touchpoint (``context.type``) asks of the pipeline: rule overrides on top of
    ``rules``, and whether the customer's last search carries its filters into this page."""

    rules: Dict[str, Any] = field(default_factory=dict)  # RulesConfig fields, e.g. {complement_weight: 0.5}
    segments: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # segment -> RulesConfig fields, over ``rules``
    search_filters: bool = False  # apply the filters of the customer's last search (the request's own win per key)
    search_filters_minutes: float = 30.0  # ... if that search is at most this old

    def __post_init__(self) -> None:
        unknown = sorted(set(self.segments) - set(SEGMENTS))
        if unknown:
            raise ValueError(f"rules for unknown segment(s) {unknown}; segments: {list(SEGMENTS)}")
        for overrides in self.segments.values():
            merge_rules(RulesConfig(), overrides)  # an unknown rule name fails at start-up, named


@dataclass
class SegmentsConfig:
    """RFM-style customer segments from the purchases in the journey a request reads (recency,
    frequency, monetary value at catalogue prices); ``anonymous`` without consent, ``new`` without
    a purchase, then the first that applies: ``lapsed`` (last order older than ``lapsed_days``),
    ``vip`` (spend >= ``vip_spend``), ``loyal`` (>= ``loyal_orders`` orders), else ``active``."""

    lapsed_days: float = 120.0
    vip_spend: float = 1000.0
    loyal_orders: int = 3
    order_gap_minutes: float = 60.0  # purchases closer than this are one order

    def __post_init__(self) -> None:
        if self.lapsed_days <= 0 or self.vip_spend < 0 or self.loyal_orders < 1 or self.order_gap_minutes < 0:
            raise ValueError("segments: lapsed_days > 0, vip_spend >= 0, loyal_orders >= 1, order_gap_minutes >= 0")


STORE_BACKENDS: tuple[str, ...] = ("sqlite", "redis")


@dataclass
class StoreConfig:
    """The journey store (``store=sqlite`` default, ``store=redis store.url=redis://host:6379/0``).

    Per customer it keeps the newest ``max_events`` events within ``retention_days``, purchases
    (dates for the repeat-purchase policy) within ``retention_days``, the last search, consent and
    identity links; and, for everybody, the live catalogue layer."""

    backend: str = "sqlite"
    path: str = "outputs/store/journeys.sqlite"  # sqlite: one file (WAL mode); created with its folder
    url: Optional[str] = None  # redis: redis://host:port/db
    prefix: str = "jr"  # redis: key prefix, so several stores can share a server
    max_events: int = 200
    max_purchases: int = 500
    retention_days: float = 400.0  # > the 365-day durable window of the repeat policy
    # --- the feedback loop (docs/reactions.md)
    impressions: bool = True  # store every answer (items, positions, context, variant) for feedback and A/B
    reaction_window_minutes: float = 1440.0  # feedback (and carts / purchases as events) counts this long after a list
    trending_half_life_hours: float = 168.0  # online trending and per-context popularity (the export's 7 days)
    trending_top: int = 1000  # online trending items read per non-personal answer

    def __post_init__(self) -> None:
        if self.reaction_window_minutes <= 0 or self.trending_half_life_hours <= 0 or self.trending_top < 1:
            raise ValueError(
                "store.reaction_window_minutes and store.trending_half_life_hours must be > 0, store.trending_top >= 1"
            )
        if self.backend not in STORE_BACKENDS:
            raise ValueError(f"store.backend={self.backend!r}; allowed: {list(STORE_BACKENDS)}")
        if self.backend == "redis" and not self.url:
            raise ValueError("store=redis needs store.url=redis://host:port/db")
        if self.max_events < 1 or self.max_purchases < 1 or self.retention_days <= 0:
            raise ValueError("store.max_events and store.max_purchases must be >= 1, store.retention_days > 0")


@dataclass
class VariantConfig:
    """One arm of an A/B test: a bundle (None = the server's bundle) and rule overrides."""

    name: str = "control"
    share: float = 1.0  # traffic share; the shares of an experiment sum to 1
    bundle: Optional[str] = None
    rules: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """An A/B test. Requests are assigned by a keyed hash of the pseudonymous user id, so a
    customer stays in one arm; requests without an id or consent get the first variant."""

    name: str = "experiment"
    salt: Optional[str] = None  # hash key (default: the name); a new salt reshuffles everybody
    variants: List[VariantConfig] = field(default_factory=lambda: [VariantConfig()])

    def __post_init__(self) -> None:
        self.variants = [v if isinstance(v, VariantConfig) else VariantConfig(**dict(v)) for v in self.variants]
        if not self.variants:
            raise ValueError(f"experiment {self.name!r} has no variants")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r} has duplicate variant names {names}")
        if any(v.share < 0 for v in self.variants) or abs(sum(v.share for v in self.variants) - 1.0) > 1e-6:
            raise ValueError(
                f"experiment {self.name!r}: variant shares {[v.share for v in self.variants]} must be >= 0 and sum to 1"
            )


@dataclass
class ServeConfig:
    """scripts/serve.py: the HTTP service over a bundle."""

    bundle: str = MISSING  # bundle directory
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 1  # torch / FAISS threads per process (requests are single queries)
    log_level: str = "info"
    hmac_key_file: Optional[str] = None  # file holding the pseudonymisation key (else env JOURNEYREC_HMAC_KEY)
    allow_demo_key: Optional[bool] = None  # None: as the bundle's training data config (public data allows it)
    rules: RulesConfig = field(default_factory=RulesConfig)
    contexts: Dict[str, ContextConfig] = field(default_factory=dict)  # context type -> its settings and rule overrides
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)  # segment thresholds (per-segment rules: contexts)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ab: Optional[ExperimentConfig] = None  # an A/B experiment (configs/ab/*.yaml), none by default
    store: Optional[StoreConfig] = None  # the journey store (configs/store/*.yaml); None: stateless
    actions: List[ActionRule] = field(default_factory=list)  # on an abandonment risk, in cart / checkout answers


@dataclass
class BatchRecommendConfig:
    """scripts/batch_recommend.py: top-k per customer of the journey store into a Parquet file."""

    bundle: str = MISSING
    store: StoreConfig = field(default_factory=StoreConfig)
    customers: str = "all"  # "all" (every customer in the store, as pseudonyms) or a file of customer ids, one per line
    context: str = "newsletter"
    k: int = 10
    out: Optional[str] = None  # default: <output_dir>/recommendations.parquet
    output_dir: Optional[str] = None  # None: Hydra's run directory
    threads: int = 1
    hmac_key_file: Optional[str] = None
    allow_demo_key: Optional[bool] = None
    rules: RulesConfig = field(default_factory=RulesConfig)
    contexts: Dict[str, ContextConfig] = field(default_factory=dict)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    progress: bool = True


def merge_rules(base: RulesConfig, overrides: Optional[Mapping[str, Any]]) -> RulesConfig:
    """``base`` with some fields replaced; an unknown field name is refused with the known ones."""
    if not overrides:
        return base
    known = {f.name for f in dataclasses.fields(RulesConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown rule setting(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(base, **dict(overrides))


def rules_from_mapping(values: Optional[Mapping[str, Any]]) -> RulesConfig:
    """RulesConfig from a plain mapping (a YAML/JSON section), refusing unknown keys."""
    return merge_rules(RulesConfig(), values)
