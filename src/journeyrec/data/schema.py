"""The canonical event and catalogue schemas: the single source of truth for column names,
types and closed vocabularies. Readers map their source format into these tables; everything
downstream (preparation, models, serving) reads only these.

Event table (one row per touchpoint event)::

    user_id     string    pseudonymised before anything is written (see privacy.py)
    session_id  string    HMAC pseudonym of the source session id, or derived by inactivity gap
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

Quarantine table (one row per rejected source row, see :func:`validate_events`)::

    file, line, reason, value, detail, + the row's canonical fields (user_id pseudonymised
    before it is written; the raw line text is never stored, ``file:line`` points to it)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.config import DataConfig
from journeyrec.errors import JourneyrecError

__all__ = [
    "EVENT_TYPES",
    "CHANNELS",
    "ITEM_EVENT_TYPES",
    "EVENT_SCHEMA",
    "CATALOG_SCHEMA",
    "REQUIRED_EVENT_COLUMNS",
    "REPURCHASE_CLASSES",
    "QUARANTINE_SCHEMA",
    "REJECT_REASONS",
    "READER_REASONS",
    "CHECK_REASONS",
    "TimeBounds",
    "iso_ms",
    "SchemaError",
    "EVENT_CODE",
    "CHANNEL_CODE",
    "EVENT_STRENGTH",
    "STRENGTH_BY_CODE",
    "TIME_GAP_EDGES_S",
    "N_TIME_GAP_BUCKETS",
    "FEATURE_SIZES",
    "NEWER_VALUE_FALLBACK",
    "feature_code_map",
    "event_type_codes",
    "channel_codes",
    "conform_events",
    "conform_catalog",
    "empty_catalog",
    "validate_events",
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
    "newsletter_click",
)
CHANNELS: tuple[str, ...] = ("web", "app", "newsletter", "store", "call_centre", "unknown", "tv")
# Event types that refer to an item and therefore become positions of an item sequence.
ITEM_EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "wishlist", "purchase", "rating", "newsletter_click")
REPURCHASE_CLASSES: tuple[str, ...] = ("consumable", "durable", "unknown")

# Integer codes of the vocabularies as tensors carry them (0 = padding): what training's arrays
# and serving's request encoder both use.
EVENT_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(EVENT_TYPES)}
CHANNEL_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(CHANNELS)}

# When consecutive events on one item collapse into one position (``data.dedup_consecutive``),
# the position keeps the strongest of their event types (a cart outranks the view before it).
EVENT_STRENGTH: dict[str, int] = {
    "view": 1,
    "click": 2,
    "newsletter_click": 2,
    "rating": 3,
    "wishlist": 3,
    "cart": 4,
    "purchase": 5,
}
STRENGTH_BY_CODE = np.asarray([0] + [EVENT_STRENGTH.get(e, 0) for e in EVENT_TYPES], dtype=np.int64)

# Upper edges (seconds) of the time-gap buckets; code = 1 + bucket index, 0 = padding.
# The first position of a sequence has gap 0 -> bucket 1.
TIME_GAP_EDGES_S: tuple[float, ...] = (0.5, 10, 60, 300, 1800, 3 * 3600, 86400, 7 * 86400, 30 * 86400, np.inf)
N_TIME_GAP_BUCKETS = len(TIME_GAP_EDGES_S)

# Vocabulary size of each per-position model feature (``model.features``): the embedding tables
# models build, so training, re-export and serving size them alike.
FEATURE_SIZES: dict[str, int] = {
    "event_type": len(EVENT_TYPES),
    "channel": len(CHANNELS),
    "time_gap": N_TIME_GAP_BUCKETS,
}

# A model records the vocabulary size it was built with (``hparams["features"]``). A value appended
# to a vocabulary after that has a code beyond the model's embedding table; such a model reads it
# as its closest older value instead (a newsletter click is a click, a TV order an unknown channel).
NEWER_VALUE_FALLBACK: dict[str, dict[str, str]] = {
    "event_type": {"newsletter_click": "click"},
    "channel": {"tv": "unknown"},
}

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


# Why a row was rejected. A reader sets one of READER_REASONS (the ``_reason`` column) on a row it
# could not turn into canonical fields; those win. Every other row gets the first of CHECK_REASONS
# that fails, in this order (:func:`validate_events`).
READER_REASONS: tuple[str, ...] = (
    "malformed_row",  # wrong number of fields, broken JSON
    "blank_line",  # a line with no value in any column read
    "repeated_header",  # the header line again (files concatenated with their headers)
    "duplicate_user_line",  # a second line for the same user in a one-line-per-user format
    "unparseable_price",
    "unparseable_quantity",
    "unparseable_rating",
)
CHECK_REASONS: tuple[str, ...] = (
    "missing_user_id",
    "unknown_event_type",
    "missing_item_id",
    "unparseable_timestamp",
    "timestamp_out_of_range",  # outside TimeBounds (data.timestamp_min, data.timestamp_max_ahead_days)
    "unknown_channel",
    "negative_price",
    "negative_quantity",
)
REJECT_REASONS: tuple[str, ...] = READER_REASONS + CHECK_REASONS

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),  # 1-based line of a text file (row number for Parquet)
        pa.field("reason", pa.string(), nullable=False),
        pa.field("value", pa.string()),  # the offending value as text (never the user id)
        pa.field("detail", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),  # null for timestamp_out_of_range (the text is in value)
        pa.field("channel", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("quantity", pa.int32()),
    ]
)


class SchemaError(JourneyrecError, ValueError):
    """Input data does not fit the canonical schema; the message names the column and the fix."""


_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC text, for any int64 value (years beyond 9999 or before 1
    included, where ``datetime`` gives up): messages and the dataset card must never fail on a
    timestamp that validation let through."""
    spec = "seconds" if ms % 1000 == 0 else "milliseconds"
    try:
        return (_EPOCH + timedelta(milliseconds=int(ms))).isoformat(timespec=spec).replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return f"{np.datetime_as_string(np.datetime64(int(ms), 'ms'), unit='s' if spec == 'seconds' else 'ms')}Z"


@dataclass(frozen=True)
class TimeBounds:
    """The accepted range of event times (epoch ms); rows outside go to quarantine as
    ``timestamp_out_of_range`` (:func:`validate_events`).

    Lower bound: ``min_ms`` (``data.timestamp_min``). Upper bound: ``max_ahead_ms``
    (``data.timestamp_max_ahead_days``) after the file's newest event, where the newest event is
    the newest one that is not later than the file itself (its last modification, ``written_ms``):
    a log cannot hold events from after it was written, so a millisecond value read as seconds
    (year 55,840), a placeholder year or a device clock set ahead cannot become the reference the
    way the plain maximum would.

    The newest event is known only once every row has been read, so a source is read in up to two
    passes. The first rejects what is more than ``max_ahead_ms`` after the file was written (past
    any possible newest event); when :meth:`beyond` then finds accepted rows more than
    ``max_ahead_ms`` after the newest event (possible only between the file's write time and a day
    later), a second pass with that bound sends them to quarantine through the same validation
    as every other bad row, with their file and line. Sources without a file (the demo shop)
    have no upper bound.
    """

    min_ms: int | None = None
    max_ahead_ms: int | None = None
    written_ms: int | None = None  # the source file's last modification
    max_ms: int | None = None  # the upper bound of this pass
    newest_ms: int | None = None  # the file's newest event, once known (second pass)

    @classmethod
    def from_config(cls, cfg: DataConfig | Mapping[str, Any]) -> TimeBounds:
        """From a data config's ``timestamp_min`` (ISO date, UTC) and ``timestamp_max_ahead_days``
        (null turns a bound off; a mapping's absent keys take DataConfig's defaults)."""
        if not isinstance(cfg, DataConfig):
            cfg = DataConfig(**dict(cfg))
        lo, ahead = cfg.timestamp_min, cfg.timestamp_max_ahead_days
        min_ms = None
        if lo is not None:
            try:
                min_ms = int(np.datetime64(str(lo).rstrip("Z"), "ms").astype(np.int64))
            except ValueError:
                raise SchemaError(
                    f"data.timestamp_min={lo!r} is not an ISO date; use e.g. 1990-01-01, or null for no lower bound"
                ) from None
        if ahead is not None and not float(ahead) >= 0:
            raise SchemaError(f"data.timestamp_max_ahead_days={ahead!r} must be >= 0 (or null for no upper bound)")
        return cls(min_ms=min_ms, max_ahead_ms=None if ahead is None else int(round(float(ahead) * _DAY_MS)))

    @classmethod
    def default(cls) -> TimeBounds:
        return cls.from_config({})

    def first_pass(self, written_ms: int | None) -> TimeBounds:
        """The bounds of a first pass over a source last written at ``written_ms`` (None: unknown)."""
        if self.max_ahead_ms is None or written_ms is None:
            return replace(self, written_ms=None, max_ms=None, newest_ms=None)
        return replace(self, written_ms=written_ms, max_ms=written_ms + self.max_ahead_ms, newest_ms=None)

    def beyond(self, timestamps: np.ndarray) -> TimeBounds | None:
        """The bounds of a second pass, when some of the ``timestamps`` a first pass accepted lie
        more than ``max_ahead_ms`` after the file's newest event; else None."""
        ts = np.asarray(timestamps, dtype=np.int64)
        if self.max_ahead_ms is None or self.written_ms is None or len(ts) == 0:
            return None
        not_later = ts[ts <= self.written_ms]
        if len(not_later) == 0:  # every event is later than the file: no reference to measure from
            return None
        newest = int(not_later.max())
        if int(ts.max()) <= newest + self.max_ahead_ms:
            return None
        return replace(self, max_ms=newest + self.max_ahead_ms, newest_ms=newest)

    def late_detail(self) -> str:
        """Why a row past ``max_ms`` is out of range (the quarantine's ``detail``)."""
        days = f"{(self.max_ahead_ms or 0) / _DAY_MS:g} day(s)"
        if self.newest_ms is not None:
            return (
                f"more than {days} after the file's newest event {iso_ms(self.newest_ms)} "
                "(data.timestamp_max_ahead_days)"
            )
        return (
            f"more than {days} after the file itself was last written ({iso_ms(self.written_ms or 0)}), so after "
            "its newest event (data.timestamp_max_ahead_days)"
        )


