"""Reader for a shop's own event log (``data=events``): CSV / TSV, Parquet or JSON Lines.

Provenance: your own data. It is personal data: ``configs/data/events.yaml`` does not allow the
public demo HMAC key, so set ``JOURNEYREC_HMAC_KEY`` (or ``data.hmac_key_file``).

Column names are mapped to the canonical ones in the data config, e.g.::

    data:
      name: events
      path: my_events.csv
      options:
        columns: {user_id: customer, item_id: sku, event_type: action, timestamp: ts}
        event_type_map: {pageview: view, add_to_cart: cart, order: purchase}
        timestamp_unit: s        # s | ms | us | ns (epoch numbers) | iso (ISO-8601 text)

Required (after mapping): user_id, item_id, timestamp; event_type may come from a column or
``default_event_type``. Optional canonical columns (session_id, channel, query, filters, price,
quantity) are used when present. A catalogue file with the same mapping rules can be named in
``catalog_path`` / ``catalog_columns``. Rows are streamed in blocks; a row with a bad value goes
to quarantine with its file and line (for Parquet: row number), see ``schema.validate_events``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import (
    BLOCK_BYTES,
    Structural,
    constant,
    flag_value,
    iter_delimited,
    iter_jsonl,
    make_batch,
    map_values,
    parse_datetime,
    parse_epoch,
    parse_float,
    read_header,
    records_as_strings,
)
from journeyrec.data.schema import CATALOG_SCHEMA, EVENT_SCHEMA, SchemaError, conform_catalog

_TEXT = ("user_id", "session_id", "item_id", "query", "filters", "channel", "event_type")


@dataclass
class EventsOptions:
    format: str = "auto"  # auto | csv | tsv | parquet | jsonl
    columns: dict[str, str] = field(default_factory=dict)  # canonical name -> source column
    event_type_map: dict[str, str] = field(default_factory=dict)  # source value -> canonical
    default_event_type: str = "view"
    default_channel: str = "unknown"
    timestamp_unit: str = "s"  # s | ms | us | ns | iso
    timestamp_format: str | None = None  # strptime format for text timestamps (overrides the unit)
    delimiter: str = ","
    catalog_path: str | None = None
    catalog_columns: dict[str, str] = field(default_factory=dict)
    block_rows: int = 1_000_000  # rows per streamed block (Parquet / JSON Lines)


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in ("csv", "tsv", "parquet", "jsonl"):
            raise ReaderError(f"{path}: unknown format '{fmt}'; use csv, tsv, parquet or jsonl")
        return fmt
    suffixes = "".join(path.suffixes).lower()
    if ".parquet" in suffixes:
        return "parquet"
    if ".jsonl" in suffixes or ".json" in suffixes:
        return "jsonl"
    return "tsv" if ".tsv" in suffixes else "csv"


def _check_mapping(mapping: Mapping[str, str], source: str) -> None:
    bad = sorted(set(mapping) - set(EVENT_SCHEMA.names))
    if bad:
        raise ReaderError(
            f"{source}: columns mapping names unknown canonical column(s) {bad}; canonical: {EVENT_SCHEMA.names}"
        )


def _required(have: list[str], opts: EventsOptions, path: Path) -> dict[str, str]:
    """canonical -> source column for every canonical column present; raises on missing ones."""
    mapped_missing = sorted(src for src in opts.columns.values() if src not in have)
    if mapped_missing:
        raise SchemaError(f"{path}: mapped source column(s) {mapped_missing} not in file; file has {have}")
    out = {}
    for name in EVENT_SCHEMA.names:
        src = opts.columns.get(name, name)
        if src in have:
            out[name] = src
    for name in ("user_id", "item_id", "timestamp"):
        if name not in out:
            raise SchemaError(
                f"{path}: missing required column '{name}'; file has {have}. "
                f"Map it in data.options.columns, e.g. columns: {{{name}: <your column>}}"
            )
    return out


def _canonical(
    table: pa.Table,
    where: dict[str, str],
    opts: EventsOptions,
    path: Path,
    lines: np.ndarray,
    malformed: Sequence[Structural],
) -> pa.Table:
    n = table.num_rows
    cols: dict[str, Any] = {}
    reasons = values = None
    for name, src in where.items():
        if src not in table.column_names:  # a JSON block where no row had this key
            cols[name] = pa.nulls(n, pa.string())
            continue
        col = table.column(src)
        if name in _TEXT:
            cols[name] = pc.cast(col, pa.string())
        elif name in ("price", "quantity"):
            num = parse_float(col)
            text_given = pc.and_(pc.is_valid(col), pc.not_equal(pc.cast(col, pa.string()), ""))
            reasons, values = flag_value(
                reasons, values, pc.and_kleene(text_given, pc.is_null(num)), f"unparseable_{name}", col
            )
            if name == "quantity":
                whole = pc.equal(num, pc.round(num))
                reasons, values = flag_value(
                    reasons, values, pc.invert(pc.fill_null(whole, True)), "unparseable_quantity", col
                )
                num = pc.if_else(pc.fill_null(whole, False), num, pa.scalar(None, pa.float64()))
            cols[name] = num
    ts_col = table.column(where["timestamp"]) if where["timestamp"] in table.column_names else pa.nulls(n, pa.string())
    if pa.types.is_timestamp(ts_col.type):
        ts, ts_raw = pc.cast(ts_col, pa.timestamp("ms", tz="UTC")), None
    elif opts.timestamp_format:
        ts, ts_raw = parse_datetime(ts_col, opts.timestamp_format)
    elif opts.timestamp_unit == "iso":
        ts, ts_raw = parse_datetime(ts_col)
    else:
        ts, ts_raw = parse_epoch(ts_col, opts.timestamp_unit, str(path))
    cols["timestamp"] = ts
    if "event_type" in cols:
        cols["event_type"] = map_values(cols["event_type"], opts.event_type_map)
    else:
        cols["event_type"] = constant(opts.default_event_type, n)
    if "channel" in cols:
        cols["channel"] = pc.fill_null(cols["channel"], opts.default_channel)
    else:
        cols["channel"] = constant(opts.default_channel, n)
    return make_batch(
        cols, file=str(path), lines=lines, malformed=malformed, reasons=reasons, values=values, ts_raw=ts_raw
    )


def _batches(path: Path, fmt: str, opts: EventsOptions, stats: dict) -> Iterator[pa.Table]:
    if fmt in ("csv", "tsv"):
        delim = "\t" if fmt == "tsv" and opts.delimiter == "," else opts.delimiter
        have = read_header(path, delim)
        where = _required(have, opts, path)
        for chunk in iter_delimited(
            path, delimiter=delim, usecols=sorted(set(where.values())), block_bytes=BLOCK_BYTES
        ):
            stats["rows_read"] += chunk.table.num_rows + len(chunk.malformed)
            yield _canonical(chunk.table, where, opts, path, chunk.lines, chunk.malformed)
    elif fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ReaderError(f"{path}: cannot read as parquet: {exc}") from exc
        where = _required(pf.schema_arrow.names, opts, path)
        row = 1
        for batch in pf.iter_batches(batch_size=opts.block_rows, columns=sorted(set(where.values()))):
            t = pa.Table.from_batches([batch])
            lines = np.arange(row, row + t.num_rows, dtype=np.int64)
            row += t.num_rows
            stats["rows_read"] += t.num_rows
            yield _canonical(t, where, opts, path, lines, [])
    else:
        where = None
        for block in iter_jsonl(path):
            if block.table is not None:
                t = block.table
            else:
                assert block.records is not None  # parsed line by line
                keys = sorted({k for r in block.records for k in r})
                t = records_as_strings(block.records, keys)
            if where is None:
                where = _required(t.column_names, opts, path)
            stats["rows_read"] += t.num_rows + len(block.malformed)
            yield _canonical(t, where, opts, path, block.lines, block.malformed)


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(EventsOptions, options, "events")
    if not path:
        raise ReaderError("data.path is required for data=events")
    p = Path(path)
    if not p.is_file():
        raise ReaderError(f"{p}: no such file (set data.path to your events file)")
    _check_mapping(opts.columns, str(p))
    fmt = _format(p, opts.format)
    stats: dict[str, Any] = {"rows_read": 0}
    items: list[pa.Array] = []

    def batches() -> Iterator[pa.Table]:
        for b in _batches(p, fmt, opts, stats):
            if not opts.catalog_path:
                items.append(pc.unique(b.column("item_id").drop_null()))
            yield b

    def catalog() -> pa.Table:
        if opts.catalog_path:
            return _read_catalog(Path(opts.catalog_path), opts)
        ids = (
            pc.unique(pa.chunked_array(items, type=pa.string()).combine_chunks())
            if items
            else pa.array([], pa.string())
        )
        return conform_catalog({"item_id": ids.sort()}, source=str(p))

    return SourceScan(source=str(p), batches=batches(), catalog=catalog, stats=stats)


def _read_catalog(cp: Path, opts: EventsOptions) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    if not cp.is_file():
        raise ReaderError(f"{cp}: no such catalogue file (data.options.catalog_path)")
    fmt = _format(cp, "auto")
    try:
        if fmt == "parquet":
            cat = pq.read_table(cp)
        elif fmt == "jsonl":
            cat = pajson.read_json(cp)
        else:
            cat = pacsv.read_csv(
                cp, parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else opts.delimiter)
            )
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReaderError(f"{cp}: cannot read catalogue: {exc}") from exc
    bad = sorted(set(opts.catalog_columns) - set(CATALOG_SCHEMA.names))
    if bad:
        raise ReaderError(
            f"{cp}: catalog_columns names unknown canonical column(s) {bad}; canonical: {CATALOG_SCHEMA.names}"
        )
    missing = sorted(src for src in opts.catalog_columns.values() if src not in cat.column_names)
    if missing:
        raise SchemaError(f"{cp}: mapped source column(s) {missing} not in file; file has {cat.column_names}")
    inverse = {src: canon for canon, src in opts.catalog_columns.items()}
    cat = cat.rename_columns([inverse.get(c, c) for c in cat.column_names])
    cat = cat.select([c for c in CATALOG_SCHEMA.names if c in cat.column_names])
    if "item_id" in cat.column_names:
        cat = cat.set_column(0, "item_id", pc.cast(cat.column("item_id"), pa.string()))
    return conform_catalog(cat, source=str(cp))
