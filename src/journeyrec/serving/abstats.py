"""A/B analysis: CTR and conversion per variant with confidence intervals, and the lift's interval.

Input: an event log, one JSON object per line, with at least ``variant`` and ``event`` in
{``impression``, ``click``, ``purchase``}. The service's own log lines (``event: impression``,
with ``request_id`` and ``variant``) are the impressions; the shop logs clicks and purchases
with the ``request_id`` of the recommendation list they came from. Lines of other events (and
non-JSON lines, such as a server's start-up messages) are skipped.

With ``request_id`` on every line, an impression is a unit: CTR = share of impressions with at
least one click, conversion = share with at least one purchase (binomial proportions). Without
it, counts are used (clicks / impressions), which must not exceed the impressions.

Intervals: Wilson score interval for each proportion; for the lift of a variant over the
control, ``p_variant / p_control - 1``, the delta-method interval of the log risk ratio
(Katz), exponentiated. Level ``1 - alpha`` (default 95%), two-sided.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Iterator

__all__ = ["VariantCounts", "count_log", "wilson", "lift_interval", "report", "read_jsonl"]


@dataclass
class VariantCounts:
    impressions: int = 0
    clicked: int = 0
    purchased: int = 0


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
        if event not in ("impression", "click", "purchase") or variant is None:
            continue
        rid = r.get("request_id")
        if rid is None:
            keyed = False
            c = counts.setdefault(str(variant), VariantCounts())
            if event == "impression":
                c.impressions += 1
            elif event == "click":
                c.clicked += 1
            else:
                c.purchased += 1
            continue
        entry = by_request.setdefault(str(rid), {"variant": str(variant), "impression": False, "click": False, "purchase": False})
        entry[event] = True
    for entry in by_request.values():
        if not entry["impression"]:
            continue  # clicks without their impression (e.g. log rotation) are not attributable
        c = counts.setdefault(str(entry["variant"]), VariantCounts())
        c.impressions += 1
        c.clicked += int(bool(entry["click"]))
        c.purchased += int(bool(entry["purchase"]))
    for name, c in counts.items():
        if c.clicked > c.impressions or c.purchased > c.impressions:
            how = "" if keyed else " (lines have no request_id, so raw counts are compared)"
            raise ValueError(f"variant {name!r}: more clicks/purchases than impressions{how}; is the log complete?")
    return counts


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


def lift_interval(s_a: int, n_a: int, s_b: int, n_b: int, alpha: float = 0.05) -> tuple[float, float, float]:
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
    """CTR and conversion per variant, and each variant's lift over ``control`` (default: the
    variant named "control", else the first in alphabetical order)."""
    if not counts:
        raise ValueError("no impressions found in the log (lines need 'event' and 'variant')")
    names = sorted(counts)
    control = control or ("control" if "control" in counts else names[0])
    if control not in counts:
        raise ValueError(f"control variant {control!r} not in the log; variants: {names}")
    out: dict = {"control": control, "level": 1 - alpha, "variants": {}}
    base = counts[control]
    for name in names:
        c = counts[name]
        row: dict = {"impressions": c.impressions}
        for metric, s in (("ctr", c.clicked), ("conversion", c.purchased)):
            p, lo, hi = wilson(s, c.impressions, alpha)
            row[metric] = {"value": p, "ci": [lo, hi], "successes": s}
            if name != control:
                s_base = base.clicked if metric == "ctr" else base.purchased
                lift, llo, lhi = lift_interval(s_base, base.impressions, s, c.impressions, alpha)
                row[metric]["lift"] = {"value": lift, "ci": [llo, lhi]}
        out["variants"][name] = row
    return out
