"""Reader for the REES46 multi-category store logs (``data=rees46``).

Provenance: "eCommerce behavior data from multi category store", collected by the Open CDP
project of REES46 Marketing Platform, https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store
(monthly files ``2019-Oct.csv``, ``2019-Nov.csv``, ...; the same columns are used by REES46's
other shop datasets, e.g. the cosmetics shop). Licence: free to use with attribution: the dataset
page asks to mention the source (a link to the dataset page and to REES46, https://rees46.com).

Format (comma-separated, with header):
``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``;
event_time is UTC text such as ``2019-10-01 00:00:04 UTC``; event_type is ``view``, ``cart``,
``remove_from_cart`` or ``purchase`` (the canonical names already); user_session is the
publisher's session id. In the catalogue ``category`` is category_code with ``.`` as ``/``
(``electronics.smartphone`` -> ``electronics/smartphone``, or ``category:<category_id>`` when the
code is missing), plus ``brand`` and the latest ``price``. ``data.path`` is one monthly file or
the directory of them (all ``*.csv[.gz]`` files, in name order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import SourceScan, parse_options
from journeyrec.data.readers.common import (
    CatalogCollector,
    constant,
    find_files,
    flag_value,
    iter_delimited,
    make_batch,
    parse_datetime,
    parse_float,
)
from journeyrec.data.schema import conform_catalog

COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)


@dataclass
class Rees46Options:
    channel: str = "web"


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(Rees46Options, options, "rees46")
    files = find_files(path, ["*.csv", "*.csv.gz"], "rees46", "monthly event")
    stats: dict[str, Any] = {"rows_read": 0}
    items = CatalogCollector(["category", "brand", "price"])

    def batches() -> Iterator[pa.Table]:
        for f in files:
            for chunk in iter_delimited(f, delimiter=",", usecols=COLUMNS):
                t = chunk.table
                n = t.num_rows
                stats["rows_read"] += n + len(chunk.malformed)
                ts, ts_raw = parse_datetime(t.column("event_time"), "%Y-%m-%d %H:%M:%S UTC")
                price = parse_float(t.column("price"))
                reasons, values = flag_value(
                    None,
                    None,
                    pc.and_(pc.is_valid(t.column("price")), pc.is_null(price)),
                    "unparseable_price",
                    t.column("price"),
                )
                code = pc.replace_substring(t.column("category_code"), ".", "/")
                by_id = pc.binary_join_element_wise("category:", t.column("category_id"), "")
                items.add(
                    pa.table(
                        {
                            "item_id": t.column("product_id"),
                            "category": pc.coalesce(code, by_id),
                            "brand": t.column("brand"),
                            "price": pc.if_else(
                                pc.fill_null(pc.greater_equal(price, 0.0), False), price, pa.scalar(None, pa.float64())
                            ),
                        }
                    )
                )
                yield make_batch(
                    {
                        "user_id": t.column("user_id"),
                        "session_id": t.column("user_session"),
                        "item_id": t.column("product_id"),
                        "event_type": t.column("event_type"),
                        "timestamp": ts,
                        "channel": constant(opts.channel, n),
                        "price": price,
                    },
                    file=str(f),
                    lines=chunk.lines,
                    malformed=chunk.malformed,
                    reasons=reasons,
                    values=values,
                    ts_raw=ts_raw,
                )

    source = str(files[0]) if len(files) == 1 else f"{files[0].parent} ({len(files)} files)"
    return SourceScan(
        source=source, batches=batches(), catalog=lambda: conform_catalog(items.table(), source), stats=stats
    )
