"""Segment labels of evaluation cases, for metric breakdowns.

A headline number hides where a model wins and loses; these segmenters split the same cases:

* ``user_type``: ``new`` when the target falls in the user's first session (nothing from an
  earlier visit), else ``returning``. Sessions are the source's, or an inactivity gap of 30
  minutes (:meth:`SequenceData.session_ids`). Sources without wall-clock time (S3-Rec files:
  timestamps are positions 1 ms apart) form a single session per user, so every case is ``new``;
  the report says so instead of inventing visits.
* ``length``: number of events before the target, in buckets (``1-4``, ``5-9``, ...).
* ``target_event``: event type of the target (view / cart / purchase / ...).
* ``cluster``: a stored segment assignment (``scripts/segment.py``), user id -> segment.

Labels are strings safe in MLflow metric names (letters, digits, ``-``, ``_``, ``.``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow.parquet as pq

from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import EvalCases, SequenceData
from journeyrec.errors import MissingInputError

__all__ = ["DEFAULT_LENGTH_EDGES", "length_labels", "case_segments", "load_assignment", "ASSIGNMENT_FILE"]

DEFAULT_LENGTH_EDGES: tuple[int, ...] = (1, 5, 10, 20, 50)
ASSIGNMENT_FILE = "segments.parquet"


def length_labels(lengths: np.ndarray, edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> np.ndarray:
    """Bucket labels ``a-b`` (inclusive) for edges [e0, e1, ...]; the last bucket is ``eNplus``;
    lengths below the first edge get ``0``."""
    edges = sorted(int(e) for e in edges)
    names = [f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in zip(edges[:-1], edges[1:])] + [
        f"{edges[-1]}plus"
    ]
    idx = np.searchsorted(np.asarray(edges), np.asarray(lengths), side="right") - 1
    out = np.asarray(["0"] + names, dtype=object)[idx + 1]
    return out


def load_assignment(path: str | Path) -> dict[str, str]:
    """User id -> segment label from a ``segments.parquet`` (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / ASSIGNMENT_FILE
    if not p.is_file():
        raise MissingInputError(f"{p}: no segment assignment; create one with scripts/segment.py bundle=...")
    t = pq.read_table(p, columns=["user_id", "segment"])
    return {str(u): f"c{int(s)}" for u, s in zip(t.column("user_id").to_pylist(), t.column("segment").to_pylist())}


def case_segments(
    data: SequenceData,
    cases: EvalCases,
    length_edges: Sequence[int] = DEFAULT_LENGTH_EDGES,
    assignment: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """``{segmenter: labels [n_cases]}`` for the cases (see the module docstring)."""
    users = np.asarray(cases.users, dtype=np.int64)
    ends = np.asarray(cases.ends, dtype=np.int64)
    starts = data.offsets[users]
    sess = data.session_ids()
    out: dict[str, np.ndarray] = {}
    if len(users):
        returning = sess[ends] > sess[starts]
        out["user_type"] = np.where(returning, "returning", "new").astype(object)
        out["length"] = length_labels(ends - starts, length_edges)
        codes = data.event_types[ends].astype(np.int64)
        names = np.asarray(["padding", *EVENT_TYPES], dtype=object)
        out["target_event"] = names[codes]
    else:
        for name in ("user_type", "length", "target_event"):
            out[name] = np.zeros(0, dtype=object)
    if assignment is not None:
        ids = data.user_ids[users]
        out["cluster"] = np.asarray([assignment.get(str(u), "unassigned") for u in ids], dtype=object)
    return out
