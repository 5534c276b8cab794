"""Reader for Taobao UserBehavior (``data=taobao``): ``UserBehavior.csv``.

Provenance: "UserBehavior: User Behavior Data from Taobao for Recommendation", Alibaba Group,
published on Alibaba Tianchi, https://tianchi.aliyun.com/dataset/649 (dataset 649; the full set
has ~100M events of ~1M users, 2017-11-25 to 2017-12-03). Licence: Tianchi dataset terms,
research / non-commercial use with citation of the source (log in to Tianchi to download).

Format (as published): comma-separated, no header, one event per line:
``user_id, item_id, category_id, behavior_type, timestamp`` with behavior_type one of ``pv``
(item detail page view), ``cart``, ``fav`` (favourite), ``buy`` and timestamp in Unix seconds.
Mapped to view / cart / wishlist / purchase; the channel is not recorded (``unknown``);
category_id becomes the item's ``category`` in the catalogue. There are no session ids:
preparation sessionises by inactivity gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import pyarrow as pa

from journeyrec.data.readers import SourceScan, parse_options
from journeyrec.data.readers.common import (
    CatalogCollector,
    constant,
    find_file,
    iter_delimited,
    make_batch,
    map_values,
    parse_epoch,
)
from journeyrec.data.schema import conform_catalog

COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
EVENT_TYPE_MAP = {"pv": "view", "cart": "cart", "fav": "wishlist", "buy": "purchase"}


@dataclass
class TaobaoOptions:
    channel: str = "unknown"


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(TaobaoOptions, options, "taobao")
    p = find_file(path, ["UserBehavior.csv", "UserBehavior.csv.gz", "*.csv"], "taobao", "UserBehavior")
    stats: dict[str, Any] = {"rows_read": 0}
    items = CatalogCollector(["category"])

    def batches() -> Iterator[pa.Table]:
        for chunk in iter_delimited(p, delimiter=",", names=COLUMNS, usecols=COLUMNS):
            t = chunk.table
            stats["rows_read"] += t.num_rows + len(chunk.malformed)
            ts, ts_raw = parse_epoch(t.column("timestamp"), "s")
            items.add(pa.table({"item_id": t.column("item_id"), "category": t.column("category_id")}))
            yield make_batch(
                {
                    "user_id": t.column("user_id"),
                    "item_id": t.column("item_id"),
                    "event_type": map_values(t.column("behavior_type"), EVENT_TYPE_MAP),
                    "timestamp": ts,
                    "channel": constant(opts.channel, t.num_rows),
                },
                file=str(p),
                lines=chunk.lines,
                malformed=chunk.malformed,
                ts_raw=ts_raw,
            )

    return SourceScan(
        source=str(p), batches=batches(), catalog=lambda: conform_catalog(items.table(), str(p)), stats=stats
    )
