"""The service behind the HTTP app: A/B variants over Recommenders, privacy on entry, metrics, logs.

``Service.recommend(request)`` is what ``POST /v1/recommendations`` runs:

1. on entry the raw user id is replaced by its pseudonym (``journeyrec.data.privacy``), and only
   when the request carries consent; the raw id goes no further than this function;
2. the pseudonym picks the A/B variant (``journeyrec.serving.ab``), i.e. a bundle and rules;
3. the variant's Recommender answers, the request without any user id;
4. metrics are counted and one JSON log line written, with no personal data.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any, Mapping

from journeyrec.data.privacy import pseudonymise, resolve_key
from journeyrec.serving.ab import Assigner
from journeyrec.serving.observability import LOGGER_NAME, Metrics
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import RecommendRequest, RecommendResult
from journeyrec.serving.settings import ExperimentConfig, LimitsConfig, RulesConfig, VariantConfig, merge_rules

__all__ = ["Service"]

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
    ) -> None:
        """``recommender`` serves the default bundle; variants naming another bundle are loaded
        with ``load(path)`` (default: ``Recommender.load`` with the default's rules and contexts)."""
        self.default = recommender
        self.limits = limits or LimitsConfig()
        self.metrics = Metrics()
        if allow_demo_key is None:  # as the bundle's training data allowed (public data) or not
            allow_demo_key = bool((getattr(recommender, "train_config", {}).get("data") or {}).get("allow_demo_key", False))
        self._key = resolve_key(hmac_key_file, allow_demo_key=allow_demo_key)
        self.experiment = experiment or ExperimentConfig(name="none", variants=[VariantConfig(name="default")])
        self.assigner = Assigner(self.experiment)
        load = load or (lambda path: Recommender.load(path, rules=recommender.rules, contexts=recommender.context_overrides))
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
        """Answer one request per arm so that the first real request is as fast as the others."""
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

    def recommend(self, request: RecommendRequest, request_id: str | None = None) -> tuple[RecommendResult, dict[str, Any]]:
        """The answer and the log fields describing it (safe to log: no personal data)."""
        pseudonym = self.pseudonym(request)
        request = dataclasses.replace(request, user_id=None)
        variant, assigned = self.assigner.assign(pseudonym)
        del pseudonym
        arm = self.arms[variant.name]
        result = arm.recommender.recommend(request, arm.rules)
        result.variant = variant.name
        self.metrics.variants[variant.name] += 1
        if result.fallback:
            self.metrics.fallbacks[result.fallback] += 1
        if result.warnings:
            self.metrics.warnings += 1
        fields = {
            "event": "impression",
            "request_id": request_id or uuid.uuid4().hex,
            "experiment": self.experiment.name,
            "variant": variant.name,
            "assigned": assigned,
            "bundle_version": result.bundle_version,
            "context": request.context.type,
            "consent": bool(request.consent),
            "personalised": result.personalised,
            "fallback": result.fallback,
            "k": request.k,
            "n_items": len(result.items),
            "n_warnings": len(result.warnings),
            "n_explore": sum(1 for r in result.items if r.reason == "explore"),
        }
        return result, fields

    def arm_for_items(self) -> _Arm:
        """Item-to-item endpoints carry no user: they use the first variant."""
        return next(iter(self.arms.values()))

    def similar(self, item_id: str, k: int, filters: Mapping[str, Any] | None = None) -> RecommendResult:
        arm = self.arm_for_items()
        return arm.recommender.similar(item_id, k, filters, arm.rules)

    def complements(self, item_id: str, k: int, filters: Mapping[str, Any] | None = None) -> RecommendResult:
        arm = self.arm_for_items()
        return arm.recommender.complements(item_id, k, filters, arm.rules)
