"""The demo shop: a seeded, deterministic generator of a catalogue and customer journeys.

It is the quickstart's data, the ground truth for business-rule tests and the place where a
journey signal can be shown to matter, so behaviour depends on the journey on purpose
(docs/demo_shop.md tells the whole story with its parameters):

* a category tree (``Dept/Sub/Leaf``) with brands (one of them the shop's own brand), sizes,
  colours, prices, stock, and a repurchase class per leaf: *consumables* come back after a
  typical interval (coffee beans every ~2 weeks, T-shirts every ~2 months), *durables* do not
  (after a winter coat, nobody buys a second one for a year); each durable has complementary
  partner items (each camera *its* bag and memory card), which become the customer's next errand;
* customers with latent tastes (category affinities, size, colours, price level, own-brand
  affinity, preferred channels, newsletter subscription, a propensity to abandon carts, consent);
* sessions as errands: search (query + filters the following views respect), views whose time
  on the page shows interest (long for items close to the customer's taste, seconds for the
  rest), carts of interesting items only, and a checkout after the last view that buys every
  carted item, or an abandoned cart. Abandonment is ground truth (:func:`generate_carts`): its
  probability rises with the cart's value, the views after the first cart and in the app or a
  newsletter session, and falls with earlier orders and for an item the customer came back for;
* the journey carries on: an abandoned cart or a long look leaves an item the customer weighs
  up, which brings them back with a probability that fades over about a week (more after an
  abandoned cart, most after one in the app); such a return is often a shop visit (clothes to
  try on, pricey items) or a call-centre order (pricey electronics) instead of the web;
  a session with an open errand is followed within hours by one that carries it on, otherwise
  days later by a new one (due consumables, complements, taste); newsletter sessions look at
  the week's featured items, whatever the errand, and rarely convert.

Generation is vectorised across customers (a loop over the *n*-th session of everybody), so
millions of events take seconds and memory is bounded by ``block_customers``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyrec.data.schema import EVENT_SCHEMA, conform_catalog, conform_events

__all__ = [
    "DemoShopConfig",
    "DemoShop",
    "generate_catalog",
    "generate_events",
    "generate_complements",
    "generate_consent",
    "generate_carts",
    "generate",
    "write_parquet",
    "Tastes",
    "customer_tastes",
    "InterestModel",
]

OWN_BRAND = "Journey Basics"
SIZES = ("S", "M", "L", "XL", "XXL")
COLOURS = ("black", "navy", "blue", "red", "green", "grey", "white", "beige")
START = np.datetime64("2026-01-01T00:00:00", "s").astype(np.int64)

# leaf path, repurchase class, typical repurchase interval (days), sized, coloured,
# median price, third-party brands, complementary leaves (item-level partners are drawn below),
# entry (customers start journeys here; non-entry leaves are mostly reached as complements)
_LEAVES: tuple[tuple, ...] = (
    (
        "Apparel/Outerwear/Winter coats",
        "durable",
        None,
        True,
        True,
        180.0,
        ("Northpeak", "Alpina"),
        ("Scarves", "Gloves"),
        True,
    ),
    (
        "Apparel/Outerwear/Rain jackets",
        "durable",
        None,
        True,
        True,
        95.0,
        ("Northpeak", "Drizzle"),
        ("Umbrellas",),
        True,
    ),
    ("Apparel/Tops/T-shirts", "consumable", 60.0, True, True, 19.0, ("Cottonia", "Urbanist"), (), True),
    ("Apparel/Tops/Sweaters", "durable", None, True, True, 55.0, ("Cottonia", "Alpina"), (), True),
    ("Apparel/Accessories/Scarves", "durable", None, False, True, 29.0, ("Alpina", "Urbanist"), (), False),
    ("Apparel/Accessories/Gloves", "durable", None, True, True, 25.0, ("Northpeak", "Alpina"), (), False),
    ("Apparel/Accessories/Umbrellas", "durable", None, False, True, 22.0, ("Drizzle",), (), False),
    ("Apparel/Underwear/Socks", "consumable", 45.0, True, True, 9.0, ("Cottonia",), (), True),
    ("Footwear/Shoes/Sneakers", "durable", None, True, True, 90.0, ("Stride", "Urbanist"), ("Shoe care",), True),
    ("Footwear/Shoes/Boots", "durable", None, True, True, 140.0, ("Stride", "Northpeak"), ("Shoe care", "Socks"), True),
    ("Footwear/Care/Shoe care", "consumable", 90.0, False, False, 9.0, ("Stride",), (), False),
    (
        "Electronics/Cameras/Mirrorless cameras",
        "durable",
        None,
        False,
        False,
        900.0,
        ("Optika", "Lumix"),
        ("Camera bags", "Memory cards"),
        True,
    ),
    ("Electronics/Cameras/Camera bags", "durable", None, False, True, 60.0, ("Optika", "Lumix"), (), False),
    ("Electronics/Cameras/Memory cards", "durable", None, False, False, 25.0, ("Sandy", "Optika"), (), False),
    (
        "Electronics/Phones/Smartphones",
        "durable",
        None,
        False,
        True,
        600.0,
        ("Pomme", "Galaxa"),
        ("Phone cases", "Chargers"),
        True,
    ),
    ("Electronics/Phones/Phone cases", "durable", None, False, True, 20.0, ("Pomme", "Galaxa"), (), False),
    ("Electronics/Phones/Chargers", "durable", None, False, False, 25.0, ("Pomme", "Galaxa"), (), False),
    ("Electronics/Audio/Headphones", "durable", None, False, True, 120.0, ("Sonar", "Galaxa"), (), True),
    (
        "Home/Kitchen/Coffee machines",
        "durable",
        None,
        False,
        True,
        250.0,
        ("Brewmaster", "Crema"),
        ("Coffee beans", "Descaler"),
        True,
    ),
    ("Home/Kitchen/Descaler", "consumable", 60.0, False, False, 8.0, ("Brewmaster",), (), False),
    ("Grocery/Coffee/Coffee beans", "consumable", 14.0, False, False, 12.0, ("Crema", "Roastery"), (), True),
    ("Beauty/Skincare/Moisturisers", "consumable", 30.0, False, False, 25.0, ("Dermaline", "Bloom"), (), True),
    ("Beauty/Skincare/Sunscreen", "consumable", 45.0, False, False, 18.0, ("Dermaline", "Bloom"), (), True),
    (
        "Sports/Running/Running shoes",
        "durable",
        None,
        True,
        True,
        120.0,
        ("Stride", "Sprintex"),
        ("Running socks", "Water bottles"),
        True,
    ),
    ("Sports/Running/Running socks", "consumable", 90.0, True, True, 12.0, ("Sprintex",), (), False),
    ("Sports/Running/Water bottles", "durable", None, False, True, 15.0, ("Sprintex",), (), False),
)


@dataclass
class DemoShopConfig:
    """Size and behaviour knobs of the demo shop; defaults make the quickstart's data."""

    n_customers: int = 3000
    models_per_leaf: int = 12  # product models per leaf; sized leaves get one item per size
    n_days: int = 120
    sessions_per_customer: float = 9.0  # mean over the horizon (Gamma-distributed activity)
    opt_out_share: float = 0.08  # customers who did not consent to personalisation
    seed: int = 7
    block_customers: int = 50_000  # customers generated per block (bounds memory: ~2M events)


