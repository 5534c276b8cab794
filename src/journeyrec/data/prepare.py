"""Preparation: read a source, pseudonymise, build sequences and the split; save and load.

``prepare(data_cfg)`` is what training calls; ``save_prepared`` / ``load_prepared`` give the
on-disk form (NumPy arrays + Parquet id maps and catalogue, written atomically) that offline
evaluation and serving read back without re-reading the raw source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from journeyrec.data.privacy import pseudonymise_column, resolve_key
from journeyrec.data.readers import read_source
from journeyrec.data.sequences import EvalCases, SequenceData, Split, build_sequences, make_split
from journeyrec.io import atomic_dir

__all__ = ["PreparedData", "prepare", "save_prepared", "load_prepared", "PREPARED_FORMAT"]

PREPARED_FORMAT = 1


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
        for arr in (s.offsets, s.items, s.event_types, s.channels, s.timestamps, self.split.train_ends,
                    self.split.valid.ends, self.split.test.ends):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(map(str, s.item_ids)).encode())
        return h.hexdigest()[:16]


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def prepare(data_cfg: Any) -> PreparedData:
    """Read ``data_cfg.name`` from ``data_cfg.path`` and turn it into sequences and a split."""
    options = _get(data_cfg, "options") or {}
    src = read_source(_get(data_cfg, "name"), _get(data_cfg, "path"), dict(options))
    key = resolve_key(_get(data_cfg, "hmac_key"))
    events = src.events.set_column(
        src.events.schema.get_field_index("user_id"), "user_id", pseudonymise_column(src.events.column("user_id"), key)
    )
    extras = dict(src.extras)
    if "consent" in extras:
        c = extras["consent"]
        extras["consent"] = c.set_column(0, "user_id", pseudonymise_column(c.column("user_id"), key))
    seqs = build_sequences(events, src.catalog, dedup_consecutive=bool(_get(data_cfg, "dedup_consecutive", False)))
    split = make_split(
        seqs,
        _get(data_cfg, "split", "leave_one_out"),
        valid_fraction=float(_get(data_cfg, "valid_fraction", 0.1)),
        test_fraction=float(_get(data_cfg, "test_fraction", 0.1)),
    )
    stats = dict(src.stats)
    stats.update(
        users=seqs.n_users,
        items=seqs.n_items,
        item_events=seqs.n_events,
        events=events.num_rows,
        valid_cases=len(split.valid),
        test_cases=len(split.test),
        mean_length=float(seqs.lengths.mean()),
    )
    return PreparedData(sequences=seqs, split=split, source=src.source, stats=stats, extras=extras)


_ARRAYS = ("offsets", "items", "event_types", "channels", "timestamps")


def save_prepared(prepared: PreparedData, directory: str | Path) -> Path:
    """Write prepared data to ``directory`` atomically (the old version stays until complete)."""
    s, sp = prepared.sequences, prepared.split
    with atomic_dir(directory) as tmp:
        np.savez(tmp / "sequences.npz", **{k: getattr(s, k) for k in _ARRAYS})
        np.savez(
            tmp / "split.npz",
            train_ends=sp.train_ends,
            **{f"{name}_{k}": getattr(getattr(sp, name), k) for name in ("valid", "test") for k in ("users", "ends", "targets")},
        )
        pq.write_table(pa.table({"item_id": pa.array(s.item_ids.tolist(), pa.string())}), tmp / "items.parquet")
        pq.write_table(pa.table({"user_id": pa.array(s.user_ids.tolist(), pa.string())}), tmp / "users.parquet")
        pq.write_table(s.catalog, tmp / "catalog.parquet")
        for name, table in prepared.extras.items():
            pq.write_table(table, tmp / f"extra_{name}.parquet")
        meta = {
            "format": PREPARED_FORMAT,
            "source": prepared.source,
            "split": sp.kind,
            "split_info": sp.info,
            "stats": prepared.stats,
            "fingerprint": prepared.fingerprint(),
        }
        (tmp / "prepared.json").write_text(json.dumps(meta, indent=2, default=str))
    return Path(directory)


def load_prepared(directory: str | Path) -> PreparedData:
    """Read data written by :func:`save_prepared`."""
    d = Path(directory)
    meta_path = d / "prepared.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{d}: not a prepared dataset (no prepared.json); run scripts/prepare_data.py first")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != PREPARED_FORMAT:
        raise ValueError(f"{d}: prepared format {meta.get('format')} is not supported (expected {PREPARED_FORMAT}); prepare again")
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
    extras = {p.stem[len("extra_"):]: pq.read_table(p) for p in sorted(d.glob("extra_*.parquet"))}
    return PreparedData(sequences=seqs, split=split, source=meta["source"], stats=meta["stats"], extras=extras)
