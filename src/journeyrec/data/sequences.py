"""Canonical events -> per-user item sequences (CSR arrays), splits, and fixed-length windows.

Everything a model reads is derived here, with numpy only (no torch), so the same code serves
training, offline evaluation and online inference:

* :func:`build_sequences` keeps item events, sorts them stably by (user, time, original row
  order), maps ids to contiguous integers (0 = padding) and stores the result as CSR arrays;
* :func:`make_split` produces training prefixes and evaluation cases for leave-one-out or a
  global time cutoff; an evaluation case is (user, end, target): the model reads the user's
  events before ``end`` and must rank ``target`` = the item at ``end``;
* :func:`gather_windows` cuts left-padded windows of the last ``length`` positions before any
  set of ends, for every per-position feature at once, with no per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import (
    CATALOG_SCHEMA,
    ITEM_EVENT_TYPES,
    SchemaError,
    channel_codes,
    conform_catalog,
    event_type_codes,
)

__all__ = [
    "SequenceData",
    "EvalCases",
    "Split",
    "TIME_GAP_EDGES_S",
    "N_TIME_GAP_BUCKETS",
    "build_sequences",
    "make_split",
    "gather_windows",
    "history_pairs",
    "time_gap_buckets",
]

# Upper edges (seconds) of the time-gap buckets; code = 1 + bucket index, 0 = padding.
# The first position of a sequence has gap 0 -> bucket 1.
TIME_GAP_EDGES_S: tuple[float, ...] = (0.5, 10, 60, 300, 1800, 3 * 3600, 86400, 7 * 86400, 30 * 86400, np.inf)
N_TIME_GAP_BUCKETS = len(TIME_GAP_EDGES_S)

# When consecutive events of one user are on the same item they collapse into one position
# (``dedup_consecutive``); the position keeps the strongest signal among them.
_STRENGTH = {"view": 1, "click": 2, "rating": 3, "wishlist": 3, "cart": 4, "purchase": 5}


def time_gap_buckets(timestamps_ms: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
    """Bucket codes of the gap to the previous event (gap 0 at ``starts``, the first positions)."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    gaps = np.zeros(len(ts), dtype=np.float64)
    if len(ts) > 1:
        gaps[1:] = np.diff(ts) / 1000.0
    if starts is not None:
        gaps[np.asarray(starts, dtype=np.int64)[np.asarray(starts) < len(ts)]] = 0.0
    gaps = np.maximum(gaps, 0.0)
    return (np.searchsorted(np.asarray(TIME_GAP_EDGES_S), gaps, side="left") + 1).astype(np.int8)


@dataclass
class SequenceData:
    """All users' item sequences as CSR arrays, plus the id maps and the aligned catalogue.

    Internal item id ``i`` (1-based; 0 = padding) is ``item_ids[i - 1]`` externally and row
    ``i - 1`` of ``catalog``. User ``u`` owns positions ``offsets[u]:offsets[u + 1]``.
    """

    item_ids: np.ndarray  # [n_items] external ids (str, object array)
    user_ids: np.ndarray  # [n_users] external (pseudonymised) ids
    offsets: np.ndarray  # [n_users + 1] int64
    items: np.ndarray  # [n_events] int32 internal item ids
    event_types: np.ndarray  # [n_events] int8 codes (schema.EVENT_TYPES, 1-based)
    channels: np.ndarray  # [n_events] int8 codes (schema.CHANNELS, 1-based)
    timestamps: np.ndarray  # [n_events] int64 epoch milliseconds
    catalog: pa.Table = field(repr=False)
    sessions: np.ndarray | None = None  # [n_events] int64 session number, non-decreasing per user

    def session_ids(self, gap_ms: int = 30 * 60 * 1000) -> np.ndarray:
        """Per-position session number within each user: the source's sessions when known,
        otherwise a new session starts after an inactivity gap longer than ``gap_ms``."""
        if self.sessions is not None:
            return self.sessions
        new = np.ones(self.n_events, dtype=bool)
        if self.n_events > 1:
            new[1:] = np.diff(self.timestamps) > gap_ms
        new[self.offsets[:-1][self.lengths > 0]] = True
        count = np.cumsum(new)
        return count - count[self.offsets[:-1]].repeat(self.lengths)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def time_gaps(self) -> np.ndarray:
        """Time-gap bucket code of every position (computed once)."""
        return time_gap_buckets(self.timestamps, self.offsets[:-1])

    def item_index(self) -> dict[str, int]:
        """External item id -> internal id (1-based)."""
        return {str(x): i + 1 for i, x in enumerate(self.item_ids)}

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]


