"""Streaming ingestion: a reader's batches -> consent -> validation -> pseudonymisation -> disk.

For every batch, in this order and before anything is written:

1. events of users who opted out (consent tables) are dropped; only their count is kept;
2. rows are validated (``schema.validate_events``, event times against ``bounds``); rejected rows
   go to quarantine;
3. user ids and session ids are replaced by their HMAC pseudonyms (valid and rejected rows alike);
4. valid rows are appended to the staging Parquet file (the future event store) and encoded
   into integer columns (``encode.EventEncoder``), spooled to disk.

Memory is bounded by one batch plus the integer columns; nothing holds the whole log as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from journeyrec.data.encode import EncodedEvents, EventEncoder
from journeyrec.data.privacy import Pseudonymiser, opted_out_ids
from journeyrec.data.quarantine import QuarantineLog
from journeyrec.data.readers import SourceScan
from journeyrec.data.schema import EVENT_SCHEMA, TimeBounds, validate_events

__all__ = ["Ingested", "ingest", "pseudonymise_extras"]


@dataclass
class Ingested:
    """What ingestion produced: encoded events (arrival order), side tables and counts."""

    encoded: EncodedEvents
    catalog: pa.Table
    extras: dict[str, pa.Table]
    source: str
    quarantine: QuarantineLog
    staging: Path | None
    stats: dict[str, Any] = field(default_factory=dict)


def pseudonymise_extras(extras: dict[str, pa.Table], pseudo: Pseudonymiser) -> dict[str, pa.Table]:
    """Side tables keep their content, but any ``user_id`` column is pseudonymised."""
    out = {}
    for name, table in extras.items():
        if "user_id" in table.column_names:
            i = table.column_names.index("user_id")
            table = table.set_column(i, "user_id", pseudo(table.column("user_id")))
        out[name] = table
    return out


def _pseudonymise_ids(table: pa.Table, pseudo: Pseudonymiser) -> pa.Table:
    """User ids and session ids both become HMAC pseudonyms: shops often build session ids from
    a login or an e-mail address, so a raw session id can identify the customer as well.
    Equal ids stay equal, so sessions still group; nulls stay null (derived later by time gap)."""
    for name in ("user_id", "session_id"):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, table.schema.field(i), pseudo(table.column(name)))
    return table


def ingest(
    scan: SourceScan,
    pseudo: Pseudonymiser,
    consent: list[pa.Table | None],
    workdir: Path,
    stage_events: bool = True,
    bounds: TimeBounds | None = None,
) -> Ingested:
    """Stream ``scan`` through consent, validation and pseudonymisation into ``workdir``.

    ``bounds`` apply to sources with clock times (``scan.clock_time``); the caller reads a source
    again with the upper bound once the first pass has shown rows past it (``TimeBounds.beyond``).
    """
    bounds = bounds if scan.clock_time else None
    workdir.mkdir(parents=True, exist_ok=True)
    encoder = EventEncoder(workdir / "spool")
    quarantine = QuarantineLog(workdir / "quarantine.parquet")
    opted = opted_out_ids(*consent)
    opted_seen = np.zeros(len(opted), dtype=bool)
    opted_rows = 0
    staging = workdir / "events.parquet" if stage_events else None
    writer = pq.ParquetWriter(staging, EVENT_SCHEMA) if staging is not None else None
    try:
        for batch in scan.batches:
            if len(opted) and batch.num_rows:
                idx = pc.index_in(pc.cast(batch.column("user_id"), pa.string()), value_set=opted)
                hit = pc.is_valid(idx)
                n_hit = pc.sum(hit).as_py() or 0
                if n_hit:
                    opted_seen[np.unique(idx.drop_null().to_numpy(zero_copy_only=False))] = True
                    opted_rows += n_hit
                    batch = batch.filter(pc.invert(hit))
            good, bad = validate_events(batch, scan.source, bounds)
            if bad.num_rows:
                bad = _pseudonymise_ids(bad, pseudo)
                quarantine.add(bad)
            if good.num_rows:
                good = _pseudonymise_ids(good, pseudo)
                encoder.add(good)
                if writer is not None:
                    writer.write_table(good)
    finally:
        if writer is not None:
            writer.close()
        quarantine.close()
    encoded = encoder.finish()
    stats = {k: v for k, v in scan.stats.items()}
    stats.update(
        quarantined=dict(quarantine.counts),
        opted_out_rows=int(opted_rows),
        opted_out_users=int(opted_seen.sum()),
        events_accepted=len(encoded),
    )
    return Ingested(
        encoded=encoded,
        catalog=scan.catalog(),
        extras=pseudonymise_extras(dict(scan.extras), pseudo),
        source=scan.source,
        quarantine=quarantine,
        staging=staging,
        stats=stats,
    )
