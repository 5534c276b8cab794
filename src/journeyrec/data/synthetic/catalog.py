"""The demo shop's catalogue: a category tree (``Dept/Sub/Leaf``) with brands (one of them the
shop's own brand), sizes, colours, prices, stock, and a repurchase class per leaf: *consumables*
come back after a typical interval (coffee beans every ~2 weeks, T-shirts every ~2 months),
*durables* do not (after a winter coat, nobody buys a second one for a year); each durable has
complementary partner items (each camera *its* bag and memory card), which become the customer's
next errand (``journeys``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from journeyrec.data.schema import conform_catalog
from journeyrec.data.synthetic.config import DemoShopConfig

OWN_BRAND = "Journey Basics"
SIZES = ("S", "M", "L", "XL", "XXL")
COLOURS = ("black", "navy", "blue", "red", "green", "grey", "white", "beige")

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
