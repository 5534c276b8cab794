"""Cart abandonment: for a session with a non-empty cart, the probability that it ends without a purchase.

Cases and labels (defined once, here). A case is a prefix of a session (the customer has done
the events up to and including position t) whose session so far holds at least one ``cart``
event and no ``purchase``: the cart is open. Its label is 1 (abandoned) when no purchase follows
in the same session, 0 when one does. This is the complement of the purchase-intent label of
:mod:`journeyrec.models.intent` on the open-cart prefixes, and it reuses its case definitions:

* training cases: the intent training positions (labels known inside the training prefix:
  :func:`journeyrec.models.intent.intent_labels`) that have an open cart;
* held-out cases: the open prefixes of the held-out sessions of ``valid`` / ``test``
  (:func:`journeyrec.models.intent.heldout_intent_cases`) that have an open cart.

Removals from the cart are not positions of an item sequence, so "non-empty" means "something
was carted in this session": a customer who carted and removed everything still counts.

Features (:func:`abandonment_features`) read the prefix only: events after position t never
enter a feature (``tests/models/test_abandonment.py`` changes everything after a prefix and
checks that the features do not move while the label does). They are the count features of the
intent baseline (:func:`journeyrec.models.intent.session_features`) and, about the cart and the
customer: cart age (newest event - first cart of the session), cart value and its priciest item
(catalogue prices of the carted items), events and views since the first cart, carted items the
customer had met in an earlier session (a considered or repeat item), the customer's earlier
sessions with a cart and how many of those ended without a purchase, and the time since the
previous session. Serving computes them with the same function on the live session.

Models: :class:`AbandonmentModel`: gradient-boosted trees (LightGBM) on those features, early
stopped on a share of the training customers; a logistic regression on the same features; or the
sequence model's intent head. Which one a bundle ships is chosen on validation
(:func:`journeyrec.evaluation.abandonment.choose_model`). Its JSON form (``to_dict`` /
``from_dict``, LightGBM's own text format inside) goes into the bundle: loading it never
unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import SequenceData, Split
from journeyrec.models.intent import (
    NEGATIVE,
    SESSION_FEATURES,
    SessionLogit,
    _count_before,
    _group_start,
    _groups,
    heldout_intent_cases,
    intent_labels,
    session_features,
)

__all__ = [
    "ABANDONMENT_FEATURES",
    "CART_FEATURES",
    "CART_AGE",
    "open_cart",
    "abandonment_training_cases",
    "heldout_abandonment_cases",
    "abandonment_features",
    "item_prices",
    "clean_prices",
    "KINDS",
    "AbandonmentModel",
    "training_design",
]

_CART = EVENT_TYPES.index("cart") + 1
_PURCHASE = EVENT_TYPES.index("purchase") + 1
_VIEW = EVENT_TYPES.index("view") + 1
# the cart and customer columns of :func:`abandonment_features`, after SESSION_FEATURES
CART_FEATURES: tuple[str, ...] = (
    "log_cart_age_s",
    "log_cart_value",
    "log_cart_max_price",
    "log_events_after_cart",
    "log_views_after_cart",
    "log_cart_items_met_before",
    "log_earlier_cart_sessions",
    "log_earlier_abandoned",
    "earlier_abandon_rate",
    "log_since_previous_session_s",
)
ABANDONMENT_FEATURES: tuple[str, ...] = (*SESSION_FEATURES, *CART_FEATURES)
CART_AGE = "log_cart_age_s"  # the one-feature baseline: how long the cart has been open


def _cart_counts(data: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user, session group, group start, cart count before, purchase count before) per position;
    the counts are prefix sums of length n + 1 (range counts by subtraction)."""
    user, gid, _ = _groups(data)
    start = _group_start(gid)
    return user, gid, start, _count_before(data.event_types == _CART), _count_before(data.event_types == _PURCHASE)


def open_cart(data: SequenceData, ends: np.ndarray) -> np.ndarray:
    """bool [B]: the session of the prefix ending at ``ends - 1`` has a cart event and no purchase so far."""
    t = np.asarray(ends, dtype=np.int64) - 1
    if len(t) == 0:
        return np.zeros(0, dtype=bool)
    _, _, start, carts, bought = _cart_counts(data)
    s = start[t]
    return (carts[t + 1] - carts[s] > 0) & (bought[t + 1] - bought[s] == 0)


