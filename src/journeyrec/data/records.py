"""Events as a live touchpoint sends them (JSON objects) -> the canonical event table, validated
by the offline ingest's own rules (:func:`journeyrec.data.schema.validate_events`), per event.

A record has the canonical fields (``schema.EVENT_SCHEMA``) with the user named by
``customer_id`` (a known customer) or ``anonymous_id`` (a visitor not logged in; a customer id
wins when both are given). ``timestamp`` is epoch milliseconds or ISO 8601 (UTC unless it says
otherwise); ``filters`` a JSON object. A record that is not an object, names an unknown field or
carries a value of the wrong type is rejected as ``malformed_row`` (the detail names the field);
everything else is the offline checks' business, with their reasons (``schema.REJECT_REASONS``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Mapping, Sequence

import pyarrow as pa

from journeyrec.data.schema import CATALOG_SCHEMA, EVENT_SCHEMA, REPURCHASE_CLASSES, validate_events

__all__ = ["RECORD_FIELDS", "Rejection", "ValidatedRecords", "validate_records", "validate_catalog_record"]

RECORD_FIELDS: tuple[str, ...] = ("customer_id", "anonymous_id", *(f.name for f in EVENT_SCHEMA if f.name != "user_id"))
_TEXT = ("customer_id", "anonymous_id", "session_id", "event_type", "channel", "query")
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999  # years 1 .. 9999
# what a rejection says when the check reports no offending value
_EXPLAIN = {
    "missing_user_id": "customer_id or anonymous_id is required",
    "missing_item_id": "item_id is required for this event_type",
    "unparseable_timestamp": "timestamp is required: epoch milliseconds or ISO 8601",
}


@dataclass(frozen=True)
class Rejection:
    index: int  # position of the record in the batch
    reason: str  # one of schema.REJECT_REASONS
    detail: str


@dataclass
class ValidatedRecords:
    events: pa.Table  # EVENT_SCHEMA, raw user ids (customer id, else anonymous id): pseudonymise before storing
    indices: list[int]  # batch position of each row of ``events``
    anonymous: list[str | None]  # the anonymous id of each row of ``events`` (None: none given)
    customer: list[bool]  # whether each row's user_id is a customer id
    rejected: list[Rejection]


def _timestamp(value: Any) -> tuple[int | None, str | None]:
    """(epoch ms, None) or (None, the text that did not parse)."""
    if isinstance(value, bool):
        return None, repr(value)
    if isinstance(value, int):
        return (value, None) if _MIN_MS <= value <= _MAX_MS else (None, str(value))
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return None, value
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return int(t.timestamp() * 1000), None
    return None, "missing" if value is None else repr(value)


def _structural(record: Any) -> str | None:
    """Why a record cannot even be read as an event (None: it can)."""
    if not isinstance(record, Mapping):
        return f"an event must be a JSON object, got {type(record).__name__}"
    unknown = sorted(set(record) - set(RECORD_FIELDS))
    if unknown:
        return f"unknown field(s) {unknown}; allowed: {list(RECORD_FIELDS)}"
    for name in _TEXT:
        v = record.get(name)
        if v is not None and not isinstance(v, str):
            return f"{name} must be a string, got {type(v).__name__}"
    item = record.get("item_id")
    if item is not None and (isinstance(item, bool) or not isinstance(item, (str, int))):
        return f"item_id must be a string or an integer, got {type(item).__name__}"
    price = record.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
        return f"price must be a number, got {type(price).__name__}"
    qty = record.get("quantity")
    if qty is not None and (isinstance(qty, bool) or not isinstance(qty, int) or abs(qty) >= 2**31):
        return f"quantity must be a 32-bit integer, got {qty!r}"
    filters = record.get("filters")
    if filters is not None:
        if isinstance(filters, str):
            try:
                filters = json.loads(filters)
            except json.JSONDecodeError:
                return "filters must be a JSON object"
        if not isinstance(filters, Mapping):
            return "filters must be a JSON object"
    return None


def validate_records(records: Sequence[Any], source: str = "events") -> ValidatedRecords:
    """Validate a batch of event records, each on its own (see the module docstring)."""
    n = len(records)
    cols: dict[str, list[Any]] = {f.name: [None] * n for f in EVENT_SCHEMA}
    reason: list[str | None] = [None] * n
    detail: list[str | None] = [None] * n
    ts_raw: list[str | None] = [None] * n
    anonymous: list[str | None] = [None] * n
    customer: list[bool] = [False] * n
    for i, r in enumerate(records):
        problem = _structural(r)
        if problem is not None:
            reason[i], detail[i] = "malformed_row", problem
            continue
        customer[i] = bool(r.get("customer_id"))
        anonymous[i] = r.get("anonymous_id") or None
        cols["user_id"][i] = r.get("customer_id") or r.get("anonymous_id")
        for name in ("session_id", "event_type", "channel", "query", "price", "quantity"):
            cols[name][i] = r.get(name)
        item = r.get("item_id")
        cols["item_id"][i] = None if item is None else str(item)
        filters = r.get("filters")
        if filters is not None:
            cols["filters"][i] = json.dumps(
                json.loads(filters) if isinstance(filters, str) else filters, sort_keys=True
            )
        cols["timestamp"][i], ts_raw[i] = _timestamp(r.get("timestamp"))
    table = pa.table(
        {
            **{f.name: pa.array(cols[f.name], pa.int64() if f.name == "timestamp" else f.type) for f in EVENT_SCHEMA},
            "_line": pa.array(range(n), pa.int64()),
            "_reason": pa.array(reason, pa.string()),
            "_detail": pa.array(detail, pa.string()),
            "_ts_raw": pa.array(ts_raw, pa.string()),
        }
    )
    table = table.set_column(
        table.column_names.index("timestamp"), "timestamp", table.column("timestamp").cast(pa.timestamp("ms", tz="UTC"))
    )
    good, bad = validate_events(table, source)
    rejected_at = bad.column("line").to_pylist()
    rejected = [
        Rejection(
            int(i), str(why), str(d if d is not None else (f"value {v!r}" if v is not None else _EXPLAIN.get(why, why)))
        )
        for i, why, d, v in zip(
            rejected_at,
            bad.column("reason").to_pylist(),
            bad.column("detail").to_pylist(),
            bad.column("value").to_pylist(),
        )
    ]
    bad_set = set(rejected_at)
    indices = [i for i in range(n) if i not in bad_set]
    return ValidatedRecords(good, indices, [anonymous[i] for i in indices], [customer[i] for i in indices], rejected)


def validate_catalog_record(record: Any) -> str | None:
    """Why a live catalogue record (``item_id`` + any fields of ``schema.CATALOG_SCHEMA``) is not
    valid, or None. Types follow the schema; a price cannot be negative."""
    if not isinstance(record, Mapping):
        return f"an item must be a JSON object, got {type(record).__name__}"
    item = record.get("item_id")
    if isinstance(item, bool) or not isinstance(item, (str, int)) or item == "":
        return "item_id is required (a string or an integer)"
    unknown = sorted(set(record) - {f.name for f in CATALOG_SCHEMA})
    if unknown:
        return f"unknown field(s) {unknown}; allowed: {[f.name for f in CATALOG_SCHEMA]}"
    for f in CATALOG_SCHEMA:
        v = record.get(f.name)
        if v is None or f.name == "item_id":
            continue
        if pa.types.is_string(f.type) and not isinstance(v, str):
            return f"{f.name} must be a string, got {type(v).__name__}"
        if pa.types.is_floating(f.type) and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v):
            return f"{f.name} must be a number >= 0, got {v!r}"
        if pa.types.is_boolean(f.type) and not isinstance(v, bool):
            return f"{f.name} must be true or false, got {v!r}"
        if pa.types.is_list(f.type) and (not isinstance(v, list) or not all(isinstance(t, str) for t in v)):
            return f"{f.name} must be a list of strings"
    if record.get("repurchase_class") is not None and record["repurchase_class"] not in REPURCHASE_CLASSES:
        return f"repurchase_class must be one of {list(REPURCHASE_CLASSES)}, got {record['repurchase_class']!r}"
    return None