@dataclass
class EvalCases:
    """Evaluation cases: the model reads ``items[offsets[user]:end]`` and ranks ``target``."""

    users: np.ndarray  # int64 user index
    ends: np.ndarray  # int64 absolute CSR position of the target
    targets: np.ndarray  # int64 internal item id (= items[ends])

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, idx: np.ndarray) -> "EvalCases":
        return EvalCases(self.users[idx], self.ends[idx], self.targets[idx])


@dataclass
class Split:
    """Training prefixes (``offsets[u]:train_ends[u]``) and validation / test cases."""

    kind: str
    train_ends: np.ndarray  # [n_users] int64 absolute end (exclusive) of each training prefix
    valid: EvalCases
    test: EvalCases
    info: dict = field(default_factory=dict)


def build_sequences(events: pa.Table, catalog: pa.Table | None = None, dedup_consecutive: bool = False) -> SequenceData:
    """Item sequences from canonical events (non-item events such as searches are skipped).

    Sorting is stable on (user, timestamp, original row order), so events with equal
    timestamps keep their order in the source file.
    """
    is_item = pc.and_(pc.is_valid(events.column("item_id")), pc.is_in(events.column("event_type"), pa.array(ITEM_EVENT_TYPES)))
    ev = events.filter(is_item)
    if ev.num_rows == 0:
        raise SchemaError("no item events (view/cart/purchase/...) with an item_id: nothing to model")
    users_raw = ev.column("user_id").to_numpy(zero_copy_only=False).astype(object)
    user_ids, user_code = np.unique(users_raw, return_inverse=True)
    ts = ev.column("timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
    order = np.lexsort((np.arange(len(ts)), ts, user_code))
    user_code = user_code[order]
    ts = ts[order]
    item_raw = ev.column("item_id").to_numpy(zero_copy_only=False).astype(object)[order]
    item_ids, item_code = np.unique(item_raw, return_inverse=True)
    items = (item_code + 1).astype(np.int32)
    etype_str = ev.column("event_type").to_numpy(zero_copy_only=False).astype(object)[order]
    etypes = event_type_codes(etype_str)
    chans = channel_codes(ev.column("channel").to_numpy(zero_copy_only=False).astype(object)[order])

    if dedup_consecutive and len(items) > 1:
        new_run = np.ones(len(items), dtype=bool)
        new_run[1:] = (user_code[1:] != user_code[:-1]) | (items[1:] != items[:-1])
        starts = np.nonzero(new_run)[0]
        strength = np.vectorize(lambda e: _STRENGTH.get(e, 0), otypes=[np.int64])(etype_str)
        # strongest event type in each run: max of (strength, code) packed in one integer
        packed = strength * 64 + etypes.astype(np.int64)
        best = np.maximum.reduceat(packed, starts) % 64
        last = np.r_[starts[1:], len(items)] - 1  # timestamp and channel of the run's last event
        user_code, items, ts, chans = user_code[starts], items[starts], ts[last], chans[last]
        etypes = best.astype(np.int8)

    counts = np.bincount(user_code, minlength=len(user_ids))
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SequenceData(
        item_ids=item_ids,
        user_ids=user_ids,
        offsets=offsets,
        items=items,
        event_types=etypes,
        channels=chans,
        timestamps=ts.astype(np.int64),
        catalog=_align_catalog(item_ids, catalog),
    )


def _align_catalog(item_ids: np.ndarray, catalog: pa.Table | None) -> pa.Table:
    """Catalogue rows in internal-id order; items missing from the catalogue get null attributes."""
    ids = pa.array(item_ids.tolist(), pa.string())
    if catalog is None or catalog.num_rows == 0:
        return conform_catalog({"item_id": ids})
    cat = conform_catalog(catalog)
    idx = pc.index_in(ids, value_set=cat.column("item_id"))
    aligned = cat.take(pc.fill_null(idx, 0))
    missing = pc.is_null(idx)
    cols = []
    for f in CATALOG_SCHEMA:
        col = ids if f.name == "item_id" else pc.if_else(missing, pa.scalar(None, f.type), aligned.column(f.name))
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=CATALOG_SCHEMA)