def abandonment_training_cases(data: SequenceData, train_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ends, labels) of the training cases: open-cart positions whose outcome is known inside
    the training prefix; label 1 = the session ended without a purchase."""
    labels = intent_labels(data, train_ends)
    known = np.nonzero(labels > 0)[0]
    ends = known + 1
    keep = open_cart(data, ends)
    return ends[keep], (labels[known[keep]] == NEGATIVE).astype(np.int8)


def heldout_abandonment_cases(
    data: SequenceData, split: Split, which: str = "test"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, ends, labels) of the open-cart prefixes of the held-out sessions of ``which``
    (``valid`` | ``test``, as :func:`journeyrec.models.intent.heldout_intent_cases`); label 1 =
    abandoned (no purchase follows in the session)."""
    users, ends, bought_later = heldout_intent_cases(data, split, which)
    keep = open_cart(data, ends)
    return users[keep], ends[keep], (1 - bought_later[keep]).astype(np.int8)


def item_prices(catalog: pa.Table | None, n_items: int) -> np.ndarray:
    """float64 [n_items + 1] catalogue price per internal id (row 0 and unknown prices: 0)."""
    out = np.zeros(n_items + 1, dtype=np.float64)
    if catalog is not None and "price" in catalog.column_names and catalog.num_rows == n_items:
        out[1:] = np.asarray(catalog.column("price").to_numpy(zero_copy_only=False), dtype=np.float64)
    return clean_prices(out)


def clean_prices(prices: np.ndarray) -> np.ndarray:
    """Prices as the features read them: unknown (NaN) and negative prices count 0."""
    p = np.asarray(prices, dtype=np.float64)
    return np.where(np.isfinite(p), np.maximum(p, 0.0), 0.0)


