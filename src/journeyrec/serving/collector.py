"""Python's garbage collector in a long-running serving process.

Why: a serving process holds hundreds of thousands of container objects from its start (torch,
FastAPI, pydantic, the bundle's tables) that live as long as it does. CPython's full
(generation 2) collection walks every one of them, and the event loop with every request queued
behind it waits that long (measured by ``python -m benchmarks gc-pauses``, docs/performance.md).
:func:`freeze_startup` moves them, once the service is warm, to the permanent generation
(``gc.freeze``), which no collection walks: a full collection then walks only what requests made
since. :class:`GCPauses` counts the collections per generation and the time they took, for
``/metrics``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

__all__ = ["GCPauses", "freeze_startup"]


def freeze_startup() -> int:
    """Collect once, then freeze every object left (all of it start-up state that lives as long
    as the process); returns how many objects the collector no longer walks."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GCPauses:
    """Collections and their wall time per generation, from ``gc.callbacks``; :meth:`install`
    adds the hook, :meth:`uninstall` removes it."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._started: float | None = None

    def install(self) -> GCPauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        seconds, g = time.perf_counter() - self._started, int(info["generation"])
        self._started = None
        self.collections[g] += 1
        self.seconds[g] += seconds
        self.longest[g] = max(self.longest[g], seconds)

    def render(self) -> list[str]:
        """The Prometheus text lines (see :mod:`journeyrec.serving.observability`)."""
        lines = [
            "# HELP journeyrec_gc_collections_total Python garbage collections by generation.",
            "# TYPE journeyrec_gc_collections_total counter",
            *(f'journeyrec_gc_collections_total{{generation="{g}"}} {n}' for g, n in enumerate(self.collections)),
            "# HELP journeyrec_gc_pause_seconds_total Time spent in Python garbage collections by generation.",
            "# TYPE journeyrec_gc_pause_seconds_total counter",
            *(f'journeyrec_gc_pause_seconds_total{{generation="{g}"}} {s:.6f}' for g, s in enumerate(self.seconds)),
            "# HELP journeyrec_gc_pause_seconds_max The longest Python garbage collection by generation.",
            "# TYPE journeyrec_gc_pause_seconds_max gauge",
            *(f'journeyrec_gc_pause_seconds_max{{generation="{g}"}} {s:.6f}' for g, s in enumerate(self.longest)),
            "# HELP journeyrec_gc_frozen_objects Start-up objects no collection walks (gc.freeze).",
            "# TYPE journeyrec_gc_frozen_objects gauge",
            f"journeyrec_gc_frozen_objects {gc.get_freeze_count()}",
        ]
        return lines
