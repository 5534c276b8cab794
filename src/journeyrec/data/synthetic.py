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

import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from journeyrec.data.schema import conform_catalog, conform_events

__all__ = ["DemoShopConfig", "DemoShop", "generate_catalog", "generate_events", "generate"]

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
    block_customers: int = 200_000  # customers generated per block (bounds memory)


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


def generate_catalog(cfg: DemoShopConfig | None = None) -> pa.Table:
    """The demo catalogue alone (deterministic for a given seed and size)."""
    cfg = cfg or DemoShopConfig()
    return _build_catalog(cfg, np.random.default_rng(cfg.seed)).table


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
        ch_names = np.asarray(["web", "app", "newsletter", "store"], dtype=object)
        leaf_names = np.asarray([x[0].rsplit("/", 1)[1] for x in _LEAVES], dtype=object)
        for mask, items, etype, col in events:
            rows = np.nonzero(mask)[0]
            if len(rows) == 0:
                continue
            out["user"].append(cust[rows])
            out["session"].append(sess_no[act[rows]])
            out["item"].append(items[rows] if items is not None else np.full(len(rows), -1))
            out["etype"].append(np.full(len(rows), etype, dtype=object))
            out["channel"].append(ch_names[ch[rows]])
            out["ts"].append(now[rows] + gap[rows, col])
            if etype == "search":
                out["query"].append(leaf_names[leaf[rows]])
                filt = np.empty(len(rows), dtype=object)
                for j, i in enumerate(rows):
                    f = {}
                    if size_filter[i]:
                        f["size"] = SIZES[cust_size[act[i]]]
                    if colour_filter[i]:
                        f["colour"] = COLOURS[want_colour[i]]
                    filt[j] = json.dumps(f, sort_keys=True) if f else None
                out["filters"].append(filt)
            else:
                out["query"].append(np.full(len(rows), None, dtype=object))
                out["filters"].append(np.full(len(rows), None, dtype=object))

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


def _events_table(cat: _Catalog, cols: dict[str, np.ndarray]) -> pa.Table:
    order = np.lexsort((cols["ts"], cols["user"]))
    user = cols["user"][order]
    item = cols["item"][order]
    ts_ms = ((START + cols["ts"][order]) * 1000.0).astype(np.int64)
    user_str = np.char.add("C", np.char.zfill(user.astype(str), 7))
    sess = np.char.add(np.char.add(user_str, "-"), cols["session"][order].astype(str))
    has_item = item >= 0
    item_str = np.where(has_item, cat.item_id[np.maximum(item, 0)], None)
    price = np.where(has_item, cat.price[np.maximum(item, 0)], np.nan)
    etype = cols["etype"][order]
    quantity = np.where(etype == "purchase", 1, 0)
    table = pa.table(
        {
            "user_id": pa.array(user_str, pa.string()),
            "session_id": pa.array(sess, pa.string()),
            "item_id": pa.array(item_str.tolist(), pa.string()),
            "event_type": pa.array(etype.tolist(), pa.string()),
            "timestamp": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
            "channel": pa.array(cols["channel"][order].tolist(), pa.string()),
            "query": pa.array(cols["query"][order].tolist(), pa.string()),
            "filters": pa.array(cols["filters"][order].tolist(), pa.string()),
            "price": pa.array(np.where(has_item, price, None).tolist(), pa.float64()),
            "quantity": pa.array(np.where(etype == "purchase", quantity, None).tolist(), pa.int32()),
        }
    )
    return conform_events(table, source="demo shop")


def generate_events(cfg: DemoShopConfig | None = None) -> Iterator[pa.Table]:
    """Yield event tables block by block (``cfg.block_customers`` customers each), sorted by
    (user, time) within a block and blocks in user order: suitable for streaming to Parquet."""
    cfg = cfg or DemoShopConfig()
    rng = np.random.default_rng(cfg.seed)
    cat = _build_catalog(cfg, rng)
    for first in range(0, cfg.n_customers, cfg.block_customers):
        n = min(cfg.block_customers, cfg.n_customers - first)
        block_rng = np.random.default_rng([cfg.seed, first])
        yield _events_table(cat, _simulate_block(cat, cfg, first, n, block_rng))


def generate(cfg: DemoShopConfig | None = None) -> DemoShop:
    """The whole demo shop in memory: events, catalogue, complement ground truth, consent table."""
    cfg = cfg or DemoShopConfig()
    rng = np.random.default_rng(cfg.seed)
    cat = _build_catalog(cfg, rng)
    events = pa.concat_tables(list(generate_events(cfg)))
    has = cat.partner >= 0
    src = np.repeat(np.arange(len(cat.item_id)), 2)[has.ravel()]
    dst = cat.partner.ravel()[has.ravel()]
    complements = pa.table(
        {"item_id": pa.array(cat.item_id[src].tolist(), pa.string()), "complement_item_id": pa.array(cat.item_id[dst].tolist(), pa.string())}
    )
    users = np.asarray(events.column("user_id").unique().to_pylist(), dtype=object)
    users.sort()
    opted = np.random.default_rng([cfg.seed, 99]).random(len(users)) < cfg.opt_out_share
    consent = pa.table({"user_id": pa.array(users.tolist(), pa.string()), "opted_out": pa.array(opted)})
    return DemoShop(events=events, catalog=cat.table, complements=complements, consent=consent)
