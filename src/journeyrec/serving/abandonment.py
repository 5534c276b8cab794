"""The live session's cart-abandonment risk, and the actions a shop configured for it.

The risk is the bundle's abandonment model (:mod:`journeyrec.models.abandonment`) on the
features of the newest session of the request's events, computed by the same function offline
evaluation uses (:func:`journeyrec.models.abandonment.abandonment_features`, on a one-customer
:class:`~journeyrec.data.sequences.SequenceData`), so a served risk is the offline model's for the
same events. Sessions are split by the 30-minute inactivity gap (requests carry no session ids).
A session without an open cart (nothing carted yet, or already bought) has no risk. A bundle
whose chosen model is the intent head, or that ships no abandonment model but has an intent
head, gives ``1 - P(purchase)``; a bundle with neither gives none.

Actions (``actions:`` in ``configs/serve.yaml``, :class:`journeyrec.serving.settings.ActionRule`):
each rule whose conditions all hold (strictly above their thresholds) is listed, in the
configured order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from journeyrec.data.sequences import SequenceData
from journeyrec.models.abandonment import ABANDONMENT_FEATURES, AbandonmentModel, abandonment_features, open_cart
from journeyrec.serving.settings import ActionRule

__all__ = ["CartRisk", "fire_actions"]

_VALUE = ABANDONMENT_FEATURES.index("log_cart_value")
_USER = np.asarray(["session"], dtype=object)


class CartRisk:
    """Scores one customer's events with the bundle's abandonment model (or the intent head)."""

    def __init__(self, model: AbandonmentModel | None, has_intent_head: bool) -> None:
        self.model = model
        self.uses_head = (model is None and has_intent_head) or (model is not None and model.kind == "head")
        self.available = self.uses_head or model is not None

    def score(
        self,
        items: np.ndarray,
        etypes: np.ndarray,
        channels: np.ndarray,
        ts: np.ndarray,
        item_ids: np.ndarray,
        catalog: pa.Table,
        prices: np.ndarray,
        intent: float | None,
    ) -> tuple[float | None, float | None]:
        """(risk, cart value) of the newest session of these events (internal ids and codes,
        oldest first; ``prices`` per internal id), or (None, None) when its cart is not open or
        no model can tell."""
        n = len(items)
        if not self.available or n == 0:
            return None, None
        data = SequenceData(
            item_ids,
            _USER,
            np.asarray([0, n], np.int64),
            np.asarray(items, np.int32),
            np.asarray(etypes, np.int8),
            np.asarray(channels, np.int8),
            np.asarray(ts, np.int64),
            catalog,
        )
        ends = np.asarray([n], np.int64)
        if not open_cart(data, ends)[0]:
            return None, None
        x = abandonment_features(data, ends, prices)
        value = float(np.expm1(x[0, _VALUE]))
        if self.uses_head:
            return (None if intent is None else 1.0 - float(intent)), value
        assert self.model is not None
        return float(self.model.predict(x)[0]), value


def fire_actions(actions: Sequence[ActionRule], risk: float | None, cart_value: float | None) -> list[str]:
    """The ``do`` of every rule whose conditions hold for this risk and cart value (none without a risk)."""
    if risk is None:
        return []
    out = []
    for a in actions:
        w = a.when
        if w.risk_above is not None and not risk > w.risk_above:
            continue
        if w.cart_value_above is not None and not (cart_value is not None and cart_value > w.cart_value_above):
            continue
        out.append(a.do)
    return out
