"""Prometheus metrics and structured JSON logs of the service, with no personal data.

Metrics (text exposition format 0.0.4 at ``GET /metrics``):

* ``journeyrec_requests_total{endpoint, status}``
* ``journeyrec_request_latency_seconds{endpoint}`` histogram (bucket upper bounds below)
* ``journeyrec_fallbacks_total{reason}`` non-personal answers (``no_consent``, ``no_history``)
* ``journeyrec_variant_requests_total{variant}`` A/B traffic per arm
* ``journeyrec_warnings_total`` requests answered with at least one warning
* ``journeyrec_intake_events_total{outcome}`` events received by ``POST /v1/events``: stored,
  rejected, opted_out (accepted, not stored: the customer opted out), expired (older than retention)
* ``journeyrec_feedback_total{outcome}`` reactions by outcome (attributed, duplicate, unknown_request,
  expired, not_shown, before_impression; ``event``: carts and purchases attributed on arrival)
* ``journeyrec_gc_collections_total{generation}``, ``journeyrec_gc_pause_seconds_total{generation}``,
  ``journeyrec_gc_pause_seconds_max{generation}``, ``journeyrec_gc_frozen_objects``: Python's
  garbage collections in the server process (:mod:`journeyrec.serving.collector`)

Log lines are JSON objects, one per line, carrying only what operations and A/B analysis need
(request id, endpoint, status, latency, variant, bundle version, context type, counts). They
never contain user ids (raw or pseudonymous), event contents, item ids of a session, filters, or
client addresses.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from typing import Any

from journeyrec.serving.collector import GCPauses

__all__ = ["Metrics", "JsonFormatter", "configure_logging", "LATENCY_BUCKETS", "LOGGER_NAME"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOGGER_NAME = "journeyrec.serving"


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


class Metrics:
    """Counters and a latency histogram, rendered in Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.fallbacks: dict[str, int] = defaultdict(int)
        self.variants: dict[str, int] = defaultdict(int)
        self.warnings = 0
        self.intake: dict[str, int] = defaultdict(int)
        self.feedback: dict[str, int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.collector: GCPauses | None = None  # the serving process's garbage collections, when watched

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] += 1
        counts = self.buckets[endpoint]
        for i, upper in enumerate(LATENCY_BUCKETS):
            if seconds <= upper:
                counts[i] += 1
                break
        self.latency_sum[endpoint] += seconds
        self.latency_count[endpoint] += 1

    def render(self) -> str:
        lines = [
            "# HELP journeyrec_requests_total Requests by endpoint and HTTP status.",
            "# TYPE journeyrec_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            lines.append(f"journeyrec_requests_total{_labels(endpoint=endpoint, status=str(status))} {n}")
        lines += [
            "# HELP journeyrec_request_latency_seconds Request latency inside the service.",
            "# TYPE journeyrec_request_latency_seconds histogram",
        ]
        for endpoint, counts in sorted(self.buckets.items()):
            cumulative = 0
            for upper, c in zip(LATENCY_BUCKETS, counts):
                cumulative += c
                labels = _labels(endpoint=endpoint, le=repr(upper))
                lines.append(f"journeyrec_request_latency_seconds_bucket{labels} {cumulative}")
            labels = _labels(endpoint=endpoint, le="+Inf")
            lines.append(f"journeyrec_request_latency_seconds_bucket{labels} {self.latency_count[endpoint]}")
            lines.append(
                f"journeyrec_request_latency_seconds_sum{_labels(endpoint=endpoint)} {self.latency_sum[endpoint]:.6f}"
            )
            lines.append(
                f"journeyrec_request_latency_seconds_count{_labels(endpoint=endpoint)} {self.latency_count[endpoint]}"
            )
        lines += [
            "# HELP journeyrec_fallbacks_total Non-personal answers by reason.",
            "# TYPE journeyrec_fallbacks_total counter",
        ]
        for reason, n in sorted(self.fallbacks.items()):
            lines.append(f"journeyrec_fallbacks_total{_labels(reason=reason)} {n}")
        lines += [
            "# HELP journeyrec_variant_requests_total Recommendation requests per A/B variant.",
            "# TYPE journeyrec_variant_requests_total counter",
        ]
        for variant, n in sorted(self.variants.items()):
            lines.append(f"journeyrec_variant_requests_total{_labels(variant=variant)} {n}")
        lines += [
            "# HELP journeyrec_warnings_total Requests answered with warnings.",
            "# TYPE journeyrec_warnings_total counter",
            f"journeyrec_warnings_total {self.warnings}",
        ]
        lines += [
            "# HELP journeyrec_intake_events_total Events received by the intake, by outcome.",
            "# TYPE journeyrec_intake_events_total counter",
        ]
        for outcome, n in sorted(self.intake.items()):
            lines.append(f"journeyrec_intake_events_total{_labels(outcome=outcome)} {n}")
        lines += [
            "# HELP journeyrec_feedback_total Reactions to recommendation lists, by outcome.",
            "# TYPE journeyrec_feedback_total counter",
        ]
        for outcome, n in sorted(self.feedback.items()):
            lines.append(f"journeyrec_feedback_total{_labels(outcome=outcome)} {n}")
        if self.collector is not None:
            lines += self.collector.render()
        return "\n".join(lines) + "\n"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, default=str)


def configure_logging(level: str = "info", stream: Any = None) -> logging.Logger:
    """JSON lines on stderr (or ``stream``) for the service's logger; returns it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger
