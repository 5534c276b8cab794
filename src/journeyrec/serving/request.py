"""What a recommendation request and its answer are, independent of HTTP.

The FastAPI app converts its validated JSON body into a :class:`RecommendRequest`; Python users
build one directly (``RecommendRequest.from_items(["sku-1", "sku-2"], k=10)`` for the common
"items the customer looked at" case). A raw ``user_id`` is pseudonymised by the Recommender on
entry, used only for A/B assignment and exploration randomness, and never stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from journeyrec.serving.settings import CONTEXT_TYPES

__all__ = [
    "Event",
    "Context",
    "RecommendRequest",
    "Recommendation",
    "RecommendResult",
    "REASONS",
    "MIN_MS",
    "MAX_MS",
    "check_ms",
]

# reason strings: similar to X (same category), after X (another category the journey leads to from X),
# goes with X (a complement), buy again, trending, popular in <category>, explore
REASONS = ("similar to", "after", "goes with", "buy again", "trending", "popular in", "explore")

# epoch milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the times a request can
# carry (larger integers are not times, and would overflow the int64 arithmetic of the pipeline)
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


def check_ms(value: int, what: str) -> int:
    """``value`` as an int if it is epoch milliseconds within [MIN_MS, MAX_MS], else ValueError."""
    value = int(value)
    if not MIN_MS <= value <= MAX_MS:
        raise ValueError(
            f"{what}={value} is not a time in epoch milliseconds (allowed {MIN_MS} .. {MAX_MS}, years 1-9999)"
        )
    return value


@dataclass(frozen=True)
class Event:
    item_id: str | None
    event_type: str = "view"
    channel: str = "unknown"
    timestamp_ms: int | None = None  # None: unknown (time-gap features read it as "no gap")


@dataclass(frozen=True)
class Context:
    """Where the recommendations will be shown."""

    type: str = "home"  # one of settings.CONTEXT_TYPES
    item_id: str | None = None  # product page: the product shown
    category: str | None = None  # search results / category page: the category browsed

    def __post_init__(self) -> None:
        if self.type not in CONTEXT_TYPES:
            raise ValueError(f"unknown context type {self.type!r}; allowed: {list(CONTEXT_TYPES)}")


@dataclass
class RecommendRequest:
    events: Sequence[Event] = ()
    k: int = 10
    filters: Mapping[str, Any] = field(default_factory=dict)
    consent: bool = True  # False: non-personal answer; events and user id are ignored, never logged
    user_id: str | None = None  # raw id as received; pseudonymised on entry, never kept
    context: Context = field(default_factory=Context)
    now_ms: int | None = None  # request time (default: wall clock); replays and tests set it
    item_fields: bool = False  # add each item's catalogue fields (Recommendation.info)

    @classmethod
    def from_items(
        cls,
        item_ids: Sequence[str],
        k: int = 10,
        event_types: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        timestamps_ms: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> RecommendRequest:
        """A request from parallel lists (oldest first); event types default to ``view``."""
        n = len(item_ids)
        et = event_types or ["view"] * n
        ch = channels or ["unknown"] * n
        ts = timestamps_ms if timestamps_ms is not None else [None] * n
        events = [Event(str(i), e, c, None if t is None else int(t)) for i, e, c, t in zip(item_ids, et, ch, ts)]
        return cls(events=events, k=k, **kwargs)


@dataclass
class Recommendation:
    """One recommended item. ``score`` is what orders the list (it never increases down a list):
    for personal answers the model's score (session . item) plus the rules' bonuses less the
    diversity penalty, in model-score units (with no rules it is exactly the model's score); for
    non-personal answers the source's relevance with the same bonuses and penalty. An
    exploration item takes the score of the slot it fills. ``model_score`` is the model's own
    score (personal answers only); ``new``: the item was added by the live catalogue."""

    item_id: str
    score: float
    reason: str = ""
    model_score: float | None = None
    new: bool = False
    info: dict[str, Any] | None = None  # catalogue fields for the page (title, category, price, in_stock), on request


@dataclass
class RecommendResult:
    items: list[Recommendation]
    warnings: list[str] = field(default_factory=list)
    personalised: bool = False
    fallback: str | None = None  # why not personalised: no_consent | no_history
    intent: float | None = None  # P(purchase in this session), when the model has an intent head
    bundle_version: str = ""
    variant: str | None = None
    segment: str | None = None  # the customer's segment (serving/segments.py); None on item-to-item answers
    request_id: str | None = None  # set by the service: what feedback names
    # cart / checkout contexts, a session with an open cart: P(it ends without a purchase), its cart's value
    abandonment_risk: float | None = None
    cart_value: float | None = None
    actions: list[str] = field(default_factory=list)  # the configured actions the risk triggers (Service)
