"""Quarantine: rejected rows are kept, counted and reported, never silently dropped.

Rows that fail validation (``schema.validate_events``) are appended to a Parquet file in
QUARANTINE_SCHEMA (file, line, reason, offending value, the row's fields with the user id
pseudonymised). Counts by reason and a few examples per reason are kept for the dataset card
and the logs; :func:`check_bad_fraction` fails the run when more than ``data.max_bad_fraction``
of the rows read were rejected, with a message naming the file, the counts and examples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from journeyrec.data.schema import QUARANTINE_SCHEMA, SchemaError

__all__ = ["QuarantineError", "QuarantineLog", "check_bad_fraction", "describe_counts"]

log = logging.getLogger(__name__)
EXAMPLES_PER_REASON = 3


class QuarantineError(SchemaError):
    """Too many rows of a source failed validation."""


class QuarantineLog:
    """Appends rejected rows to ``path`` (created on the first rejected row) and keeps counts and
    examples by reason."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self._writer: pq.ParquetWriter | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, rejected: pa.Table) -> None:
        if rejected.num_rows == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, QUARANTINE_SCHEMA)
        self._writer.write_table(rejected.cast(QUARANTINE_SCHEMA))
        for d in pc.value_counts(rejected.column("reason")).to_pylist():
            self.counts[d["values"]] = self.counts.get(d["values"], 0) + int(d["counts"])
        for reason in self.counts:
            have = self.examples.setdefault(reason, [])
            if len(have) >= EXAMPLES_PER_REASON:
                continue
            sub = rejected.filter(pc.equal(rejected.column("reason"), reason)).slice(0, EXAMPLES_PER_REASON - len(have))
            for row in sub.select(["file", "line", "value", "detail"]).to_pylist():
                where = f"{row['file']}:{row['line']}" if row["line"] is not None else str(row["file"])
                what = f" value {row['value']!r}" if row["value"] is not None else ""
                what += f" ({row['detail']})" if row["detail"] else ""
                have.append(f"{where}{what}")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def describe_counts(counts: Mapping[str, int], examples: Mapping[str, list[str]] | None = None) -> str:
    """One line per reason: count and examples."""
    lines = []
    for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        ex = "; ".join((examples or {}).get(reason, []))
        lines.append(f"  {reason}: {n} row(s)" + (f", e.g. {ex}" if ex else ""))
    return "\n".join(lines)


def check_bad_fraction(
    counts: Mapping[str, int],
    rows_read: int,
    max_fraction: float,
    examples: Mapping[str, list[str]],
    source: str,
    kept_at: Path | None = None,
) -> None:
    """Raise QuarantineError when more than ``max_fraction`` of ``rows_read`` were rejected;
    otherwise log the counts (a warning when there are any)."""
    bad = sum(counts.values())
    if bad == 0:
        return
    frac = bad / max(rows_read, 1)
    detail = describe_counts(counts, examples)
    if frac > max_fraction:
        where = f" The rejected rows are in {kept_at}." if kept_at else ""
        raise QuarantineError(
            f"{source}: {bad} of {rows_read} rows ({frac:.2%}) failed validation, more than "
            f"data.max_bad_fraction={max_fraction} allows:\n{detail}\n"
            "Fix the source, or map its values in data.options (e.g. event_type_map, timestamp_unit), "
            f"or raise data.max_bad_fraction to accept and quarantine them.{where}"
        )
    log.warning("%s: %d of %d rows (%.2f%%) quarantined:\n%s", source, bad, rows_read, 100 * frac, detail)