@dataclass
class DemoShop:
    """Generated demo data: canonical events, catalogue, and the ground truth behind them."""

    events: pa.Table
    catalog: pa.Table
    complements: pa.Table  # item_id -> complement_item_id (ground truth for complement tests)
    consent: pa.Table  # user_id, opted_out
    carts: pa.Table  # one row per session with a cart: abandonment ground truth (generate_carts)


@dataclass
class _Catalog:
    item_id: np.ndarray  # str
    leaf: np.ndarray  # int leaf index per item
    brand: np.ndarray  # str
    own: np.ndarray  # bool
    size: np.ndarray  # int index into SIZES, -1 = unsized
    colour: np.ndarray  # int index into COLOURS, -1 = none
    price: np.ndarray
    in_stock: np.ndarray
    pop: np.ndarray  # within-leaf popularity weight
    partner: np.ndarray  # [n_items, 2] complement partner items (-1 = none)
    leaf_items: np.ndarray  # [n_leaves, P] item indices per leaf, -1 padded
    table: pa.Table


def _leaf_index() -> dict[str, int]:
    return {path.rsplit("/", 1)[1]: i for i, (path, *_rest) in enumerate(_LEAVES)}


def _build_catalog(cfg: DemoShopConfig, rng: np.random.Generator) -> _Catalog:
    rows: dict[str, list] = {k: [] for k in ("leaf", "brand", "own", "size", "colour", "price", "model")}
    for li, (_path, _cls, _days, sized, coloured, median, brands, _comp, _entry) in enumerate(_LEAVES):
        for m in range(cfg.models_per_leaf):
            is_own = rng.random() < 0.25
            model_brand = OWN_BRAND if is_own else brands[m % len(brands)]
            model_price = float(np.round(median * rng.lognormal(0.0, 0.35) * (0.8 if is_own else 1.0), 0) - 0.01)
            model_colour = int(rng.integers(len(COLOURS))) if coloured else -1
            for model_size in range(len(SIZES)) if sized else (-1,):
                rows["leaf"].append(li)
                rows["brand"].append(model_brand)
                rows["own"].append(is_own)
                rows["size"].append(model_size)
                rows["colour"].append(model_colour)
                rows["price"].append(max(model_price, 0.99))
                rows["model"].append(m)
    leaf = np.asarray(rows["leaf"])
    n = len(leaf)
    model = np.asarray(rows["model"])
    # Zipf-like popularity over models within each leaf (random order of models)
    model_rank = np.zeros(n)
    for li in range(len(_LEAVES)):
        perm = rng.permutation(cfg.models_per_leaf)
        sel = leaf == li
        model_rank[sel] = perm[model[sel]]
    pop = 1.0 / (model_rank + 1.0) ** 0.9
    size = np.asarray(rows["size"])
    colour = np.asarray(rows["colour"])
    brand = np.asarray(rows["brand"], dtype=object)
    own = np.asarray(rows["own"])
    price = np.asarray(rows["price"])
    in_stock = rng.random(n) < 0.92
    item_id = np.asarray([f"SKU{i:05d}" for i in range(1, n + 1)], dtype=object)

    # item-level complements: each item of a leaf with complements gets, per complementary leaf,
    # one partner item: same brand if that leaf has it, else the closest price tier; for sized
    # partners, the same size (a coat in XL goes with gloves in XL).
    names = _leaf_index()
    partner = np.full((n, 2), -1, dtype=np.int64)
    for li, (*_x, comps, _entry) in enumerate(_LEAVES):
        for j, comp in enumerate(comps[:2]):
            cj = names[comp]
            cand = np.nonzero(leaf == cj)[0]
            for item in np.nonzero(leaf == li)[0]:
                c = cand
                if size[item] >= 0 and (size[c] >= 0).any():
                    c = c[size[c] == size[item]]
                same = c[brand[c] == brand[item]]
                pool = same if len(same) else c
                # deterministic choice among the pool: model number modulo pool size
                partner[item, j] = pool[int(model[item]) % len(pool)]

    max_p = int(np.bincount(leaf).max())
    leaf_items = np.full((len(_LEAVES), max_p), -1, dtype=np.int64)
    for li in range(len(_LEAVES)):
        idx = np.nonzero(leaf == li)[0]
        leaf_items[li, : len(idx)] = idx

    singular = {p: p.rsplit("/", 1)[1].rstrip("s") for p, *_r in _LEAVES}
    titles = []
    for i in range(n):
        path = _LEAVES[leaf[i]][0]
        extra = [SIZES[size[i]]] if size[i] >= 0 else []
        extra += [COLOURS[colour[i]]] if colour[i] >= 0 else []
        suffix = f" ({', '.join(extra)})" if extra else ""
        titles.append(f"{brand[i]} {singular[path]} #{int(model[i]) + 1}{suffix}")
    table = conform_catalog(
        {
            "item_id": pa.array(item_id.tolist(), pa.string()),
            "title": pa.array(titles, pa.string()),
            "category": pa.array([_LEAVES[x][0] for x in leaf], pa.string()),
            "brand": pa.array(brand.tolist(), pa.string()),
            "price": pa.array(price, pa.float64()),
            "size": pa.array([SIZES[s] if s >= 0 else None for s in size], pa.string()),
            "colour": pa.array([COLOURS[c] if c >= 0 else None for c in colour], pa.string()),
            "in_stock": pa.array(in_stock),
            "own_brand": pa.array(own),
            "repurchase_class": pa.array([_LEAVES[x][1] for x in leaf], pa.string()),
            "repurchase_days": pa.array([_LEAVES[x][2] for x in leaf], pa.float64()),
        },
        source="demo catalog",
    )
    return _Catalog(item_id, leaf, brand, own, size, colour, price, in_stock, pop, partner, leaf_items, table)


