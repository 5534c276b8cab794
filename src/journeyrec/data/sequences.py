"""Canonical events -> per-user item sequences (CSR arrays), splits, and fixed-length windows.

Everything a model reads is derived here, with numpy only (no torch), so the same code serves
training, offline evaluation and online inference:

* :func:`assemble` is the one implementation of the global preparation steps, on integer-coded
  events (``journeyrec.data.encode``): retention window, stable sort by (user, time, original
  row order), removal of exact duplicates, sessionisation (source session ids, else an
  inactivity gap), item events only, k-core filtering, contiguous ids (0 = padding) and the CSR
  layout. :func:`build_sequences` runs it on one in-memory table; streaming preparation runs it
  on the spooled columns of a whole log;
* :func:`make_split` produces training prefixes and evaluation cases for leave-one-out, a
  global time cutoff or the last session; an evaluation case is (user, end, target): the model
  reads the user's events before ``end`` and must rank ``target`` = the item at ``end``;
* :func:`gather_windows` cuts left-padded windows of the last ``length`` positions before any
  set of ends, for every per-position feature at once, with no per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.encode import EncodedEvents, EventEncoder
from journeyrec.data.schema import (
    CATALOG_SCHEMA,
    CHANNELS,
    EVENT_TYPES,
    ITEM_EVENT_TYPES,
    STRENGTH_BY_CODE,
    TIME_GAP_EDGES_S,
    SchemaError,
    conform_catalog,
)

__all__ = [
    "SequenceData",
    "SequenceOptions",
    "Assembled",
    "EvalCases",
    "Split",
    "SPLITS",
    "assemble",
    "check_split_options",
    "with_validation_targets",
    "build_sequences",
    "make_split",
    "gather_windows",
    "history_pairs",
    "training_positions",
    "repeated_targets",
    "time_gap_buckets",
    "collapse_runs",
]

_IS_ITEM_CODE = np.asarray([False] + [e in ITEM_EVENT_TYPES for e in EVENT_TYPES])
SPLITS = ("leave_one_out", "global_time", "last_session")


def collapse_runs(
    items: np.ndarray, etypes: np.ndarray, owner: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive events on one item (of one ``owner``, when given) as one position each:
    (first index of each run, the run's strongest event-type code, last index of each run). The
    one definition of ``dedup_consecutive``, for prepared sequences and served sessions alike."""
    new_run = np.ones(len(items), dtype=bool)
    new_run[1:] = items[1:] != items[:-1]
    if owner is not None:
        new_run[1:] |= owner[1:] != owner[:-1]
    starts = np.flatnonzero(new_run)
    # strongest event type in each run: max of (strength, code) packed in one integer
    packed = STRENGTH_BY_CODE[etypes] * 64 + etypes.astype(np.int64)
    best = np.maximum.reduceat(packed, starts) % 64 if len(starts) else packed[:0]
    last = np.r_[starts[1:], len(items)] - 1
    return starts, best.astype(etypes.dtype), last


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
    sessions: np.ndarray | None = None  # [n_events] int32 session number within the user (0, 1, ...), non-decreasing

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

    def subset(self, idx: np.ndarray) -> EvalCases:
        return EvalCases(self.users[idx], self.ends[idx], self.targets[idx])


@dataclass
class Split:
    """Training prefixes (``offsets[u]:train_ends[u]``) and validation / test cases."""

    kind: str
    train_ends: np.ndarray  # [n_users] int64 absolute end (exclusive) of each training prefix
    valid: EvalCases
    test: EvalCases
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SequenceOptions:
    """Knobs of the global preparation steps (the data config's fields of the same meaning)."""

    dedup: bool = True  # drop exact duplicates: same user, session, item, type, channel, timestamp
    dedup_consecutive: bool = False  # collapse consecutive events on the same item into one position
    session_gap_ms: int = 30 * 60 * 1000  # inactivity gap that starts a new session (no source sessions)
    min_user_events: int = 1  # k-core: users need at least this many item events ...
    min_item_events: int = 1  # ... and items at least this many (repeated until both hold)
    retention_days: float | None = None  # drop events older than this before the newest event


@dataclass
class Assembled:
    """Output of :func:`assemble`: the sequences, and per source row whether it stays in the
    cleaned event store and its session number there (-1 where dropped)."""

    sequences: SequenceData
    keep_rows: np.ndarray  # bool [n rows]
    row_sessions: np.ndarray  # int32 [n rows]
    stats: dict


