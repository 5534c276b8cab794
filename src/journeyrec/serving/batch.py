"""Batch recommendations for newsletters and parcel inserts: top-k per customer of the journey
store, through the service's own pipeline (``Service.recommend_pseudonym``, as
``POST /v1/customers/{id}/recommendations`` answers), into one Parquet file.

Customers: ``all`` (every customer the store knows; the file then names them by pseudonym, which
the shop can join to its own ids by pseudonymising them with the same key) or a text file of
customer ids, one per line (pseudonymised on entry; the file names them by these ids, as given).
Opted-out and unknown customers get the non-personal list, marked ``personalised = false``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from journeyrec.io import atomic_path
from journeyrec.serving.request import Context, RecommendRequest
from journeyrec.serving.server import build_service
from journeyrec.serving.service import Service
from journeyrec.serving.settings import CONTEXT_TYPES

__all__ = ["BATCH_SCHEMA", "batch_recommend", "read_customer_file", "run_batch"]

BATCH_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),  # as given in the file, or the pseudonym (customers=all)
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("model_score", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("new", pa.bool_()),
        pa.field("title", pa.string()),
        pa.field("category", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("personalised", pa.bool_(), nullable=False),
    ]
)


def read_customer_file(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"customers={path}: no such file (give 'all' or a text file with one customer id per line)"
        )
    ids = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"customers={path}: the file names no customer")
    return ids


def batch_recommend(
    service: Service,
    customers: str,
    out: str | Path,
    context: str = "newsletter",
    k: int = 10,
    progress: bool = True,
    flush_rows: int = 200_000,
) -> dict[str, Any]:
    """Write ``out`` (Parquet, :data:`BATCH_SCHEMA`) and return counts and throughput."""
    store = service._require_store()
    if customers == "all":
        who: list[tuple[str, str]] = [(p, p) for p in store.customers()]
    else:
        who = [(c, service._pseudonym(c)) for c in read_customer_file(customers)]
    request = RecommendRequest(k=k, context=Context(context), item_fields=True)
    started = time.perf_counter()
    personal = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, BATCH_SCHEMA) as writer:
        rows: dict[str, list[Any]] = {f.name: [] for f in BATCH_SCHEMA}
        for name, pseudonym in tqdm(who, desc=f"batch {context} k={k}", unit="customer", disable=not progress):
            result, _ = service.recommend_pseudonym(pseudonym, request, impression=False)
            personal += result.personalised
            for rank, r in enumerate(result.items, start=1):
                info = r.info or {}
                for field, value in (
                    ("customer_id", name),
                    ("rank", rank),
                    ("item_id", r.item_id),
                    ("score", r.score),
                    ("model_score", r.model_score),
                    ("reason", r.reason),
                    ("new", r.new),
                    ("title", info.get("title")),
                    ("category", info.get("category")),
                    ("price", info.get("price")),
                    ("personalised", result.personalised),
                ):
                    rows[field].append(value)
            if len(rows["rank"]) >= flush_rows:
                writer.write_table(pa.table(rows, schema=BATCH_SCHEMA))
                rows = {f.name: [] for f in BATCH_SCHEMA}
        writer.write_table(pa.table(rows, schema=BATCH_SCHEMA))
    seconds = time.perf_counter() - started
    return {
        "customers": len(who),
        "personalised": personal,
        "out": str(out),
        "seconds": round(seconds, 3),
        "customers_per_s": round(len(who) / seconds, 1) if seconds > 0 else None,
    }


def run_batch(cfg: Any, output_dir: str | Path) -> dict[str, Any]:
    """``scripts/batch_recommend.py``: ``cfg`` is a :class:`journeyrec.config.BatchRecommendConfig`."""
    if cfg.context not in CONTEXT_TYPES:
        raise ValueError(f"context={cfg.context!r} is not a touchpoint; allowed: {list(CONTEXT_TYPES)}")
    if cfg.k < 1:
        raise ValueError(f"k={cfg.k} must be >= 1")
    service = build_service(cfg)
    try:
        out = cfg.out or str(Path(output_dir) / "recommendations.parquet")
        return batch_recommend(service, cfg.customers, out, cfg.context, cfg.k, progress=cfg.progress)
    finally:
        service.store.close()
