"""The journey store's interface: what every backend keeps and how the service talks to it.

One :class:`JourneyStore` per service process; backends: :mod:`.sqlite` (embedded default, one
file in WAL mode) and :mod:`.redis` (shared by several replicas). Everything a backend holds is
keyed by *pseudonyms* (``journeyrec.data.privacy``): raw customer, anonymous and session ids never
reach the store.

Per subject (a customer, or an anonymous visitor not linked to one yet):

* recent events: the newest ``max_events`` within ``retention_days``, any event type;
* purchases: every purchase within ``retention_days`` (``max_purchases`` at most), kept apart from
  the bounded event list so that the repeat-purchase policy still knows a coat bought ten months ago;
* the last search (query and filters);
* consent: ``None`` (never stated: personalised), ``True`` or ``False`` (opted out: the store holds
  no events of theirs and refuses new ones, which are only counted);
* identity links: anonymous pseudonym -> customer pseudonym.

For everybody: the live catalogue layer over the immutable bundle (item id -> the fields that
changed or the whole record of a new item, with a version counter replicas poll), and named
counters.

The feedback loop (docs/reactions.md):

* impressions: every list served (request id -> items in order, context, experiment and variant,
  bundle version, segment, time, and the customer's pseudonym or nothing), kept for two
  ``reaction_window_ms``: reactions within the first window count, in the second they are
  refused as expired, afterwards the request id is unknown;
* reactions (click, cart, purchase, dismiss) attributed to an impression and its position, at
  most once per (request id, item, type): a duplicate never counts twice. Carts and purchases
  that arrive as ordinary events (``append``) are attributed to the customer's latest list that
  showed the item within the window (one where it was clicked first);
* online statistics (:mod:`journeyrec.serving.online`): trending and per-context popularity with
  exponential time decay, impressions and clicks per item and per slot in each context, and A/B
  counts per experiment and variant. Updated in the same transaction as the write that causes
  them, so all replicas read the same numbers.

Nothing of an opted-out customer is kept: their events are not counted in trending, an impression
of theirs is stored without the pseudonym, and opting out or forgetting deletes their impressions.

Every write that returns has been committed durably (the embedded backend: SQLite transaction
with ``synchronous=FULL``; Redis: as durable as the server's persistence settings make it), and
each method is one transaction: nothing is half-applied.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from journeyrec.data.schema import ITEM_EVENT_TYPES
from journeyrec.serving.online import ItemCTR, Trending

__all__ = [
    "StoredEvent",
    "Journey",
    "AppendResult",
    "CatalogChanges",
    "JourneyStore",
    "DAY_MS",
    "OPTED_OUT_EVENTS",
    "Impression",
    "Reaction",
    "ReactionResult",
    "StoredImpression",
    "REACTION_TYPES",
    "ATTRIBUTED_EVENTS",
    "OUTCOMES",
    "AB_METRICS",
    "TRENDING_EVENTS",
    "SlotCTR",
    "SKEW_MS",
]

DAY_MS = 86_400_000
OPTED_OUT_EVENTS = "opted_out_events"  # counter: events accepted but not stored (the customer opted out)

REACTION_TYPES: tuple[str, ...] = ("click", "cart", "purchase", "dismiss")
ATTRIBUTED_EVENTS: tuple[str, ...] = ("cart", "purchase")  # ordinary events attributed to a list shown before
POSITIVE_REACTIONS: tuple[str, ...] = ("click", "cart", "purchase")  # what per-context popularity counts
TRENDING_EVENTS: tuple[str, ...] = tuple(ITEM_EVENT_TYPES)  # each counts 1, as in the bundle's trending
SKEW_MS = 300_000  # clocks of shop and service: a reaction may be stamped this much before its list
# outcome of a reaction: attributed, or why not
OUTCOMES: tuple[str, ...] = ("attributed", "unknown_request", "expired", "duplicate", "not_shown", "before_impression")
# A/B counts per (experiment, variant, assigned): lists shown, lists with at least one reaction of a
# type (the units of CTR, add-to-cart and conversion), and reactions of each type
AB_METRICS: tuple[str, ...] = (
    "impressions",
    "clicked",
    "carted",
    "purchased",
    "dismissed",
    "clicks",
    "carts",
    "purchases",
    "dismisses",
)
_UNIT = {"click": "clicked", "cart": "carted", "purchase": "purchased", "dismiss": "dismissed"}
_COUNT = {"click": "clicks", "cart": "carts", "purchase": "purchases", "dismiss": "dismisses"}


@dataclass(frozen=True)
class StoredEvent:
    """One validated, pseudonymised event as the store keeps it."""

    event_type: str
    channel: str
    timestamp_ms: int
    item_id: str | None = None
    session_id: str | None = None
    query: str | None = None
    filters: str | None = None  # JSON object text, as in the canonical event schema
    price: float | None = None
    quantity: int | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> StoredEvent:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Arrival:
    """An event on its way in: whose it is (customer and/or anonymous pseudonym) and what."""

    event: StoredEvent
    customer: str | None = None
    anonymous: str | None = None


@dataclass
class Journey:
    """What the store knows about one subject, for a recommendation."""

    subject: str
    events: list[StoredEvent] = field(default_factory=list)  # oldest first
    purchases: list[StoredEvent] = field(default_factory=list)  # oldest first
    last_search: StoredEvent | None = None
    consent: bool | None = None
    known: bool = False  # the store has (or had) anything of this subject: events, consent or links
    catalog_version: int = 0  # read in the same round trip, so a replica sees catalogue changes at once

    def timeline(self) -> list[StoredEvent]:
        """Recent events, preceded by the purchases older than all of them (what the repeat
        policy needs beyond the bounded event list), oldest first."""
        oldest = self.events[0].timestamp_ms if self.events else None
        older = [p for p in self.purchases if oldest is None or p.timestamp_ms < oldest]
        return older + self.events


@dataclass
class AppendResult:
    """Indices (into the batch) of events stored, refused for an opt-out, or older than retention;
    and of the stored carts / purchases attributed to a list shown before (feedback loop)."""

    stored: list[int] = field(default_factory=list)
    opted_out: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    attributed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Impression:
    """One list served: position = index in ``items``."""

    request_id: str
    timestamp_ms: int
    items: tuple[str, ...]
    context: str
    experiment: str = "none"
    variant: str = "default"
    assigned: bool = False  # by hash of a pseudonym (A/B reports compare assigned lists only)
    bundle_version: str = ""
    segment: str | None = None
    explore: tuple[int, ...] = ()  # positions filled by exploration
    subject: str | None = None  # the customer's pseudonym; None without consent or id
    groups: tuple[str, ...] = ()  # each item's group (its category; "" unknown): click-through per group

    def meta_json(self) -> str:
        """Everything but the subject (kept apart, so that forgetting can remove it)."""
        meta = {k: v for k, v in asdict(self).items() if k != "subject"}
        meta["items"], meta["explore"], meta["groups"] = list(self.items), list(self.explore), list(self.groups)
        return json.dumps(meta, separators=(",", ":"))

    @classmethod
    def from_meta(cls, text: str | bytes, subject: str | None = None) -> Impression:
        meta = json.loads(text)
        meta["items"], meta["explore"] = tuple(meta["items"]), tuple(meta["explore"])
        meta["groups"] = tuple(meta.get("groups") or ())
        return cls(**meta, subject=subject)

    def group(self, position: int) -> str:
        return self.groups[position] if position < len(self.groups) else ""


@dataclass(frozen=True)
class Reaction:
    request_id: str
    item_id: str
    type: str  # one of REACTION_TYPES
    timestamp_ms: int


@dataclass
class ReactionResult:
    outcome: str  # one of OUTCOMES
    position: int | None = None
    context: str | None = None
    variant: str | None = None


@dataclass
class StoredImpression:
    impression: Impression
    reactions: list[tuple[str, str, int, str]]  # (item, type, time, source: feedback | event), in time order


@dataclass
class SlotCTR:
    position: int
    impressions: int
    clicks: int


@dataclass
class CatalogChanges:
    version: int
    items: dict[str, dict[str, Any]]  # item id -> every live field of the item (merged over all updates)


class JourneyStore(ABC):
    """The store interface; see the module docstring for what it keeps."""

    max_events: int
    max_purchases: int
    retention_ms: int

    # --- journeys ----------------------------------------------------------------------------
    @abstractmethod
    def append(self, arrivals: Sequence[Arrival], now_ms: int) -> AppendResult:
        """Store a batch in one transaction. An arrival with a customer is the customer's (and links
        its anonymous id, as :meth:`link` does); an anonymous one is its linked customer's, else its
        own. Opted-out subjects' events are not stored, only counted (``OPTED_OUT_EVENTS``)."""

    @abstractmethod
    def journey(self, subject: str, now_ms: int) -> Journey:
        """The subject's events, purchases, last search and consent, and the catalogue version."""

    @abstractmethod
    def link(self, anonymous: str, customer: str, now_ms: int) -> int:
        """Make the anonymous visitor's journey the customer's (moved unless the customer opted out,
        then deleted) and send later events of that anonymous id to the customer. Returns the number
        of events moved."""

    @abstractmethod
    def set_consent(self, subject: str, personalisation: bool) -> int:
        """Record consent; ``False`` deletes the stored journey at once. Returns events deleted."""

    @abstractmethod
    def forget(self, subject: str) -> int:
        """Remove everything held about the subject (events, purchases, search, consent, links and
        the anonymous journeys linked to it), leaving no trace in the storage files. Returns the
        number of events and purchases removed."""

    @abstractmethod
    def customers(self) -> Iterator[str]:
        """Pseudonyms of the customers (not anonymous visitors) the store knows, in a stable order."""

    # --- live catalogue ----------------------------------------------------------------------
    @abstractmethod
    def put_items(self, items: Mapping[str, Mapping[str, Any]]) -> int:
        """Merge field updates (or whole new records) per item id; returns the new catalogue version."""

    @abstractmethod
    def catalog_version(self) -> int: ...

    @abstractmethod
    def catalog_since(self, version: int) -> CatalogChanges:
        """The merged live records of the items changed after ``version``, and the current version."""

    # --- feedback loop -------------------------------------------------------------------------
    reaction_window_ms: int
    trend_half_life_ms: int
    trending_top: int = 1000  # online trending items a non-personal answer reads (StoreConfig.trending_top)

    @abstractmethod
    def record_impressions(self, impressions: Sequence[Impression], now_ms: int) -> None:
        """Store lists served and count their impressions (per item and slot in the context, per
        item and group in its exploration slots, per variant), in one transaction. The subject is
        dropped when that customer opted out."""

    @abstractmethod
    def react(self, reactions: Sequence[Reaction], now_ms: int) -> list[ReactionResult]:
        """Attribute reactions to their impressions, in one transaction: each is attributed (and
        counted: clicks per item and slot, per-context popularity, the variant's counts) or refused
        with its reason, a duplicate of an attributed (request id, item, type) included. Times
        after ``now_ms`` count as ``now_ms`` in the decayed statistics (a clock set ahead must not
        move their landmark into the future)."""

    @abstractmethod
    def impression(self, request_id: str) -> StoredImpression | None:
        """An impression still held and the reactions attributed to it."""

    @abstractmethod
    def trending(self, now_ms: int, n: int, context: str | None = None) -> Trending:
        """The ``n`` items trending most at ``now_ms`` (and most popular in ``context``)."""

    @abstractmethod
    def item_ctr(self, context: str, item_ids: Sequence[str]) -> ItemCTR:
        """Impressions and clicks of these items in ``context`` (every list), and of the whole context."""

    @abstractmethod
    def explore_ctr(self, context: str, item_ids: Sequence[str], groups: Sequence[str]) -> ItemCTR:
        """The same, counted in exploration slots only: of these items, of their ``groups`` (one per
        item, as impressions name them) and of all exploration slots in ``context``. What an item
        earns where the bandit put it, not where the model ranked it for its likeliest clickers."""

    @abstractmethod
    def slot_ctr(self, context: str) -> list[SlotCTR]:
        """Impressions and clicks per position in ``context``, by position."""

    @abstractmethod
    def ab_counts(self, experiment: str) -> dict[tuple[str, bool], dict[str, int]]:
        """(variant, assigned) -> every metric of :data:`AB_METRICS` for the experiment."""

    # --- counters ----------------------------------------------------------------------------
    @abstractmethod
    def counters(self) -> dict[str, int]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> JourneyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
