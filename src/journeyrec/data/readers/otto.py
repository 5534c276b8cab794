"""Reader for the OTTO session dataset (``data=otto``): JSON Lines of sessions.

Provenance: "OTTO Recommender Systems Dataset", OTTO (GmbH & Co KG), https://github.com/otto-de/recsys-dataset,
data on Kaggle: https://www.kaggle.com/competitions/otto-recommender-system/data (``train.jsonl``,
``test.jsonl``). Licence: the dataset is released under CC BY 4.0 (the repository's code under MIT).

Format (one JSON object per line)::

    {"session": 42, "events": [{"aid": 0, "ts": 1661200010000, "type": "clicks"}, ...]}

``aid`` is the article id, ``ts`` the Unix timestamp in milliseconds (as in the publisher's
README; ``options.timestamp_unit: s`` for community copies converted to seconds), ``type`` one
of ``clicks`` / ``carts`` / ``orders`` -> click / cart / purchase. OTTO's "session" is all activity
of one anonymous user over the period, so it becomes the ``user_id``; preparation sessionises
it by inactivity gap. A line that is not valid JSON goes to quarantine with its line number.
``data.path`` is a ``.jsonl`` file or a directory of them (all ``*.jsonl[.gz]``, in name order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import SourceScan, parse_options
from journeyrec.data.readers.common import constant, find_files, iter_jsonl, make_batch, map_values, parse_epoch

EVENT_TYPE_MAP = {"clicks": "click", "carts": "cart", "orders": "purchase"}
SCHEMA = pa.schema(
    [
        pa.field("session", pa.int64()),
        pa.field(
            "events",
            pa.list_(
                pa.struct([pa.field("aid", pa.int64()), pa.field("ts", pa.int64()), pa.field("type", pa.string())])
            ),
        ),
    ]
)


@dataclass
class OttoOptions:
    timestamp_unit: str = "ms"
    channel: str = "unknown"  # web shop and app are not told apart in the data


def _flatten(table: pa.Table, lines: np.ndarray) -> tuple[dict[str, pa.Array], np.ndarray]:
    events = table.column("events").combine_chunks()
    parent = pc.list_parent_indices(events).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(events)
    session = pc.cast(table.column("session"), pa.string()).combine_chunks().take(pa.array(parent))
    return {
        "user": session,
        "aid": pc.cast(flat.field("aid"), pa.string()),
        "ts": flat.field("ts"),
        "type": flat.field("type"),
    }, lines[parent]


def _flatten_records(records: list[dict], lines: np.ndarray) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The slow path for a block Arrow could not parse: values taken leniently as text."""
    user, aid, ts, typ, out_lines = [], [], [], [], []
    for rec, line in zip(records, lines):
        evs = rec.get("events")
        evs = evs if isinstance(evs, list) else [None]
        for ev in evs:
            ev = ev if isinstance(ev, dict) else {}
            user.append(None if rec.get("session") is None else str(rec.get("session")))
            aid.append(None if ev.get("aid") is None else str(ev.get("aid")))
            ts.append(None if ev.get("ts") is None else str(ev.get("ts")))
            typ.append(None if ev.get("type") is None else str(ev.get("type")))
            out_lines.append(line)
    arr = lambda v: pa.array(v, pa.string())  # noqa: E731
    return {"user": arr(user), "aid": arr(aid), "ts": arr(ts), "type": arr(typ)}, np.asarray(out_lines, dtype=np.int64)


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(OttoOptions, options, "otto")
    files = find_files(path, ["*.jsonl", "*.jsonl.gz"], "otto", "sessions (.jsonl)")
    stats: dict[str, Any] = {"rows_read": 0, "lines": 0}
    items: list[pa.Array] = []

    def batches() -> Iterator[pa.Table]:
        for f in files:
            for chunk in iter_jsonl(f, SCHEMA):
                if chunk.table is not None:
                    cols, lines = _flatten(chunk.table, chunk.lines)
                else:
                    assert chunk.records is not None  # parsed line by line
                    cols, lines = _flatten_records(chunk.records, chunk.lines)
                stats["lines"] += len(chunk.lines) + len(chunk.malformed)
                stats["rows_read"] += len(lines) + len(chunk.malformed)
                ts, ts_raw = parse_epoch(cols["ts"], opts.timestamp_unit)
                items.append(pc.unique(cols["aid"].drop_null()))
                yield make_batch(
                    {
                        "user_id": cols["user"],
                        "item_id": cols["aid"],
                        "event_type": map_values(cols["type"], EVENT_TYPE_MAP),
                        "timestamp": ts,
                        "channel": constant(opts.channel, len(lines)),
                    },
                    file=str(f),
                    lines=lines,
                    malformed=chunk.malformed,
                    ts_raw=ts_raw,
                )

    def catalog() -> pa.Table:
        from journeyrec.data.schema import conform_catalog

        ids = (
            pc.unique(pa.chunked_array(items, type=pa.string()).combine_chunks()).sort()
            if items
            else pa.array([], pa.string())
        )
        return conform_catalog({"item_id": ids}, source=str(files[0]))

    source = str(files[0]) if len(files) == 1 else f"{files[0].parent} ({len(files)} files)"
    return SourceScan(source=source, batches=batches(), catalog=catalog, stats=stats)
