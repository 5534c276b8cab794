"""Reader for Diginetica / CIKM Cup 2016 Track 2 (``data=diginetica``): views, purchases, categories.

Provenance: "CIKM Cup 2016 Track 2: Personalized E-Commerce Search Challenge", data by DIGINETICA
and its partners, https://competitions.codalab.org/competitions/11161 (dataset-train-diginetica).
Licence: released for the CIKM Cup 2016 and for research; cite the challenge. All ids, names and
queries are anonymised by the publisher.

``data.path`` is the directory holding the published files (semicolon-separated, with header):

* ``train-item-views.csv``: ``sessionId;userId;itemId;timeframe;eventdate`` -> ``view`` events
* ``train-purchases.csv``: ``sessionId;userId;timeframe;eventdate;ordernumber;itemId`` -> ``purchase``
* ``product-categories.csv``: ``itemId;categoryId`` -> the item's ``category``
* ``products.csv``: ``itemId;pricelog2;product.name.tokens`` -> ``price`` = 2 ** pricelog2, name
  tokens as ``tags``

``eventdate`` is the day (``YYYY-MM-DD``) and ``timeframe`` the milliseconds since the session's
first event, so the timestamp is eventdate (UTC midnight) + timeframe. ``userId`` is ``NA`` for
anonymous visitors; their session then stands for the user (``user_id = "session:<sessionId>"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.readers import ReaderError, SourceScan, parse_options
from journeyrec.data.readers.common import constant, iter_delimited, make_batch, parse_datetime, parse_float
from journeyrec.data.schema import conform_catalog


@dataclass
class DigineticaOptions:
    purchases: bool = True  # read train-purchases.csv when present
    channel: str = "web"  # the challenge's logs come from an e-commerce web site


def _dir(path: str | None) -> Path:
    if not path:
        raise ReaderError("data.path is required for data=diginetica: the directory holding train-item-views.csv")
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not (p / "train-item-views.csv").is_file():
        raise ReaderError(f"{p}: no train-item-views.csv (data=diginetica needs the directory of the published files)")
    return p


def scan(path: str | None, options: Mapping[str, Any]) -> SourceScan:
    opts = parse_options(DigineticaOptions, options, "diginetica")
    d = _dir(path)
    files = [(d / "train-item-views.csv", "view")]
    if opts.purchases and (d / "train-purchases.csv").is_file():
        files.append((d / "train-purchases.csv", "purchase"))
    stats: dict[str, Any] = {"rows_read": 0}

    def batches() -> Iterator[pa.Table]:
        for f, etype in files:
            for chunk in iter_delimited(
                f, delimiter=";", usecols=("sessionId", "userId", "itemId", "timeframe", "eventdate")
            ):
                t = chunk.table
                n = t.num_rows
                stats["rows_read"] += n + len(chunk.malformed)
                day, _ = parse_datetime(t.column("eventdate"), "%Y-%m-%d")
                offset = parse_float(t.column("timeframe"))
                ms = pc.add(pc.cast(day, pa.int64()), pc.cast(pc.round(offset), pa.int64()))
                ts = pc.cast(ms, pa.timestamp("ms", tz="UTC"))
                raw = pc.binary_join_element_wise(
                    pc.fill_null(t.column("eventdate"), ""), pc.fill_null(t.column("timeframe"), ""), " + "
                )
                ts_raw = pc.if_else(pc.is_null(ts), raw, pa.scalar(None, pa.string()))
                session = t.column("sessionId")
                user = t.column("userId")
                anonymous = pc.fill_null(pc.equal(user, "NA"), True)
                user = pc.if_else(
                    anonymous, pc.binary_join_element_wise("session:", pc.fill_null(session, ""), ""), user
                )
                user = pc.if_else(
                    pc.is_null(session), pc.if_else(anonymous, pa.scalar(None, pa.string()), t.column("userId")), user
                )
                yield make_batch(
                    {
                        "user_id": user,
                        "session_id": session,
                        "item_id": t.column("itemId"),
                        "event_type": constant(etype, n),
                        "timestamp": ts,
                        "channel": constant(opts.channel, n),
                    },
                    file=str(f),
                    lines=chunk.lines,
                    malformed=chunk.malformed,
                    ts_raw=ts_raw,
                )

    return SourceScan(source=str(d), batches=batches(), catalog=lambda: _catalog(d), stats=stats)


def _catalog(d: Path) -> pa.Table:
    import pyarrow.csv as pacsv

    def read(name: str, types: dict[str, pa.DataType]) -> pa.Table | None:
        f = d / name
        if not f.is_file():
            return None
        return pacsv.read_csv(
            f,
            parse_options=pacsv.ParseOptions(delimiter=";"),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types)),
        )

    cats = read("product-categories.csv", {"itemId": pa.string(), "categoryId": pa.string()})
    prods = read("products.csv", {"itemId": pa.string(), "pricelog2": pa.string(), "product.name.tokens": pa.string()})
    ids = pa.chunked_array([t.column("itemId") for t in (cats, prods) if t is not None], type=pa.string())
    ids = pc.unique(ids.combine_chunks()).sort() if len(ids) else pa.array([], pa.string())
    cols: dict[str, Any] = {"item_id": ids}
    if cats is not None:
        idx = pc.index_in(ids, value_set=cats.column("itemId"))
        cols["category"] = pc.take(cats.column("categoryId"), idx)
    if prods is not None:
        idx = pc.index_in(ids, value_set=prods.column("itemId"))
        logp = parse_float(pc.take(prods.column("pricelog2"), idx))
        cols["price"] = pa.array(np.power(2.0, logp.to_numpy(zero_copy_only=False)), pa.float64(), from_pandas=True)
        tokens = pc.take(prods.column("product.name.tokens"), idx)
        cols["tags"] = pc.split_pattern(tokens, ",")
    return conform_catalog(cols, source=str(d))
