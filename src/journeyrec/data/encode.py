"""Canonical event batches -> compact integer columns (the form every global step works on).

A 50M-event log is ~5 GB as Arrow strings but ~26 bytes per event as integer codes: user code
(int32), item code (int32, 0 = no item), event type and channel codes (int8), timestamp (int64
ms) and a 64-bit key of the source session id (0 = none). :class:`EventEncoder` turns batches
into these codes as they stream in, with id dictionaries that grow across batches, and spools
the columns to disk (or keeps them in memory for small data). Sorting, de-duplication,
sessionisation, k-core and the CSR layout then run on these arrays with NumPy
(``journeyrec.data.sequences.assemble``), so the in-memory path and the streaming path are the
same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import CHANNELS, EVENT_TYPES

__all__ = ["EncodedEvents", "IdDictionary", "EventEncoder"]

_COLUMNS = {
    "user": np.int32,
    "item": np.int32,
    "event_type": np.int8,
    "channel": np.int8,
    "timestamp": np.int64,
    "session": np.int64,
}


@dataclass
class EncodedEvents:
    """Accepted events as integer columns, in arrival (= original row) order."""

    user: np.ndarray  # int32 code; user_ids[code] is the (pseudonymised) id
    item: np.ndarray  # int32 code; 0 = no item, else item_ids[code - 1]
    event_type: np.ndarray  # int8, schema.EVENT_TYPES 1-based
    channel: np.ndarray  # int8, schema.CHANNELS 1-based
    timestamp: np.ndarray  # int64 epoch milliseconds
    session: np.ndarray  # int64 key of the source session id, 0 = none (compared for equality only)
    user_ids: np.ndarray  # object [n_users]
    item_ids: np.ndarray  # object [n_items]

    def __len__(self) -> int:
        return len(self.user)


class IdDictionary:
    """String id -> dense integer code, in order of first appearance, across batches."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.values: list[str] = []

    def codes(self, col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int32 codes of a string column (-1 for nulls); one dictionary lookup per distinct value."""
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        enc = pc.dictionary_encode(pc.cast(arr, pa.string()))
        local = np.empty(len(enc.dictionary), dtype=np.int32)
        index, values = self.index, self.values
        for j, v in enumerate(enc.dictionary.to_pylist()):
            c = index.get(v)
            if c is None:
                c = index[v] = len(values)
                values.append(v)
            local[j] = c
        idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
        out = np.full(len(idx), -1, dtype=np.int32)
        ok = idx >= 0
        out[ok] = local[idx[ok]]
        return out

    def array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=object)


def _vocab_codes(col: pa.Array | pa.ChunkedArray, vocabulary: tuple[str, ...]) -> np.ndarray:
    idx = pc.index_in(col, value_set=pa.array(vocabulary))
    return (pc.fill_null(idx, -1).to_numpy(zero_copy_only=False) + 1).astype(np.int8)


def _session_keys(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit keys of session id strings (0 = null). Only equality between neighbouring events
    of one user is ever tested, so a process-local string hash is enough."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=np.int64)
    enc = pc.dictionary_encode(pc.cast(arr, pa.string()))
    local = np.fromiter(((hash(v) or 1) for v in enc.dictionary.to_pylist()), dtype=np.int64, count=len(enc.dictionary))
    idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    return np.where(idx >= 0, local[np.maximum(idx, 0)], 0)


class EventEncoder:
    """Encodes validated canonical batches (EVENT_SCHEMA) into integer columns.

    ``spool_dir`` given: columns are appended to raw files there as batches arrive, so only the
    final arrays (not the string tables) are ever in memory; None: kept in lists (small data).
    """

    def __init__(self, spool_dir: str | Path | None = None) -> None:
        self.users = IdDictionary()
        self.items = IdDictionary()
        self.rows = 0
        self._dir = Path(spool_dir) if spool_dir is not None else None
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in _COLUMNS}
        self._files = {}
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._files = {k: open(self._dir / f"{k}.bin", "wb") for k in _COLUMNS}

    def add(self, events: pa.Table) -> None:
        if events.num_rows == 0:
            return
        cols = {
            "user": self.users.codes(events.column("user_id")),
            "item": self.items.codes(events.column("item_id")) + 1,  # null -> 0
            "event_type": _vocab_codes(events.column("event_type"), EVENT_TYPES),
            "channel": _vocab_codes(events.column("channel"), CHANNELS),
            "timestamp": pc.cast(events.column("timestamp"), pa.int64()).to_numpy(),
            "session": _session_keys(events.column("session_id")),
        }
        for k, dtype in _COLUMNS.items():
            arr = np.ascontiguousarray(cols[k], dtype=dtype)
            if self._files:
                arr.tofile(self._files[k])
            else:
                self._parts[k].append(arr)
        self.rows += events.num_rows

    def finish(self) -> EncodedEvents:
        cols = {}
        for k, dtype in _COLUMNS.items():
            if self._dir is not None:  # spooled: self._files holds a file per column
                self._files[k].close()
                cols[k] = np.fromfile(self._dir / f"{k}.bin", dtype=dtype)
                (self._dir / f"{k}.bin").unlink()
            else:
                cols[k] = np.concatenate(self._parts[k]) if self._parts[k] else np.empty(0, dtype=dtype)
                self._parts[k] = []
        return EncodedEvents(user_ids=self.users.array(), item_ids=self.items.array(), **cols)
