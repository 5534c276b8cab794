"""The canonical event and catalogue schemas: the single source of truth for column names,
types and closed vocabularies. Readers map their source format into these tables; everything
downstream (preparation, models, serving) reads only these.

Event table (one row per touchpoint event)::

    user_id     string    pseudonymised before anything is written (see privacy.py)
    session_id  string    source session id, or derived by inactivity gap
    item_id     string    nullable: search / newsletter_open events carry no item
    event_type  string    closed vocabulary EVENT_TYPES
    timestamp   timestamp[ms, UTC]
    channel     string    closed vocabulary CHANNELS
    query       string    nullable: search text
    filters     string    nullable: JSON object of the filters the customer applied
    price       float64   nullable
    quantity    int32     nullable

Catalogue table (one row per item)::

    item_id, title, category ("Dept/Sub/Leaf"), brand, price, size, colour,
    in_stock, own_brand, repurchase_class (consumable|durable|unknown), repurchase_days, tags
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa

__all__ = [
    "EVENT_TYPES",
    "CHANNELS",
    "ITEM_EVENT_TYPES",
    "EVENT_SCHEMA",
    "CATALOG_SCHEMA",
    "REQUIRED_EVENT_COLUMNS",
    "REPURCHASE_CLASSES",
    "SchemaError",
    "event_type_codes",
    "channel_codes",
    "conform_events",
    "conform_catalog",
    "empty_catalog",
]

# Closed vocabularies. Code 0 is reserved for padding in tensors, so the integer code of a
# value is its index here + 1. Order matters only for that code: append, never reorder.
EVENT_TYPES: tuple[str, ...] = (
    "view",
    "click",
    "cart",
    "remove_from_cart",
    "wishlist",
    "purchase",
    "search",
    "newsletter_open",
    "rating",
)
CHANNELS: tuple[str, ...] = ("web", "app", "newsletter", "store", "call_center", "unknown")
# Event types that refer to an item and therefore become positions of an item sequence.
ITEM_EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "wishlist", "purchase", "rating")
REPURCHASE_CLASSES: tuple[str, ...] = ("consumable", "durable", "unknown")

REQUIRED_EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event_type", "timestamp")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("query", pa.string()),
        pa.field("filters", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("quantity", pa.int32()),
    ]
)

CATALOG_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("category", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("size", pa.string()),
        pa.field("colour", pa.string()),
        pa.field("in_stock", pa.bool_()),
        pa.field("own_brand", pa.bool_()),
        pa.field("repurchase_class", pa.string()),
        pa.field("repurchase_days", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


class SchemaError(ValueError):
    """Input data does not fit the canonical schema; the message names the column and the fix."""


def _codes(values: np.ndarray, vocabulary: Sequence[str], what: str) -> np.ndarray:
    lookup = {v: i + 1 for i, v in enumerate(vocabulary)}
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in lookup]
    if unknown:
        raise SchemaError(f"unknown {what} {unknown[:5]}; allowed: {list(vocabulary)}")
    return np.asarray([lookup[u] for u in uniq], dtype=np.int8)[inverse]


def event_type_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes (1-based, 0 = padding) of event-type strings."""
    return _codes(values, EVENT_TYPES, "event_type")


def channel_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes (1-based, 0 = padding) of channel strings."""
    return _codes(values, CHANNELS, "channel")


def conform_events(table: pa.Table, source: str = "events") -> pa.Table:
    """Cast a reader's output to EVENT_SCHEMA: add missing optional columns as nulls,
    check required ones and the closed vocabularies, and order the columns.

    Raises SchemaError naming the missing column or the unknown value, and ``source``
    (usually the file), so the user knows where to look.
    """
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"{source}: missing required column(s) {missing}; have {table.column_names}. "
            "Map your column names in the data config (data.options.columns)."
        )
    n = table.num_rows
    cols = []
    for field in EVENT_SCHEMA:
        if field.name in table.column_names:
            col = table.column(field.name)
            if field.name == "timestamp" and not pa.types.is_timestamp(col.type):
                raise SchemaError(f"{source}: column 'timestamp' must be a timestamp, got {col.type}")
            col = col.cast(field.type)
        elif field.name == "channel":
            col = pa.array(["unknown"] * n, pa.string())
        else:
            col = pa.nulls(n, field.type)
        cols.append(col)
    out = pa.Table.from_arrays(cols, schema=EVENT_SCHEMA.with_metadata(None))
    for name, vocab in (("event_type", EVENT_TYPES), ("channel", CHANNELS)):
        values = set(out.column(name).unique().to_pylist())
        unknown = sorted(str(v) for v in values - set(vocab))
        if unknown:
            raise SchemaError(f"{source}: unknown {name} value(s) {unknown[:5]}; allowed: {list(vocab)}")
    if out.column("user_id").null_count:
        raise SchemaError(f"{source}: {out.column('user_id').null_count} row(s) have no user_id")
    return out


def conform_catalog(table: pa.Table | Mapping[str, Sequence], source: str = "catalog") -> pa.Table:
    """Cast a reader's catalogue to CATALOG_SCHEMA (missing attribute columns become nulls)."""
    if not isinstance(table, pa.Table):
        table = pa.table(dict(table))
    if "item_id" not in table.column_names:
        raise SchemaError(f"{source}: catalogue needs an 'item_id' column; have {table.column_names}")
    n = table.num_rows
    cols = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
        for f in CATALOG_SCHEMA
    ]
    return pa.Table.from_arrays(cols, schema=CATALOG_SCHEMA)


def empty_catalog() -> pa.Table:
    return CATALOG_SCHEMA.empty_table()