def _codes(values: np.ndarray, vocabulary: Sequence[str], what: str) -> np.ndarray:
    lookup = {v: i + 1 for i, v in enumerate(vocabulary)}
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in lookup]
    if unknown:
        raise SchemaError(f"unknown {what} {unknown[:5]}; allowed: {list(vocabulary)}")
    return np.asarray([lookup[u] for u in uniq], dtype=np.int8)[inverse]


def feature_code_map(feature: str, size: int) -> np.ndarray:
    """int64 lookup table from today's codes of ``feature`` to the codes of a model whose table was
    built for ``size`` values: identity up to ``size``, :data:`NEWER_VALUE_FALLBACK` beyond it.

    Raises ValueError when a newer value has no fallback within ``size`` (the model cannot read it)."""
    vocab = {"event_type": EVENT_TYPES, "channel": CHANNELS}.get(feature)
    n = FEATURE_SIZES[feature]
    lut = np.arange(n + 1, dtype=np.int64)
    if vocab is None or size >= n:
        return lut
    fallback = NEWER_VALUE_FALLBACK.get(feature, {})
    for code in range(size + 1, n + 1):
        older = fallback.get(vocab[code - 1])
        if older is None or vocab.index(older) + 1 > size:
            raise ValueError(
                f"a model built for {size} {feature} values cannot read {vocab[code - 1]!r} (code {code}) "
                f"and it has no older fallback; re-export the bundle with this journeyrec"
            )
        lut[code] = vocab.index(older) + 1
    return lut


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


