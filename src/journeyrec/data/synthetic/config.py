"""The demo shop's knobs, read by every other module of the generator."""

from __future__ import annotations

from dataclasses import dataclass


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
