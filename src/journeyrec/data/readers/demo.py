"""Reader for the built-in demo shop (``data=demo``): generated in memory, no file needed."""

from __future__ import annotations

from typing import Any, Mapping

from journeyrec.data.readers import SourceData, parse_options
from journeyrec.data.synthetic import DemoShopConfig, generate


def read(path: str | None, options: Mapping[str, Any]) -> SourceData:
    cfg = parse_options(DemoShopConfig, options, "demo")
    shop = generate(cfg)
    return SourceData(
        events=shop.events,
        catalog=shop.catalog,
        source=f"demo shop (seed {cfg.seed}, {cfg.n_customers} customers)",
        stats={"rows_read": shop.events.num_rows},
        extras={"complements": shop.complements, "consent": shop.consent},
    )