def _str_col(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    n = table.num_rows
    if name not in table.column_names:
        return pa.nulls(n, pa.string())
    return pc.cast(table.column(name), pa.string())


def _blank(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where a string column is null or empty."""
    return np.asarray(pc.fill_null(pc.or_kleene(pc.is_null(col), pc.equal(col, "")), True), dtype=bool)


def validate_events(
    table: pa.Table, source: str = "events", bounds: TimeBounds | None = None
) -> tuple[pa.Table, pa.Table]:
    """Split a reader's batch into valid canonical rows and rejected rows.

    ``table`` holds canonical columns (event_type still as the source wrote it after mapping,
    timestamp parsed with failures as nulls) and optionally the bookkeeping columns ``_file``,
    ``_line``, ``_reason`` (one of READER_REASONS, set by the reader), ``_detail``, ``_value``
    (the source text behind a reader's reason) and ``_ts_raw`` (the text of timestamps that did
    not parse). ``bounds``: the accepted event times (None: any). Returns ``(events, rejected)``:
    events in EVENT_SCHEMA, rejected in QUARANTINE_SCHEMA with the first failing reason of
    CHECK_REASONS (or the reader's). Vectorised: one pass of Arrow kernels per check, no per-row
    Python.

    A missing *column* is a structural problem and raises SchemaError at once.
    """
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in table.column_names]
    if missing:
        have = [c for c in table.column_names if not c.startswith("_")]
        raise SchemaError(
            f"{source}: missing required column(s) {missing}; have {have}. "
            "Map your column names in the data config (data.options.columns)."
        )
    n = table.num_rows
    user = _str_col(table, "user_id")
    etype = _str_col(table, "event_type")
    item = _str_col(table, "item_id")
    # a channel that was not recorded is the vocabulary's "unknown", not an error
    channel = pc.fill_null(_str_col(table, "channel"), "unknown")
    ts = table.column("timestamp")
    if not pa.types.is_timestamp(ts.type):
        raise SchemaError(f"{source}: column 'timestamp' must be a timestamp, got {ts.type}")
    price = pc.cast(table.column("price"), pa.float64()) if "price" in table.column_names else pa.nulls(n, pa.float64())
    qty = pc.cast(table.column("quantity"), pa.int32()) if "quantity" in table.column_names else pa.nulls(n, pa.int32())
    lo, hi = (None, None) if bounds is None else (bounds.min_ms, bounds.max_ms)
    ts_ms = (
        np.zeros(n, dtype=np.int64)
        if lo is None and hi is None
        else np.asarray(
            pc.fill_null(pc.cast(pc.cast(ts, pa.timestamp("ms", tz="UTC"), safe=False), pa.int64()), 0), dtype=np.int64
        )
    )
    too_early = np.zeros(n, dtype=bool) if lo is None else ts_ms < lo
    too_late = np.zeros(n, dtype=bool) if hi is None else ts_ms > hi

    reader_reason = _str_col(table, "_reason")
    checks = {
        "missing_user_id": _blank(user),
        "unknown_event_type": ~np.asarray(pc.fill_null(pc.is_in(etype, pa.array(EVENT_TYPES)), False), dtype=bool),
        "missing_item_id": np.asarray(pc.fill_null(pc.is_in(etype, pa.array(ITEM_EVENT_TYPES)), False), dtype=bool)
        & _blank(item),
        "unparseable_timestamp": np.asarray(pc.is_null(ts), dtype=bool),
        "timestamp_out_of_range": (too_early | too_late) & np.asarray(pc.is_valid(ts), dtype=bool),
        "unknown_channel": ~np.asarray(pc.fill_null(pc.is_in(channel, pa.array(CHANNELS)), False), dtype=bool),
        "negative_price": np.asarray(pc.fill_null(pc.less(price, 0.0), False), dtype=bool),
        "negative_quantity": np.asarray(pc.fill_null(pc.less(qty, 0), False), dtype=bool),
    }
    assert tuple(checks) == CHECK_REASONS
    code = np.select([~_blank(reader_reason), *checks.values()], np.arange(1, len(checks) + 2), default=0)
    ok = code == 0
    if ok.all():
        good = table
        rejected = QUARANTINE_SCHEMA.empty_table()
    else:
        mask = pa.array(ok)
        good = table.filter(mask)
        bad_idx = pa.array(np.nonzero(~ok)[0])
        bad_code = code[~ok]
        reasons = np.asarray(("",) + CHECK_REASONS, dtype=object)[bad_code - 1]
        reader_r = np.asarray(reader_reason.take(bad_idx).to_pylist(), dtype=object)
        unknown = sorted(set(reader_r[bad_code == 1]) - set(READER_REASONS))
        if unknown:
            raise ValueError(
                f"{source}: reader set undeclared reject reason(s) {unknown}; declare them in schema.READER_REASONS"
            )
        reasons = np.where(bad_code == 1, reader_r, reasons)
        code_of = {r: i + 2 for i, r in enumerate(CHECK_REASONS)}
        bad_ms = ts_ms[~ok]
        out_of_range = bad_code == code_of["timestamp_out_of_range"]
        ts_text = [iso_ms(int(v)) if o else None for v, o in zip(bad_ms, out_of_range)]
        values = {  # the offending value for each reason code (None: nothing to show)
            1: _str_col(table, "_value").take(bad_idx),
            code_of["unknown_event_type"]: etype.take(bad_idx),
            code_of["unparseable_timestamp"]: _str_col(table, "_ts_raw").take(bad_idx),
            code_of["timestamp_out_of_range"]: pa.array(ts_text, pa.string()),
            code_of["unknown_channel"]: channel.take(bad_idx),
            code_of["negative_price"]: pc.cast(price.take(bad_idx), pa.string()),
            code_of["negative_quantity"]: pc.cast(qty.take(bad_idx), pa.string()),
        }
        value = pa.nulls(len(bad_idx), pa.string())
        for c, v in values.items():
            value = pc.if_else(pa.array(bad_code == c), v, value)
        detail = _str_col(table, "_detail").take(bad_idx)
        if out_of_range.any() and bounds is not None:
            early = too_early[~ok] & out_of_range
            if bounds.min_ms is not None:
                detail = pc.if_else(
                    pa.array(early), pa.scalar(f"before {iso_ms(bounds.min_ms)} (data.timestamp_min)"), detail
                )
            if bounds.max_ms is not None:
                detail = pc.if_else(pa.array(out_of_range & ~early), pa.scalar(bounds.late_detail()), detail)
        line = (
            pc.cast(table.column("_line"), pa.int64()).take(bad_idx)
            if "_line" in table.column_names
            else pa.nulls(len(bad_idx), pa.int64())
        )
        cols = {
            "file": _str_col(table, "_file").take(bad_idx)
            if "_file" in table.column_names
            else pa.array([source] * len(bad_idx), pa.string()),
            "line": line,
            "reason": pa.array(reasons.tolist(), pa.string()),
            "value": value,
            "detail": detail,
            "user_id": user.take(bad_idx),
            "session_id": _str_col(table, "session_id").take(bad_idx),
            "item_id": item.take(bad_idx),
            "event_type": etype.take(bad_idx),
            # null where out of range: the text is in ``value``, and a year like 55,840 would break
            # every tool that turns the quarantine into datetimes (pandas, pyarrow's to_pylist)
            "timestamp": pc.if_else(
                pa.array(out_of_range),
                pa.scalar(None, pa.timestamp("ms", tz="UTC")),
                pc.cast(ts, pa.timestamp("ms", tz="UTC"), safe=False).take(bad_idx),
            ),
            "channel": channel.take(bad_idx),
            "price": price.take(bad_idx),
            "quantity": qty.take(bad_idx),
        }
        rejected = pa.Table.from_arrays(
            [
                pa.array(cols[f.name])
                if not isinstance(cols[f.name], pa.ChunkedArray)
                else cols[f.name].combine_chunks()
                for f in QUARANTINE_SCHEMA
            ],
            schema=QUARANTINE_SCHEMA,
        )
    keep = [c for c in good.column_names if not c.startswith("_")]
    good = good.select(keep)
    good_channel = channel.filter(pa.array(ok)) if not ok.all() else channel
    if "channel" in good.column_names:
        good = good.set_column(good.column_names.index("channel"), "channel", good_channel)
    else:
        good = good.append_column("channel", good_channel)
    if "item_id" in good.column_names:  # an empty item id on a search / newsletter event means "no item"
        it = pc.cast(good.column("item_id"), pa.string())
        good = good.set_column(
            good.column_names.index("item_id"),
            "item_id",
            pc.if_else(pc.equal(it, ""), pa.scalar(None, pa.string()), it),
        )
    return conform_events(good, source=source), rejected
