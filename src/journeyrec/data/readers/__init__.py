"""Readers turn a source format into canonical tables (see ``journeyrec.data.schema``).

Every reader module exposes ``scan(path, options) -> SourceScan``: the source opened for
*streaming*. ``SourceScan.batches`` yields Arrow tables of canonical columns, block by block,
so a 100M-row log never has to fit in memory; rows are not validated yet (a timestamp that did
not parse is null, an unmapped event type keeps its source spelling) and carry where they came
from (``_file``, ``_line``), so that :func:`journeyrec.data.schema.validate_events` can send bad
rows to quarantine with the file and line instead of failing or dropping them silently.
Structural problems (no such file, a required column missing, an unreadable file) raise
:class:`ReaderError` / ``SchemaError`` immediately.

The data config's ``name`` selects the reader, ``path`` names the file or the directory that
holds the dataset's files under their published names. Readers are imported lazily so that
adding one costs nothing to the others. :func:`read_source` materialises a scan in memory (for
small data, tests and notebooks); preparation streams it (``journeyrec.data.prepare``).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA, TimeBounds, validate_events
from journeyrec.errors import JourneyrecError

__all__ = ["SourceData", "SourceScan", "READERS", "open_source", "read_source", "parse_options", "ReaderError"]


class ReaderError(JourneyrecError, ValueError):
    """A source file cannot be read; the message names the file (and line) and the fix."""


@dataclass
class SourceData:
    """Canonical tables from one source, plus what the reader saw on the way."""

    events: pa.Table
    catalog: pa.Table
    source: str
    stats: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, pa.Table] = field(default_factory=dict)  # e.g. demo ground truth, consent
    quarantine: pa.Table | None = None  # rejected rows (QUARANTINE_SCHEMA) with file, line, reason


@dataclass
class SourceScan:
    """A source opened for streaming.

    ``batches`` yields unvalidated canonical batches (see the module docstring); ``catalog()``
    may only be called once the batches are exhausted (streaming readers collect item
    attributes on the way); ``stats`` is filled while iterating (``rows_read`` at least).
    """

    source: str
    batches: Iterator[pa.Table]
    catalog: Callable[[], pa.Table]
    stats: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, pa.Table] = field(default_factory=dict)
    # False: the timestamps only order the events (e.g. S3-Rec's positions), so no date range applies
    clock_time: bool = True
    # when the source's files were last written (epoch ms; open_source fills it from data.path):
    # no event in them can be later, which anchors the upper time bound (schema.TimeBounds)
    written_ms: int | None = None


# name -> "module:function"; the function has signature (path: str | None, options: Mapping) -> SourceScan
READERS: dict[str, str] = {
    "demo": "journeyrec.data.readers.demo:scan",
    "events": "journeyrec.data.readers.events:scan",
    "s3rec": "journeyrec.data.readers.s3rec:scan",
    "taobao": "journeyrec.data.readers.taobao:scan",
    "yoochoose": "journeyrec.data.readers.yoochoose:scan",
    "movielens": "journeyrec.data.readers.movielens:scan",
    "diginetica": "journeyrec.data.readers.diginetica:scan",
    "retailrocket": "journeyrec.data.readers.retailrocket:scan",
    "rees46": "journeyrec.data.readers.rees46:scan",
    "otto": "journeyrec.data.readers.otto:scan",
}


def open_source(name: str, path: str | None, options: Mapping[str, Any] | None = None) -> SourceScan:
    """Open a dataset for streaming with the reader registered under ``name``."""
    if name not in READERS:
        raise ReaderError(f"unknown data reader '{name}'; available: {sorted(READERS)}")
    module, func = READERS[name].split(":")
    reader: Callable[[str | None, Mapping[str, Any]], SourceScan] = getattr(importlib.import_module(module), func)
    scan = reader(path, dict(options or {}))
    if scan.written_ms is None and path:
        scan.written_ms = _written_ms(Path(path))
    return scan


def _written_ms(path: Path) -> int | None:
    """The newest modification time of ``path`` or of the files under it (a superset of the files a
    reader reads, so still a time no event in them can be later than)."""
    if path.is_file():
        return int(path.stat().st_mtime * 1000)
    if not path.is_dir():
        return None
    times = [f.stat().st_mtime for f in path.rglob("*") if f.is_file()]
    return int(max(times) * 1000) if times else None


def read_source(
    name: str, path: str | None, options: Mapping[str, Any] | None = None, bounds: TimeBounds | None = None
) -> SourceData:
    """Read a whole dataset into memory: valid events, catalogue and the rejected rows.

    Rejected rows are returned in ``SourceData.quarantine`` (raw user ids: nothing is written
    here) and counted in ``stats["quarantined"]``; preparation enforces the bad-row limit.
    ``bounds``: accepted event times (default ``TimeBounds.default()``); like ingestion, the
    source is read a second time when rows lie past the upper bound (see ``TimeBounds``).
    """
    scan = open_source(name, path, options)
    first = (TimeBounds.default() if bounds is None else bounds).first_pass(scan.written_ms)
    good, bad = _validate_all(scan, first if scan.clock_time else None)
    upper = (
        first.beyond(pa.concat_tables(good).column("timestamp").cast(pa.int64()).to_numpy())
        if scan.clock_time and good
        else None
    )
    if upper is not None:
        scan = open_source(name, path, options)
        good, bad = _validate_all(scan, upper)
    events = pa.concat_tables(good) if good else EVENT_SCHEMA.empty_table()
    quarantine = pa.concat_tables(bad) if bad else QUARANTINE_SCHEMA.empty_table()
    stats = dict(scan.stats)
    if quarantine.num_rows:
        counts = pc.value_counts(quarantine.column("reason")).to_pylist()
        stats["quarantined"] = {d["values"]: d["counts"] for d in counts}
    return SourceData(
        events=events,
        catalog=scan.catalog(),
        source=scan.source,
        stats=stats,
        extras=dict(scan.extras),
        quarantine=quarantine,
    )


def _validate_all(scan: SourceScan, bounds: TimeBounds | None) -> tuple[list[pa.Table], list[pa.Table]]:
    good: list[pa.Table] = []
    bad: list[pa.Table] = []
    for batch in scan.batches:
        g, b = validate_events(batch, scan.source, bounds)
        good.append(g)
        if b.num_rows:
            bad.append(b)
    return good, bad


def parse_options(cls: type, options: Mapping[str, Any], reader: str) -> Any:
    """Build a reader's options dataclass, refusing unknown keys with the list of known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ReaderError(
            f"data.options for reader '{reader}' has unknown key(s) {unknown}; known keys: {sorted(known)}"
        )
    return cls(**options)
