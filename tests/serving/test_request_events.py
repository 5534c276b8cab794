"""A request's events as arrays, against a catalogue's id lookup alone (no bundle): item events
kept oldest first, other events dropped, unknown ids named in one warning; both parsers agree."""

from __future__ import annotations

import pytest

from journeyrec.data.schema import CHANNEL_CODE, EVENT_CODE
from journeyrec.serving.request import Event
from journeyrec.serving.request_events import EventParser


def test_known_item_events_in_order_and_unknown_ids_named():
    parser = EventParser({"a": 1, "b": 2})
    events = [
        Event("a", "view", "web", 10),
        Event(None, "search", "app", 11),
        Event("b", "newsletter_open", "newsletter", 12),  # not an item event
        *(Event(f"ghost-{j}", "view") for j in range(12)),
        Event("b", "purchase", "store", None),  # no time: the request's
    ]
    for parse in (parser.parse, parser.checked):
        items, etypes, chans, ts, warnings = parse(events, 99)
        assert items.tolist() == [1, 2]
        assert etypes.tolist() == [EVENT_CODE["view"], EVENT_CODE["purchase"]]
        assert chans.tolist() == [CHANNEL_CODE["web"], CHANNEL_CODE["store"]]
        assert ts.tolist() == [10, 99]
        assert warnings == [
            "12 unknown item_id(s) ignored: " + ", ".join(repr(f"ghost-{j}") for j in range(10)) + " and 2 more"
        ]


def test_an_unusual_request_goes_to_the_checked_loop():
    parser = EventParser({"a": 1})
    assert parser.fast([Event("a", "view", "web", 5.0)], 0) is None  # a float time
    assert parser.parse([Event("a", "view", "web", 5.0)], 0)[3].tolist() == [5]
    with pytest.raises(ValueError, match="unknown channel"):
        parser.parse((e for e in [Event("a", "view", "web"), Event("a", "view", "fax")]), 0)
