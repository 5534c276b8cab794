"""The Recommender: a bundle loaded for serving, and the request pipeline.

Imports torch, FAISS, NumPy and Arrow only (no Lightning, no MLflow), so a service starts fast.

``recommend(request)``, personal path (consent and at least one known item)::

    encode the session (traced model)                       -> query vector, optional P(purchase)
    eligibility: filters & stock & not seen & repeat policy -> boolean mask over items
    retrieve with over-fetch (post-filter) or IDSelector pre-filter -> candidate pool
    + complements of purchased / carted items, + consumables due again
    relevance = model score scaled to [0, 1] over the pool; + strategy boosts, complement and
      replenishment bonuses
    MMR diversity by category -> top k; epsilon of the slots to exploration (a Thompson-sampling
      bandit over the unshown candidates and trending items: :mod:`journeyrec.serving.exploration`),
      at random positions, in place of the list's last items; a reason per item

Non-personal path (no consent, or nothing known in the session): the same filters, stock,
boosts and diversity over similar items of the product page, the context category's trending
items and trending items overall. It never reads the request's events or user id.

Online statistics (``online``, the journey store: :mod:`journeyrec.serving.online`): trending is
the bundle's statistic decayed from the end of its data plus the store's live counts (and, per
context, the reactions to that touchpoint's lists; :func:`journeyrec.serving.online.trending_now`);
the bandit reads each candidate's clicks and impressions in the context. Without a store,
trending is the bundle's and the bandit has only its prior. The customer's segment
(:mod:`journeyrec.serving.segments`) is computed from the request's purchases, picks the
context's per-segment rules and is returned with the answer.

Scores: a list is ordered by its items' ``score``, the blended score the order follows (relevance
+ rule bonuses, less the diversity penalty; personal answers in the model's score units), and a
personal item also carries ``model_score``, the model's own session . item score.

Cart and checkout requests (personal path) also get the session's cart-abandonment risk and its
cart value (:mod:`journeyrec.serving.abandonment`; the Service turns them into actions).

Live catalogue (:meth:`Recommender.apply_live`): stock, price and attribute changes and new items
on top of the bundle, which stays as exported. New items get vectors from their attributes
(:mod:`journeyrec.serving.live`) and are scored exactly beside the index; the session encoder
reads the bundle's items only (a new item in a session still counts for the rules).

A request's events become arrays in :mod:`journeyrec.serving.request_events`; the live layer
is :class:`journeyrec.serving.live.LiveLayer`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import faiss
import numpy as np
import pyarrow as pa
import torch

from journeyrec.bundle.format import Bundle, read_bundle
from journeyrec.bundle.stats import RuleStats
from journeyrec.data.schema import CHANNEL_CODE, EVENT_CODE
from journeyrec.models.protocol import EmbeddingModel
from journeyrec.models.transitions import Transitions
from journeyrec.serving.abandonment import CartRisk
from journeyrec.serving.catalog import Catalog, FilterError
from journeyrec.serving.encoder import SessionEncoder
from journeyrec.serving.exploration import bandit_picks, random_picks, take_slots
from journeyrec.serving.live import LiveLayer
from journeyrec.serving.online import OnlineStats, trending_now
from journeyrec.serving.request import Recommendation, RecommendRequest, RecommendResult, check_ms
from journeyrec.serving.request_events import EventParser
from journeyrec.serving.retrieval import Retriever
from journeyrec.serving.rules import (
    PreparedRules,
    RepeatPolicy,
    exploration_slots,
    first_occurrences,
    minmax,
    mmr_scores,
    session_complements,
)
from journeyrec.serving.segments import rfm_segment
from journeyrec.serving.settings import CONTEXT_TYPES, RISK_CONTEXTS, SEGMENTS, RulesConfig, SegmentsConfig, merge_rules

__all__ = ["Recommender", "Recommendation", "RecommendResult", "RecommendRequest", "FilterError"]


class Recommender:
    """A loaded bundle that answers recommendation, similar-item and complement requests."""

    def __init__(
        self,
        bundle_dir: Path,
        manifest: dict[str, Any],
        model: EmbeddingModel,
        index: faiss.Index,
        vectors: np.ndarray,
        catalog: Any,
        stats: RuleStats,
        rules: RulesConfig | None = None,
        contexts: Mapping[str, Mapping[str, Any]] | None = None,
        trace: bool = True,
        dedup_consecutive: bool = False,
        segment_rules: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        segments: SegmentsConfig | None = None,
        transitions: Transitions | None = None,
    ) -> None:
        self.train_config: dict[str, Any] = {}  # the bundle's training configuration (set by load)
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.bundle_version = str(manifest.get("bundle_version", ""))
        self.model = model
        self.index = index
        self.transitions = transitions  # counts added to the model's scores (the bundle's blend), if any
        self.encoder = SessionEncoder(model, dedup_consecutive=dedup_consecutive, trace=trace)
        self.cart_risk = CartRisk(None, self.encoder.has_intent)  # from_bundle sets the bundle's abandonment model
        self.rules = rules or RulesConfig()
        unknown = sorted(set(contexts or {}) - set(CONTEXT_TYPES))
        if unknown:
            raise ValueError(f"rule overrides for unknown context type(s) {unknown}; allowed: {list(CONTEXT_TYPES)}")
        self.context_overrides = {k: dict(v) for k, v in (contexts or {}).items()}
        unknown = sorted(set(segment_rules or {}) - set(CONTEXT_TYPES))
        unknown_segments = sorted({s for v in (segment_rules or {}).values() for s in v} - set(SEGMENTS))
        if unknown or unknown_segments:
            raise ValueError(
                f"segment rules for unknown context type(s) {unknown} or segment(s) {unknown_segments}; "
                f"allowed: {list(CONTEXT_TYPES)} and {list(SEGMENTS)}"
            )
        self.segment_overrides = {c: {g: dict(r) for g, r in v.items()} for c, v in (segment_rules or {}).items()}
        self.segments = segments or SegmentsConfig()
        self._rng = np.random.default_rng(self.rules.seed)
        self._prepared: dict[tuple[int, str, str | None], tuple[RulesConfig, PreparedRules]] = {}
        # the bundle as exported; the live layer (apply_live) is kept apart and laid over it
        self.live = LiveLayer(model, catalog, vectors, stats)
        self.n_bundle = self.live.n_bundle  # rows 1..n_bundle: the bundle's items
        self.exposure = np.zeros(catalog.num_rows + 1, dtype=np.int64)  # how often each item was shown
        self._set_catalog(catalog, self.live.vectors, stats, np.zeros(catalog.num_rows + 1, bool))

    def _set_catalog(
        self,
        catalog: pa.Table,
        vectors: np.ndarray,
        stats: RuleStats,
        is_new: np.ndarray,
        servable: np.ndarray | None = None,
    ) -> None:
        """Every per-item array, for a catalogue whose first ``n_bundle`` rows are the bundle's."""
        self.catalog = catalog  # the catalogue (pyarrow Table, row i = internal id i + 1), live changes included
        self.attrs = Catalog(catalog)
        self.item_ids = np.asarray(catalog.column("item_id").to_pylist(), dtype=object)
        self._index_of = {str(x): i + 1 for i, x in enumerate(self.item_ids)}
        self.event_parser = EventParser(self._index_of)
        # external id string by internal id (row 0: padding), a plain list: formatting a response
        # indexes it ~40 times per request, where object-array indexing + str() costs 3x more
        self._ext_ids: list[str] = [""] + [str(x) for x in self.item_ids]
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)
        self._unit_t = torch.from_numpy(self.unit)  # catalogue-wide products go through torch (see _cosine_all)
        self.retriever = Retriever(self.index, self.vectors, n_indexed=self.n_bundle)
        self.stats = stats
        self.policy = RepeatPolicy(self.attrs, stats)
        self.is_new = is_new
        self.servable = (
            np.ones(self.attrs.n, bool) if servable is None else servable
        )  # False: a new item without a vector
        self._update_stock()
        self.trending_order = np.argsort(-stats.trending[1:], kind="stable") + 1
        if len(self.exposure) < self.attrs.n:
            self.exposure = np.concatenate([self.exposure, np.zeros(self.attrs.n - len(self.exposure), np.int64)])
        self._prepared.clear()

    def reset_exploration(self, seed: int | None) -> None:
        """Exploration's memory as at load (no exposure counted) and its randomness from ``seed``:
        a replay starts every rule configuration alike (:mod:`journeyrec.serving.replay`)."""
        self.exposure[:] = 0
        self._rng = np.random.default_rng(seed)

    def _update_stock(self) -> None:
        in_stock = self.attrs.bools("in_stock")
        self.stock_ok = (in_stock != 0) & self.attrs.all & self.servable

    # ------------------------------------------------------------------ live catalogue
    def apply_live(self, items: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Lay changed live records (item id -> every live field of the item, as the store merges
        them) over the bundle; from the next request on they are what is served. Returns, per new
        item, where its vector came from (:data:`journeyrec.serving.live.VECTOR_SOURCES`).

        Stock and price changes of bundle items are written into the attribute arrays; anything
        else (other attributes, new items) rebuilds the per-item arrays from the bundle plus the
        whole live layer."""
        if not items:
            return {}
        self.live.add(items)
        if self.live.write_in_place(items, self._index_of, self.attrs):
            self._update_stock()
            self._prepared.clear()  # boosts may read price or stock
            return {}
        rebuilt = self.live.rebuild()
        self._set_catalog(rebuilt.table, rebuilt.vectors, rebuilt.stats, rebuilt.is_new, rebuilt.servable)
        return rebuilt.sources

    def groups_of(self, rows: Sequence[int]) -> list[str]:
        """Each item's group for the online click-through statistics: its category ("" if none)."""
        value = self.attrs.value
        return [value("category", int(i)) or "" for i in rows]

    def vector_source(self, item_id: str) -> str | None:
        """Where a live item's vector came from (``live.VECTOR_SOURCES``); None for bundle items."""
        return self.live.vector_source(item_id)

    def item_info(self, i: int) -> dict[str, Any]:
        """The catalogue fields a page shows for internal id ``i`` (live values)."""
        a = self.attrs
        stock = int(a.bools("in_stock")[i])
        price = float(a.numbers("price")[i])
        return {
            "title": a.value("title", i),
            "category": a.value("category", i),
            "price": None if price != price else price,
            "in_stock": None if stock < 0 else bool(stock),
        }

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        bundle_dir: str | Path,
        rules: RulesConfig | None = None,
        contexts: Mapping[str, Mapping[str, Any]] | None = None,
        verify: bool = True,
        trace: bool = True,
        segment_rules: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        segments: SegmentsConfig | None = None,
    ) -> Recommender:
        """Load and verify a bundle (format version, checksums); raises BundleError if damaged.
        ``segment_rules``: context type -> segment -> rule overrides (on top of the context's)."""
        return cls.from_bundle(read_bundle(bundle_dir, verify=verify), rules, contexts, trace, segment_rules, segments)

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        rules: RulesConfig | None = None,
        contexts: Mapping[str, Mapping[str, Any]] | None = None,
        trace: bool = True,
        segment_rules: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        segments: SegmentsConfig | None = None,
    ) -> Recommender:
        """Serve an already loaded bundle."""
        dedup = bool((bundle.config.get("data") or {}).get("dedup_consecutive", False))
        rec = cls(
            bundle.directory,
            bundle.manifest,
            bundle.model,
            bundle.index,
            bundle.vectors,
            bundle.catalog,
            bundle.stats,
            rules,
            contexts,
            trace,
            dedup,
            segment_rules,
            segments,
            bundle.transitions,
        )
        rec.train_config = bundle.config
        rec.cart_risk = CartRisk(bundle.abandonment, rec.encoder.has_intent)
        return rec

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def internal_id(self, item_id: str) -> int | None:
        """Internal (1-based) id of an external item id, None if unknown."""
        return self._index_of.get(str(item_id))

    def in_bundle(self, item_id: str) -> bool:
        """Whether ``item_id`` is one of the bundle's items (not unknown, not added live)."""
        return self.live.in_bundle(self.internal_id(item_id))

    def _ext(self, i: int) -> str:
        return self._ext_ids[i]

    def _rules_for(self, rules: RulesConfig | None, context: str, segment: str | None = None) -> PreparedRules:
        base = rules or self.rules
        key = (id(base), context, segment)
        hit = self._prepared.get(key)
        if hit is not None and hit[0] is base:
            return hit[1]
        effective = merge_rules(base, self.context_overrides.get(context))
        if segment is not None:
            effective = merge_rules(effective, self.segment_overrides.get(context, {}).get(segment))
        prepared = PreparedRules(effective, self.attrs)
        self._prepared[key] = (base, prepared)
        return prepared

    def _cosine_all(self, item: int) -> np.ndarray:
        """Cosine of every item with ``item``. A torch matvec, which follows torch's thread
        setting: NumPy's multi-threaded OpenBLAS took ~8 ms for this 12k x 64 product on a busy
        2-core machine, against ~0.1 ms single-threaded."""
        return (self._unit_t @ self._unit_t[item]).numpy()

    def _base_mask(self, filters: Mapping[str, Any] | None, rules: RulesConfig) -> np.ndarray:
        m = self.attrs.mask(filters)
        return m & self.stock_ok if rules.in_stock_only else m & self.servable

    # ------------------------------------------------------------------ recommendations
    def recommend(
        self, request: RecommendRequest, rules: RulesConfig | None = None, online: OnlineStats | None = None
    ) -> RecommendResult:
        """Top-k items for a request (see the module docstring for the pipeline).

        ``rules`` replaces the Recommender's rules for this call (A/B variants); the request's
        context type may further override some of them (``contexts`` at load), and the customer's
        segment some more (``segment_rules``). ``online``: the store's live statistics.
        Raises ValueError (FilterError) on an invalid k, filter, event type or channel.
        """
        k = request.k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        now = check_ms(request.now_ms, "now_ms") if request.now_ms is not None else int(time.time() * 1000)
        if not request.consent:
            prep = self._rules_for(rules, request.context.type, "anonymous")
            result = self._nonpersonal(request, prep, "no_consent", [], now, online)
            result.segment = "anonymous"
            return self.add_item_info(result) if request.item_fields else result
        items, etypes, chans, ts, warnings = self.event_parser.parse(request.events, now)
        bought = etypes == EVENT_CODE["purchase"]
        segment = rfm_segment(ts[bought], self.attrs.numbers("price")[items[bought]], now, self.segments)
        prep = self._rules_for(rules, request.context.type, segment)
        ctx = request.context
        if ctx.type == "product_page" and ctx.item_id is not None:
            page = self.internal_id(ctx.item_id)
            if page is None:
                warnings.append(f"context item_id {ctx.item_id!r} is unknown; ignored")
            elif not len(items) or items[-1] != page:  # the page being viewed is the newest event
                items = np.append(items, page)
                etypes = np.append(etypes, EVENT_CODE["view"])
                chans = np.append(chans, chans[-1] if len(chans) else CHANNEL_CODE["web"])
                ts = np.append(ts, now)
        if not len(items):
            warnings.append(
                "no known item in the events: non-personal recommendations"
                if request.events
                else "no events: non-personal recommendations"
            )
            result = self._nonpersonal(request, prep, "no_history", warnings, now, online)
        else:
            result = self._personal(request, prep, items, etypes, chans, ts, warnings, now, online)
            if ctx.type in RISK_CONTEXTS:
                result.abandonment_risk, result.cart_value = self.cart_risk.score(
                    items, etypes, chans, ts, self.item_ids, self.catalog, self.attrs.numbers("price"), result.intent
                )
        result.segment = segment
        return self.add_item_info(result) if request.item_fields else result

    def add_item_info(self, result: RecommendResult) -> RecommendResult:
        """Fill each item's catalogue fields (live values) into ``Recommendation.info``."""
        for r in result.items:
            r.info = self.item_info(self._index_of[r.item_id])
        return result

    def _personal(
        self,
        request: RecommendRequest,
        prep: PreparedRules,
        items: np.ndarray,
        etypes: np.ndarray,
        chans: np.ndarray,
        ts: np.ndarray,
        warnings: list[str],
        now: int,
        online: OnlineStats | None = None,
    ) -> RecommendResult:
        rules, k = prep.rules, request.k
        known = items <= self.n_bundle  # live items added after export are not in the model's table
        if not known.all():
            if not known.any():
                warnings.append(
                    "only items added after the bundle's export in the events: non-personal recommendations"
                )
                return self._nonpersonal(request, prep, "no_history", warnings, now, online)
            query, intent = self.encoder.encode(items[known], etypes[known], chans[known], ts[known])
        else:
            query, intent = self.encoder.encode(items, etypes, chans, ts)
        base = self._base_mask(request.filters, rules)
        eligible = base.copy()
        bought = etypes == EVENT_CODE["purchase"]
        decision = self.policy.decide(items[bought], ts[bought], now, rules)
        if len(decision.excluded_groups):
            lut = np.zeros(int(self.policy.groups.max()) + 1, dtype=bool)
            lut[decision.excluded_groups] = True
            eligible &= ~lut[self.policy.groups]
        if rules.exclude_seen:
            eligible[items] = False
        eligible[decision.excluded_items] = False
        due = decision.due_items[base[decision.due_items]]
        eligible[due] = True
        n_eligible = int(np.count_nonzero(eligible))
        if n_eligible < k:
            warnings.append(f"only {n_eligible} item(s) satisfy the filters and rules (k = {k})")
        pool_n = max(rules.overfetch * k, k + 20)
        ids, scores = self.retriever.search(query, pool_n, eligible, n_eligible, rules.prefilter_below)
        # the bundle's transition blend: the items that followed the session's last items, with
        # their bonus. The bonus is >= 0 and 0 elsewhere, so the index's best by dot product plus
        # these hold the best of the blend; the pool keeps its pool_n best
        blend_ids, blend_bonus = self._transition_bonus(items[known], etypes[known], eligible)
        if len(blend_ids):
            ids = first_occurrences(np.concatenate([ids, blend_ids]))
            scores = self.vectors[ids] @ query + self._lookup(ids, blend_ids, blend_bonus)
            if len(ids) > pool_n:
                best = np.argpartition(-scores, pool_n - 1)[:pool_n]
                ids, scores = ids[best], scores[best]
        n_retrieved = len(ids)
        lo, hi = (float(scores.min()), float(scores.max())) if n_retrieved else (0.0, 1.0)

        # complements of the session's purchases / carts, and consumables due again
        comp_ids, comp_bonus, comp_anchor = session_complements(self.stats, items, etypes, eligible, rules)
        extra = np.concatenate([comp_ids, due]).astype(np.int64)
        if len(extra):
            cand = first_occurrences(np.concatenate([ids, extra]))
            scores = self.vectors[cand] @ query + self._lookup(cand, blend_ids, blend_bonus)
        else:
            cand = ids
        rel = np.clip((scores - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.ones(len(cand), np.float32)
        final = rel.astype(np.float32) + prep.boost[cand]
        reason_of: dict[int, str | int] = {}
        if len(extra):
            # position in cand of each extra item (cand is duplicate-free): a sorted lookup over
            # the ~100 candidates rather than a catalogue-size position array per request
            sorter = np.argsort(cand, kind="stable")
            comp_slot = sorter[np.searchsorted(cand, comp_ids, sorter=sorter)]
            due_slot = sorter[np.searchsorted(cand, due, sorter=sorter)]
            if len(comp_ids):
                np.maximum.at(final, comp_slot, final[comp_slot] + comp_bonus)
                for c, a in zip(comp_ids.tolist(), comp_anchor.tolist()):
                    reason_of.setdefault(c, a)  # the anchor's id; formatted below for chosen items only
            if len(due):
                final[due_slot] += rules.replenish_weight
                for d in due.tolist():
                    reason_of[d] = "buy again"
        order, blended = mmr_scores(final, prep.groups[cand], rules.diversity_lambda)
        chosen = cand[order[:k]]
        chosen_scores = blended[order[:k]]
        ext = self._ext_ids
        reasons: list[str | None] = []
        for i in chosen.tolist():
            r = reason_of.get(i)
            reasons.append(f"goes with {ext[r]}" if isinstance(r, int) else r)

        slots = exploration_slots(len(chosen), rules.epsilon, self._rng)
        if len(slots):
            rest, context = cand[order[k:]], request.context.type
            trending, _ = trending_now(
                online, now, context, self.stats.trending, self.trending_order, self.stats.data_end_ms, self._index_of
            )
            if rules.exploration == "bandit":
                picks = bandit_picks(
                    len(slots), eligible, chosen, rest, trending, rules, context, online, ext, self.groups_of, self._rng
                )
            else:
                picks = random_picks(len(slots), eligible, chosen, rest, rules, trending, self.exposure, self._rng)
            chosen, reasons = take_slots(chosen, reasons, slots, picks)
        self._similar_reasons(chosen, reasons, items)
        self.exposure[chosen] += 1
        # report in the model's score units: the model score plus rule bonuses x the pool's score range
        reported = lo + chosen_scores * (hi - lo) if hi > lo else lo + chosen_scores - 1.0
        model_scores = (self.vectors[chosen] @ query + self._lookup(chosen, blend_ids, blend_bonus)).tolist()
        is_new = self.is_new
        out = [
            Recommendation(ext[i], s, r or "", m, bool(is_new[i]))
            for i, s, r, m in zip(chosen.tolist(), reported.tolist(), reasons, model_scores)
        ]
        return RecommendResult(out, warnings, personalised=True, intent=intent, bundle_version=self.bundle_version)

    def _transition_bonus(
        self, items: np.ndarray, etypes: np.ndarray, eligible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Eligible items the bundle's transition counts lift after this session (the window the
        model reads: consecutive repeats collapsed when the bundle does), and their bonus."""
        if self.transitions is None or not len(items):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids, bonus = self.transitions.neighbours(self.encoder.session_items(items, etypes))
        keep = eligible[ids]
        return ids[keep], bonus[keep]

    @staticmethod
    def _lookup(cand: np.ndarray, ids: np.ndarray, bonus: np.ndarray) -> np.ndarray | float:
        """The bonus of each of ``cand`` (0 for items not in ``ids``, which is sorted)."""
        if not len(ids):
            return 0.0
        at = np.minimum(np.searchsorted(ids, cand), len(ids) - 1)
        return np.where(ids[at] == cand, bonus[at], 0.0).astype(np.float32)

    def _similar_reasons(self, chosen: np.ndarray, reasons: list[str | None], session: np.ndarray) -> None:
        missing = [j for j, r in enumerate(reasons) if r is None]
        if not missing or not len(session):
            return
        recent = first_occurrences(session[::-1])[:50]
        sims = self.unit[chosen[missing]] @ self.unit[recent].T
        best = recent[np.argmax(sims, axis=1)].tolist()
        ext = self._ext_ids
        own, anchor = self.groups_of(chosen[missing].tolist()), self.groups_of(best)
        for j, b, mine, theirs in zip(missing, best, own, anchor):
            # an item of its anchor's category is like it; one of another category is where journeys
            # went after it (a phone case after a phone), which "similar to" would misname
            word = "after" if mine and theirs and mine != theirs else "similar to"
            reasons[j] = f"{word} {ext[b]}"

    # ------------------------------------------------------------------ non-personal
    def _nonpersonal(
        self,
        request: RecommendRequest,
        prep: PreparedRules,
        fallback: str,
        warnings: list[str],
        now: int,
        online: OnlineStats | None = None,
    ) -> RecommendResult:
        """Similar to the product page, popular in the context's category, trending: never the
        request's events or user id. Relevance is the source's score scaled to [0, 1] plus 2
        (similar), 1 (popular in category) or 0 (trending), so sources fill the list in that order
        unless boosts or diversity say otherwise."""
        rules, k, ctx = prep.rules, request.k, request.context
        eligible = self._base_mask(request.filters, rules)
        pool_n = max(rules.overfetch * k, k + 20)
        parts: list[tuple[np.ndarray, np.ndarray, str]] = []  # (ids, relevance, reason)
        page = self.internal_id(ctx.item_id) if ctx.item_id is not None else None
        category = ctx.category
        if page is not None:
            eligible[page] = False
            cand = np.flatnonzero(eligible)
            sims = self._cosine_all(page)[cand]
            top = (
                np.argpartition(-sims, min(pool_n, len(cand)) - 1)[:pool_n]
                if len(cand) > pool_n
                else np.arange(len(cand))
            )
            parts.append((cand[top], minmax(sims[top]) + 2.0, f"similar to {ctx.item_id}"))
            category = category or self.attrs.value("category", page)
        elif ctx.item_id is not None:
            warnings.append(f"context item_id {ctx.item_id!r} is unknown; ignored")
        trending_order, trend = trending_now(
            online, now, ctx.type, self.stats.trending, self.trending_order, self.stats.data_end_ms, self._index_of
        )
        ranked = trending_order[eligible[trending_order]]
        if category:
            in_cat = self.attrs.mask({"category": category})  # cached per category
            top = ranked[in_cat[ranked]][:pool_n]
            parts.append((top, minmax(np.log1p(trend[top])) + 1.0, f"popular in {category}"))
        top = ranked[:pool_n]
        parts.append((top, minmax(np.log1p(trend[top])), "trending"))
        cand = np.concatenate([p[0] for p in parts]).astype(np.int64)
        rel = np.concatenate([p[1] for p in parts]).astype(np.float32)
        source = np.concatenate([np.full(len(p[0]), j) for j, p in enumerate(parts)])
        _, first = np.unique(cand, return_index=True)  # an item keeps its best (first) source
        first = np.sort(first)
        cand, rel, source = cand[first], rel[first], source[first]
        final = rel + prep.boost[cand]
        order, blended = mmr_scores(final, prep.groups[cand], rules.diversity_lambda)
        order = order[:k]
        if len(order) < k:
            warnings.append(f"only {len(order)} item(s) satisfy the filters (k = {k})")
        out = [
            Recommendation(self._ext(int(i)), float(s), parts[int(j)][2], new=bool(self.is_new[i]))
            for i, s, j in zip(cand[order], blended[order], source[order])
        ]
        self.exposure[cand[order]] += 1
        return RecommendResult(out, warnings, personalised=False, fallback=fallback, bundle_version=self.bundle_version)

    # ------------------------------------------------------------------ item to item
    def similar(
        self, item_id: str, k: int = 10, filters: Mapping[str, Any] | None = None, rules: RulesConfig | None = None
    ) -> RecommendResult:
        """Embedding neighbours of one item (cosine similarity, exact), filtered and in stock."""
        i = self._require_item(item_id)
        prep = self._rules_for(rules, "product_page")
        eligible = self._base_mask(filters, prep.rules)
        eligible[i] = False
        cand = np.flatnonzero(eligible)
        sims = self._cosine_all(i)[cand]
        order = np.argsort(-sims, kind="stable")[:k]
        top, scores = cand[order], sims[order]
        out = [
            Recommendation(self._ext(int(t)), float(s), f"similar to {item_id}", new=bool(self.is_new[t]))
            for t, s in zip(top, scores)
        ]
        warnings = [] if len(out) == k else [f"only {len(out)} item(s) satisfy the filters (k = {k})"]
        return RecommendResult(out, warnings, bundle_version=self.bundle_version)

    def complements(
        self, item_id: str, k: int = 10, filters: Mapping[str, Any] | None = None, rules: RulesConfig | None = None
    ) -> RecommendResult:
        """Items bought or carted after this one by the same customers, other categories only."""
        i = self._require_item(item_id)
        prep = self._rules_for(rules, "cart")
        eligible = self._base_mask(filters, prep.rules)
        c, s = self.stats.complements(i)
        keep = eligible[c]
        c, s = c[keep][:k], s[keep][:k]
        out = [
            Recommendation(self._ext(int(t)), float(v), f"goes with {item_id}", new=bool(self.is_new[t]))
            for t, v in zip(c, s)
        ]
        warnings = (
            [] if len(out) == k else [f"{len(out)} complement(s) known for {item_id!r} under these filters (k = {k})"]
        )
        return RecommendResult(out, warnings, bundle_version=self.bundle_version)

    def _require_item(self, item_id: str) -> int:
        i = self.internal_id(item_id)
        if i is None:
            raise KeyError(f"unknown item_id {item_id!r}")
        return i
