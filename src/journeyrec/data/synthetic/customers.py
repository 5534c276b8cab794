"""The demo shop's customers: latent tastes (category affinities, size, colours, price level,
own-brand affinity, preferred channels, newsletter subscription, a propensity to abandon carts),
the generator's ground truth of interest as a click model (:class:`InterestModel`), and consent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from journeyrec.data.synthetic.catalog import _LEAVES, COLOURS, SIZES, _Catalog, _catalog
from journeyrec.data.synthetic.config import DemoShopConfig


@dataclass
class Tastes:
    """The latent tastes of customers (one row each), as the generator draws them: the first draws
    of each block's random generator, so :func:`customer_tastes` reproduces them exactly."""

    affinity: np.ndarray  # [n, n_leaves] category affinities (Dirichlet; leaves that are not entry points x 0.15)
    size: np.ndarray  # index into SIZES
    fav_colours: np.ndarray  # [n, 2] indices into COLOURS
    price_level: np.ndarray  # > 0: prefers pricier items
    own_affinity: np.ndarray  # for the own brand
    channel_pref: np.ndarray  # [n, 3] web, app, store
    subscriber: np.ndarray
    activity: np.ndarray
    patience: np.ndarray  # propensity to abandon a cart


def _draw_tastes(rng: np.random.Generator, n_cust: int, cfg: DemoShopConfig) -> Tastes:
    is_entry = np.asarray([x[8] for x in _LEAVES])
    affinity = rng.dirichlet(np.full(len(_LEAVES), 0.35), size=n_cust) * np.where(is_entry, 1.0, 0.15)
    size = rng.choice(len(SIZES), size=n_cust, p=[0.15, 0.3, 0.3, 0.17, 0.08])
    fav_colours = np.stack([rng.integers(len(COLOURS), size=n_cust) for _ in range(2)], axis=1)
    price_level = rng.normal(0.0, 0.5, size=n_cust)
    own_affinity = rng.beta(2.0, 3.0, size=n_cust)
    channel_pref = rng.dirichlet([4.0, 3.0, 1.0], size=n_cust)
    subscriber = rng.random(n_cust) < 0.4
    activity = rng.gamma(2.0, cfg.sessions_per_customer / 2.0, size=n_cust) + 0.5
    patience = rng.normal(0.0, 0.5, size=n_cust)
    return Tastes(affinity, size, fav_colours, price_level, own_affinity, channel_pref, subscriber, activity, patience)


def _item_taste(cat: _Catalog, t: Tastes, rows: np.ndarray, ci: np.ndarray) -> np.ndarray:
    """How much customers ``rows`` [m] like items ``ci`` [m, P] (log-weights, compared within a
    leaf): popularity, their size, favourite colours, price level, own-brand affinity, stock."""
    rel_price = np.log(cat.price) - np.log(np.asarray([x[5] for x in _LEAVES]))[cat.leaf]
    logw = np.log(cat.pop)[ci]
    csize = cat.size[ci]
    size_ok = (csize < 0) | (csize == t.size[rows, None])
    logw = logw + np.where(size_ok, 0.0, -3.0)
    ccol = cat.colour[ci]
    logw = logw + 0.8 * ((ccol == t.fav_colours[rows, :1]) | (ccol == t.fav_colours[rows, 1:2]))
    logw = logw + t.price_level[rows, None] * rel_price[ci]
    logw = logw + np.where(cat.own[ci], np.log(t.own_affinity[rows, None] * 2.5 + 1e-3), 0.0)
    return logw + np.where(cat.in_stock[ci], 0.0, -2.0)


def customer_tastes(cfg: DemoShopConfig | None = None) -> Tastes:
    """Every customer's latent tastes (row c = customer ``C%07d`` % c), exactly as generated."""
    cfg = cfg or DemoShopConfig()
    blocks = [
        _draw_tastes(np.random.default_rng([cfg.seed, first]), min(cfg.block_customers, cfg.n_customers - first), cfg)
        for first in range(0, cfg.n_customers, cfg.block_customers)
    ]
    return Tastes(*(np.concatenate([getattr(b, f) for b in blocks]) for f in Tastes.__dataclass_fields__))


class InterestModel:
    """The demo shop's ground truth of interest, as a click model for simulations of what a customer
    does with a recommended item (benchmarks/bandit.py; docs/reactions.md):

        P(click c, i) = a_c(leaf(i)) x (0.05 + 0.55 exp(0.7 (w_c(i) - max w_c(leaf(i)))))

    ``a_c`` is the customer's category affinity, normalised over the categories (the probability
    that an errand of theirs is in that category, before due consumables and complements), and the
    second factor is the generator's own probability that a viewed item holds the customer's
    attention (``p_interest``), from the item's taste weight ``w_c`` (:func:`_item_taste`) against
    the best item of its category for them. Items are catalogue rows (``SKU%05d`` % (row + 1))."""

    def __init__(self, cfg: DemoShopConfig | None = None) -> None:
        cfg = cfg or DemoShopConfig()
        self.cat = _catalog(cfg.models_per_leaf, cfg.seed)
        self.tastes = customer_tastes(cfg)
        self.share = self.tastes.affinity / self.tastes.affinity.sum(axis=1, keepdims=True)

    def probability(self, customers: np.ndarray, items: np.ndarray) -> np.ndarray:
        """P(click) of items [m, K] (catalogue rows) shown to customers [m] (customer numbers)."""
        customers = np.asarray(customers, np.int64)
        items = np.asarray(items, np.int64).reshape(len(customers), -1)
        leaf = self.cat.leaf[items]  # [m, K]
        members = self.cat.leaf_items[leaf]  # [m, K, P]
        valid = members >= 0
        rows = np.repeat(customers, items.shape[1])
        flat = np.where(valid, members, 0).reshape(len(rows), -1)
        taste = _item_taste(self.cat, self.tastes, rows, flat)
        best = np.where(valid.reshape(len(rows), -1), taste, -np.inf).max(axis=1)
        own = _item_taste(self.cat, self.tastes, rows, items.reshape(-1, 1))[:, 0]
        interest = 0.05 + 0.55 * np.exp(0.7 * (own - best))
        return (self.share[rows, leaf.reshape(-1)] * interest).reshape(items.shape)


def generate_consent(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Consent of every customer (user_id, opted_out), drawn per customer number, so it is known
    before any event is generated (streaming ingestion drops opted-out users' events at once)."""
    cfg = cfg or DemoShopConfig()
    opted = np.random.default_rng([cfg.seed, 99]).random(cfg.n_customers) < cfg.opt_out_share
    users = pa.array([f"C{c:07d}" for c in range(cfg.n_customers)], pa.string())
    return pa.table({"user_id": users, "opted_out": pa.array(opted)})
