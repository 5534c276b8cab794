"""Reader for a shop's own event log (``data=events``): CSV, Parquet or JSON Lines.

Column names are mapped to the canonical ones in the data config, e.g.::

    data:
      name: events
      path: my_events.csv
      options:
        columns: {user_id: customer, item_id: sku, event_type: action, timestamp: ts}
        event_type_map: {pageview: view, add_to_cart: cart, order: purchase}
        timestamp_unit: s        # s | ms | us | iso (numbers are epoch times in that unit)

Required (after mapping): user_id, item_id, timestamp; event_type may come from a column or
``default_event_type``. Optional canonical columns (session_id, channel, query, filters, price,
quantity) are used when present. A catalogue file with the same mapping rules can be named in
``catalog_path`` / ``catalog_columns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from journeyrec.data.readers import ReaderError, SourceData, parse_options
from journeyrec.data.schema import CATALOG_SCHEMA, EVENT_SCHEMA, SchemaError, conform_catalog, conform_events

_UNITS = {"s": 1000, "ms": 1, "us": 1e-3, "ns": 1e-6}


@dataclass
class EventsOptions:
    format: str = "auto"  # auto | csv | parquet | jsonl
    columns: dict[str, str] = field(default_factory=dict)  # canonical name -> source column
    event_type_map: dict[str, str] = field(default_factory=dict)  # source value -> canonical
    default_event_type: str = "view"
    default_channel: str = "unknown"
    timestamp_unit: str = "s"  # s | ms | us | ns | iso
    delimiter: str = ","
    catalog_path: str | None = None
    catalog_columns: dict[str, str] = field(default_factory=dict)


def read_table(path: Path, fmt: str, delimiter: str = ",") -> pa.Table:
    """Read a CSV / Parquet / JSONL file into Arrow, all id-like columns kept as strings."""
    if fmt == "auto":
        suffixes = "".join(path.suffixes).lower()
        fmt = "parquet" if ".parquet" in suffixes else "jsonl" if (".jsonl" in suffixes or ".json" in suffixes) else "csv"
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "jsonl":
            return pajson.read_json(path)
        if fmt == "csv":
            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReaderError(f"{path}: cannot read as {fmt}: {exc}") from exc
    raise ReaderError(f"{path}: unknown format '{fmt}'; use csv, parquet or jsonl")


def to_timestamp(col: pa.ChunkedArray | pa.Array, unit: str, source: str) -> pa.ChunkedArray:
    """Convert a numeric epoch column (in ``unit``) or ISO-8601 strings to timestamp[ms, UTC]."""
    target = pa.timestamp("ms", tz="UTC")
    if pa.types.is_timestamp(col.type):
        return pc.cast(col, target)
    try:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or unit == "iso":
            return pc.cast(pc.cast(col, pa.string()), pa.timestamp("ms")).cast(target)
        if unit not in _UNITS:
            raise ReaderError(f"{source}: timestamp_unit must be one of {sorted(_UNITS) + ['iso']}, got {unit!r}")
        ms = pc.multiply(pc.cast(col, pa.float64()), _UNITS[unit])
        return pc.cast(pc.cast(pc.round(ms), pa.int64()), target)
    except pa.ArrowInvalid as exc:
        raise ReaderError(f"{source}: column 'timestamp' cannot be parsed ({exc}); check timestamp_unit") from exc


def _rename(table: pa.Table, mapping: Mapping[str, str], source: str, known: list[str]) -> pa.Table:
    bad = sorted(set(mapping) - set(known))
    if bad:
        raise ReaderError(f"{source}: columns mapping names unknown canonical column(s) {bad}; canonical: {known}")
    missing = sorted(src for src in mapping.values() if src not in table.column_names)
    if missing:
        raise SchemaError(f"{source}: mapped source column(s) {missing} not in file; file has {table.column_names}")
    inverse = {src: canon for canon, src in mapping.items()}
    return table.rename_columns([inverse.get(c, c) for c in table.column_names])


def read(path: str | None, options: Mapping[str, Any]) -> SourceData:
    opts = parse_options(EventsOptions, options, "events")
    if not path:
        raise ReaderError("data.path is required for data=events")
    p = Path(path)
    if not p.is_file():
        raise ReaderError(f"{p}: no such file (set data.path to your events file)")
    raw = read_table(p, opts.format, opts.delimiter)
    rows_read = raw.num_rows
    table = _rename(raw, opts.columns, str(p), EVENT_SCHEMA.names)
    cols = {}
    for name in EVENT_SCHEMA.names:
        if name in table.column_names:
            cols[name] = table.column(name)
    for name in ("user_id", "item_id", "timestamp"):
        if name not in cols:
            raise SchemaError(
                f"{p}: missing required column '{name}'; file has {raw.column_names}. "
                f"Map it in data.options.columns, e.g. columns: {{{name}: <your column>}}"
            )
    for name in ("user_id", "item_id", "session_id", "query", "filters"):
        if name in cols:
            cols[name] = pc.cast(cols[name], pa.string())
    cols["timestamp"] = to_timestamp(cols["timestamp"], opts.timestamp_unit, str(p))
    n = table.num_rows
    if "event_type" in cols:
        et = pc.cast(cols["event_type"], pa.string())
        if opts.event_type_map:
            keys = pa.array(list(opts.event_type_map), pa.string())
            vals = pa.array(list(opts.event_type_map.values()), pa.string())
            idx = pc.index_in(et, value_set=keys)
            et = pc.if_else(pc.is_null(idx), et, pc.take(vals, idx))
        cols["event_type"] = et
    else:
        cols["event_type"] = pa.array([opts.default_event_type] * n, pa.string())
    if "channel" not in cols:
        cols["channel"] = pa.array([opts.default_channel] * n, pa.string())
    events = conform_events(pa.table(cols), source=str(p))
    if opts.catalog_path:
        cp = Path(opts.catalog_path)
        if not cp.is_file():
            raise ReaderError(f"{cp}: no such catalogue file (data.options.catalog_path)")
        cat = _rename(read_table(cp, "auto", opts.delimiter), opts.catalog_columns, str(cp), CATALOG_SCHEMA.names)
        catalog = conform_catalog(cat.select([c for c in CATALOG_SCHEMA.names if c in cat.column_names]), source=str(cp))
    else:
        ids = pc.unique(events.column("item_id").drop_null())
        catalog = conform_catalog({"item_id": ids}, source=str(p))
    return SourceData(events=events, catalog=catalog, source=str(p), stats={"rows_read": rows_read})
