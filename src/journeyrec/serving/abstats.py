"""A/B analysis: CTR, add-to-cart and conversion per variant with confidence intervals, and the
lift's interval.

Two sources, one definition of the figures:

* the journey store (:func:`store_counts`): the impressions the service stored and the reactions
  attributed to them (``POST /v1/feedback``, and carts / purchases sent as ordinary events), so
  nothing has to be joined; only lists assigned by hash count (requests without a customer id go
  to the first variant and are not part of the comparison);
* an event log, one JSON object per line, with at least ``variant`` and ``event`` in
  {``impression``, ``click``, ``cart``, ``purchase``}: the service's own log lines (``event:
  impression``, with ``request_id`` and ``variant``) are the impressions, the shop logs clicks,
  carts and purchases with the ``request_id`` of the list they came from. Lines of other events
  (and non-JSON lines, such as a server's start-up messages) are skipped.

An impression is a unit: CTR = share of impressions with at least one click, add-to-cart = share
with at least one cart, conversion = share with at least one purchase (binomial proportions). A
log without ``request_id`` has counts only (clicks / impressions), which must not exceed the
impressions.

Intervals: Wilson score interval for each proportion; for the lift of a variant over the
control, ``p_variant / p_control - 1``, the delta-method interval of the log risk ratio
(Katz), exponentiated. Level ``1 - alpha`` (default 95%), two-sided.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Iterator, Mapping

__all__ = ["VariantCounts", "count_log", "store_counts", "wilson", "lift_interval", "report", "read_jsonl", "METRICS"]

# reported metric -> the VariantCounts field of its successes
METRICS: dict[str, str] = {"ctr": "clicked", "add_to_cart": "carted", "conversion": "purchased"}
_LOG_EVENTS = {"click": "clicked", "cart": "carted", "purchase": "purchased"}


@dataclass
class VariantCounts:
    impressions: int = 0
    clicked: int = 0
    purchased: int = 0
    carted: int = 0


def read_jsonl(lines: Iterable[str]) -> Iterator[dict]:
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def count_log(records: Iterable[dict]) -> dict[str, VariantCounts]:
    """Per-variant impressions and impressions with a click / a purchase."""
    by_request: dict[str, dict[str, object]] = {}
    counts: dict[str, VariantCounts] = {}
    keyed = True
    for r in records:
        event, variant = r.get("event"), r.get("variant")
        if (event != "impression" and event not in _LOG_EVENTS) or variant is None:
            continue
        rid = r.get("request_id")
        if rid is None:
            keyed = False
            c = counts.setdefault(str(variant), VariantCounts())
            if event == "impression":
                c.impressions += 1
            else:
                setattr(c, _LOG_EVENTS[event], getattr(c, _LOG_EVENTS[event]) + 1)
            continue
        entry = by_request.setdefault(
            str(rid), {"variant": str(variant), "impression": False, "click": False, "cart": False, "purchase": False}
        )
        entry[event] = True
    for entry in by_request.values():
        if not entry["impression"]:
            continue  # clicks without their impression (e.g. log rotation) are not attributable
        c = counts.setdefault(str(entry["variant"]), VariantCounts())
        c.impressions += 1
        c.clicked += int(bool(entry["click"]))
        c.carted += int(bool(entry["cart"]))
        c.purchased += int(bool(entry["purchase"]))
    for name, c in counts.items():
        if max(c.clicked, c.carted, c.purchased) > c.impressions:
            how = "" if keyed else " (lines have no request_id, so raw counts are compared)"
            raise ValueError(f"variant {name!r}: more clicks/purchases than impressions{how}; is the log complete?")
    return counts


def store_counts(
    ab_counts: Mapping[tuple[str, bool], Mapping[str, int]], assigned_only: bool = True
) -> dict[str, VariantCounts]:
    """Per-variant counts from the journey store's A/B counters (``JourneyStore.ab_counts``)."""
    counts: dict[str, VariantCounts] = {}
    for (variant, assigned), m in sorted(ab_counts.items()):
        if assigned_only and not assigned:
            continue
        c = counts.setdefault(variant, VariantCounts())
        c.impressions += int(m.get("impressions", 0))
        for field in METRICS.values():
            setattr(c, field, getattr(c, field) + int(m.get(field, 0)))
    return {name: c for name, c in counts.items() if c.impressions}


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Proportion and its Wilson score interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def lift_interval(s_a: float, n_a: float, s_b: float, n_b: float, alpha: float = 0.05) -> tuple[float, float, float]:
    """Lift of B over A (p_b / p_a - 1) and its interval (delta method on the log risk ratio;
    a zero count gets 0.5 added to every cell, the usual continuity correction)."""
    if n_a == 0 or n_b == 0:
        return float("nan"), float("nan"), float("nan")
    if s_a == 0 or s_b == 0:
        s_a, s_b, n_a, n_b = s_a + 0.5, s_b + 0.5, n_a + 1, n_b + 1
    z = NormalDist().inv_cdf(1 - alpha / 2)
    log_rr = math.log((s_b / n_b) / (s_a / n_a))
    se = math.sqrt(1 / s_b - 1 / n_b + 1 / s_a - 1 / n_a)
    return math.exp(log_rr) - 1, math.exp(log_rr - z * se) - 1, math.exp(log_rr + z * se) - 1


def report(counts: dict[str, VariantCounts], control: str | None = None, alpha: float = 0.05) -> dict:
    """CTR, add-to-cart and conversion per variant, and each variant's lift over ``control``
    (default: the variant named "control", else the first in alphabetical order)."""
    if not counts:
        raise ValueError(
            "no impressions found (log lines need 'event' and 'variant'; a store needs lists "
            "served to identified customers)"
        )
    names = sorted(counts)
    control = control or ("control" if "control" in counts else names[0])
    if control not in counts:
        raise ValueError(f"control variant {control!r} not in the log; variants: {names}")
    out: dict = {"control": control, "level": 1 - alpha, "variants": {}}
    base = counts[control]
    for name in names:
        c = counts[name]
        row: dict = {"impressions": c.impressions}
        for metric, field in METRICS.items():
            s = getattr(c, field)
            p, lo, hi = wilson(s, c.impressions, alpha)
            row[metric] = {"value": p, "ci": [lo, hi], "successes": s}
            if name != control:
                s_base = getattr(base, field)
                lift, llo, lhi = lift_interval(s_base, base.impressions, s, c.impressions, alpha)
                row[metric]["lift"] = {"value": lift, "ci": [llo, lhi]}
        out["variants"][name] = row
    return out