@functools.lru_cache(maxsize=4)
def _catalog(models_per_leaf: int, seed: int) -> _Catalog:
    """The catalogue depends only on these two knobs; built once per process (arrays read-only)."""
    cat = _build_catalog(DemoShopConfig(models_per_leaf=models_per_leaf, seed=seed), np.random.default_rng(seed))
    for value in vars(cat).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return cat


def generate_catalog(cfg: DemoShopConfig | None = None) -> pa.Table:
    """The demo catalogue alone (deterministic for a given seed and size)."""
    cfg = cfg or DemoShopConfig()
    return _catalog(cfg.models_per_leaf, cfg.seed).table


def _gumbel_topk(logw: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct column indices per row, sampled with probability proportional to exp(logw)."""
    g = logw + rng.gumbel(size=logw.shape)
    k = min(k, logw.shape[1])
    idx = np.argpartition(-g, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(g, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


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


# Channel codes of the simulation (names in _CHANNEL_NAMES) and a few named constants of the story.
_WEB, _APP, _NEWSLETTER, _STORE, _CALL = 0, 1, 2, 3, 4
_DAY = 86400.0
_RETURN_DECAY_S = 6 * _DAY  # interest in an item weighed up fades over about a week
_MAX_VIEWS = 10


def _promotions(cat: _Catalog, cfg: DemoShopConfig) -> np.ndarray:
    """The newsletter's featured items per week [n_weeks, 6]: the same mailing for every customer
    (drawn from its own seed, so blocks agree), popular in-stock items, own brand favoured."""
    rng = np.random.default_rng([cfg.seed, 77])
    w = cat.pop * cat.in_stock * np.where(cat.own, 2.0, 1.0)
    n_weeks = int(np.ceil(cfg.n_days / 7.0)) + 1
    return np.stack([rng.choice(len(w), size=6, replace=False, p=w / w.sum()) for _ in range(n_weeks)])


def _filters_allow(
    valid: np.ndarray,
    csize: np.ndarray,
    want_size: np.ndarray,
    ccol: np.ndarray,
    want_colour: np.ndarray,
    size_filter: np.ndarray,
    colour_filter: np.ndarray,
) -> np.ndarray:
    """Which candidates ([m, P]) pass the search filters in force: a size filter keeps the
    customer's size, a colour filter their favourite colour."""
    ok = valid & ~(size_filter[:, None] & (csize != want_size[:, None]))
    return ok & ~(colour_filter[:, None] & (ccol != want_colour[:, None]))


def _abandon_probability(
    value: np.ndarray,
    views_after: np.ndarray,
    channel: np.ndarray,
    orders: np.ndarray,
    known: np.ndarray,
    patience: np.ndarray,
) -> np.ndarray:
    """P(a session with a cart ends without a purchase): the ground truth of ``DemoShop.carts``.

    Higher for a pricier cart, for every item looked at after the first cart (price comparison,
    doubt), in the app (small screen, interrupted) and from a newsletter (impulse); lower for
    customers with earlier orders and for an item the customer came back for (a considered or
    due item); plus a per-customer propensity."""
    logit = (
        0.4
        + 0.8 * np.log(np.maximum(value, 1.0) / 60.0)
        + 0.35 * views_after
        + 0.6 * (channel == _APP)
        + 0.9 * (channel == _NEWSLETTER)
        - 0.3 * np.minimum(orders, 4)
        - 1.2 * known
        + patience
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _simulate_block(
    cat: _Catalog, cfg: DemoShopConfig, first_customer: int, n_cust: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Events of ``n_cust`` customers (columns of :func:`_events_table`) and the ground truth of
    every session that put something in the cart (columns of :func:`_carts_table`)."""
    n_leaves = len(_LEAVES)
    consumable = np.asarray([x[1] == "consumable" for x in _LEAVES])
    interval = np.asarray([x[2] or 0.0 for x in _LEAVES]) * _DAY
    sized_leaf = np.asarray([x[3] for x in _LEAVES])
    coloured_leaf = np.asarray([x[4] for x in _LEAVES])
    electronics = np.asarray([x[0].startswith("Electronics/") for x in _LEAVES])
    horizon = cfg.n_days * _DAY
    promo = _promotions(cat, cfg)

    # latent tastes: the block generator's first draws (customer_tastes draws them again)
    tastes = _draw_tastes(rng, n_cust, cfg)
    affinity, cust_size, fav_colours = tastes.affinity, tastes.size, tastes.fav_colours
    own_affinity, channel_pref, subscriber = tastes.own_affinity, tastes.channel_pref, tastes.subscriber
    activity, patience = tastes.activity, tastes.patience

    # journey state
    last_buy = np.full((n_cust, n_leaves), -np.inf)  # time of last purchase per leaf
    last_item = np.full((n_cust, n_leaves), -1, dtype=np.int64)
    pending = np.full(n_cust, -1, dtype=np.int64)  # complement partner item awaiting purchase
    consider = np.full(n_cust, -1, dtype=np.int64)  # an item the customer is weighing up
    consider_cart = np.zeros(n_cust, dtype=bool)  # ... left in an abandoned cart (else: looked at long)
    consider_t = np.zeros(n_cust)
    consider_app = np.zeros(n_cust, dtype=bool)  # ... abandoned in the app
    consider_row = np.full(n_cust, -1, dtype=np.int64)  # its row of the cart ground truth
    prev_leaf = np.full(n_cust, -1, dtype=np.int64)
    orders = np.zeros(n_cust, dtype=np.int64)  # sessions with a purchase so far
    cont = np.zeros(n_cust, dtype=bool)  # the next session continues the last one's errand

    leaf_items = cat.leaf_items
    item_leaf = cat.leaf

    t = rng.exponential(horizon / activity)  # first session start (seconds since START)
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("user", "session", "item", "etype", "channel", "ts", "query", "filters")
    }
    carts: dict[str, list[np.ndarray]] = {k: [] for k in _CART_COLUMNS}
    n_cart_rows = 0
    recovered_rows: list[np.ndarray] = []
    sess_no = np.zeros(n_cust, dtype=np.int64)
    slot = np.arange(_MAX_VIEWS)[None, :]
    while True:
        act = np.nonzero(t < horizon)[0]
        if len(act) == 0:
            break
        m = len(act)
        now = t[act]
        rows_m = np.arange(m)
        # --- what brings the customer back: an item weighed up earlier comes back with a
        # probability that fades with the time since, more often after an abandoned cart, and
        # most often after one abandoned in the app (finished later on another device)
        con = consider[act]
        since = now - consider_t[act]
        p_return = np.where(consider_cart[act], 0.45 + 0.25 * consider_app[act], 0.3) * np.exp(-since / _RETURN_DECAY_S)
        p_return = np.where(cont[act], np.maximum(p_return, 0.6), p_return)
        newsletter = subscriber[act] & ~cont[act] & (rng.random(m) < 0.15)
        returning = (con >= 0) & ~newsletter & (rng.random(m) < p_return)
        # --- channel: the customer's own preference, except that a return may buy offline: in the
        # shop (clothes and shoes to try on, anything pricey) or, pricey electronics, by phone
        r = rng.random(m)
        cp = channel_pref[act]
        ch = np.where(r < cp[:, 0], _WEB, np.where(r < cp[:, 0] + cp[:, 1], _APP, _STORE))
        con_i = np.maximum(con, 0)
        con_leaf = item_leaf[con_i]
        offline_kind = sized_leaf[con_leaf] | (cat.price[con_i] > 150.0)
        r = rng.random(m)
        to_call = returning & electronics[con_leaf] & (cat.price[con_i] > 300.0) & (r < 0.35)
        to_store = returning & ~to_call & offline_kind & (r < 0.15 + cp[:, 2])
        ch = np.where(returning & ~to_call & ~to_store & (ch == _STORE), _WEB, ch)
        ch = np.where(returning & consider_app[act] & (rng.random(m) < 0.5), _WEB, ch)
        ch = np.where(to_store, _STORE, np.where(to_call, _CALL, ch))
        ch = np.where(newsletter, _NEWSLETTER, ch)
        # --- intent leaf: a return, else a due consumable, else a complement of a purchase,
        # else the errand of the last session when this one continues it, else taste
        elapsed = now[:, None] - last_buy[act]
        # due: a consumable bought before whose typical interval has passed
        due = (
            consumable[None, :]
            & np.isfinite(elapsed)
            & (elapsed >= interval[None, :] * rng.uniform(0.8, 1.3, size=(m, 1)))
        )
        has_due = due.any(axis=1) & (rng.random(m) < 0.7) & ~returning & ~newsletter
        due_leaf = np.argmax(due * rng.random((m, n_leaves)), axis=1)
        has_pending = (pending[act] >= 0) & (rng.random(m) < 0.6) & ~returning & ~has_due & ~newsletter
        recently_owned = (~consumable[None, :]) & (elapsed < 365 * _DAY)
        w = affinity[act] * np.where(recently_owned, 0.005, 1.0) + 1e-4
        w = w / w.sum(axis=1, keepdims=True)
        leaf = (w.cumsum(axis=1) < rng.random((m, 1))).sum(axis=1).clip(0, n_leaves - 1)
        # (not into a durable's category just bought: that errand is done)
        carry_on = (
            cont[act]
            & (prev_leaf[act] >= 0)
            & ~returning
            & ~has_due
            & ~has_pending
            & ~recently_owned[rows_m, np.maximum(prev_leaf[act], 0)]
        )
        leaf = np.where(carry_on, prev_leaf[act], leaf)
        focus = np.full(m, -1, dtype=np.int64)  # an item the customer is looking for
        focus[has_pending] = pending[act][has_pending]
        leaf[has_pending] = item_leaf[focus[has_pending]]
        leaf[has_due] = due_leaf[has_due]
        rebuy = last_item[act, due_leaf]
        same_item = has_due & (rng.random(m) < 0.8) & (rebuy >= 0)
        focus[same_item] = rebuy[same_item]
        focus[returning] = con[returning]
        leaf[returning] = con_leaf[returning]
        known = returning | same_item  # the customer knows what to buy
        # --- search with filters (web/app only): the views that follow respect the filters
        online = (ch == _WEB) | (ch == _APP)
        searching = online & (rng.random(m) < 0.35)
        size_filter = searching & (focus < 0) & sized_leaf[leaf] & (rng.random(m) < 0.8)
        colour_filter = searching & (focus < 0) & coloured_leaf[leaf] & (rng.random(m) < 0.3)
        want_colour = fav_colours[act, 0]
        # --- candidate items of the leaf, scored by taste
        cand = leaf_items[leaf]  # [m, P]
        valid = cand >= 0
        ci = np.where(valid, cand, 0)
        logw = _item_taste(cat, tastes, act, ci)
        csize = cat.size[ci]
        ccol = cat.colour[ci]

        # filters that match nothing in the leaf are relaxed (colour first, then size), and the
        # search event records only the filters that were in force
        allowed = functools.partial(_filters_allow, valid, csize, cust_size[act], ccol, want_colour)
        hard = allowed(size_filter, colour_filter)
        colour_filter &= hard.any(axis=1)
        hard = allowed(size_filter, colour_filter)
        size_filter &= hard.any(axis=1)
        hard = allowed(size_filter, colour_filter)
        logw = np.where(hard, logw, -np.inf)
        best = np.max(np.where(hard, logw, -np.inf), axis=1)
        n_views = np.minimum(1 + rng.poisson(np.where(known, 1.0, 2.5)), _MAX_VIEWS)
        cols_ = _gumbel_topk(logw, _MAX_VIEWS, rng)
        picked_w = np.take_along_axis(logw, cols_, 1)
        picks = np.where(np.isfinite(picked_w), np.take_along_axis(ci, cols_, 1), -1)
        has_focus = focus >= 0
        picks[has_focus] = np.concatenate([focus[has_focus, None], picks[has_focus, :-1]], axis=1)
        picked_w[has_focus] = np.concatenate([best[has_focus, None], picked_w[has_focus, :-1]], axis=1)
        dup = (picks[:, 1:] == picks[:, :1]) & has_focus[:, None]  # the focus item, seen twice
        picks[:, 1:][dup] = -1
        # newsletter sessions look at the week's featured items, whatever the customer's errand
        week = np.minimum((now // (7 * _DAY)).astype(np.int64), len(promo) - 1)
        n_promo = promo.shape[1]
        promo_picks = promo[week][rows_m[:, None], np.argsort(rng.random((m, n_promo)), axis=1)]
        picks[newsletter] = np.concatenate([promo_picks, np.full((m, _MAX_VIEWS - n_promo), -1)], axis=1)[newsletter]
        n_views = np.where(newsletter, 1 + rng.poisson(0.8, size=m), n_views).clip(1, _MAX_VIEWS)
        view_mask = (slot < n_views[:, None]) & (picks >= 0) & ~((ch == _STORE) | (ch == _CALL))[:, None]
        # --- interest: the items closest to the customer's taste hold their attention; the
        # time on an item's page (the gap to the next event) shows it
        closeness = np.where(np.isfinite(picked_w), picked_w - best[:, None], -10.0)
        p_interest = np.where(newsletter[:, None], 0.08, 0.05 + 0.55 * np.exp(0.7 * closeness))
        p_interest = np.where((slot == 0) & has_focus[:, None], 1.0, p_interest)
        interested = view_mask & (rng.random(view_mask.shape) < p_interest)
        dwell = np.where(
            interested,
            rng.lognormal(np.log(110.0), 0.45, view_mask.shape),
            rng.lognormal(np.log(12.0), 0.5, view_mask.shape),
        )
        dwell = np.where(ch[:, None] == _APP, dwell * 0.8, dwell)
        # --- cart: only what held the attention; the item come back for, most often
        p_cart = np.where(interested, np.where((slot == 0) & has_focus[:, None], 0.85, 0.5), 0.01)
        p_cart = np.where(cat.own[np.maximum(picks, 0)], p_cart * (0.7 + own_affinity[act, None]), p_cart)
        carted = view_mask & (rng.random(view_mask.shape) < p_cart)
        # --- the end of the session: check out every carted item or abandon the cart
        has_cart = carted.any(axis=1)
        price = cat.price[np.maximum(picks, 0)]
        value = (price * carted).sum(axis=1)
        first_cart = np.argmax(carted, axis=1)
        views_after = np.where(has_cart, (view_mask & (slot > first_cart[:, None])).sum(axis=1), 0)
        p_abandon = _abandon_probability(value, views_after, ch, orders[act], known, patience[act])
        abandoned = has_cart & (rng.random(m) < p_abandon)
        bought = carted & ~abandoned[:, None]
        # nobody buys two durables of one kind in one visit: the first carted one is bought
        durable_session = ~consumable[leaf]
        bought &= ~(durable_session[:, None] & (np.cumsum(bought, axis=1) > 1))
        # the shop or the call centre: the item come back for (or the best candidates) bought
        # without online views
        offline = (ch == _STORE) | (ch == _CALL)
        offline_buy = (
            offline[:, None]
            & (picks >= 0)
            & np.where(
                has_focus[:, None], (slot == 0) & (rng.random((m, 1)) < 0.85), slot < 1 + (rng.random((m, 1)) < 0.3)
            )
        )
        offline_buy &= ~(durable_session[:, None] & (np.cumsum(offline_buy, axis=1) > 1))
        bought = np.where(offline[:, None], offline_buy, bought)

        # --- times: views one after another, each for its dwell; a cart during the item's
        # view; purchases at the checkout after the last view, in cart order
        start = now + np.where(searching, rng.uniform(8.0, 25.0, size=m), rng.uniform(1.0, 5.0, size=m))
        shown = np.where(view_mask, dwell, 0.0)
        view_t = start[:, None] + np.cumsum(shown, axis=1) - shown
        cart_t = view_t + dwell * rng.uniform(0.4, 0.7, size=view_mask.shape)
        checkout = start + shown.sum(axis=1) + rng.uniform(20.0, 60.0, size=m)
        buy_t = np.where(
            offline[:, None], now[:, None] + 60.0 * slot, checkout[:, None] + 15.0 * (np.cumsum(bought, axis=1) - 1)
        )
        end = np.maximum(checkout, np.where(bought, buy_t, 0.0).max(axis=1))

        cust = act + first_customer
        events: list[tuple[np.ndarray, np.ndarray | None, str, np.ndarray]] = [
            (newsletter, None, "newsletter_open", now),
            (searching, None, "search", start - 3.0),
        ]
        for s in range(_MAX_VIEWS):
            events.append((view_mask[:, s], picks[:, s], "view", view_t[:, s]))
            events.append((carted[:, s], picks[:, s], "cart", cart_t[:, s]))
            events.append((bought[:, s], picks[:, s], "purchase", buy_t[:, s]))
        for mask, items, etype, when in events:
            rows = np.nonzero(mask)[0]
            if len(rows) == 0:
                continue
            out["user"].append(cust[rows])
            out["session"].append(sess_no[act[rows]])
            out["item"].append(items[rows] if items is not None else np.full(len(rows), -1))
            out["etype"].append(np.full(len(rows), _ETYPE_CODE[etype], dtype=np.int8))
            out["channel"].append(ch[rows].astype(np.int8))
            out["ts"].append(when[rows])
            if etype == "search":  # query = the leaf's name; filters = (size or none) x (colour or none)
                out["query"].append(leaf[rows].astype(np.int16))
                size_code = np.where(size_filter[rows], cust_size[act[rows]] + 1, 0)
                colour_code = np.where(colour_filter[rows], want_colour[rows] + 1, 0)
                out["filters"].append((size_code * (len(COLOURS) + 1) + colour_code - 1).astype(np.int16))
            else:
                out["query"].append(np.full(len(rows), -1, dtype=np.int16))
                out["filters"].append(np.full(len(rows), -1, dtype=np.int16))

        # --- ground truth of the sessions with a cart (online ones: offline visits pay at once)
        cr = np.nonzero(has_cart)[0]
        carts["user"].append(cust[cr])
        carts["session"].append(sess_no[act[cr]])
        carts["channel"].append(ch[cr].astype(np.int8))
        carts["cart_ts"].append(cart_t[cr, first_cart[cr]])
        carts["end_ts"].append(end[cr])
        carts["items_carted"].append(carted[cr].sum(axis=1))
        carts["cart_value"].append(value[cr])
        carts["views_after_cart"].append(views_after[cr])
        carts["earlier_orders"].append(orders[act[cr]])
        carts["came_back_for_item"].append(known[cr])
        carts["p_abandon"].append(p_abandon[cr])
        carts["abandoned"].append(abandoned[cr])
        row_of = np.full(m, -1, dtype=np.int64)
        row_of[cr] = n_cart_rows + np.arange(len(cr))
        n_cart_rows += len(cr)

        # --- state updates: the item weighed up is bought (its abandoned cart is recovered),
        # dropped when its need is met, replaced by a new abandoned cart or a long look
        any_bought = bought.any(axis=1)
        got_con = returning & (bought & (picks == con[:, None])).any(axis=1)
        recovered_rows.append(consider_row[act[got_con & consider_cart[act]]])
        orders[act[any_bought]] += 1
        for s in range(_MAX_VIEWS):
            b = np.nonzero(bought[:, s])[0]
            if len(b) == 0:
                continue
            it = picks[b, s]
            lf = item_leaf[it]
            cu = act[b]
            last_buy[cu, lf] = now[b]
            last_item[cu, lf] = it
            met = (consider[cu] >= 0) & (item_leaf[np.maximum(consider[cu], 0)] == lf) & ~consumable[lf]
            consider[cu[met | (consider[cu] == it)]] = -1
            pend = pending[cu]
            done = (pend == it) | ((pend >= 0) & (item_leaf[np.maximum(pend, 0)] == lf) & ~consumable[lf])
            pending[cu[done]] = -1
            part = cat.partner[it, rng.integers(0, 2, size=len(it))]
            part = np.where(part >= 0, part, cat.partner[it, 0])
            # a complement of a durable kind the customer already owns is not needed again
            pl = item_leaf[np.maximum(part, 0)]
            owned = ~consumable[pl] & (now[b] - last_buy[cu, pl] < 365 * _DAY)
            newp = (part >= 0) & ~owned
            pending[cu[newp]] = part[newp]
        # the most expensive item of an abandoned cart is weighed up from now on
        ab = np.nonzero(abandoned & ~newsletter)[0]
        top = np.argmax(np.where(carted[ab], price[ab], -1.0), axis=1)
        consider[act[ab]] = picks[ab, top]
        consider_cart[act[ab]] = True
        consider_app[act[ab]] = ch[ab] == _APP
        consider_t[act[ab]] = end[ab]
        consider_row[act[ab]] = row_of[ab]
        # an item looked at long but not carted, when nothing better is weighed up (and the
        # session did not just buy a durable of its kind)
        look = interested & ~carted & ~(newsletter | (durable_session & any_bought))[:, None]
        lk = np.nonzero(look.any(axis=1) & ~abandoned & ~(consider_cart[act] & (consider[act] >= 0)))[0]
        consider[act[lk]] = picks[lk, np.argmax(look[lk], axis=1)]
        consider_cart[act[lk]] = False
        consider_app[act[lk]] = False
        consider_t[act[lk]] = end[lk]
        consider_row[act[lk]] = -1
        keep_leaf = ~newsletter
        prev_leaf[act[keep_leaf]] = leaf[keep_leaf]
        # --- the next session: soon, to carry on with an open errand, or after days with a new one
        open_errand = (consider[act] >= 0) & ~any_bought & online
        cont[act] = rng.random(m) < np.where(open_errand, 0.35, 0.06)
        soon = end + np.maximum(rng.lognormal(np.log(2.5 * 3600.0), 0.6, size=m), 2400.0)
        later = end + rng.exponential(horizon / activity[act]) + 3600.0
        sess_no[act] += 1
        t[act] = np.where(cont[act], soon, later)
    cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}
    cart_cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in carts.items()}
    recovered = np.zeros(n_cart_rows, dtype=bool)
    rec = np.concatenate(recovered_rows) if recovered_rows else np.zeros(0, dtype=np.int64)
    recovered[rec[rec >= 0]] = True
    cart_cols["recovered"] = recovered
    return cols, cart_cols


# The text of the demo's closed vocabularies, indexed by the integer codes the simulation uses.
_CHANNEL_NAMES = ("web", "app", "newsletter", "store", "call_centre")
_ETYPE_CODE = {"newsletter_open": 0, "search": 1, "view": 2, "cart": 3, "purchase": 4}
# The ground truth of every session that put something in the cart (``DemoShop.carts``).
_CART_COLUMNS = (
    "user",
    "session",
    "channel",
    "cart_ts",
    "end_ts",
    "items_carted",
    "cart_value",
    "views_after_cart",
    "earlier_orders",
    "came_back_for_item",
    "p_abandon",
    "abandoned",
)
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


def _blocks(cfg: DemoShopConfig) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(events, carts) per block of ``cfg.block_customers`` customers, in customer order."""
    cat = _catalog(cfg.models_per_leaf, cfg.seed)
    for first in range(0, cfg.n_customers, cfg.block_customers):
        n = min(cfg.block_customers, cfg.n_customers - first)
        block_rng = np.random.default_rng([cfg.seed, first])
        events, carts = _simulate_block(cat, cfg, first, n, block_rng)
        yield _events_table(cat, events, first, n), _carts_table(carts, first, n)


def generate_events(cfg: DemoShopConfig | None = None) -> Iterator[pa.Table]:
    """Yield event tables block by block (``cfg.block_customers`` customers each), sorted by
    (user, time) within a block and blocks in user order: suitable for streaming to Parquet."""
    for events, _carts in _blocks(cfg or DemoShopConfig()):
        yield events


def generate_carts(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Ground truth of cart abandonment: one row per session that put something in the cart
    (every customer, consent aside: join on the events actually kept). ``p_abandon`` is the
    probability the generator used, ``abandoned`` its draw, ``recovered`` whether the abandoned
    item was bought in a later session (see docs/demo_shop.md)."""
    return pa.concat_tables([carts for _events, carts in _blocks(cfg or DemoShopConfig())])


def generate_complements(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Ground truth of item-level complements: item_id -> complement_item_id."""
    cfg = cfg or DemoShopConfig()
    cat = _catalog(cfg.models_per_leaf, cfg.seed)
    has = cat.partner >= 0
    src = np.repeat(np.arange(len(cat.item_id)), 2)[has.ravel()]
    dst = cat.partner.ravel()[has.ravel()]
    return pa.table(
        {
            "item_id": pa.array(cat.item_id[src].tolist(), pa.string()),
            "complement_item_id": pa.array(cat.item_id[dst].tolist(), pa.string()),
        }
    )


def generate_consent(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Consent of every customer (user_id, opted_out), drawn per customer number, so it is known
    before any event is generated (streaming ingestion drops opted-out users' events at once)."""
    cfg = cfg or DemoShopConfig()
    opted = np.random.default_rng([cfg.seed, 99]).random(cfg.n_customers) < cfg.opt_out_share
    users = pa.array([f"C{c:07d}" for c in range(cfg.n_customers)], pa.string())
    return pa.table({"user_id": users, "opted_out": pa.array(opted)})


def generate(cfg: DemoShopConfig | None = None) -> DemoShop:
    """The whole demo shop in memory: events, catalogue, complement ground truth, consent table
    (for the customers who have events)."""
    cfg = cfg or DemoShopConfig()
    blocks = list(_blocks(cfg))
    events = pa.concat_tables([e for e, _c in blocks])
    consent = generate_consent(cfg)
    consent = consent.filter(pc.is_in(consent.column("user_id"), value_set=pc.unique(events.column("user_id"))))
    return DemoShop(
        events=events,
        catalog=generate_catalog(cfg),
        complements=generate_complements(cfg),
        consent=consent,
        carts=pa.concat_tables([c for _e, c in blocks]),
    )


def write_parquet(cfg: DemoShopConfig, directory: str | Path) -> dict[str, int]:
    """Stream a (possibly huge) demo shop to ``directory``: ``events.parquet`` (one row group
    per block of customers, never more than one block in memory), ``consent.parquet`` and
    ``catalog.parquet``. Returns row counts. Each file is written atomically."""
    import pyarrow.parquet as pq

    from journeyrec.io import atomic_path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic_path(out / "events.parquet") as tmp:
        with pq.ParquetWriter(tmp, EVENT_SCHEMA) as writer:
            for block in generate_events(cfg):
                writer.write_table(block, row_group_size=1 << 20)
                rows += block.num_rows
    consent = generate_consent(cfg)
    with atomic_path(out / "consent.parquet") as tmp:
        pq.write_table(consent, tmp)
    catalog = generate_catalog(cfg)
    with atomic_path(out / "catalog.parquet") as tmp:
        pq.write_table(catalog, tmp)
    return {"events": rows, "customers": consent.num_rows, "items": catalog.num_rows}
