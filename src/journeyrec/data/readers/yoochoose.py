"""Reader for YooChoose / RecSys Challenge 2015 (``data=yoochoose``): clicks, and buys when present.

Provenance: RecSys Challenge 2015, data by YOOCHOOSE GmbH, https://recsys.acm.org/recsys15/challenge/
(originally http://2015.recsyschallenge.com/; mirrored at
https://www.kaggle.com/datasets/chadgostopp/recsys-challenge-2015). Licence: released for the
challenge, research and non-commercial use; cite the RecSys Challenge 2015.

Formats (``data.path`` = a file, or the directory holding them):

* the published files, comma-separated, no header:
  ``yoochoose-clicks.dat``: session id, timestamp (ISO-8601, e.g. ``2014-04-07T10:51:09.277Z``),
  item id, category (``0`` = unknown, ``S`` = special offer, 1-12 = a category, longer numbers =
  a brand); ``yoochoose-buys.dat``: session id, timestamp, item id, price, quantity;
* the session-rec preparation (``yoochoose-clicks*.txt``, tab-separated with header
  ``SessionId ItemId Time``, Time in Unix seconds with a fraction), as in ../shared/data/yoochoose.

YooChoose has no user ids: the session is the user (``user_id`` = ``session_id`` = session id).
Clicks are ``click`` events, buys ``purchase`` events with price and quantity; the channel is
not recorded (``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import (
    CatalogCollector,
    constant,
    find_files,
    flag_value,
    iter_delimited,
    make_batch,
    parse_datetime,
    parse_epoch,
    parse_float,
    read_header,
)
from journeyrec.data.schema import conform_catalog

CLICKS = ("session", "timestamp", "item", "category")
BUYS = ("session", "timestamp", "item", "price", "quantity")


@dataclass
class YoochooseOptions:
    buys: bool = True  # read yoochoose-buys.dat beside the clicks when present


def _files(path: str | None, opts: YoochooseOptions) -> list[tuple[Path, str]]:
    """(file, kind) with kind clicks | buys | sessionrec, clicks before buys."""
    p = Path(path) if path else None
    if p is not None and p.is_dir():
        clicks = p / "yoochoose-clicks.dat"
        if clicks.is_file():
            out = [(clicks, "clicks")]
            if opts.buys and (p / "yoochoose-buys.dat").is_file():
                out.append((p / "yoochoose-buys.dat", "buys"))
            return out
    files = find_files(path, ["yoochoose-clicks.dat", "yoochoose-clicks*.txt", "*.txt"], "yoochoose", "clicks")
    out = []
    for f in files:
        if read_header(f, "\t")[:3] == ["SessionId", "ItemId", "Time"]:
            out.append((f, "sessionrec"))
        elif "buys" in f.name:
            out.append((f, "buys"))
        else:
            out.append((f, "clicks"))
    return out


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(YoochooseOptions, options, "yoochoose")
    files = _files(path, opts)
    stats: dict[str, Any] = {"rows_read": 0}
    items = CatalogCollector(["category"])

    def batches() -> Iterator[pa.Table]:
        for f, kind in files:
            if kind == "sessionrec":
                chunks = iter_delimited(f, delimiter="\t", usecols=["SessionId", "ItemId", "Time"])
            else:
                names = CLICKS if kind == "clicks" else BUYS
                chunks = iter_delimited(f, delimiter=",", names=names, usecols=names)
            for chunk in chunks:
                t = chunk.table
                n = t.num_rows
                stats["rows_read"] += n + len(chunk.malformed)
                reasons = values = None
                category = pa.nulls(n, pa.string())
                if kind == "sessionrec":
                    session, item = t.column("SessionId"), t.column("ItemId")
                    ts, ts_raw = parse_epoch(t.column("Time"), "s")
                    cols = {"event_type": constant("click", n)}
                else:
                    session, item = t.column("session"), t.column("item")
                    ts, ts_raw = parse_datetime(t.column("timestamp"))
                    if kind == "clicks":
                        cat = t.column("category")
                        category = pc.if_else(pc.equal(cat, "0"), pa.scalar(None, pa.string()), cat)
                        cols = {"event_type": constant("click", n)}
                    else:
                        price, qty = parse_float(t.column("price")), parse_float(t.column("quantity"))
                        reasons, values = flag_value(
                            reasons,
                            values,
                            pc.and_(pc.is_valid(t.column("price")), pc.is_null(price)),
                            "unparseable_price",
                            t.column("price"),
                        )
                        reasons, values = flag_value(
                            reasons,
                            values,
                            pc.and_(pc.is_valid(t.column("quantity")), pc.is_null(qty)),
                            "unparseable_quantity",
                            t.column("quantity"),
                        )
                        cols = {"event_type": constant("purchase", n), "price": price, "quantity": qty}
                items.add(pa.table({"item_id": item, "category": category}))
                cols.update(
                    user_id=session, session_id=session, item_id=item, timestamp=ts, channel=constant("unknown", n)
                )
                yield make_batch(
                    cols,
                    file=str(f),
                    lines=chunk.lines,
                    malformed=chunk.malformed,
                    reasons=reasons,
                    values=values,
                    ts_raw=ts_raw,
                )

    if not files:
        raise ReaderError(f"{path}: no YooChoose files found")
    source = str(files[0][0]) if len(files) == 1 else f"{files[0][0].parent} ({', '.join(f.name for f, _ in files)})"
    return SourceScan(
        source=source, batches=batches(), catalog=lambda: conform_catalog(items.table(), source), stats=stats
    )
