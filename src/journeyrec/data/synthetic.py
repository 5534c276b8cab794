"""The demo shop: a seeded, deterministic generator of a catalogue and customer journeys.

It is the quickstart's data and the ground truth for business-rule tests, so its structure
is deliberate rather than uniform noise:

* a category tree (``Dept/Sub/Leaf``) with brands (one of them the shop's own brand), sizes,
  colours, prices, stock, and a repurchase class per leaf: *consumables* come back after a
  typical interval (coffee beans every ~2 weeks, T-shirts every ~2 months), *durables* do not
  (after a winter coat, nobody buys a second one next week);
* complementary pairs at item level (each camera has *its* bag and memory card, each coffee
  machine its beans): after buying the camera, the customer's next sessions often look for them;
* customers with latent tastes: category affinities, a size, favourite colours, price level,
  own-brand affinity, preferred channels, newsletter subscription and a consent flag;
* sessions with search (query + filters that the following views respect), view -> cart ->
  purchase funnels, newsletter opens and in-store purchases, across web/app/newsletter/store.

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
    "generate",
    "write_parquet",
]

OWN_BRAND = "Journey Basics"
SIZES = ("S", "M", "L", "XL", "XXL")
COLOURS = ("black", "navy", "blue", "red", "green", "grey", "white", "beige")
START = np.datetime64("2026-01-01T00:00:00", "s").astype(np.int64)

# leaf path, repurchase class, typical repurchase interval (days), sized, coloured,
# median price, third-party brands, complementary leaves (item-level partners are drawn below),
# entry (customers start journeys here; non-entry leaves are mostly reached as complements)
_LEAVES: tuple[tuple, ...] = (
    ("Apparel/Outerwear/Winter coats", "durable", None, True, True, 180.0, ("Northpeak", "Alpina"), ("Scarves", "Gloves"), True),
    ("Apparel/Outerwear/Rain jackets", "durable", None, True, True, 95.0, ("Northpeak", "Drizzle"), ("Umbrellas",), True),
    ("Apparel/Tops/T-shirts", "consumable", 60.0, True, True, 19.0, ("Cottonia", "Urbanist"), (), True),
    ("Apparel/Tops/Sweaters", "durable", None, True, True, 55.0, ("Cottonia", "Alpina"), (), True),
    ("Apparel/Accessories/Scarves", "durable", None, False, True, 29.0, ("Alpina", "Urbanist"), (), False),
    ("Apparel/Accessories/Gloves", "durable", None, True, True, 25.0, ("Northpeak", "Alpina"), (), False),
    ("Apparel/Accessories/Umbrellas", "durable", None, False, True, 22.0, ("Drizzle",), (), False),
    ("Apparel/Underwear/Socks", "consumable", 45.0, True, True, 9.0, ("Cottonia",), (), True),
    ("Footwear/Shoes/Sneakers", "durable", None, True, True, 90.0, ("Stride", "Urbanist"), ("Shoe care",), True),
    ("Footwear/Shoes/Boots", "durable", None, True, True, 140.0, ("Stride", "Northpeak"), ("Shoe care", "Socks"), True),
    ("Footwear/Care/Shoe care", "consumable", 90.0, False, False, 9.0, ("Stride",), (), False),
    ("Electronics/Cameras/Mirrorless cameras", "durable", None, False, False, 900.0, ("Optika", "Lumix"), ("Camera bags", "Memory cards"), True),
    ("Electronics/Cameras/Camera bags", "durable", None, False, True, 60.0, ("Optika", "Lumix"), (), False),
    ("Electronics/Cameras/Memory cards", "durable", None, False, False, 25.0, ("Sandy", "Optika"), (), False),
    ("Electronics/Phones/Smartphones", "durable", None, False, True, 600.0, ("Pomme", "Galaxa"), ("Phone cases", "Chargers"), True),
    ("Electronics/Phones/Phone cases", "durable", None, False, True, 20.0, ("Pomme", "Galaxa"), (), False),
    ("Electronics/Phones/Chargers", "durable", None, False, False, 25.0, ("Pomme", "Galaxa"), (), False),
    ("Electronics/Audio/Headphones", "durable", None, False, True, 120.0, ("Sonar", "Galaxa"), (), True),
    ("Home/Kitchen/Coffee machines", "durable", None, False, True, 250.0, ("Brewmaster", "Crema"), ("Coffee beans", "Descaler"), True),
    ("Home/Kitchen/Descaler", "consumable", 60.0, False, False, 8.0, ("Brewmaster",), (), False),
    ("Grocery/Coffee/Coffee beans", "consumable", 14.0, False, False, 12.0, ("Crema", "Roastery"), (), True),
    ("Beauty/Skincare/Moisturisers", "consumable", 30.0, False, False, 25.0, ("Dermaline", "Bloom"), (), True),
    ("Beauty/Skincare/Sunscreen", "consumable", 45.0, False, False, 18.0, ("Dermaline", "Bloom"), (), True),
    ("Sports/Running/Running shoes", "durable", None, True, True, 120.0, ("Stride", "Sprintex"), ("Running socks", "Water bottles"), True),
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
    for li, (path, _cls, _days, sized, coloured, median, brands, _comp, _entry) in enumerate(_LEAVES):
        for m in range(cfg.models_per_leaf):
            own = rng.random() < 0.25
            brand = OWN_BRAND if own else brands[m % len(brands)]
            price = float(np.round(median * rng.lognormal(0.0, 0.35) * (0.8 if own else 1.0), 0) - 0.01)
            colour = int(rng.integers(len(COLOURS))) if coloured else -1
            for size in range(len(SIZES)) if sized else (-1,):
                rows["leaf"].append(li)
                rows["brand"].append(brand)
                rows["own"].append(own)
                rows["size"].append(size)
                rows["colour"].append(colour)
                rows["price"].append(max(price, 0.99))
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
            for i in np.nonzero(leaf == li)[0]:
                c = cand
                if size[i] >= 0 and (size[c] >= 0).any():
                    c = c[size[c] == size[i]]
                same = c[brand[c] == brand[i]]
                pool = same if len(same) else c
                # deterministic choice among the pool: model number modulo pool size
                partner[i, j] = pool[int(model[i]) % len(pool)]

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


def _simulate_block(
    cat: _Catalog, cfg: DemoShopConfig, first_customer: int, n_cust: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    n_leaves = len(_LEAVES)
    is_entry = np.asarray([x[8] for x in _LEAVES])
    consumable = np.asarray([x[1] == "consumable" for x in _LEAVES])
    interval = np.asarray([x[2] or 0.0 for x in _LEAVES]) * 86400.0
    sized_leaf = np.asarray([x[3] for x in _LEAVES])
    coloured_leaf = np.asarray([x[4] for x in _LEAVES])
    horizon = cfg.n_days * 86400.0

    # latent tastes
    affinity = rng.dirichlet(np.full(n_leaves, 0.35), size=n_cust) * np.where(is_entry, 1.0, 0.15)
    cust_size = rng.choice(len(SIZES), size=n_cust, p=[0.15, 0.3, 0.3, 0.17, 0.08])
    fav_colours = np.stack([rng.integers(len(COLOURS), size=n_cust) for _ in range(2)], axis=1)
    price_level = rng.normal(0.0, 0.5, size=n_cust)  # >0: prefers pricier items
    own_affinity = rng.beta(2.0, 3.0, size=n_cust)
    channel_pref = rng.dirichlet([4.0, 3.0, 1.0], size=n_cust)  # web, app, store
    subscriber = rng.random(n_cust) < 0.4
    activity = rng.gamma(2.0, cfg.sessions_per_customer / 2.0, size=n_cust) + 0.5

    last_buy = np.full((n_cust, n_leaves), -np.inf)  # time of last purchase per leaf
    last_item = np.full((n_cust, n_leaves), -1, dtype=np.int64)
    pending = np.full(n_cust, -1, dtype=np.int64)  # complement partner item awaiting purchase

    leaf_items = cat.leaf_items
    item_leaf = cat.leaf
    log_pop = np.log(cat.pop)
    rel_price = np.log(cat.price) - np.log(np.asarray([x[5] for x in _LEAVES]))[cat.leaf]

    t = rng.exponential(horizon / activity)  # first session start (seconds since START)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "session", "item", "etype", "channel", "ts", "query", "filters")}
    sess_no = np.zeros(n_cust, dtype=np.int64)
    max_views = 10
    while True:
        act = np.nonzero(t < horizon)[0]
        if len(act) == 0:
            break
        m = len(act)
        now = t[act]
        # --- channel
        r = rng.random(m)
        cp = channel_pref[act]
        ch = np.where(r < cp[:, 0], 0, np.where(r < cp[:, 0] + cp[:, 1], 1, 3))  # web/app/store codes
        newsletter = subscriber[act] & (rng.random(m) < 0.15)
        ch = np.where(newsletter, 2, ch)
        # --- intent leaf
        elapsed = now[:, None] - last_buy[act]
        due = consumable[None, :] & (elapsed >= interval[None, :] * rng.uniform(0.8, 1.3, size=(m, 1)))
        has_due = due.any(axis=1) & (rng.random(m) < 0.7)
        due_leaf = np.argmax(due * rng.random((m, n_leaves)), axis=1)
        has_pending = (pending[act] >= 0) & (rng.random(m) < 0.6)
        recently_owned = (~consumable[None, :]) & (elapsed < 365 * 86400.0)
        w = affinity[act] * np.where(recently_owned, 0.005, 1.0) + 1e-4
        w = w / w.sum(axis=1, keepdims=True)
        aff_leaf = (w.cumsum(axis=1) < rng.random((m, 1))).sum(axis=1).clip(0, n_leaves - 1)
        focus = np.full(m, -1, dtype=np.int64)  # an item the customer is looking for
        leaf = aff_leaf.copy()
        sel = has_pending & ~has_due
        focus[sel] = pending[act][sel]
        leaf[sel] = item_leaf[focus[sel]]
        leaf[has_due] = due_leaf[has_due]
        rebuy = last_item[act, due_leaf]
        same_item = has_due & (rng.random(m) < 0.8) & (rebuy >= 0)
        focus[same_item] = rebuy[same_item]
        # --- search with filters (web/app only): the views that follow respect the filters
        searching = (ch <= 1) & (rng.random(m) < 0.35)
        # a customer who knows the item (repurchase, complement) searches without filters
        size_filter = searching & (focus < 0) & sized_leaf[leaf] & (rng.random(m) < 0.8)
        colour_filter = searching & (focus < 0) & coloured_leaf[leaf] & (rng.random(m) < 0.3)
        want_colour = fav_colours[act, 0]
        # --- candidate items of the leaf, scored by taste
        cand = leaf_items[leaf]  # [m, P]
        valid = cand >= 0
        ci = np.where(valid, cand, 0)
        logw = log_pop[ci]
        csize = cat.size[ci]
        size_ok = (csize < 0) | (csize == cust_size[act, None])
        logw = logw + np.where(size_ok, 0.0, -3.0)
        ccol = cat.colour[ci]
        logw = logw + 0.8 * ((ccol == fav_colours[act, :1]) | (ccol == fav_colours[act, 1:2]))
        logw = logw + price_level[act, None] * rel_price[ci]
        logw = logw + np.where(cat.own[ci], np.log(own_affinity[act, None] * 2.5 + 1e-3), 0.0)
        logw = logw + np.where(cat.in_stock[ci], 0.0, -2.0)
        # filters that match nothing in the leaf are relaxed (colour first, then size), and the
        # search event records only the filters that were in force
        def allowed() -> np.ndarray:
            ok = valid & ~(size_filter[:, None] & (csize != cust_size[act, None]))
            return ok & ~(colour_filter[:, None] & (ccol != want_colour[:, None]))

        hard = allowed()
        colour_filter &= hard.any(axis=1)
        hard = allowed()
        size_filter &= hard.any(axis=1)
        hard = allowed()
        logw = np.where(hard, logw, -np.inf)
        n_views = np.minimum(1 + rng.poisson(2.5, size=m), max_views)
        cols_ = _gumbel_topk(logw, max_views, rng)
        picks = np.where(np.isfinite(np.take_along_axis(logw, cols_, 1)), np.take_along_axis(ci, cols_, 1), -1)
        has_focus = focus >= 0
        picks[has_focus] = np.concatenate([focus[has_focus, None], picks[has_focus, :-1]], axis=1)
        dup = (picks[:, 1:] == picks[:, :1]) & has_focus[:, None]  # the focus item, seen twice
        picks[:, 1:][dup] = -1
        slot = np.arange(max_views)[None, :]
        view_mask = (slot < n_views[:, None]) & (picks >= 0)
        store = ch == 3
        # --- funnel: cart then purchase; focus items convert far more often
        p_cart = np.where(slot == 0, np.where(has_focus, 0.75, 0.3)[:, None], 0.12) * np.ones(view_mask.shape)
        p_cart = np.where(cat.own[np.maximum(picks, 0)], p_cart * (0.7 + own_affinity[act, None]), p_cart)
        carted = view_mask & (rng.random(view_mask.shape) < p_cart)
        bought = carted & (rng.random(view_mask.shape) < 0.6)
        # store visits: buy the first one or two candidates without online views
        store_buy = store[:, None] & (slot < 1 + (rng.random((m, 1)) < 0.3)) & (picks >= 0)
        view_mask &= ~store[:, None]
        carted &= ~store[:, None]
        bought = np.where(store[:, None], store_buy, bought)
        # nobody buys two durables of one kind in one visit: keep the first purchase only
        durable_session = ~consumable[leaf]
        bought &= ~(durable_session[:, None] & (np.cumsum(bought, axis=1) > 1))

        # --- emit events in time order: [newsletter_open] [search] (view [cart [purchase]])*
        cust = act + first_customer
        gap = rng.exponential(45.0, size=(m, max_views * 3 + 2)).cumsum(axis=1) + 1.0
        events = []  # (mask[m], item[m] or None, etype, offset column)
        events.append((newsletter, None, "newsletter_open", 0))
        events.append((searching, None, "search", 1))
        for s in range(max_views):
            events.append((view_mask[:, s], picks[:, s], "view", 2 + 3 * s))
            events.append((carted[:, s], picks[:, s], "cart", 3 + 3 * s))
            events.append((bought[:, s], picks[:, s], "purchase", 4 + 3 * s))
        for mask, items, etype, col in events:
            rows = np.nonzero(mask)[0]
            if len(rows) == 0:
                continue
            out["user"].append(cust[rows])
            out["session"].append(sess_no[act[rows]])
            out["item"].append(items[rows] if items is not None else np.full(len(rows), -1))
            out["etype"].append(np.full(len(rows), _ETYPE_CODE[etype], dtype=np.int8))
            out["channel"].append(ch[rows].astype(np.int8))
            out["ts"].append(now[rows] + gap[rows, col])
            if etype == "search":  # query = the leaf's name; filters = (size or none) x (colour or none)
                out["query"].append(leaf[rows].astype(np.int16))
                size_code = np.where(size_filter[rows], cust_size[act[rows]] + 1, 0)
                colour_code = np.where(colour_filter[rows], want_colour[rows] + 1, 0)
                out["filters"].append((size_code * (len(COLOURS) + 1) + colour_code - 1).astype(np.int16))
            else:
                out["query"].append(np.full(len(rows), -1, dtype=np.int16))
                out["filters"].append(np.full(len(rows), -1, dtype=np.int16))

        # --- state updates from purchases
        for s in range(max_views):
            b = np.nonzero(bought[:, s])[0]
            if len(b) == 0:
                continue
            it = picks[b, s]
            lf = item_leaf[it]
            cu = act[b]
            last_buy[cu, lf] = now[b]
            last_item[cu, lf] = it
            done = pending[cu] == it
            pending[cu[done]] = -1
            part = cat.partner[it, rng.integers(0, 2, size=len(it))]
            part = np.where(part >= 0, part, cat.partner[it, 0])
            newp = part >= 0
            pending[cu[newp]] = part[newp]
        sess_no[act] += 1
        t[act] = now + rng.exponential(horizon / activity[act]) + 3600.0
    cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}
    return cols


# The text of the demo's closed vocabularies, indexed by the integer codes the simulation uses.
_CHANNEL_NAMES = ("web", "app", "newsletter", "store")
_ETYPE_CODE = {"newsletter_open": 0, "search": 1, "view": 2, "cart": 3, "purchase": 4}
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
    names = pa.array([f"C{c:07d}" for c in range(first_customer, first_customer + n_customers)], pa.string())
    user_str = _text(user, names)
    sess = pc.binary_join_element_wise(user_str, pc.cast(pa.array(cols["session"][order]), pa.string()), "-")
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


def generate_events(cfg: DemoShopConfig | None = None) -> Iterator[pa.Table]:
    """Yield event tables block by block (``cfg.block_customers`` customers each), sorted by
    (user, time) within a block and blocks in user order: suitable for streaming to Parquet."""
    cfg = cfg or DemoShopConfig()
    cat = _catalog(cfg.models_per_leaf, cfg.seed)
    for first in range(0, cfg.n_customers, cfg.block_customers):
        n = min(cfg.block_customers, cfg.n_customers - first)
        block_rng = np.random.default_rng([cfg.seed, first])
        yield _events_table(cat, _simulate_block(cat, cfg, first, n, block_rng), first, n)


def generate_complements(cfg: DemoShopConfig | None = None) -> pa.Table:
    """Ground truth of item-level complements: item_id -> complement_item_id."""
    cfg = cfg or DemoShopConfig()
    cat = _catalog(cfg.models_per_leaf, cfg.seed)
    has = cat.partner >= 0
    src = np.repeat(np.arange(len(cat.item_id)), 2)[has.ravel()]
    dst = cat.partner.ravel()[has.ravel()]
    return pa.table(
        {"item_id": pa.array(cat.item_id[src].tolist(), pa.string()), "complement_item_id": pa.array(cat.item_id[dst].tolist(), pa.string())}
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
    events = pa.concat_tables(list(generate_events(cfg)))
    consent = generate_consent(cfg)
    consent = consent.filter(pc.is_in(consent.column("user_id"), value_set=pc.unique(events.column("user_id"))))
    return DemoShop(events=events, catalog=generate_catalog(cfg), complements=generate_complements(cfg), consent=consent)


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
