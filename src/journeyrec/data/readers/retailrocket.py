"""Reader for the RetailRocket e-commerce dataset (``data=retailrocket``).

Provenance: "Retailrocket recommender system dataset", Retail Rocket,
https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset (events of a real online shop over
4.5 months, all values hashed by the publisher). Licence: CC BY-NC-SA 4.0 (as stated on the
dataset page): attribution, non-commercial, share alike.

``data.path`` is the directory holding the published files (comma-separated, with header):

* ``events.csv``: ``timestamp,visitorid,event,itemid,transactionid``; timestamp in Unix
  milliseconds; event ``view`` / ``addtocart`` / ``transaction`` -> view / cart / purchase
* ``item_properties_part1.csv``, ``item_properties_part2.csv``: ``timestamp,itemid,property,value``
  (weekly snapshots; only the properties ``categoryid`` and ``available`` are unhashed): the
  latest ``categoryid`` gives the item's category, ``available`` its stock flag
* ``category_tree.csv``: ``categoryid,parentid``; the category becomes the path of ids from the
  root to the leaf, e.g. ``"231/1147/1613"``

There are no session ids: preparation sessionises by inactivity gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import constant, iter_delimited, make_batch, map_values, parse_epoch
from journeyrec.data.schema import conform_catalog

EVENT_TYPE_MAP = {"view": "view", "addtocart": "cart", "transaction": "purchase"}


@dataclass
class RetailRocketOptions:
    properties: bool = True  # read item_properties_part*.csv and category_tree.csv for the catalogue
    channel: str = "web"


def _dir(path: str | None) -> Path:
    if not path:
        raise ReaderError("data.path is required for data=retailrocket: the directory holding events.csv")
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not (p / "events.csv").is_file():
        raise ReaderError(f"{p}: no events.csv (data=retailrocket needs the directory of the published files)")
    return p


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(RetailRocketOptions, options, "retailrocket")
    d = _dir(path)
    f = d / "events.csv"
    stats: dict[str, Any] = {"rows_read": 0}
    items: list[pa.Array] = []

    def batches() -> Iterator[pa.Table]:
        for chunk in iter_delimited(f, delimiter=",", usecols=("timestamp", "visitorid", "event", "itemid")):
            t = chunk.table
            stats["rows_read"] += t.num_rows + len(chunk.malformed)
            ts, ts_raw = parse_epoch(t.column("timestamp"), "ms")
            items.append(pc.unique(t.column("itemid").drop_null()))
            yield make_batch(
                {
                    "user_id": t.column("visitorid"),
                    "item_id": t.column("itemid"),
                    "event_type": map_values(t.column("event"), EVENT_TYPE_MAP),
                    "timestamp": ts,
                    "channel": constant(opts.channel, t.num_rows),
                },
                file=str(f),
                lines=chunk.lines,
                malformed=chunk.malformed,
                ts_raw=ts_raw,
            )

    def catalog() -> pa.Table:
        ids = (
            pc.unique(pa.chunked_array(items, type=pa.string()).combine_chunks()).sort()
            if items
            else pa.array([], pa.string())
        )
        return _catalog(d, ids, opts.properties)

    return SourceScan(source=str(d), batches=batches(), catalog=catalog, stats=stats)


def _latest_properties(d: Path) -> pa.Table:
    """(itemid, property, value) of the latest snapshot of ``categoryid`` and ``available``."""
    parts = []
    for f in sorted(d.glob("item_properties*.csv")):
        for chunk in iter_delimited(f, delimiter=",", usecols=("timestamp", "itemid", "property", "value")):
            t = chunk.table
            t = t.filter(pc.is_in(t.column("property"), pa.array(["categoryid", "available"])))
            if t.num_rows:
                ts, _ = parse_epoch(t.column("timestamp"), "ms")
                parts.append(t.set_column(0, "timestamp", ts))
    if not parts:
        return pa.table(
            {
                "itemid": pa.array([], pa.string()),
                "property": pa.array([], pa.string()),
                "value": pa.array([], pa.string()),
            }
        )
    t = pa.concat_tables(parts).sort_by(
        [("itemid", "ascending"), ("property", "ascending"), ("timestamp", "ascending")]
    )
    agg = t.group_by(["itemid", "property"], use_threads=False).aggregate([("value", "last")])
    return agg.rename_columns([c.removesuffix("_last") for c in agg.column_names])


def _category_paths(d: Path) -> dict[str, str]:
    f = d / "category_tree.csv"
    if not f.is_file():
        return {}
    parent: dict[str, str | None] = {}
    for chunk in iter_delimited(f, delimiter=",", usecols=("categoryid", "parentid")):
        for c, pid in zip(chunk.table.column("categoryid").to_pylist(), chunk.table.column("parentid").to_pylist()):
            if c is not None:
                parent[c] = pid
    paths: dict[str, str] = {}
    for c in parent:
        chain: list[str] = []
        x: str | None = c
        while x is not None and x not in chain and len(chain) < 64:  # guard against cycles
            chain.append(x)
            x = parent.get(x)
        paths[c] = "/".join(reversed(chain))
    return paths


def _catalog(d: Path, ids: pa.Array, properties: bool) -> pa.Table:
    cols: dict[str, Any] = {"item_id": ids}
    if properties:
        props = _latest_properties(d)
        for prop in ("categoryid", "available"):
            sub = props.filter(pc.equal(props.column("property"), prop))
            vals = pc.take(sub.column("value"), pc.index_in(ids, value_set=sub.column("itemid")))
            if prop == "categoryid":
                paths = _category_paths(d)
                cols["category"] = pa.array(
                    [paths.get(v, v) if v is not None else None for v in vals.to_pylist()], pa.string()
                )
            else:
                cols["in_stock"] = pc.equal(pc.utf8_trim_whitespace(vals), "1")
    return conform_catalog(cols, source=str(d))