def _sorted_rank(ids: np.ndarray) -> np.ndarray:
    """rank[code] = position of ids[code] in sorted string order (ids are unique)."""
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    rank = np.empty(len(ids), dtype=np.int32)
    rank[order] = np.arange(len(ids), dtype=np.int32)
    return rank


def _stable_order(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Permutation sorting by (user, ts), ties in input order (= original row order)."""
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64)
    tmin, tmax = int(ts.min()), int(ts.max())
    span = tmax - tmin + 1
    if (int(user.max()) + 1) * span < 2**62:  # one packed int64 key: one stable sort
        key = user.astype(np.int64) * span + (ts - tmin)
        return np.argsort(key, kind="stable")
    o1 = np.argsort(ts, kind="stable")
    return o1[np.argsort(user[o1], kind="stable")]


def _session_numbers(user: np.ndarray, ts: np.ndarray, session: np.ndarray, gap_ms: int) -> tuple[np.ndarray, int]:
    """Per-user session number of sorted events: a new session starts at a user's first event,
    where the source session id changes (both events have one), or otherwise after a gap."""
    n = len(user)
    new = np.ones(n, dtype=bool)
    if n > 1:
        both = (session[1:] != 0) & (session[:-1] != 0)
        brk = np.where(both, session[1:] != session[:-1], np.diff(ts) > gap_ms)
        new[1:] = (user[1:] != user[:-1]) | brk
    return _renumber(user, new), int(new.sum())


def _renumber(user: np.ndarray, new: np.ndarray) -> np.ndarray:
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    glob = np.cumsum(new) - 1
    start = np.ones(n, dtype=bool)
    start[1:] = user[1:] != user[:-1]
    base = np.maximum.accumulate(np.where(start, glob, 0))
    return (glob - base).astype(np.int32)


def _exact_duplicates(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Positions (in sorted order) of events identical to an earlier one. Duplicates share
    (user, timestamp), so only events in such tie groups are compared."""
    u, t = cols["user"], cols["timestamp"]
    if len(u) < 2:
        return np.zeros(0, dtype=np.int64)
    tie = (u[1:] == u[:-1]) & (t[1:] == t[:-1])
    if not tie.any():
        return np.zeros(0, dtype=np.int64)
    member = np.zeros(len(u), dtype=bool)
    member[1:] |= tie
    member[:-1] |= tie
    g = np.nonzero(member)[0]
    keys = [cols[k][g] for k in ("session", "channel", "event_type", "item", "timestamp", "user")]
    o = np.lexsort([g] + keys)  # last key sorts first; the position breaks ties -> first stays first
    gs = g[o]
    same = np.ones(len(gs) - 1, dtype=bool)
    for k in ("user", "timestamp", "item", "event_type", "channel", "session"):
        c = cols[k][gs]
        same &= c[1:] == c[:-1]
    return gs[1:][same]


def _release(enc: EncodedEvents, column: str) -> None:
    """Drop a consumed column of ``enc`` (None in place of its array, freed once nothing else holds it)."""
    setattr(enc, column, None)


def assemble(enc: EncodedEvents, catalog: pa.Table | None = None, options: SequenceOptions | None = None) -> Assembled:
    """The global preparation steps on integer-coded events (see the module docstring).

    Memory is a few integer arrays of the event count; no string is touched per event. The
    columns of ``enc`` are consumed (each is released once its sorted copy exists).
    """
    opt = options or SequenceOptions()
    n = len(enc)
    stats: dict = {"events_accepted": n}
    ts_all = enc.timestamp
    keep = np.ones(n, dtype=bool)
    if opt.retention_days is not None and n:
        cutoff = int(ts_all.max()) - int(round(float(opt.retention_days) * 86_400_000))
        old = ts_all < cutoff
        keep &= ~old
        stats.update(retention_cutoff_ms=cutoff, rows_outside_retention=int(old.sum()))
        del old
    rank = _sorted_rank(enc.user_ids)
    sel = np.nonzero(keep)[0] if not keep.all() else None
    user = rank[enc.user] if sel is None else rank[enc.user[sel]]
    _release(enc, "user")  # consumed: each column is released once its sorted copy exists (halves peak memory)
    order = _stable_order(user, ts_all if sel is None else ts_all[sel])
    del ts_all
    user = user[order]
    rows = order if sel is None else sel[order]
    del order, sel
    cols = {"user": user}
    for k in ("timestamp", "item", "event_type", "channel", "session"):
        cols[k] = getattr(enc, k)[rows]
        _release(enc, k)
    stats["duplicates_removed"] = 0
    if opt.dedup:
        dup = _exact_duplicates(cols)
        if len(dup):
            stay = np.ones(len(rows), dtype=bool)
            stay[dup] = False
            rows = rows[stay]
            cols = {k: v[stay] for k, v in cols.items()}
            stats["duplicates_removed"] = int(len(dup))
    sess, n_sessions = _session_numbers(cols["user"], cols["timestamp"], cols.pop("session"), opt.session_gap_ms)
    keep_rows = np.zeros(n, dtype=bool)
    keep_rows[rows] = True
    row_sessions = np.full(n, -1, dtype=np.int32)
    row_sessions[rows] = sess
    m = len(rows)
    starts = np.ones(m, dtype=bool)
    starts[1:] = cols["user"][1:] != cols["user"][:-1]
    stats.update(
        events_kept=m,
        users_kept=int(starts.sum()) if m else 0,
        sessions=n_sessions,
        events_by_type={
            e: int(c)
            for e, c in zip(EVENT_TYPES, np.bincount(cols["event_type"], minlength=len(EVENT_TYPES) + 1)[1:])
            if c
        },
        events_by_channel={
            ch: int(c) for ch, c in zip(CHANNELS, np.bincount(cols["channel"], minlength=len(CHANNELS) + 1)[1:]) if c
        },
        first_ms=int(cols["timestamp"].min()) if m else None,
        last_ms=int(cols["timestamp"].max()) if m else None,
    )
    del rows

    # item events only: they are the positions of the sequences
    is_item = (cols["item"] > 0) & _IS_ITEM_CODE[cols["event_type"]]
    cols["session"] = sess
    if not is_item.all():
        cols = {k: v[is_item] for k, v in cols.items()}
    stats["item_events"] = len(cols["user"])
    if stats["item_events"] == 0:
        raise SchemaError("no item events (view/cart/purchase/...) with an item_id: nothing to model")

    # k-core: drop users / items with too few events until both thresholds hold
    before = len(cols["user"])
    if opt.min_user_events > 1 or opt.min_item_events > 1:
        rounds = 0
        while True:
            uc = np.bincount(cols["user"], minlength=len(enc.user_ids))
            ic = np.bincount(cols["item"], minlength=len(enc.item_ids) + 1)
            bad = (uc[cols["user"]] < opt.min_user_events) | (ic[cols["item"]] < opt.min_item_events)
            if not bad.any():
                break
            cols = {k: v[~bad] for k, v in cols.items()}
            rounds += 1
            if len(cols["user"]) == 0:
                raise SchemaError(
                    f"k-core filtering (min_user_events={opt.min_user_events}, min_item_events={opt.min_item_events}) "
                    "removed every event; lower the thresholds"
                )
        stats["kcore_rounds"] = rounds
    stats["kcore_removed_events"] = before - len(cols["user"])

    user, items, ts = cols["user"], cols["item"], cols["timestamp"]
    etypes, chans, sess = cols["event_type"], cols["channel"], cols["session"]
    if opt.dedup_consecutive and len(items) > 1:
        run_starts, best, last = collapse_runs(items, etypes, user)
        user, items, ts, chans, sess = user[run_starts], items[run_starts], ts[last], chans[last], sess[last]
        etypes = best.astype(np.int8)
        stats["consecutive_merged"] = int(len(cols["item"]) - len(run_starts))

    # contiguous ids in sorted string order (0 = padding for items)
    item_count = np.bincount(items, minlength=len(enc.item_ids) + 1)
    present = np.nonzero(item_count[1:])[0] + 1
    names = enc.item_ids[present - 1]
    iorder = np.argsort(np.asarray(names, dtype=str), kind="stable")
    new_item = np.zeros(len(enc.item_ids) + 1, dtype=np.int32)
    new_item[present[iorder]] = np.arange(1, len(present) + 1, dtype=np.int32)
    item_ids = np.asarray(names[iorder], dtype=object)
    user_count = np.bincount(user, minlength=len(enc.user_ids))
    upresent = np.nonzero(user_count)[0]
    sorted_users = enc.user_ids[np.argsort(rank)]
    user_ids = np.asarray(sorted_users[upresent], dtype=object)
    offsets = np.zeros(len(upresent) + 1, dtype=np.int64)
    np.cumsum(user_count[upresent], out=offsets[1:])
    new_s = np.ones(len(user), dtype=bool)
    if len(user) > 1:
        new_s[1:] = (user[1:] != user[:-1]) | (sess[1:] != sess[:-1])
    seqs = SequenceData(
        item_ids=item_ids,
        user_ids=user_ids,
        offsets=offsets,
        items=new_item[items],
        event_types=np.ascontiguousarray(etypes, dtype=np.int8),
        channels=np.ascontiguousarray(chans, dtype=np.int8),
        timestamps=np.ascontiguousarray(ts, dtype=np.int64),
        catalog=_align_catalog(item_ids, catalog),
        sessions=_renumber(user, new_s),
    )
    stats.update(
        users=seqs.n_users, items=seqs.n_items, sequence_events=seqs.n_events, sequence_sessions=int(new_s.sum())
    )
    return Assembled(sequences=seqs, keep_rows=keep_rows, row_sessions=row_sessions, stats=stats)


def build_sequences(
    events: pa.Table,
    catalog: pa.Table | None = None,
    dedup_consecutive: bool = False,
    options: SequenceOptions | None = None,
) -> SequenceData:
    """Item sequences from one in-memory table of canonical events (non-item events such as
    searches are skipped). Same code path as streaming preparation (:func:`assemble`).

    Sorting is stable on (user, timestamp, original row order), so events with equal
    timestamps keep their order in the source file.
    """
    opt = options or SequenceOptions(dedup_consecutive=dedup_consecutive)
    encoder = EventEncoder()
    encoder.add(events)
    return assemble(encoder.finish(), catalog, opt).sequences


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


def check_split_options(kind: str, drop_newest: int = 0) -> None:
    """Refuse a split setting :func:`make_split` cannot honour (called before any data is read)."""
    if kind not in SPLITS:
        raise ValueError(f"data.split={kind!r} is not a split; use one of {list(SPLITS)}")
    if drop_newest < 0:
        raise ValueError(f"data.drop_newest={drop_newest}: must be >= 0")
    if drop_newest and kind != "leave_one_out":
        raise ValueError(
            f"data.drop_newest={drop_newest} works with data.split=leave_one_out only (got {kind!r}); "
            "set data.drop_newest=0"
        )


def make_split(
    data: SequenceData,
    kind: str = "leave_one_out",  # one of SPLITS (checked: a config value)
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    min_eval_length: int = 3,
    drop_newest: int = 0,
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

    ``last_session``: for users with at least ``min_eval_length`` sessions (``data.session_ids()``),
    every position of the last session is a test case and every position of the session before
    it a validation case, each with everything before it as input (earlier sessions and the
    session's own prefix); training uses the sessions before those two.

    ``drop_newest`` (``leave_one_out`` only) leaves each user's newest N items out of every role
    first. With 1, the test targets are the validation targets of the full split and the
    validation targets the items before them: a choice that trains on validation targets
    (``trainer.refit_epochs``) can be tuned this way without the real test split being read.
    """
    check_split_options(kind, drop_newest)
    starts = data.offsets[:-1]
    ends = data.offsets[1:]
    ends = np.maximum(ends - drop_newest, starts)
    lengths = ends - starts
    if kind == "leave_one_out":
        ev = lengths >= max(min_eval_length, 2)
        train_ends = np.where(ev, ends - 2, ends)
        users = np.nonzero(ev)[0].astype(np.int64)
        v_end = ends[users] - 2
        t_end = ends[users] - 1
        valid = EvalCases(users, v_end, data.items[v_end].astype(np.int64))
        test = EvalCases(users, t_end, data.items[t_end].astype(np.int64))
        return Split(
            kind, train_ends.astype(np.int64), valid, test, {"drop_newest": int(drop_newest)} if drop_newest else {}
        )
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
    if kind == "last_session":
        return _last_session_split(data, min_eval_length)
    raise ValueError(f"unknown split '{kind}'; use one of {list(SPLITS)}")


def with_validation_targets(split: Split) -> Split:
    """The split with each user's training prefix extended over their validation targets (the
    test cases untouched): what a refit trains on once validation has picked the epoch
    (``trainer.refit_epochs``). The newest events carry the most signal for the test target
    right after them, and without this the model never trains on them."""
    ends = split.train_ends.copy()
    np.maximum.at(ends, split.valid.users, split.valid.ends + 1)
    first_test = np.full_like(ends, np.iinfo(np.int64).max)
    np.minimum.at(first_test, split.test.users, split.test.ends)
    if (ends > first_test).any():
        raise ValueError("validation targets come after test targets for some user: this split cannot be refitted")
    info = {**split.info, "refit_on_validation": True}
    return Split(split.kind, ends, split.valid, split.test, info)


def _positions(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, position) for every position in [lo[r], hi[r]) of every row r."""
    lens = hi - lo
    rows = np.repeat(np.arange(len(lo), dtype=np.int64), lens)
    pos = np.arange(lens.sum(), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
    return rows, pos


def _last_session_split(data: SequenceData, min_sessions: int) -> Split:
    starts, ends = data.offsets[:-1], data.offsets[1:]
    sess = data.session_ids()
    n = data.n_events
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = sess[1:] != sess[:-1]
    is_start[starts[data.lengths > 0]] = True
    start_pos = np.nonzero(is_start)[0]
    nonempty = data.lengths > 0
    n_sess = np.zeros(data.n_users, dtype=np.int64)
    n_sess[nonempty] = np.searchsorted(start_pos, ends[nonempty], "left") - np.searchsorted(
        start_pos, starts[nonempty], "left"
    )
    ev = n_sess >= max(min_sessions, 2)
    users = np.nonzero(ev)[0].astype(np.int64)
    k_last = np.searchsorted(start_pos, ends[users], "left") - 1
    last_start = start_pos[k_last]
    prev_start = start_pos[k_last - 1]
    train_ends = ends.astype(np.int64).copy()
    train_ends[users] = prev_start
    tr, tp = _positions(last_start, ends[users])
    vr, vp = _positions(prev_start, last_start)
    test = EvalCases(users[tr], tp, data.items[tp].astype(np.int64))
    valid = EvalCases(users[vr], vp, data.items[vp].astype(np.int64))
    return Split("last_session", train_ends, valid, test, {"evaluated_users": int(len(users))})


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


def training_positions(data: SequenceData, train_ends: np.ndarray) -> np.ndarray:
    """Absolute CSR positions of every training event (the prefix of each user before ``train_ends``)."""
    starts = data.offsets[:-1]
    lens = np.maximum(np.asarray(train_ends, dtype=np.int64) - starts, 0)
    within = np.arange(lens.sum(), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return np.repeat(starts, lens) + within


def history_pairs(data: SequenceData, users: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs of every item each case's user had before ``end`` (for seen-exclusion)."""
    users = np.asarray(users, dtype=np.int64)
    starts = data.offsets[users]
    lens = np.asarray(ends, dtype=np.int64) - starts
    rows = np.repeat(np.arange(len(users), dtype=np.int64), lens)
    within = np.arange(lens.sum(), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    items = data.items[np.repeat(starts, lens) + within].astype(np.int64)
    return rows, items


def repeated_targets(data: SequenceData, cases: EvalCases, chunk_events: int = 1 << 22) -> np.ndarray:
    """bool [n_cases]: whether each case's target is an item its user already had before it.

    Under the seen-excluded protocol such a case is a miss (S3-Rec's rule, see
    :mod:`journeyrec.evaluation.rank_kernel`), so the share of them bounds what that protocol can
    show and belongs next to its figures. Cases go in chunks of about ``chunk_events`` history
    positions, so a long log never builds all its (case, item) pairs at once.
    """
    users = np.asarray(cases.users, dtype=np.int64)
    ends = np.asarray(cases.ends, dtype=np.int64)
    targets = np.asarray(cases.targets, dtype=np.int64)
    out = np.zeros(len(users), dtype=bool)
    lens = ends - data.offsets[users]
    bounds = np.searchsorted(
        np.cumsum(lens), np.arange(chunk_events, int(lens.sum()) + chunk_events, chunk_events), "right"
    )
    lo = 0
    for hi in [*bounds.tolist(), len(users)]:
        if hi <= lo:
            continue
        rows, items = history_pairs(data, users[lo:hi], ends[lo:hi])
        out[lo + rows[items == targets[lo:hi][rows]]] = True
        lo = hi
    return out
