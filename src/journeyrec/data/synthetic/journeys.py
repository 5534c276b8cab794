"""The demo shop's journeys, simulated:

* sessions as errands: search (query + filters the following views respect), views whose time
  on the page shows interest (long for items close to the customer's taste, seconds for the
  rest), carts of interesting items only, and a checkout after the last view that buys every
  carted item, or an abandoned cart. Abandonment is ground truth (``generate_carts``): its
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

import numpy as np

from journeyrec.data.synthetic.catalog import _LEAVES, COLOURS, _Catalog
from journeyrec.data.synthetic.config import DemoShopConfig
from journeyrec.data.synthetic.customers import _draw_tastes, _item_taste

# Channel codes of the simulation (names in tables._CHANNEL_NAMES) and a few named constants of the story.
_WEB, _APP, _NEWSLETTER, _STORE, _CALL = 0, 1, 2, 3, 4
_DAY = 86400.0
_RETURN_DECAY_S = 6 * _DAY  # interest in an item weighed up fades over about a week
_MAX_VIEWS = 10
# Event type codes of the simulation (names in tables._ETYPE_NAMES).
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


def _gumbel_topk(logw: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct column indices per row, sampled with probability proportional to exp(logw)."""
    g = logw + rng.gumbel(size=logw.shape)
    k = min(k, logw.shape[1])
    idx = np.argpartition(-g, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(g, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


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
