"""Preparation: a source -> a privacy-safe prepared store that training, evaluation and serving read.

``prepare_store(data_cfg, directory)`` is the pipeline; everything else calls it:

1. **ingest** (``data.ingest``, streaming, bounded memory): the reader's batches -> consent
   (opted-out users' events dropped) -> validation (bad rows to quarantine with file, line and
   reason) -> HMAC pseudonyms -> staging Parquet + integer columns spooled to disk. When events
   lie more than ``data.timestamp_max_ahead_days`` after the file's newest event (known only
   after the first pass, ``schema.TimeBounds``), the source is ingested again with that bound,
   so they reach quarantine with their file and line like every other bad row;
2. **check** the share of rejected rows against ``data.max_bad_fraction``;
3. **assemble** (``data.sequences.assemble``, NumPy on integer columns): retention window,
   stable sort by (user, time, original row order), exact duplicates removed, sessions (source
   ids or inactivity gap), item events, k-core, ids, CSR arrays;
4. **split** (leave-one-out, global time cutoff or last session);
5. **write** atomically: arrays as ``.npy`` (memory-mapped by ``load_prepared(mmap=True)``), id
   maps, catalogue, cleaned events and quarantine as Parquet, and the dataset card.

``prepare(data_cfg)`` runs the same pipeline into a temporary store and loads it into memory
(small data, tests, notebooks). ``save_prepared`` / ``load_prepared`` read and write the store.

Store layout (format 2)::

    prepared.json            format, source, split kind/info, stats, fingerprint
    arrays/*.npy             offsets, items, event_types, channels, timestamps, sessions,
                             train_ends, {valid,test}_{users,ends,targets}
    items.parquet users.parquet catalog.parquet extra_<name>.parquet
    events.parquet           cleaned canonical events (pseudonymised), source row order
    quarantine.parquet       rejected rows (only when there were any)
    dataset_card.json dataset_card.md sequence_lengths.png
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from journeyrec.data.card import build_card, card_summary, write_card
from journeyrec.data.config import DataConfig
from journeyrec.data.ingest import ingest
from journeyrec.data.privacy import DEMO_KEY, Pseudonymiser, load_consent, resolve_key
from journeyrec.data.quarantine import QuarantineError, check_bad_fraction
from journeyrec.data.readers import SourceScan, open_source
from journeyrec.data.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA, TimeBounds, iso_ms
from journeyrec.data.sequences import (
    EvalCases,
    SequenceData,
    SequenceOptions,
    Split,
    assemble,
    check_split_options,
    make_split,
    repeated_targets,
)
from journeyrec.errors import MissingInputError
from journeyrec.io import atomic_dir
from journeyrec.typed import to_typed

__all__ = [
    "PreparedData",
    "prepare",
    "prepare_store",
    "save_prepared",
    "load_prepared",
    "sequence_options",
    "PREPARED_FORMAT",
]

log = logging.getLogger(__name__)

PREPARED_FORMAT = 2
_ARRAYS = ("offsets", "items", "event_types", "channels", "timestamps")


@dataclass
class PreparedData:
    """Sequences + split + what was seen while preparing (ready for a DataModule)."""

    sequences: SequenceData
    split: Split
    source: str
    stats: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, pa.Table] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Hash of the prepared arrays: two runs with equal fingerprints saw identical data."""
        h = hashlib.sha256()
        s = self.sequences
        for arr in (
            s.offsets,
            s.items,
            s.event_types,
            s.channels,
            s.timestamps,
            self.split.train_ends,
            self.split.valid.ends,
            self.split.test.ends,
        ):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(map(str, s.item_ids)).encode())
        return h.hexdigest()[:16]


def sequence_options(data_cfg: DataConfig) -> SequenceOptions:
    """The data config's knobs of the global preparation steps."""
    return SequenceOptions(
        dedup=data_cfg.dedup,
        dedup_consecutive=data_cfg.dedup_consecutive,
        session_gap_ms=int(round(data_cfg.session_gap_minutes * 60_000)),
        min_user_events=data_cfg.min_user_events,
        min_item_events=data_cfg.min_item_events,
        retention_days=data_cfg.retention_days,
    )


def _settings(data_cfg: DataConfig, opts: SequenceOptions) -> dict[str, Any]:
    return {
        "split": data_cfg.split,
        "drop_newest": data_cfg.drop_newest,
        "session_gap_minutes": opts.session_gap_ms / 60_000,
        "dedup": opts.dedup,
        "dedup_consecutive": opts.dedup_consecutive,
        "min_user_events": opts.min_user_events,
        "min_item_events": opts.min_item_events,
        "retention_days": opts.retention_days,
        "max_bad_fraction": data_cfg.max_bad_fraction,
        "consent_path": data_cfg.consent_path,
        "timestamp_min": data_cfg.timestamp_min,
        "timestamp_max_ahead_days": data_cfg.timestamp_max_ahead_days,
    }