def _range_reduce(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, op: str, max_cells: int = 1 << 22) -> np.ndarray:
    """``sum`` or ``max`` of ``values[lo:hi]`` per case (0 for an empty range), summed strictly
    left to right: a session's cart value is then the same number whether the session is read
    from a whole data set or alone (serving), which a difference of global prefix sums is not
    (its rounding depends on everything before). Ranges are a session's prefix: short, so a
    padded gather (in chunks of at most ``max_cells`` cells) is cheap."""
    out = np.zeros(len(lo))
    width = int((hi - lo).max()) if len(lo) else 0
    if width <= 0:
        return out
    step = max(1, max_cells // width)
    cols = np.arange(width)[None, :]
    for a in range(0, len(lo), step):
        first, h = lo[a : a + step], hi[a : a + step]
        idx = first[:, None] + cols
        v = np.where(idx < h[:, None], values[np.minimum(idx, len(values) - 1)], 0.0)
        if op == "max":
            out[a : a + step] = v.max(axis=1)
        else:  # cumulative sums run left to right; the last one inside the range is the sum
            n = h - first
            out[a : a + step] = np.where(n > 0, np.cumsum(v, axis=1)[np.arange(len(first)), np.maximum(n - 1, 0)], 0.0)
    return out


def abandonment_features(data: SequenceData, ends: np.ndarray, prices: np.ndarray | None = None) -> np.ndarray:
    """float64 [B, len(ABANDONMENT_FEATURES)] features of the prefixes ending at ``ends - 1``
    (absolute CSR ends), read from events up to and including that position only (module
    docstring). ``prices``: float [n_items + 1] per internal id (default: the data's catalogue)."""
    ends = np.asarray(ends, dtype=np.int64)
    base = session_features(data, ends)
    if len(ends) == 0:
        return np.zeros((0, len(ABANDONMENT_FEATURES)))
    price = item_prices(data.catalog, data.n_items) if prices is None else clean_prices(prices)
    t = ends - 1
    user, gid, start_all, carts, bought = _cart_counts(data)
    start = start_all[t]
    first = data.offsets[:-1][user[t]]
    et = data.event_types
    ts = data.timestamps.astype(np.float64) / 1000.0
    is_cart = et == _CART
    n = data.n_events
    pos = np.arange(n, dtype=np.int64)

    # first cart of each position's session (n where the session has none yet)
    cart_pos = np.where(is_cart, pos, n)
    starts = np.unique(start_all)
    first_cart_of_group = np.minimum.reduceat(cart_pos, starts) if n else np.zeros(0, np.int64)
    group_of_start = np.searchsorted(starts, start)
    fc = first_cart_of_group[group_of_start]
    has = fc <= t
    fc_safe = np.where(has, fc, t)
    cart_age = np.where(has, np.maximum(ts[t] - ts[fc_safe], 0.0), 0.0)

    cart_price = np.where(is_cart, price[data.items], 0.0)
    cart_value = _range_reduce(cart_price, start, t + 1, "sum")
    max_price = _range_reduce(cart_price, start, t + 1, "max")
    after = np.where(has, t - fc_safe, 0)
    views = _count_before(et == _VIEW)
    views_after = np.where(has, views[t + 1] - views[fc_safe + 1], 0)

    # carted items the customer had met (any event) before this session began
    key = user.astype(np.int64) * (data.n_items + 1) + data.items
    _, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
    met_before = first_idx[inverse] < start_all
    met = _count_before(is_cart & met_before)
    cart_met = met[t + 1] - met[start]

    # the customer's earlier sessions: with a cart, and of those ended without a purchase
    n_groups = int(gid[-1]) + 1 if n else 0
    group_cart = np.bincount(gid, weights=is_cart, minlength=n_groups) > 0
    group_buy = np.bincount(gid, weights=et == _PURCHASE, minlength=n_groups) > 0
    cum_cart = np.r_[0, np.cumsum(group_cart)]
    cum_aband = np.r_[0, np.cumsum(group_cart & ~group_buy)]
    g, g0 = gid[t], gid[first]
    earlier_cart = cum_cart[g] - cum_cart[g0]
    earlier_aband = cum_aband[g] - cum_aband[g0]
    since_prev = np.where(start > first, np.maximum(ts[start] - ts[np.maximum(start - 1, 0)], 0.0), 0.0)

    extra = np.stack(
        [
            np.log1p(cart_age),
            np.log1p(cart_value),
            np.log1p(max_price),
            np.log1p(after),
            np.log1p(views_after),
            np.log1p(cart_met),
            np.log1p(earlier_cart),
            np.log1p(earlier_aband),
            (earlier_aband + 1.0) / (earlier_cart + 2.0),
            np.log1p(since_prev),
        ],
        axis=1,
    )
    return np.concatenate([base, extra], axis=1)


KINDS: tuple[str, ...] = ("lightgbm", "logistic", "head")


@dataclass
class AbandonmentModel:
    """P(the session ends without a purchase) from :data:`ABANDONMENT_FEATURES`, of one ``kind``:

    * ``lightgbm``: gradient-boosted trees (:meth:`fit_boosted`), ``params["model"]`` its text format;
    * ``logistic``: :class:`journeyrec.models.intent.SessionLogit` on the same features
      (:meth:`fit_logistic`), ``params`` its standardisation and coefficients;
    * ``head``: 1 - the sequence model's purchase-intent head; it has no parameters of its own
      and is scored with the model (``predict`` refuses it).

    ``info`` records how it was fitted and, when it was chosen among others, their validation AUCs."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ABANDONMENT_FEATURES
    info: dict[str, Any] = field(default_factory=dict)
    _scorer: Any = field(default=None, repr=False, compare=False)

    BOOSTED_PARAMS = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 7,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "metric": "auc",
        "verbosity": -1,
        "deterministic": True,
        "force_col_wise": True,
    }

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown abandonment model kind {self.kind!r}; known: {list(KINDS)}")
        if tuple(self.features) != ABANDONMENT_FEATURES:
            raise ValueError(
                f"the abandonment model reads features {list(self.features)[:4]}..., this journeyrec "
                f"computes {list(ABANDONMENT_FEATURES)[:4]}...; re-export the bundle"
            )
        self.features = tuple(self.features)

    @classmethod
    def fit_boosted(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        x_stop: np.ndarray,
        y_stop: np.ndarray,
        seed: int = 0,
        threads: int = 1,
        max_rounds: int = 2000,
        patience: int = 50,
        params: Mapping[str, Any] | None = None,
    ) -> AbandonmentModel:
        """Trees fitted on (x, y), early stopped on the AUC of (x_stop, y_stop) (other customers)."""
        import lightgbm as lgb  # heavy (imports scikit-learn, ~1-3 s): only where trees are fitted or read

        y, y_stop = np.asarray(y, dtype=np.float64), np.asarray(y_stop, dtype=np.float64)
        _both_outcomes(y)
        _both_outcomes(y_stop)
        p = {**cls.BOOSTED_PARAMS, **(params or {}), "seed": int(seed), "num_threads": int(threads)}
        names = list(ABANDONMENT_FEATURES)
        train = lgb.Dataset(x, y, feature_name=names, free_raw_data=True)
        stop = lgb.Dataset(x_stop, y_stop, reference=train, feature_name=names)
        booster = lgb.train(
            p,
            train,
            num_boost_round=max_rounds,
            valid_sets=[stop],
            valid_names=["stop"],
            callbacks=[lgb.early_stopping(patience, verbose=False)],
        )
        info = {
            "library": f"lightgbm {lgb.__version__}",
            "params": {k: v for k, v in p.items() if k != "num_threads"},
            "best_iteration": int(booster.best_iteration),
            "n_train": int(len(y)),
            "n_stop": int(len(y_stop)),
            "train_abandon_rate": float(y.mean()),
        }
        return cls(
            "lightgbm",
            {"model": booster.model_to_string(num_iteration=booster.best_iteration)},
            info=info,
            _scorer=booster,
        )

    @classmethod
    def fit_logistic(cls, x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> AbandonmentModel:
        """L2-regularised logistic regression (Newton's method) on the same features."""
        y = np.asarray(y, dtype=np.float64)
        _both_outcomes(y)
        lr = SessionLogit(l2=l2).fit(np.asarray(x, dtype=np.float64), y)
        params = {**lr.params(), "l2": l2}
        return cls("logistic", params, info={"n_train": int(len(y)), "train_abandon_rate": float(y.mean())}, _scorer=lr)

    @classmethod
    def head(cls, **info: Any) -> AbandonmentModel:
        """The sequence model's intent head as the abandonment model (1 - P(purchase))."""
        return cls("head", {}, info=dict(info))

    @property
    def scorer(self) -> Any:
        """The fitted LightGBM booster or SessionLogit, rebuilt from ``params`` on first use."""
        if self._scorer is None:
            if self.kind == "lightgbm":
                import lightgbm as lgb  # see fit_boosted

                self._scorer = lgb.Booster(model_str=self.params["model"])
            elif self.kind == "logistic":
                self._scorer = SessionLogit.from_params(self.params, l2=float(self.params.get("l2", 1.0)))
            else:
                raise ValueError(
                    "the head's abandonment risk is 1 - the sequence model's P(purchase): score it with the model"
                )
        return self._scorer

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(abandoned) per row of ``x`` (float64 [B]); one thread (serving scores one session at a time)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(
                f"expected [B, {len(self.features)}] features ({', '.join(self.features[:3])}, ...), got {x.shape}"
            )
        if len(x) == 0:
            return np.zeros(0)
        scorer = self.scorer
        if self.kind == "lightgbm":
            return np.asarray(scorer.predict(x, num_threads=1), dtype=np.float64)
        return np.asarray(scorer.predict(x), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the bundle's ``abandonment.json``)."""
        return {"kind": self.kind, "features": list(self.features), "info": self.info, "params": self.params}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AbandonmentModel:
        return cls(
            str(d.get("kind")), dict(d.get("params") or {}), tuple(d.get("features") or ()), dict(d.get("info") or {})
        )


def _both_outcomes(y: np.ndarray) -> None:
    if len(y) == 0 or y.min() == y.max():
        raise ValueError(
            "an abandonment model needs cases of both outcomes (sessions with a cart that ended with and "
            "without a purchase)"
        )


def training_design(
    data: SequenceData, train_ends: np.ndarray, stop_share: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and an early-stopping mask of the training cases: a random ``stop_share``
    of the customers is held apart, so early stopping never reads a customer the trees fit."""
    ends, labels = abandonment_training_cases(data, train_ends)
    users = np.repeat(np.arange(data.n_users), data.lengths)[ends - 1]
    held = np.random.default_rng(seed).random(data.n_users) < stop_share
    return abandonment_features(data, ends), labels, held[users]
