"""Tiny hand-made sequence data sets for tests that count by brute force (baselines, transitions)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeyrec.data.prepare import PreparedData
from journeyrec.data.sequences import SequenceData, make_split


def make_data(seqs: list[list[int]], times: list[list[int]] | None = None) -> PreparedData:
    n_items = max(max(s) for s in seqs)
    lens = [len(s) for s in seqs]
    offsets = np.r_[0, np.cumsum(lens)].astype(np.int64)
    ts = (
        np.concatenate([np.asarray(t, dtype=np.int64) for t in times])
        if times
        else np.arange(sum(lens), dtype=np.int64)
    )
    data = SequenceData(
        item_ids=np.asarray([f"i{k}" for k in range(1, n_items + 1)], dtype=object),
        user_ids=np.asarray([f"u{k}" for k in range(len(seqs))], dtype=object),
        offsets=offsets,
        items=np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs]),
        event_types=np.ones(sum(lens), dtype=np.int8),
        channels=np.ones(sum(lens), dtype=np.int8),
        timestamps=ts,
        catalog=pa.table({"item_id": [f"i{k}" for k in range(1, n_items + 1)]}),
    )
    return PreparedData(data, make_split(data), "hand-made")


SEQS = [[1, 2, 3, 1, 4], [2, 3, 2, 5], [1, 2, 5, 6, 7], [3, 3, 1], [6, 2, 1, 2, 4, 8]]


def train_prefixes(prep):
    d, ends = prep.sequences, prep.split.train_ends
    return [d.items[d.offsets[u] : ends[u]].tolist() for u in range(d.n_users)]