def _split(seqs: SequenceData, data_cfg: DataConfig) -> Split:
    return make_split(
        seqs,
        data_cfg.split,
        valid_fraction=data_cfg.valid_fraction,
        test_fraction=data_cfg.test_fraction,
        drop_newest=data_cfg.drop_newest,
    )


def _consent(scan_extras: dict[str, pa.Table], data_cfg: DataConfig) -> pa.Table | None:
    tables = [t for t in (scan_extras.get("consent"),) if t is not None]
    path = data_cfg.consent_path
    if path:
        tables.append(load_consent(path))
    if not tables:
        return None
    return pa.concat_tables(
        [
            t.select(["user_id", "opted_out"]).cast(pa.schema([("user_id", pa.string()), ("opted_out", pa.bool_())]))
            for t in tables
        ]
    )


def _open(name: str, data_cfg: DataConfig) -> tuple[SourceScan, pa.Table | None]:
    """The source opened for streaming, with its consent table (the scan's own and data.consent_path)."""
    scan = open_source(name, data_cfg.path, dict(data_cfg.options))
    consent = _consent(scan.extras, data_cfg)
    if consent is not None:
        scan.extras["consent"] = consent
    return scan, consent


def prepare_store(data_cfg: DataConfig | Mapping[str, Any], directory: str | Path) -> dict[str, Any]:
    """Read ``data_cfg.name`` from ``data_cfg.path`` and write the prepared store to
    ``directory`` (atomically). Returns the dataset card. A mapping is checked against
    :class:`DataConfig` first (unknown keys and wrong types are refused, naming the key)."""
    data_cfg = to_typed(DataConfig, data_cfg)
    out = Path(directory)
    name = data_cfg.name
    key = resolve_key(data_cfg.hmac_key_file, allow_demo_key=data_cfg.allow_demo_key)  # refuse early, before reading
    opts = sequence_options(data_cfg)
    settings = _settings(data_cfg, opts)
    check_split_options(settings["split"], settings["drop_newest"])  # before anything is read
    bounds = TimeBounds.from_config(data_cfg)
    scan, consent = _open(name, data_cfg)
    pseudo = Pseudonymiser(key)
    store_events = data_cfg.store_events
    with atomic_dir(out) as tmp:
        work = tmp / ".work"
        first = bounds.first_pass(scan.written_ms)
        got = ingest(scan, pseudo, [consent], work, stage_events=store_events, bounds=first)
        upper = first.beyond(got.encoded.timestamp) if scan.clock_time else None
        if upper is not None:
            log.info(
                "%s: %d event(s) lie more than %g day(s) after the file's newest event %s; reading the source again "
                "to quarantine them with their file and line",
                got.source,
                int((got.encoded.timestamp > (upper.max_ms or 0)).sum()),
                settings["timestamp_max_ahead_days"],
                iso_ms(int(upper.newest_ms or 0)),
            )
            got.quarantine.close()
            shutil.rmtree(work)
            scan, consent = _open(name, data_cfg)
            got = ingest(scan, pseudo, [consent], work, stage_events=store_events, bounds=upper)
        stats = dict(got.stats)
        rejected_copy = out.with_name(out.name + "-quarantine.parquet")
        try:
            check_bad_fraction(
                got.quarantine.counts,
                int(stats.get("rows_read", 0)),
                settings["max_bad_fraction"],
                got.quarantine.examples,
                got.source,
                kept_at=rejected_copy,
            )
        except QuarantineError:  # keep the evidence beside the store, which is not written
            shutil.copyfile(got.quarantine.path, rejected_copy)
            raise
        asm = assemble(got.encoded, got.catalog, opts)
        del got.encoded
        stats.update(asm.stats)
        split = _split(asm.sequences, data_cfg)
        prepared = PreparedData(
            asm.sequences, split, got.source, stats=_public_stats(stats, split, asm.sequences), extras=got.extras
        )
        fingerprint = prepared.fingerprint()
        _write_prepared(prepared, tmp)
        if store_events and got.staging is not None:
            _write_events(got.staging, asm.keep_rows, asm.row_sessions, tmp / "events.parquet")
        if got.quarantine.path.is_file():
            _write_quarantine(got.quarantine.path, stats.get("retention_cutoff_ms"), tmp / "quarantine.parquet")
        split_info = {
            "kind": split.kind,
            "train_users": int((split.train_ends - asm.sequences.offsets[:-1] >= 2).sum()),
            "valid_cases": len(split.valid),
            "test_cases": len(split.test),
            **split.info,
        }
        # targets that repeat an earlier item are misses under the seen-excluded protocol
        for role in ("valid", "test"):
            cases = getattr(split, role)
            split_info[f"{role}_repeat_target_share"] = (
                round(float(repeated_targets(asm.sequences, cases).mean()), 6) if len(cases) else 0.0
            )
        card = build_card(name, got.source, stats, asm.sequences.lengths, split_info, settings, fingerprint)
        card["privacy"]["demo_key"] = key == DEMO_KEY.encode()
        write_card(card, tmp, asm.sequences.lengths)
        shutil.rmtree(work, ignore_errors=True)
    log.info("prepared store %s\n%s", out, card_summary(card))
    return card


