"""The demo shop: a seeded, deterministic generator of a catalogue and customer journeys.

It is the quickstart's data, the ground truth for business-rule tests and the place where a
journey signal can be shown to matter, so behaviour depends on the journey on purpose
(docs/demo_shop.md tells the whole story with its parameters). Each module holds one part, with
the rules of the shop it implements in its docstring:

* ``config``: :class:`DemoShopConfig`, the size and behaviour knobs;
* ``catalog``: the category tree and its items (brands, sizes, colours, prices, stock, repurchase
  classes, complement partners);
* ``customers``: latent tastes, the click model built on them (:class:`InterestModel`), consent;
* ``journeys``: the simulation of sessions as errands, vectorised across customers;
* ``tables``: the simulation's integer-coded columns as Arrow tables (events, carts);
* ``shop``: the entry points: the whole shop (:func:`generate`), its parts, :func:`write_parquet`.
"""

from __future__ import annotations

from journeyrec.data.synthetic.catalog import generate_catalog, generate_complements
from journeyrec.data.synthetic.config import DemoShopConfig
from journeyrec.data.synthetic.customers import InterestModel, Tastes, customer_tastes, generate_consent
from journeyrec.data.synthetic.shop import DemoShop, generate, generate_carts, generate_events, write_parquet

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
