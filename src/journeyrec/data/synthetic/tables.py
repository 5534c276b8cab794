"""The simulation's integer-coded columns as Arrow tables, one block of customers at a time: the
canonical events and the ground truth of the sessions with a cart. Strings are made from the
codes through dictionary arrays, not one Python object per row.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import conform_events
from journeyrec.data.synthetic.catalog import _LEAVES, COLOURS, SIZES, _Catalog
from journeyrec.data.synthetic.journeys import _ETYPE_CODE

# The simulation's clock starts here (its times are seconds since START).
START = np.datetime64("2026-01-01T00:00:00", "s").astype(np.int64)
# The text of the demo's closed vocabularies, indexed by the integer codes the simulation uses.
_CHANNEL_NAMES = ("web", "app", "newsletter", "store", "call_centre")
_ETYPE_NAMES = tuple(_ETYPE_CODE)
_LEAF_NAMES = tuple(x[0].rsplit("/", 1)[1] for x in _LEAVES)


def _filter_texts() -> tuple[str | None, ...]:
    """JSON of every filter combination: code = size_code * (len(COLOURS) + 1) + colour_code - 1."""
    out = []
    for sc in range(len(SIZES) + 1):
        for cc in range(len(COLOURS) + 1):
            f = {}
            if sc:
                f["size"] = SIZES[sc - 1]
            if cc:
                f["colour"] = COLOURS[cc - 1]
            out.append(json.dumps(f, sort_keys=True) if f else None)
    return tuple(out[1:])  # code -1 (neither) is null


def _text(codes: np.ndarray, names: Sequence[str | None] | pa.Array) -> pa.Array:
    """Strings from integer codes (negative = null) without building Python objects per row."""
    dictionary = names if isinstance(names, pa.Array) else pa.array(list(names), pa.string())
    codes = np.asarray(codes)
    indices = pa.array(np.maximum(codes, 0).astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _events_table(cat: _Catalog, cols: dict[str, np.ndarray], first_customer: int, n_customers: int) -> pa.Table:
    order = np.lexsort((cols["ts"], cols["user"]))
    user = cols["user"][order] - first_customer
    item = cols["item"][order]
    ts_ms = ((START + cols["ts"][order]) * 1000.0).astype(np.int64)
    user_str = _text(user, _customer_names(first_customer, n_customers))
    sess = _session_ids(user_str, cols["session"][order])
    has_item = item >= 0
    etype = cols["etype"][order]
    is_purchase = etype == _ETYPE_CODE["purchase"]
    table = pa.table(
        {
            "user_id": user_str,
            "session_id": sess,
            "item_id": _text(np.where(has_item, item, -1), cat.table.column("item_id").combine_chunks()),
            "event_type": _text(etype, _ETYPE_NAMES),
            "timestamp": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
            "channel": _text(cols["channel"][order], _CHANNEL_NAMES),
            "query": _text(cols["query"][order], _LEAF_NAMES),
            "filters": _text(cols["filters"][order], _filter_texts()),
            "price": pa.array(cat.price[np.maximum(item, 0)], pa.float64(), mask=~has_item),
            "quantity": pa.array(np.ones(len(item), np.int32), pa.int32(), mask=~is_purchase),
        }
    )
    return conform_events(table, source="demo shop")


def _customer_names(first_customer: int, n_customers: int) -> pa.Array:
    return pa.array([f"C{c:07d}" for c in range(first_customer, first_customer + n_customers)], pa.string())


def _session_ids(user_str: pa.Array, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(user_str, pc.cast(pa.array(numbers), pa.string()), "-")


def _carts_table(cols: dict[str, np.ndarray], first_customer: int, n_customers: int) -> pa.Table:
    order = np.lexsort((cols["cart_ts"], cols["user"]))
    user_str = _text(cols["user"][order] - first_customer, _customer_names(first_customer, n_customers))

    def ms(seconds: np.ndarray) -> pa.Array:
        return pa.array(((START + seconds[order]) * 1000.0).astype(np.int64), pa.timestamp("ms", tz="UTC"))

    return pa.table(
        {
            "user_id": user_str,
            "session_id": _session_ids(user_str, cols["session"][order]),
            "channel": _text(cols["channel"][order], _CHANNEL_NAMES),
            "cart_time": ms(cols["cart_ts"]),
            "session_end": ms(cols["end_ts"]),
            "items_carted": pa.array(cols["items_carted"][order].astype(np.int32)),
            "cart_value": pa.array(np.round(cols["cart_value"][order], 2), pa.float64()),
            "views_after_cart": pa.array(cols["views_after_cart"][order].astype(np.int32)),
            "earlier_orders": pa.array(cols["earlier_orders"][order].astype(np.int32)),
            "came_back_for_item": pa.array(cols["came_back_for_item"][order].astype(bool)),
            "p_abandon": pa.array(cols["p_abandon"][order], pa.float64()),
            "abandoned": pa.array(cols["abandoned"][order].astype(bool)),
            "recovered": pa.array(cols["recovered"][order].astype(bool)),
        }
    )