def _public_stats(stats: dict[str, Any], split: Split, seqs: SequenceData) -> dict[str, Any]:
    """The stats kept in prepared.json (the counts of the card, flat)."""
    keep = (
        "rows_read",
        "quarantined",
        "opted_out_rows",
        "opted_out_users",
        "rows_outside_retention",
        "duplicates_removed",
        "events_kept",
        "users_kept",
        "sessions",
        "events_by_type",
        "events_by_channel",
        "first_ms",
        "last_ms",
        "item_events",
        "kcore_removed_events",
        "consecutive_merged",
        "sequence_sessions",
        "filtered_by_reader",
        "lines",
    )
    out = {k: stats[k] for k in keep if k in stats}
    out.update(
        users=seqs.n_users,
        items=seqs.n_items,
        item_events=seqs.n_events,
        events=int(stats.get("events_kept", 0)),
        valid_cases=len(split.valid),
        test_cases=len(split.test),
        mean_length=float(seqs.lengths.mean()) if seqs.n_users else 0.0,
    )
    return out


def _write_events(staging: Path, keep_rows: np.ndarray, row_sessions: np.ndarray, target: Path) -> None:
    """Second pass over the staged events: keep the rows that survived retention and
    de-duplication, and give sessionised rows a session id ``<user>#<n>``."""
    pf = pq.ParquetFile(staging)
    pos = 0
    with pq.ParquetWriter(target, EVENT_SCHEMA) as writer:
        for batch in pf.iter_batches(batch_size=1 << 20):
            n = batch.num_rows
            keep = keep_rows[pos : pos + n]
            sess = row_sessions[pos : pos + n]
            pos += n
            if not keep.any():
                continue
            t = pa.Table.from_batches([batch]).filter(pa.array(keep))
            number = pc.cast(pa.array(sess[keep]), pa.string())
            derived = pc.binary_join_element_wise(t.column("user_id"), number, "#")
            sid = pc.coalesce(t.column("session_id"), derived)
            writer.write_table(t.set_column(t.column_names.index("session_id"), "session_id", sid))
    if pos != len(keep_rows):
        raise RuntimeError(f"internal: staged {pos} rows but assembled {len(keep_rows)}")


def _write_quarantine(staged: Path, retention_cutoff_ms: int | None, target: Path) -> None:
    """Quarantined rows, minus those older than the retention window (those are dropped too)."""
    t = pq.read_table(staged, schema=QUARANTINE_SCHEMA)
    if retention_cutoff_ms is not None:
        ts = pc.cast(t.column("timestamp"), pa.int64())
        t = t.filter(pc.fill_null(pc.greater_equal(ts, retention_cutoff_ms), True))
    pq.write_table(t, target)


def _write_prepared(prepared: PreparedData, d: Path) -> None:
    """Arrays, id maps, catalogue, extras and prepared.json into an existing directory."""
    s, sp = prepared.sequences, prepared.split
    arrays = d / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    for k in _ARRAYS:
        np.save(arrays / f"{k}.npy", np.ascontiguousarray(getattr(s, k)))
    np.save(arrays / "sessions.npy", np.ascontiguousarray(s.session_ids(), dtype=np.int32))
    np.save(arrays / "train_ends.npy", np.ascontiguousarray(sp.train_ends, dtype=np.int64))
    for name in ("valid", "test"):
        for k in ("users", "ends", "targets"):
            np.save(arrays / f"{name}_{k}.npy", np.ascontiguousarray(getattr(getattr(sp, name), k), dtype=np.int64))
    pq.write_table(pa.table({"item_id": pa.array(s.item_ids.tolist(), pa.string())}), d / "items.parquet")
    pq.write_table(pa.table({"user_id": pa.array(s.user_ids.tolist(), pa.string())}), d / "users.parquet")
    pq.write_table(s.catalog, d / "catalog.parquet")
    for name, table in prepared.extras.items():
        pq.write_table(table, d / f"extra_{name}.parquet")
    meta = {
        "format": PREPARED_FORMAT,
        "source": prepared.source,
        "split": sp.kind,
        "split_info": sp.info,
        "stats": prepared.stats,
        "fingerprint": prepared.fingerprint(),
    }
    (d / "prepared.json").write_text(json.dumps(meta, indent=2, default=str))


