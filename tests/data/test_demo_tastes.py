"""The demo shop's latent tastes, drawn again by ``customer_tastes``, are the ones its journeys were
generated from; ``InterestModel`` (the click model of the bandit simulation) follows them."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc

from journeyrec.data.synthetic import DemoShopConfig, InterestModel, customer_tastes, generate
from journeyrec.data.synthetic.catalog import _LEAVES, SIZES

CFG = DemoShopConfig(n_customers=600, block_customers=250)  # several blocks: each has its own generator


def _purchases(shop):
    ev = shop.events.filter(pc.equal(shop.events.column("event_type"), "purchase"))
    users = np.asarray([int(u[1:]) for u in ev.column("user_id").to_pylist()])
    items = np.asarray([int(i[3:]) - 1 for i in ev.column("item_id").to_pylist()])
    return users, items


def test_the_tastes_drawn_again_are_those_the_purchases_follow():
    shop = generate(CFG)
    users, items = _purchases(shop)
    sizes = {s: i for i, s in enumerate(SIZES)}
    item_size = np.asarray([sizes.get(s, -1) if s else -1 for s in shop.catalog.column("size").to_pylist()])
    sized = item_size[items] >= 0
    mine = customer_tastes(CFG)
    other = customer_tastes(DemoShopConfig(n_customers=600, block_customers=250, seed=8))
    match = np.mean(item_size[items][sized] == mine.size[users[sized]])
    chance = np.mean(item_size[items][sized] == other.size[users[sized]])
    assert match > 0.75 and chance < 0.4, (match, chance)
    model = InterestModel(CFG)
    leaf = model.cat.leaf[items]
    other_share = other.affinity / other.affinity.sum(axis=1, keepdims=True)
    # they buy in the categories they like most (complements and replenishments aside)
    assert model.share[users, leaf].mean() > 2.5 * other_share[users, leaf].mean()


def test_interest_follows_the_generators_formula_and_ranks_what_they_bought_high():
    model = InterestModel(CFG)
    cat, t = model.cat, model.tastes
    c, item = 17, 123
    leaf = cat.leaf[item]

    def weight(i: int) -> float:  # the generator's taste weight, written out for one customer and item
        w = math.log(cat.pop[i])
        if cat.size[i] >= 0 and cat.size[i] != t.size[c]:
            w -= 3.0
        if cat.colour[i] in (t.fav_colours[c, 0], t.fav_colours[c, 1]):
            w += 0.8
        w += t.price_level[c] * (math.log(cat.price[i]) - math.log(_LEAVES[cat.leaf[i]][5]))  # leaf's median price
        if cat.own[i]:
            w += math.log(t.own_affinity[c] * 2.5 + 1e-3)
        if not cat.in_stock[i]:
            w -= 2.0
        return w

    members = [i for i in range(len(cat.leaf)) if cat.leaf[i] == leaf]
    best = max(weight(i) for i in members)
    expected = t.affinity[c, leaf] / t.affinity[c].sum() * (0.05 + 0.55 * math.exp(0.7 * (weight(item) - best)))
    assert math.isclose(model.probability(np.asarray([c]), np.asarray([[item]]))[0, 0], expected, rel_tol=1e-9)
    # what customers bought is far more interesting to them than random items
    users, items = _purchases(generate(CFG))
    rng = np.random.default_rng(0)
    bought = model.probability(users, items[:, None]).mean()
    random = model.probability(users, rng.integers(0, len(cat.leaf), size=(len(users), 1))).mean()
    assert bought > 5 * random, (bought, random)
