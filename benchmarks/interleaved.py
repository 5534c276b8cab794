"""Median time of several variants of one operation, timed in interleaved rounds: on a shared
VM the speed drifts during a run, and interleaving makes every variant see the same drift, so
their ratios hold even when the absolute times move."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping

__all__ = ["interleaved_medians"]


def interleaved_medians(variants: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Seconds per call of each variant: ``warmup`` untimed rounds, then the median (upper, of
    ``rounds`` timed ones) with one call of every variant per round."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median_high(t) for name, t in times.items()}
