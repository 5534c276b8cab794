"""The service behind the HTTP app: A/B variants over Recommenders, the journey store, privacy on
entry, metrics, logs.

``Service.recommend(request)`` is what ``POST /v1/recommendations`` runs:

1. on entry the raw user id is replaced by its pseudonym (``journeyrec.data.privacy``), and only
   when the request carries consent; the raw id goes no further than this function;
2. the pseudonym picks the A/B variant (``journeyrec.serving.ab``), i.e. a bundle and rules;
3. the variant's Recommender answers, the request without any user id;
4. metrics are counted and one JSON log line written, with no personal data.

With a journey store (:mod:`journeyrec.serving.store`) the service is also the live knowledge
base: ``intake`` (events from every touchpoint, validated per event by the offline rules and
pseudonymised exactly as offline: customer ids as such, anonymous ids in their own namespace
``anonymous:<id>``, session ids too), ``identify``, ``set_consent``, ``forget``, the live catalogue
(``put_items``), and ``recommend_customer``, which reads the stored journey and answers through
``recommend`` (the same pipeline). Before every answer the live catalogue is synchronised with the
store's version, so a change made through any replica is served by the next request.

The feedback loop (docs/reactions.md): every answer gets a request id and, with a store, is stored
as an impression before it is returned (:meth:`recommend`, :meth:`similar`, :meth:`complements`);
:meth:`feedback` attributes a click, cart, purchase or dismissal to it; the pipeline reads the
store's online statistics (trending, the bandit's click-through) and :meth:`ab_report` computes
the A/B figures from the stored impressions and reactions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.data.records import validate_records
from journeyrec.serving.ab import Assigner
from journeyrec.serving.abandonment import fire_actions
from journeyrec.serving.abstats import report as ab_figures
from journeyrec.serving.abstats import store_counts
from journeyrec.serving.catalog import Catalog
from journeyrec.serving.observability import LOGGER_NAME, Metrics
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import Event, RecommendRequest, RecommendResult
from journeyrec.serving.settings import (
    ActionRule,
    ContextConfig,
    ExperimentConfig,
    LimitsConfig,
    RulesConfig,
    VariantConfig,
    merge_rules,
)
from journeyrec.serving.store import Arrival, Impression, JourneyStore, Reaction, StoredEvent

__all__ = ["Service", "ANONYMOUS_NAMESPACE", "FEEDBACK_STATUS"]

# HTTP status of each feedback outcome: a duplicate is answered 200 and ignored (a client's retry
# must not fail), everything else that is not attributed is a 4xx naming why
FEEDBACK_STATUS = {
    "attributed": 200,
    "duplicate": 200,
    "unknown_request": 404,
    "expired": 410,
    "not_shown": 422,
    "before_impression": 422,
}
_FEEDBACK_WHY = {
    "duplicate": "this reaction to this item of this list was counted before; ignored",
    "unknown_request": "no list with this request_id is held (never served, or older than two reaction windows)",
    "expired": "the list was shown longer ago than the reaction window (store.reaction_window_minutes)",
    "not_shown": "this item was not in the list of this request_id",
    "before_impression": "the reaction's time is before the list was shown",
}

ANONYMOUS_NAMESPACE = "anonymous:"  # an anonymous id is pseudonymised as this + id, apart from customer ids

log = logging.getLogger(LOGGER_NAME)


@dataclasses.dataclass
class _Arm:
    variant: VariantConfig
    recommender: Recommender
    rules: RulesConfig


class Service:
    def __init__(
        self,
        recommender: Recommender,
        experiment: ExperimentConfig | None = None,
        limits: LimitsConfig | None = None,
        hmac_key_file: str | None = None,
        allow_demo_key: bool | None = None,
        load: Any = None,
        store: JourneyStore | None = None,
        contexts: Mapping[str, ContextConfig] | None = None,
        impressions: bool = True,
        actions: list[ActionRule] | None = None,
    ) -> None:
        """``recommender`` serves the default bundle; variants naming another bundle are loaded
        with ``load(path)`` (default: ``Recommender.load`` with the default's rules and contexts).
        ``store``: the journey store (None: stateless, as before); ``contexts``: per-touchpoint
        settings beyond rule overrides (carrying search filters); ``impressions``: store every
        answer as an impression (with a store); ``actions``: what a cart or
        checkout answer asks the shop to do when the session's abandonment risk is high."""
        self.default = recommender
        self.actions = [a if isinstance(a, ActionRule) else ActionRule(**dict(a)) for a in (actions or [])]
        self.store = store
        self.impressions = bool(impressions) and store is not None
        self.contexts = {
            k: v if isinstance(v, ContextConfig) else ContextConfig(**dict(v)) for k, v in (contexts or {}).items()
        }
        self._catalog_seen = 0
        self.limits = limits or LimitsConfig()
        self.metrics = Metrics()
        if allow_demo_key is None:  # as the bundle's training data allowed (public data) or not
            allow_demo_key = bool(
                (getattr(recommender, "train_config", {}).get("data") or {}).get("allow_demo_key", False)
            )
        self._key = resolve_key(hmac_key_file, allow_demo_key=allow_demo_key)
        self.experiment = experiment or ExperimentConfig(name="none", variants=[VariantConfig(name="default")])
        self.assigner = Assigner(self.experiment)
        load = load or (
            lambda path: Recommender.load(
                path,
                rules=recommender.rules,
                contexts=recommender.context_overrides,
                segment_rules=recommender.segment_overrides,
                segments=recommender.segments,
            )
        )
        loaded: dict[str, Recommender] = {}
        self.arms: dict[str, _Arm] = {}
        for v in self.experiment.variants:
            rec = recommender
            if v.bundle:
                key = str(Path(v.bundle).resolve())
                rec = loaded.get(key) or loaded.setdefault(key, load(v.bundle))
            self.arms[v.name] = _Arm(v, rec, merge_rules(rec.rules, v.rules))
        self.ready = False

    @property
    def recommenders(self) -> list[Recommender]:
        seen: dict[int, Recommender] = {}
        for arm in self.arms.values():
            seen.setdefault(id(arm.recommender), arm.recommender)
        return list(seen.values())

    def warm_up(self) -> None:
        """Lay the store's live catalogue over the bundles, then answer one request per arm so that
        the first real request is as fast as the others."""
        self.sync_catalog()
        for arm in self.arms.values():
            rec = arm.recommender
            some = [str(x) for x in rec.item_ids[: min(5, rec.n_items)]]
            rec.recommend(RecommendRequest.from_items(some, k=min(10, rec.n_items)), arm.rules)
            rec.recommend(RecommendRequest(k=min(10, rec.n_items), consent=False), arm.rules)
        self.ready = True

    def pseudonym(self, request: RecommendRequest) -> str | None:
        if not request.consent or not request.user_id:
            return None
        return pseudonymise(str(request.user_id), self._key)

    def recommend(
        self,
        request: RecommendRequest,
        request_id: str | None = None,
        catalog_version: int | None = None,
        pseudonym: str | None = None,
        impression: bool = True,
    ) -> tuple[RecommendResult, dict[str, Any]]:
        """The answer and the log fields describing it (safe to log: no personal data).
        ``catalog_version``: the store's, if already read in this request's round trip;
        ``pseudonym``: the customer's, when the caller has it instead of a raw ``user_id``;
        ``impression``: store the answer as an impression (when the service keeps them)."""
        self.sync_catalog(catalog_version)
        if pseudonym is None or not request.consent:
            pseudonym = self.pseudonym(request)
        request = dataclasses.replace(request, user_id=None)
        variant, assigned = self.assigner.assign(pseudonym)
        arm = self.arms[variant.name]
        result = arm.recommender.recommend(request, arm.rules, online=self.store)
        result.variant = variant.name
        result.actions = fire_actions(self.actions, result.abandonment_risk, result.cart_value)
        result.request_id = request_id = request_id or uuid.uuid4().hex
        if impression:
            now = int(time.time() * 1000) if request.now_ms is None else int(request.now_ms)
            self._record(result, request.context.type, now, assigned, pseudonym if request.consent else None)
        del pseudonym
        self.metrics.variants[variant.name] += 1
        if result.fallback:
            self.metrics.fallbacks[result.fallback] += 1
        if result.warnings:
            self.metrics.warnings += 1
        fields = {
            "event": "impression",
            "request_id": request_id,
            "experiment": self.experiment.name,
            "variant": variant.name,
            "assigned": assigned,
            "bundle_version": result.bundle_version,
            "context": request.context.type,
            "consent": bool(request.consent),
            "personalised": result.personalised,
            "segment": result.segment,
            "fallback": result.fallback,
            "k": request.k,
            "n_items": len(result.items),
            "n_warnings": len(result.warnings),
            "n_explore": sum(1 for r in result.items if r.reason == "explore"),
        }
        if result.abandonment_risk is not None:
            fields.update(abandonment_risk=round(result.abandonment_risk, 4), actions=result.actions)
        return result, fields

    # ------------------------------------------------------------------ the feedback loop
    def _record(
        self, result: RecommendResult, context: str, now_ms: int, assigned: bool = False, subject: str | None = None
    ) -> None:
        """Store the answer as an impression (before it is returned: a reaction may follow at once)."""
        if not self.impressions or self.store is None or result.request_id is None:
            return
        items = tuple(r.item_id for r in result.items)
        rec = self.arms[result.variant].recommender if result.variant in self.arms else self.default
        groups = tuple(rec.groups_of([rec.internal_id(i) or 0 for i in items]))
        explore = tuple(j for j, r in enumerate(result.items) if r.reason == "explore")
        self.store.record_impressions(
            [
                Impression(
                    result.request_id,
                    now_ms,
                    items,
                    context,
                    self.experiment.name,
                    result.variant or "",
                    assigned,
                    result.bundle_version,
                    result.segment,
                    explore,
                    subject,
                    groups,
                )
            ],
            now_ms,
        )

    def feedback(
        self, request_id: str, item_id: str, kind: str, timestamp_ms: int | None = None, now_ms: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Attribute one reaction to the list it names: (HTTP status, answer); see FEEDBACK_STATUS.
        ``timestamp_ms``: when it happened (default ``now_ms``); ``now_ms``: the clock (default: the wall's)."""
        store = self._require_store()
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        t = now if timestamp_ms is None else int(timestamp_ms)
        (out,) = store.react([Reaction(request_id, str(item_id), kind, t)], now)
        self.metrics.feedback[out.outcome] += 1
        answer: dict[str, Any] = {"attributed": out.outcome == "attributed", "outcome": out.outcome}
        if out.position is not None:
            answer.update(position=out.position, context=out.context, variant=out.variant)
        if out.outcome in _FEEDBACK_WHY:
            answer["detail" if FEEDBACK_STATUS[out.outcome] >= 400 else "warning"] = _FEEDBACK_WHY[out.outcome]
        return FEEDBACK_STATUS[out.outcome], answer

    def ab_report(
        self, experiment: str | None = None, control: str | None = None, alpha: float = 0.05
    ) -> dict[str, Any]:
        """CTR, add-to-cart and conversion per variant from the stored impressions and reactions
        (serving/abstats.py: Wilson intervals, lift with its interval). Raises LookupError when the
        experiment has no assigned impressions yet, ValueError for an unknown control."""
        name = experiment or self.experiment.name
        counts = self._require_store().ab_counts(name)
        unassigned = sum(m.get("impressions", 0) for (_, a), m in counts.items() if not a)
        per_variant = store_counts(counts)
        if not per_variant:
            raise LookupError(
                f"no list of experiment {name!r} shown to an identified customer is stored yet "
                f"({unassigned} to customers without an id or consent, which are not compared)"
            )
        out = ab_figures(per_variant, control, alpha)
        return {"experiment": name, "source": "journey store", "unassigned_impressions": unassigned, **out}

    def online_stats(self, context: str, n: int = 10, now_ms: int | None = None) -> dict[str, Any]:
        """What the store's online statistics say now (every replica reads the same)."""
        store = self._require_store()
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        tr = store.trending(now, n, context)
        slots = store.slot_ctr(context)
        return {
            "context": context,
            "trending": [{"item_id": i, "score": round(float(v), 6)} for i, v in zip(tr.items, tr.scores)],
            "popular_in_context": [
                {"item_id": i, "score": round(float(v), 6)} for i, v in zip(tr.context_items, tr.context_scores)
            ],
            "slots": [
                {
                    "position": x.position,
                    "impressions": x.impressions,
                    "clicks": x.clicks,
                    "ctr": x.clicks / x.impressions if x.impressions else None,
                }
                for x in slots
            ],
            "impressions": sum(x.impressions for x in slots),
            "clicks": sum(x.clicks for x in slots),
        }

    # ------------------------------------------------------------------ the live knowledge base
    def _require_store(self) -> JourneyStore:
        if self.store is None:
            raise LookupError("this service runs without a journey store (start it with store=sqlite or store=redis)")
        return self.store

    def _pseudonym(self, raw: str, anonymous: bool = False) -> str:
        return pseudonymise((ANONYMOUS_NAMESPACE if anonymous else "") + raw, self._key)

    def sync_catalog(self, version: int | None = None) -> dict[str, str]:
        """Lay the store's live catalogue changes since the last sync over every bundle served.
        Returns the vector source of each new item (see Recommender.apply_live)."""
        if self.store is None:
            return {}
        if version is None:
            version = self.store.catalog_version()
        if version == self._catalog_seen:
            return {}
        changes = self.store.catalog_since(self._catalog_seen)
        sources: dict[str, str] = {}
        for rec in self.recommenders:
            sources.update(rec.apply_live(changes.items))
        self._catalog_seen = changes.version
        return sources

    def intake(self, records: list[Any], now_ms: int | None = None) -> dict[str, Any]:
        """Validate, pseudonymise and store a batch of events (one transaction). The answer says
        which were stored, which rejected (index, reason, detail) and which accepted but not
        stored (opted-out customers, older than retention)."""
        store = self._require_store()
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        checked = validate_records(records)
        table = checked.events
        ts = table.column("timestamp").cast(pa.int64()).to_pylist()
        arrivals = []
        for j, row in enumerate(
            table.select(
                ["user_id", "session_id", "item_id", "event_type", "channel", "query", "filters", "price", "quantity"]
            ).to_pylist()
        ):
            event = StoredEvent(
                row["event_type"],
                row["channel"],
                int(ts[j]),
                row["item_id"],
                self._pseudonym(row["session_id"]) if row["session_id"] else None,
                row["query"],
                row["filters"],
                row["price"],
                row["quantity"],
            )
            anonymous = checked.anonymous[j]
            arrivals.append(
                Arrival(
                    event,
                    self._pseudonym(row["user_id"]) if checked.customer[j] else None,
                    self._pseudonym(anonymous, anonymous=True) if anonymous else None,
                )
            )
        del table, records
        result = store.append(arrivals, now)
        at = checked.indices
        answer = {
            "received": len(at) + len(checked.rejected),
            "stored": len(result.stored),
            "rejected": [{"index": r.index, "reason": r.reason, "detail": r.detail} for r in checked.rejected],
            "not_stored": {"opted_out": [at[i] for i in result.opted_out], "expired": [at[i] for i in result.expired]},
            "attributed": len(result.attributed),
        }
        self.metrics.feedback["event"] += len(result.attributed)
        self.metrics.intake["stored"] += len(result.stored)
        self.metrics.intake["rejected"] += len(checked.rejected)
        self.metrics.intake["opted_out"] += len(result.opted_out)
        self.metrics.intake["expired"] += len(result.expired)
        return answer

    def identify(self, anonymous_id: str, customer_id: str, now_ms: int | None = None) -> dict[str, Any]:
        store = self._require_store()
        now = int(time.time() * 1000) if now_ms is None else int(now_ms)
        moved = store.link(self._pseudonym(anonymous_id, anonymous=True), self._pseudonym(customer_id), now)
        return {"linked": True, "events_moved": moved}

    def set_consent(self, customer_id: str, personalisation: bool) -> dict[str, Any]:
        deleted = self._require_store().set_consent(self._pseudonym(customer_id), bool(personalisation))
        return {"personalisation": bool(personalisation), "events_deleted": deleted}

    def forget(self, customer_id: str) -> dict[str, Any]:
        return {"forgotten": True, "events_deleted": self._require_store().forget(self._pseudonym(customer_id))}

    def put_items(self, items: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Store live catalogue changes and apply them here at once (other replicas: on their next request)."""
        store = self._require_store()
        version = store.put_items(items)
        sources = self.sync_catalog(version)
        rec = self.default
        bundle = [k for k in items if rec.in_bundle(k)]
        return {
            "version": version,
            "updated": sorted(bundle),
            "new": {
                k: {"vector": sources.get(k) or rec.vector_source(k) or "none"} for k in items if k not in set(bundle)
            },
        }

    def recommend_customer(
        self,
        customer_id: str,
        request: RecommendRequest,
        use_search_filters: bool = True,
        request_id: str | None = None,
    ) -> tuple[RecommendResult, dict[str, Any]]:
        """Recommendations for a customer by id: the stored journey (recent events and older
        purchases) followed by the request's own events, the last search's filters where the
        context carries them, through :meth:`recommend`."""
        return self.recommend_pseudonym(self._pseudonym(customer_id), request, use_search_filters, request_id)

    def recommend_pseudonym(
        self,
        pseudonym: str,
        request: RecommendRequest,
        use_search_filters: bool = True,
        request_id: str | None = None,
        impression: bool = True,
    ) -> tuple[RecommendResult, dict[str, Any]]:
        """:meth:`recommend_customer` for a customer known by pseudonym only (the batch over the store,
        which stores no impressions: ``impression=False``)."""
        store = self._require_store()
        now = int(time.time() * 1000) if request.now_ms is None else int(request.now_ms)
        journey = store.journey(pseudonym, now)
        warnings: list[str] = []
        ctx_cfg = self.contexts.get(request.context.type, ContextConfig())
        filters = dict(request.filters)
        consent = request.consent and journey.consent is not False
        if not journey.known and consent:
            warnings.append("customer unknown to the store: only the request's events (if any) are personal")
        events = (
            [Event(e.item_id, e.event_type, e.channel, e.timestamp_ms) for e in journey.timeline()] if consent else []
        )
        search = journey.last_search
        if (
            consent
            and use_search_filters
            and ctx_cfg.search_filters
            and search is not None
            and search.filters
            and now - search.timestamp_ms <= ctx_cfg.search_filters_minutes * 60_000
        ):
            carried = json.loads(search.filters)
            usable = set(Catalog.filterable_attributes())
            filters = {**{k: v for k, v in carried.items() if k in usable}, **filters}
            dropped = sorted(set(carried) - usable)
            if dropped:
                warnings.append(f"search filter(s) {dropped} are not catalogue attributes; not applied")
        stored = len(events)
        full = dataclasses.replace(
            request,
            events=[*events, *request.events] if consent else [],
            filters=filters,
            consent=consent,
            user_id=None,
            now_ms=now,
        )
        result, fields = self.recommend(
            full, request_id, catalog_version=journey.catalog_version, pseudonym=pseudonym, impression=impression
        )
        result.warnings = warnings + result.warnings
        fields.update(
            source="customer", stored_events=stored, search_filters=bool(filters) and filters != dict(request.filters)
        )
        return result, fields

    def arm_for_items(self) -> _Arm:
        """Item-to-item endpoints carry no user: they use the first variant."""
        return next(iter(self.arms.values()))

    def similar(
        self, item_id: str, k: int, filters: Mapping[str, Any] | None = None, request_id: str | None = None
    ) -> RecommendResult:
        """Embedding neighbours of an item (stored as an impression of the product page)."""
        return self._items("similar", "product_page", item_id, k, filters, request_id)

    def complements(
        self, item_id: str, k: int, filters: Mapping[str, Any] | None = None, request_id: str | None = None
    ) -> RecommendResult:
        """What goes with an item (stored as an impression of the cart)."""
        return self._items("complements", "cart", item_id, k, filters, request_id)

    def _items(
        self, kind: str, context: str, item_id: str, k: int, filters: Mapping[str, Any] | None, request_id: str | None
    ) -> RecommendResult:
        self.sync_catalog()
        arm = self.arm_for_items()
        result: RecommendResult = getattr(arm.recommender, kind)(item_id, k, filters, arm.rules)
        result.variant = arm.variant.name
        result.request_id = request_id or uuid.uuid4().hex
        self._record(result, context, int(time.time() * 1000))
        return result