def make_split(
    data: SequenceData,
    kind: Literal["leave_one_out", "global_time"] = "leave_one_out",
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_eval_length: int = 3,
) -> Split:
    """Training prefixes and evaluation cases.

    ``leave_one_out``: for users with at least ``min_eval_length`` events, the last item is the
    test target (input: all earlier items), the second-to-last the validation target (input:
    all items before it), and training uses the rest. Shorter users train on everything and are
    not evaluated.

    ``global_time``: two cutoffs at the time quantiles ``1 - test_fraction - valid_fraction`` and
    ``1 - test_fraction``. Training uses events before the first cutoff; a user's validation
    target is their first event in [cutoff_valid, cutoff_test), the test target their first event
    after cutoff_test, each with the user's whole earlier history as input (if non-empty).
    """
    starts = data.offsets[:-1]
    ends = data.offsets[1:]
    lengths = ends - starts
    if kind == "leave_one_out":
        ev = lengths >= max(min_eval_length, 2)
        train_ends = np.where(ev, ends - 2, ends)
        users = np.nonzero(ev)[0].astype(np.int64)
        v_end = ends[users] - 2
        t_end = ends[users] - 1
        valid = EvalCases(users, v_end, data.items[v_end].astype(np.int64))
        test = EvalCases(users, t_end, data.items[t_end].astype(np.int64))
        return Split(kind, train_ends.astype(np.int64), valid, test)
    if kind == "global_time":
        if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1 and valid_fraction + test_fraction < 1):
            raise ValueError("global_time split needs 0 < test_fraction, valid_fraction >= 0, and their sum < 1")
        ts = data.timestamps
        t_valid = float(np.quantile(ts, 1.0 - test_fraction - valid_fraction))
        t_test = float(np.quantile(ts, 1.0 - test_fraction))
        train_ends = _first_at_or_after(data, t_valid)
        valid_pos = train_ends
        valid_ok = (valid_pos < ends) & (valid_pos > starts) & (ts[np.minimum(valid_pos, len(ts) - 1)] < t_test)
        test_pos = _first_at_or_after(data, t_test)
        test_ok = (test_pos < ends) & (test_pos > starts)
        vu = np.nonzero(valid_ok)[0].astype(np.int64)
        tu = np.nonzero(test_ok)[0].astype(np.int64)
        valid = EvalCases(vu, valid_pos[vu], data.items[valid_pos[vu]].astype(np.int64))
        test = EvalCases(tu, test_pos[tu], data.items[test_pos[tu]].astype(np.int64))
        info = {"cutoff_valid_ms": int(t_valid), "cutoff_test_ms": int(t_test)}
        return Split(kind, train_ends.astype(np.int64), valid, test, info)
    raise ValueError(f"unknown split '{kind}'; use leave_one_out or global_time")


def _first_at_or_after(data: SequenceData, cutoff: float) -> np.ndarray:
    """Per user, the absolute position of the first event with timestamp >= cutoff (or the end)."""
    starts = data.offsets[:-1]
    n = len(data.timestamps)
    pos = np.where(data.timestamps >= cutoff, np.arange(n), n)
    first = np.full(data.n_users, n, dtype=np.int64)
    nonempty = data.lengths > 0
    first[nonempty] = np.minimum.reduceat(pos, starts[nonempty])
    return np.minimum(first, data.offsets[1:])


def gather_windows(
    data: SequenceData,
    users: np.ndarray,
    ends: np.ndarray,
    length: int,
    features: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Left-padded windows of the ``length`` positions before each ``end`` (exclusive).

    Returns ``{"items": int64 [B, length], <feature>: int64 [B, length], ...}``; padding is 0.
    Features: ``event_type``, ``channel``, ``time_gap``.
    """
    users = np.asarray(users, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    pos = ends[:, None] - length + np.arange(length, dtype=np.int64)[None, :]
    valid = pos >= data.offsets[users][:, None]
    safe = np.where(valid, pos, 0)
    out = {"items": np.where(valid, data.items[safe], 0).astype(np.int64)}
    sources = {"event_type": data.event_types, "channel": data.channels}
    for name in features:
        if name == "time_gap":
            out[name] = np.where(valid, data.time_gaps[safe], 0).astype(np.int64)
        elif name in sources:
            out[name] = np.where(valid, sources[name][safe], 0).astype(np.int64)
        else:
            raise ValueError(f"unknown sequence feature '{name}'; known: event_type, channel, time_gap")
    return out


def history_pairs(data: SequenceData, users: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs of every item each case's user had before ``end`` (for seen-exclusion)."""
    users = np.asarray(users, dtype=np.int64)
    starts = data.offsets[users]
    lens = np.asarray(ends, dtype=np.int64) - starts
    rows = np.repeat(np.arange(len(users), dtype=np.int64), lens)
    within = np.arange(lens.sum(), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    items = data.items[np.repeat(starts, lens) + within].astype(np.int64)
    return rows, items
