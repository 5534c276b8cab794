"""A request's events as the arrays the pipeline reads: internal item ids, event and channel
codes and times, oldest first, with a warning naming the item ids the catalogue does not know.

Only item events are kept (views, carts, purchases, ...): searches, newsletter opens and removals
are not positions of the item sequence. An unknown event type or channel, or a timestamp that is
not epoch milliseconds, raises ValueError naming the first offending event.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from journeyrec.data.schema import CHANNEL_CODE, EVENT_CODE, ITEM_EVENT_TYPES
from journeyrec.serving.request import MAX_MS, MIN_MS, check_ms

__all__ = ["EventParser", "ParsedEvents"]

_ITEM_EVENTS = frozenset(ITEM_EVENT_TYPES)
_ITEM_CODES = frozenset(EVENT_CODE[t] for t in ITEM_EVENT_TYPES)
_MAX_LISTED_UNKNOWN = 10

# (internal ids, event codes, channel codes, times in epoch ms): int64 arrays, oldest first; warnings
ParsedEvents = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]


class EventParser:
    """Parses events against one catalogue's ids (``index_of``: external id -> internal id)."""

    def __init__(self, index_of: dict[str, int]) -> None:
        self.index_of = index_of

    def parse(self, events: Sequence[Any], now: int) -> ParsedEvents:
        """Known item events -> (internal ids, event codes, channel codes, times), oldest first,
        and the warnings (unknown ids). Raises ValueError on an unknown event type or channel or
        a timestamp that is not epoch milliseconds (the first offending event is named)."""
        if not isinstance(events, (list, tuple)):
            events = list(events)  # read more than once below
        parsed = self.fast(events, now)
        return parsed if parsed is not None else self.checked(events, now)

    def fast(self, events: Sequence[Any], now: int) -> ParsedEvents | None:
        """The usual request (valid codes, int or missing timestamps) with list comprehensions and
        one vectorised range check instead of a per-event loop with a call per timestamp; None
        whenever anything is unusual, so that :meth:`checked` (the reference, which also names the
        first bad event) decides."""
        event_code, channel_code = EVENT_CODE.get, CHANNEL_CODE.get
        try:
            codes = [event_code(e.event_type) for e in events]
            chans = [channel_code(e.channel) for e in events]
        except TypeError:  # an unhashable event type or channel
            return None
        if None in codes or None in chans:
            return None
        item_codes = _ITEM_CODES
        kept = [(e, c, ch) for e, c, ch in zip(events, codes, chans) if c in item_codes and e.item_id is not None]
        index_of = self.index_of.get
        found = [index_of(e.item_id if type(e.item_id) is str else str(e.item_id)) for e, _, _ in kept]
        times = [e.timestamp_ms for e, _, _ in kept]
        if not all(t is None or type(t) is int for t in times):
            return None
        unknown = [str(e.item_id) for (e, _, _), i in zip(kept, found) if i is None]
        if unknown:
            kept = [row for row, i in zip(kept, found) if i is not None]
            found = [i for i in found if i is not None]
        try:
            ts = np.asarray([now if e.timestamp_ms is None else e.timestamp_ms for e, _, _ in kept], np.int64)
        except OverflowError:
            return None
        if len(ts) and (int(ts.min()) < MIN_MS or int(ts.max()) > MAX_MS):
            return None
        items = np.asarray(found, np.int64)
        etypes = np.asarray([c for _, c, _ in kept], np.int64)
        channels = np.asarray([ch for _, _, ch in kept], np.int64)
        return items, etypes, channels, ts, _unknown_warnings(unknown)

    def checked(self, events: Sequence[Any], now: int) -> ParsedEvents:
        # one pass of plain Python over the events, checking each as it comes: local names for the
        # lookups, and one tuple per kept event, transposed once at the end
        rows, unknown = [], []
        event_code, channel_code, index_of, item_events = (
            EVENT_CODE.get,
            CHANNEL_CODE.get,
            self.index_of.get,
            _ITEM_EVENTS,
        )
        for e in events:
            code = event_code(e.event_type)
            if code is None:
                raise ValueError(f"unknown event_type {e.event_type!r}; allowed: {list(EVENT_CODE)}")
            ch = channel_code(e.channel)
            if ch is None:
                raise ValueError(f"unknown channel {e.channel!r}; allowed: {list(CHANNEL_CODE)}")
            if e.event_type not in item_events or e.item_id is None:
                continue  # searches, newsletter opens, removals: not positions of the item sequence
            i = index_of(e.item_id if type(e.item_id) is str else str(e.item_id))
            if i is None:
                unknown.append(str(e.item_id))
                continue
            t = e.timestamp_ms
            rows.append((i, code, ch, now if t is None else check_ms(t, "timestamp_ms")))
        items, etypes, chans, ts = zip(*rows) if rows else ((), (), (), ())
        return (
            np.asarray(items, np.int64),
            np.asarray(etypes, np.int64),
            np.asarray(chans, np.int64),
            np.asarray(ts, np.int64),
            _unknown_warnings(unknown),
        )


def _unknown_warnings(unknown: list[str]) -> list[str]:
    if not unknown:
        return []
    shown = ", ".join(repr(u) for u in unknown[:_MAX_LISTED_UNKNOWN])
    more = f" and {len(unknown) - _MAX_LISTED_UNKNOWN} more" if len(unknown) > _MAX_LISTED_UNKNOWN else ""
    return [f"{len(unknown)} unknown item_id(s) ignored: {shown}{more}"]