def prepare(data_cfg: DataConfig | Mapping[str, Any]) -> PreparedData:
    """The whole pipeline in memory: prepare into a temporary store and load it back.

    With ``data_cfg.prepared`` set, loads that existing store instead of reading the source.
    """
    data_cfg = to_typed(DataConfig, data_cfg)
    existing = data_cfg.prepared
    if existing:
        return load_prepared(existing)
    with tempfile.TemporaryDirectory(prefix="journeyrec-prepare-") as tmp:
        prepare_store(data_cfg, Path(tmp) / "prepared")
        return load_prepared(Path(tmp) / "prepared", mmap=False)


def save_prepared(prepared: PreparedData, directory: str | Path) -> Path:
    """Write in-memory prepared data to ``directory`` atomically (no event store or card:
    those come from :func:`prepare_store`)."""
    with atomic_dir(directory) as tmp:
        _write_prepared(prepared, tmp)
    return Path(directory)


def load_prepared(directory: str | Path, mmap: bool = False) -> PreparedData:
    """Read a prepared store. ``mmap=True`` memory-maps the arrays (read-only): a 50M-event
    store opens instantly and pages in what the batches touch."""
    d = Path(directory)
    meta_path = d / "prepared.json"
    if not meta_path.is_file():
        raise MissingInputError(f"{d}: not a prepared dataset (no prepared.json); run scripts/prepare_data.py first")
    meta = json.loads(meta_path.read_text())
    fmt = meta.get("format")
    if fmt == 1:
        return _load_format1(d, meta)
    if fmt != PREPARED_FORMAT:
        raise ValueError(f"{d}: prepared format {fmt} is not supported (expected {PREPARED_FORMAT}); prepare again")
    a = {
        p.stem: np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        for p in sorted((d / "arrays").glob("*.npy"))
    }
    seqs = SequenceData(
        item_ids=np.asarray(pq.read_table(d / "items.parquet").column("item_id").to_pylist(), dtype=object),
        user_ids=np.asarray(pq.read_table(d / "users.parquet").column("user_id").to_pylist(), dtype=object),
        catalog=pq.read_table(d / "catalog.parquet"),
        sessions=a.get("sessions"),
        **{k: a[k] for k in _ARRAYS},
    )
    cases = {name: EvalCases(*(a[f"{name}_{k}"] for k in ("users", "ends", "targets"))) for name in ("valid", "test")}
    split = Split(meta["split"], a["train_ends"], cases["valid"], cases["test"], meta.get("split_info", {}))
    extras = {p.stem[len("extra_") :]: pq.read_table(p) for p in sorted(d.glob("extra_*.parquet"))}
    return PreparedData(sequences=seqs, split=split, source=meta["source"], stats=meta["stats"], extras=extras)


def _load_format1(d: Path, meta: dict) -> PreparedData:
    """Stores written before format 2 (``.npz`` arrays)."""
    arr = np.load(d / "sequences.npz", allow_pickle=False)  # plain arrays only: a planted object array is refused
    sp = np.load(d / "split.npz", allow_pickle=False)
    seqs = SequenceData(
        item_ids=np.asarray(pq.read_table(d / "items.parquet").column("item_id").to_pylist(), dtype=object),
        user_ids=np.asarray(pq.read_table(d / "users.parquet").column("user_id").to_pylist(), dtype=object),
        catalog=pq.read_table(d / "catalog.parquet"),
        **{k: arr[k] for k in _ARRAYS},
    )
    cases = {name: EvalCases(*(sp[f"{name}_{k}"] for k in ("users", "ends", "targets"))) for name in ("valid", "test")}
    split = Split(meta["split"], sp["train_ends"], cases["valid"], cases["test"], meta.get("split_info", {}))
    extras = {p.stem[len("extra_") :]: pq.read_table(p) for p in sorted(d.glob("extra_*.parquet"))}
    return PreparedData(sequences=seqs, split=split, source=meta["source"], stats=meta["stats"], extras=extras)
