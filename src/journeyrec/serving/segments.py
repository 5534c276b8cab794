"""Customer segments in serving: RFM-style (recency, frequency, monetary value) from the purchases
of the journey a request reads, so that a touchpoint can set rules per segment (``ContextConfig.
segments``: new customers get more exploration, lapsed ones what they used to buy).

The segment is computed from what the request already holds (the stored journey on the customer
endpoint, the request's own events on the stateless one), never from anything else: a request
without consent is ``anonymous`` and reads nothing personal. Orders are purchases grouped by
``order_gap_minutes``; spend is the sum of the purchased items' live catalogue prices (the events
a request carries have no price or quantity), so "vip" means "bought for at least ``vip_spend``
at today's prices within the store's retention".
"""

from __future__ import annotations

import numpy as np

from journeyrec.serving.settings import SEGMENTS, SegmentsConfig

__all__ = ["SEGMENTS", "rfm_segment"]

DAY_MS = 86_400_000


def rfm_segment(purchase_ts_ms: np.ndarray, purchase_prices: np.ndarray, now_ms: int, cfg: SegmentsConfig) -> str:
    """The segment of a consenting customer whose purchases happened at ``purchase_ts_ms`` for
    ``purchase_prices`` (NaN: unknown price, counted as 0)."""
    ts = np.sort(np.asarray(purchase_ts_ms, dtype=np.int64))
    if not len(ts):
        return "new"
    if (now_ms - int(ts[-1])) / DAY_MS > cfg.lapsed_days:
        return "lapsed"
    if float(np.nansum(np.asarray(purchase_prices, dtype=np.float64))) >= cfg.vip_spend:
        return "vip"
    orders = 1 + int(np.count_nonzero(np.diff(ts) > cfg.order_gap_minutes * 60_000))
    return "loyal" if orders >= cfg.loyal_orders else "active"
