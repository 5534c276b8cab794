"""The demo shop's entry points: the whole shop in memory (:func:`generate`), its parts as streams
or tables, and :func:`write_parquet`, which streams a shop of any size to Parquet. Customers are
generated in blocks of ``block_customers``, each block with its own random generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import EVENT_SCHEMA
from journeyrec.data.synthetic.catalog import _catalog, generate_catalog, generate_complements
from journeyrec.data.synthetic.config import DemoShopConfig
from journeyrec.data.synthetic.customers import generate_consent
from journeyrec.data.synthetic.journeys import _simulate_block
from journeyrec.data.synthetic.tables import _carts_table, _events_table


@dataclass
class DemoShop:
    """Generated demo data: canonical events, catalogue, and the ground truth behind them."""

    events: pa.Table
    catalog: pa.Table
    complements: pa.Table  # item_id -> complement_item_id (ground truth for complement tests)
    consent: pa.Table  # user_id, opted_out
    carts: pa.Table  # one row per session with a cart: abandonment ground truth (generate_carts)


def _blocks(cfg: DemoShopConfig) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(events, carts) per block of ``cfg.block_customers`` customers, in customer order."""
    cat = _catalog(cfg.models_per_leaf, cfg.seed)
    for first in range(0, cfg.n_customers, cfg.block_customers):
        n = min(cfg.block_customers, cfg.n_customers - first)
        block_rng = np.random.default_rng([cfg.seed, first])
        events, carts = _simulate_block(cat, cfg, first, n, block_rng)
        yield _events_table(cat, events, first, n), _carts_table(carts, first, n)


def generate_events(cfg: DemoShopConfig | None = None) -> Iterator[pa.Table]:
    """Yield event tables block by block (``cfg.block_customers`` customers each), sorted by
    (user, time) within a block and blocks in user order: suitable for streaming to Parquet."""
    for events, _carts in _blocks(cfg or DemoShopConfig()):
        yield events


def generate_carts(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Ground truth of cart abandonment: one row per session that put something in the cart
    (every customer, consent aside: join on the events actually kept). ``p_abandon`` is the
    probability the generator used, ``abandoned`` its draw, ``recovered`` whether the abandoned
    item was bought in a later session (see docs/demo_shop.md)."""
    return pa.concat_tables([carts for _events, carts in _blocks(cfg or DemoShopConfig())])


def generate(cfg: DemoShopConfig | None = None) -> DemoShop:
    """The whole demo shop in memory: events, catalogue, complement ground truth, consent table
    (for the customers who have events)."""
    cfg = cfg or DemoShopConfig()
    blocks = list(_blocks(cfg))
    events = pa.concat_tables([e for e, _c in blocks])
    consent = generate_consent(cfg)
    consent = consent.filter(pc.is_in(consent.column("user_id"), value_set=pc.unique(events.column("user_id"))))
    return DemoShop(
        events=events,
        catalog=generate_catalog(cfg),
        complements=generate_complements(cfg),
        consent=consent,
        carts=pa.concat_tables([c for _e, c in blocks]),
    )


def write_parquet(cfg: DemoShopConfig, directory: str | Path) -> dict[str, int]:
    """Stream a (possibly huge) demo shop to ``directory``: ``events.parquet`` (one row group
    per block of customers, never more than one block in memory), ``consent.parquet`` and
    ``catalog.parquet``. Returns row counts. Each file is written atomically."""
    import pyarrow.parquet as pq

    from journeyrec.io import atomic_path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic_path(out / "events.parquet") as tmp:
        with pq.ParquetWriter(tmp, EVENT_SCHEMA) as writer:
            for block in generate_events(cfg):
                writer.write_table(block, row_group_size=1 << 20)
                rows += block.num_rows
    consent = generate_consent(cfg)
    with atomic_path(out / "consent.parquet") as tmp:
        pq.write_table(consent, tmp)
    catalog = generate_catalog(cfg)
    with atomic_path(out / "catalog.parquet") as tmp:
        pq.write_table(catalog, tmp)
    return {"events": rows, "customers": consent.num_rows, "items": catalog.num_rows}
