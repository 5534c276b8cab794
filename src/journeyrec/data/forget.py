"""Right to be forgotten: remove one user from a prepared store, atomically.

Every trace of the user's pseudonym goes: their positions in the sequence arrays (CSR offsets
and split positions of the other users are shifted, so the rest of the store is unchanged),
their id in ``users.parquet``, their rows in ``events.parquet``, ``quarantine.parquet`` and any
side table with a ``user_id`` column (consent), and their contribution to the dataset card's
counts. The new store is built beside the old one and swapped in (``journeyrec.io.atomic_dir``):
a crash leaves the old store intact. Items stay in the item map even if nobody else had them,
so item ids keep their meaning.

Models trained on the store before are not changed by this: they (their bundles, checkpoints and
the MLflow runs holding them) still reflect the user and must be retrained on the new store.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from journeyrec.data.card import CARD_FILES, load_card, write_card
from journeyrec.data.prepare import PreparedData, _write_prepared, load_prepared
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.data.sequences import EvalCases, SequenceData, Split
from journeyrec.io import atomic_dir

__all__ = ["forget_user"]


def _drop_user(p: PreparedData, u: int) -> PreparedData:
    s, sp = p.sequences, p.split
    lo, hi = int(s.offsets[u]), int(s.offsets[u + 1])
    removed = hi - lo
    keep = np.r_[np.arange(0, lo), np.arange(hi, s.n_events)]
    offsets = np.r_[s.offsets[: u + 1], s.offsets[u + 2 :] - removed].astype(np.int64)
    seqs = SequenceData(
        item_ids=s.item_ids,
        user_ids=np.delete(s.user_ids, u),
        offsets=offsets,
        items=s.items[keep],
        event_types=s.event_types[keep],
        channels=s.channels[keep],
        timestamps=s.timestamps[keep],
        catalog=s.catalog,
        sessions=None if s.sessions is None else np.asarray(s.sessions)[keep],
    )

    def shift(pos: np.ndarray) -> np.ndarray:
        pos = np.asarray(pos, dtype=np.int64)
        return np.where(pos >= hi, pos - removed, pos)

    def cases(c: EvalCases) -> EvalCases:
        other = np.asarray(c.users) != u
        users = np.asarray(c.users)[other]
        return EvalCases(
            np.where(users > u, users - 1, users), shift(np.asarray(c.ends)[other]), np.asarray(c.targets)[other]
        )

    train_ends = shift(np.delete(np.asarray(sp.train_ends), u))
    split = Split(sp.kind, train_ends, cases(sp.valid), cases(sp.test), dict(sp.info))
    return PreparedData(seqs, split, p.source, dict(p.stats), dict(p.extras))


def _filter_parquet(src: Path, dst: Path, pseudonym: str) -> pa.Table:
    """Copy ``src`` to ``dst`` without the user's rows; returns the removed rows' type/channel/session."""
    pf = pq.ParquetFile(src)
    removed = []
    with pq.ParquetWriter(dst, pf.schema_arrow) as writer:
        for batch in pf.iter_batches(batch_size=1 << 20):
            t = pa.Table.from_batches([batch])
            mine = pc.fill_null(pc.equal(t.column("user_id"), pseudonym), False)
            if pc.any(mine).as_py():
                cols = [c for c in ("event_type", "channel", "session_id", "reason") if c in t.column_names]
                removed.append(t.filter(mine).select(cols))
                t = t.filter(pc.invert(mine))
            writer.write_table(t)
    return pa.concat_tables(removed) if removed else pa.table({})


def forget_user(directory: str | Path, pseudonym: str) -> dict[str, Any]:
    """Remove the user with this pseudonym from the store at ``directory``; returns what was removed."""
    d = Path(directory)
    prepared = load_prepared(d, mmap=False)
    card = load_card(d) if (d / "dataset_card.json").is_file() else None
    hits = np.nonzero(prepared.sequences.user_ids == pseudonym)[0]
    report: dict[str, Any] = {"user": pseudonym, "sequence_events": 0, "events": 0, "quarantined": 0, "side_rows": 0}
    with atomic_dir(d) as tmp:
        if len(hits):
            u = int(hits[0])
            report["sequence_events"] = int(prepared.sequences.lengths[u])
            user_sessions = len(
                np.unique(
                    np.asarray(prepared.sequences.session_ids())[
                        prepared.sequences.offsets[u] : prepared.sequences.offsets[u + 1]
                    ]
                )
            )
            prepared = _drop_user(prepared, u)
        else:
            user_sessions = 0
        for name, table in list(prepared.extras.items()):
            if "user_id" in table.column_names:
                mine = pc.fill_null(pc.equal(table.column("user_id"), pseudonym), False)
                report["side_rows"] += int(pc.sum(mine).as_py() or 0)
                prepared.extras[name] = table.filter(pc.invert(mine))
        removed_events = pa.table({})
        if (d / "events.parquet").is_file():
            removed_events = _filter_parquet(d / "events.parquet", tmp / "events.parquet", pseudonym)
            report["events"] = removed_events.num_rows
        if (d / "quarantine.parquet").is_file():
            report["quarantined"] = _filter_parquet(
                d / "quarantine.parquet", tmp / "quarantine.parquet", pseudonym
            ).num_rows
        found = any(report[k] for k in ("sequence_events", "events", "quarantined", "side_rows"))
        s = prepared.sequences
        prepared.stats.update(
            users=s.n_users,
            item_events=s.n_events,
            valid_cases=len(prepared.split.valid),
            test_cases=len(prepared.split.test),
            mean_length=float(s.lengths.mean()) if s.n_users else 0.0,
            forgotten_users=int(prepared.stats.get("forgotten_users", 0)) + int(found),
        )
        _write_prepared(prepared, tmp)
        if card is not None:
            _update_card(card, prepared, removed_events, report, user_sessions, found)
            write_card(card, tmp, s.lengths)
        for f in d.iterdir():  # anything else in the store is copied unchanged
            if not (tmp / f.name).exists() and f.name not in CARD_FILES:
                (shutil.copytree if f.is_dir() else shutil.copy2)(f, tmp / f.name)
    report["found"] = found
    return report


def _update_card(
    card: dict, prepared: PreparedData, removed: pa.Table, report: dict, user_sessions: int, found: bool
) -> None:
    s, sp = prepared.sequences, prepared.split
    ev = card["events"]
    if removed.num_rows:
        ev["total"] -= removed.num_rows
        ev["users"] -= 1
        ev["sessions"] -= len(pc.unique(removed.column("session_id")))
        for col, key, _vocab in (("event_type", "by_type", EVENT_TYPES), ("channel", "by_channel", CHANNELS)):
            for d in pc.value_counts(removed.column(col)).to_pylist():
                ev[key][d["values"]] = ev[key].get(d["values"], 0) - int(d["counts"])
            ev[key] = {k: v for k, v in ev[key].items() if v > 0}
    q = card["rows_quarantined"]
    q["total"] -= report["quarantined"]
    sq = card["sequences"]
    lengths = s.lengths
    sq.update(item_events=int(s.n_events), users=int(s.n_users), sessions=int(sq["sessions"]) - user_sessions)
    sq["length"] = {
        "mean": float(lengths.mean()) if len(lengths) else 0.0,
        "median": float(np.median(lengths)) if len(lengths) else 0.0,
        "p90": float(np.quantile(lengths, 0.9)) if len(lengths) else 0.0,
        "max": int(lengths.max()) if len(lengths) else 0,
    }
    card["split"].update(valid_cases=len(sp.valid), test_cases=len(sp.test))
    card["privacy"]["forgotten_users"] = int(card["privacy"].get("forgotten_users", 0)) + int(found)
    card["fingerprint"] = prepared.fingerprint()
