"""Business rules against the demo shop's ground truth (catalogue attributes, declared
repurchase classes, complement pairs), with a real bundle, index and Recommender."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from journeyrec.data.sequences import gather_windows
from journeyrec.serving import Recommender, RecommendRequest, RulesConfig
from journeyrec.serving.catalog import FilterError
from journeyrec.serving.request import Context, Event
from journeyrec.serving.rules import exploration_slots, mmr_order

from serving_support import DAY_MS

pytestmark = pytest.mark.usefixtures("one_thread")

NO_REPEAT = RulesConfig(exclude_seen=False, repeat_policy=False, replenish_weight=0.0, complement_weight=0.0)


@pytest.fixture(scope="module")
def rec(demo_bundle):
    return Recommender.load(demo_bundle.path)


@pytest.fixture(scope="module")
def hnsw_rec(demo_bundle, tmp_path_factory):
    """The same model and statistics behind an HNSW index (approximate, with IDSelector)."""
    from journeyrec.bundle.format import write_bundle
    from journeyrec.bundle.stats import RuleStats

    flat = Recommender.load(demo_bundle.path)
    d = tmp_path_factory.mktemp("hnsw") / "bundle"
    write_bundle(
        d,
        flat.model,
        flat.catalog,
        {"data": {"dedup_consecutive": True}},
        {},
        "HNSW32",
        stats=RuleStats.load(demo_bundle.path),
    )
    return Recommender.load(d)


def truth_mask(demo_bundle, filters: dict) -> np.ndarray:
    """Items satisfying ``filters`` and in stock, computed from the catalogue rows directly."""
    rows = demo_bundle.catalog.to_pylist()
    ok = []
    for r in rows:
        good = r["in_stock"] is not False
        for name, value in filters.items():
            v = r[name]
            if isinstance(value, dict):
                good &= v is not None and value.get("min", -np.inf) <= v <= value.get("max", np.inf)
            elif name == "category":
                good &= v is not None and (v == value or v.startswith(value + "/"))
            elif isinstance(value, list):
                good &= v in value
            else:
                good &= v == value
        ok.append(good)
    return np.asarray(ok)


FILTERS = [
    {"size": "XL"},
    {"colour": ["blue", "navy"], "price": {"max": 60}},
    {"category": "Electronics"},
    {"category": "Electronics/Cameras/Camera bags", "colour": "black"},  # a handful of items: pre-filter
    {"own_brand": True, "category": "Apparel"},
    {"price": {"min": 100, "max": 200}, "size": ["S", "M"]},
    {"category": "Grocery", "brand": "Crema", "price": {"max": 1.0}},  # nothing eligible
]


@pytest.mark.parametrize("which", ["flat", "hnsw"])
def test_every_item_satisfies_the_filters_and_k_are_returned_when_eligible(demo_bundle, rec, hnsw_rec, which):
    r = rec if which == "flat" else hnsw_rec
    ids = np.asarray(r.item_ids)
    strategies = set()
    for events in demo_bundle.sessions(8, seed=1):
        for filters in FILTERS:
            truth = truth_mask(demo_bundle, filters)
            for k in (5, 20):
                res = r.recommend(RecommendRequest(events=events, k=k, filters=filters), NO_REPEAT)
                strategies.add(r.retriever.last_strategy)
                got = {x.item_id for x in res.items}
                assert got <= set(ids[truth]), (filters, got - set(ids[truth]))
                assert len(res.items) == len(got) == min(k, int(truth.sum())), (filters, k, len(res.items), truth.sum())
                if truth.sum() < k:
                    assert any("satisfy" in w for w in res.warnings)
    assert {"post-filter", "all eligible"} <= strategies
    assert strategies & {"pre-filter", "pre-filter + exact"}


def test_prefilter_with_idselector_returns_the_exact_filtered_topk(rec):
    q = np.random.default_rng(0).standard_normal(rec.vectors.shape[1]).astype(np.float32)
    eligible = np.zeros(rec.attrs.n, dtype=bool)
    eligible[np.random.default_rng(1).choice(np.arange(1, rec.attrs.n), size=30, replace=False)] = True
    ids, scores = rec.retriever.search(q, 10, eligible, int(eligible.sum()), prefilter_below=0.5)
    assert rec.retriever.last_strategy == "pre-filter"
    cand = np.flatnonzero(eligible)
    exact = cand[np.argsort(-(rec.vectors[cand] @ q))[:10]]
    assert ids.tolist() == exact.tolist()


def test_bad_filters_are_refused_with_the_attribute_named(rec):
    events = [Event(str(rec.item_ids[0]))]
    for filters, message in (
        ({"sise": "XL"}, "unknown filter attribute 'sise'"),
        ({"price": "cheap"}, "'price' expects"),
        ({"size": {"min": 1}}, "'size' expects"),
        ({"colour": []}, "empty list"),
    ):
        with pytest.raises(FilterError, match=message):
            rec.recommend(RecommendRequest(events=events, k=5, filters=filters))


def _durable_and_consumable(demo_bundle):
    classes = demo_bundle.column("repurchase_class")
    cats = demo_bundle.column("category")
    return classes, cats


def test_no_durable_bought_within_the_window_nor_its_substitutes(demo_bundle, rec):
    classes, cats = _durable_and_consumable(demo_bundle)
    index = {str(x): i for i, x in enumerate(rec.item_ids)}
    checked = 0
    for events in demo_bundle.sessions(150, min_len=8, seed=2):
        now = events[-1].timestamp_ms + DAY_MS
        bought = [
            e
            for e in events
            if e.event_type == "purchase"
            and classes[index[e.item_id]] == "durable"
            and now - e.timestamp_ms < 365 * DAY_MS
        ]
        if not bought:
            continue
        checked += 1
        res = rec.recommend(RecommendRequest(events=events, k=30, now_ms=now))
        banned_cats = {cats[index[e.item_id]] for e in bought}
        for item in res.items:
            assert item.item_id not in {e.item_id for e in bought}
            assert cats[index[item.item_id]] not in banned_cats, (item, banned_cats)
    assert checked >= 20
    # after the window the category may come back
    camera = next(str(x) for x, c in zip(rec.item_ids, cats) if c.endswith("Mirrorless cameras"))
    t = 1_770_000_000_000
    bought = [Event(camera, "purchase", "web", t)]
    within = rec.recommend(
        RecommendRequest(
            events=bought, k=10, filters={"category": "Electronics/Cameras/Mirrorless cameras"}, now_ms=t + 30 * DAY_MS
        )
    )
    assert within.items == []
    after = rec.recommend(
        RecommendRequest(
            events=bought, k=10, filters={"category": "Electronics/Cameras/Mirrorless cameras"}, now_ms=t + 400 * DAY_MS
        )
    )
    in_stock_cameras = int(truth_mask(demo_bundle, {"category": "Electronics/Cameras/Mirrorless cameras"}).sum())
    assert len(after.items) == min(10, in_stock_cameras - 1)
    assert camera not in {x.item_id for x in after.items}  # but the customer's own camera is not shown again


def test_a_consumable_comes_back_when_due(demo_bundle, rec):
    cats = demo_bundle.column("category")
    beans = next(
        i for i, c in enumerate(cats) if c == "Grocery/Coffee/Coffee beans" and demo_bundle.column("in_stock")[i]
    )
    item = str(rec.item_ids[beans])
    interval = rec.policy.item_interval[beans + 1]
    assert rec.policy.class_of(beans + 1) == "consumable" and 20 < interval < 60  # learned from the shop's repurchases
    rules = RulesConfig(replenish_weight=1.0)
    t = 1_770_000_000_000
    events = [Event(item, "view", "web", t - 60_000), Event(item, "purchase", "web", t)]
    other = demo_bundle.sessions(1, seed=5)[0]
    history = [dataclasses.replace(e, timestamp_ms=t - 10 * DAY_MS + j) for j, e in enumerate(other)] + events
    for hist in (events, history):
        early = rec.recommend(RecommendRequest(events=hist, k=10, now_ms=t + int(0.5 * interval * DAY_MS)), rules)
        assert item not in {x.item_id for x in early.items}
        due = rec.recommend(RecommendRequest(events=hist, k=10, now_ms=t + int(1.0 * interval * DAY_MS)), rules)
        hit = [x for x in due.items if x.item_id == item]
        assert hit and hit[0].reason == "buy again"


def test_complements_of_a_camera_include_its_bag(demo_bundle, rec):
    cats = demo_bundle.column("category")
    cat_of = dict(zip(demo_bundle.column("item_id"), cats))
    truth: dict[str, set[str]] = {}
    for a, b in zip(
        demo_bundle.complements.column("item_id").to_pylist(),
        demo_bundle.complements.column("complement_item_id").to_pylist(),
    ):
        truth.setdefault(a, set()).add(b)
    everything = RulesConfig(in_stock_only=False)
    seqs = demo_bundle.prepared.sequences
    bought = np.bincount(seqs.items[seqs.event_types == 6], minlength=seqs.n_items + 1)  # purchases per item
    cameras = [i for i, c in enumerate(cats) if c.endswith("Mirrorless cameras") and bought[i + 1] >= 10]
    assert len(cameras) >= 5
    ranks = {}
    for i in cameras:
        camera = str(rec.item_ids[i])
        comps = [x.item_id for x in rec.complements(camera, k=5, rules=everything).items]
        assert all(cat_of[x] != cat_of[camera] for x in comps)  # camera -> bag, never camera -> camera
        bag = next(b for b in truth[camera] if cat_of[b].endswith("Camera bags"))
        ranks[camera] = comps.index(bag) if bag in comps else None
    # the data decide: every camera bought 20+ times has its own bag among its top two complements,
    # and most cameras bought 10+ times have it in their top five
    assert all(ranks[str(rec.item_ids[i])] in (0, 1) for i in cameras if bought[i + 1] >= 20), ranks
    assert sum(r is not None for r in ranks.values()) >= 0.7 * len(ranks), ranks
    # in the request pipeline: after buying the camera, its bag comes as "goes with <camera>"
    camera = str(rec.item_ids[max(cameras, key=lambda i: bought[i + 1])])
    bag = next(b for b in truth[camera] if cat_of[b].endswith("Camera bags"))
    t = 1_770_000_000_000
    res = rec.recommend(
        RecommendRequest(events=[Event(camera, "purchase", "web", t)], k=10, now_ms=t + DAY_MS),
        RulesConfig(in_stock_only=False, complement_weight=1.0),
    )
    assert {"item_id": bag, "reason": f"goes with {camera}"} in [
        {"item_id": x.item_id, "reason": x.reason} for x in res.items
    ]


def test_own_brand_share_rises_with_the_boost(demo_bundle, rec):
    own = dict(zip(demo_bundle.column("item_id"), demo_bundle.column("own_brand")))
    sessions = demo_bundle.sessions(60, seed=3)
    shares = []
    for weight in (0.0, 0.1, 0.3):
        rules = RulesConfig(boosts=[{"attribute": "own_brand", "value": True, "weight": weight}])
        items = [x.item_id for ev in sessions for x in rec.recommend(RecommendRequest(events=ev, k=10), rules).items]
        shares.append(np.mean([own[i] for i in items]))
    assert shares[0] < shares[1] < shares[2] and shares[2] > shares[0] + 0.2, shares


def test_diversity_spreads_categories(demo_bundle, rec):
    sessions = demo_bundle.sessions(40, seed=4)
    distinct = []
    for lam in (1.0, 0.3):
        rules = RulesConfig(diversity_lambda=lam)
        distinct.append(
            np.mean(
                [
                    len(
                        {
                            rec.attrs.value("category", rec.internal_id(x.item_id))
                            for x in rec.recommend(RecommendRequest(events=ev, k=10), rules).items
                        }
                    )
                    for ev in sessions
                ]
            )
        )
    assert distinct[1] > distinct[0]


def test_mmr_closed_form_equals_greedy_mmr():
    rng = np.random.default_rng(0)

    def greedy(rel, groups, lam):
        left, picked = list(range(len(rel))), []
        while left:

            def value(i):
                sim = any(groups[i] > 0 and groups[i] == groups[j] for j in picked)
                return lam * rel[i] - (1 - lam) * sim

            best = max(left, key=lambda i: (value(i), rel[i], -i))
            picked.append(best)
            left.remove(best)
        return picked

    for _ in range(200):
        n = int(rng.integers(1, 30))
        rel = rng.random(n).astype(np.float32)
        groups = rng.integers(0, 5, size=n)
        lam = float(rng.choice([0.0, 0.3, 0.7, 1.0]))
        assert mmr_order(rel, groups, lam).tolist() == greedy(rel, groups, lam)


def test_exploration_slots_appear_at_the_configured_rate(demo_bundle, rec):
    sessions = demo_bundle.sessions(100, seed=6)
    for eps in (0.0, 0.25):
        rules = RulesConfig(epsilon=eps, seed=11, repeat_policy=False)  # (due consumables may come back)
        slots = explored = 0
        for ev in sessions * 3:
            res = rec.recommend(RecommendRequest(events=ev, k=10, filters={"in_stock": True}), rules)
            slots += len(res.items)
            explored += sum(x.reason == "explore" for x in res.items)
            seen = {e.item_id for e in ev}
            assert len({x.item_id for x in res.items}) == len(res.items)
            assert not seen & {x.item_id for x in res.items if x.reason == "explore"}
        rate = explored / slots
        sigma = np.sqrt(max(eps * (1 - eps), 1e-9) / slots)
        assert abs(rate - eps) <= 4 * sigma + 1e-9, (eps, rate)
    counts = [len(exploration_slots(10, 0.15, np.random.default_rng(i))) for i in range(4000)]
    assert abs(np.mean(counts) - 1.5) < 0.05 and set(counts) == {1, 2}


def test_no_consent_gives_the_same_answer_whatever_the_history(demo_bundle, rec):
    base = RecommendRequest(events=[], k=10, consent=False, filters={"in_stock": True})
    expected = rec.recommend(base)
    assert not expected.personalised and expected.fallback == "no_consent" and len(expected.items) == 10
    for j, events in enumerate(demo_bundle.sessions(15, seed=7)):
        res = rec.recommend(dataclasses.replace(base, events=events, user_id=f"customer-{j}", now_ms=j * DAY_MS))
        assert [(x.item_id, x.reason, x.score) for x in res.items] == [
            (x.item_id, x.reason, x.score) for x in expected.items
        ]
    page = str(rec.item_ids[10])
    on_page = [
        rec.recommend(RecommendRequest(events=ev, k=8, consent=False, context=Context("product_page", page)))
        for ev in demo_bundle.sessions(5, seed=8) + [[]]
    ]
    assert all(r.items == on_page[0].items for r in on_page)
    assert on_page[0].items[0].reason == f"similar to {page}"


def test_unknown_ids_only_fall_back_with_a_warning(rec):
    res = rec.recommend(RecommendRequest.from_items(["no-such-item", "nor-this"], k=5))
    assert res.fallback == "no_history" and len(res.items) == 5
    assert any("no-such-item" in w for w in res.warnings) and any("non-personal" in w for w in res.warnings)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend(RecommendRequest.from_items(["x"], k=0))
    with pytest.raises(ValueError, match="unknown event_type"):
        rec.recommend(RecommendRequest.from_items([str(rec.item_ids[0])], event_types=["teleport"]))


def test_serving_encodes_sessions_exactly_as_training_windows(demo_bundle, rec):
    """Traced model + serving window (with consecutive-duplicate collapsing and time gaps) equals
    the eager model on training's gather_windows over the prepared (deduplicated) sequences."""
    s = demo_bundle.prepared.sequences
    model = rec.model
    assert rec.encoder.traced is not None
    users = np.flatnonzero(s.lengths >= 3)[:25]
    for u in users:
        events = demo_bundle.user_events(int(u))
        # what a shop would send: each view also as a repeated event (collapsed again by serving)
        raw = [e2 for e in events for e2 in (dataclasses.replace(e, event_type="view"), e)]
        w = gather_windows(s, np.array([u]), np.array([s.offsets[u + 1]]), model.max_len, rec.encoder.features)
        items = torch.from_numpy(w.pop("items"))
        with torch.no_grad():
            expected = model.session_vectors(items, {k: torch.from_numpy(v) for k, v in w.items()})[0].numpy()
        ids, et, ch, ts, _ = rec.event_parser.parse(raw, now=0)
        got, _ = rec.encoder.encode(ids, et, ch, ts)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_unpadded_fast_path_encodes_like_the_padded_window(demo_bundle, rec):
    """The traced unpadded fast path (used for SASRec) gives the padded eager model's session
    vector to 1e-5, at every session length up to and beyond max_len."""
    enc = rec.encoder
    assert enc.unpadded is not None and isinstance(enc.unpadded, torch.jit.ScriptModule)
    rng = np.random.default_rng(0)
    for n in list(range(1, enc.max_len + 1, 3)) + [enc.max_len, enc.max_len + 7]:
        ids = rng.integers(1, rec.n_items + 1, n)
        et = rng.integers(1, 4, n)
        ch = rng.integers(1, 3, n)
        ts = 1_770_000_000_000 + np.cumsum(rng.integers(1_000, 10**8, n))
        got, _ = enc.encode(ids, et, ch, ts)
        items, feats = enc.window(ids, et, ch, ts)
        with torch.no_grad():
            expected = rec.model.session_vectors(items, enc._feature_dict(feats))[0].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    "rules",
    [
        RulesConfig(),
        RulesConfig(epsilon=0.3, seed=3),
        RulesConfig(diversity_lambda=0.3, boosts=[{"attribute": "own_brand", "value": True, "weight": 0.4}]),
    ],
    ids=["default", "exploration", "strong-diversity-and-boost"],
)
def test_lists_are_ordered_by_the_score_they_carry(rec, demo_bundle, rules):
    """Every answer's scores never increase down the list (personal and non-personal), and the
    model's own score is reported beside the blended one."""
    crossed = 0
    for events in demo_bundle.sessions(40, min_len=6, seed=11):
        personal = rec.recommend(RecommendRequest(events=events, k=12), rules)
        scores = [x.score for x in personal.items]
        assert scores == sorted(scores, reverse=True)
        model = [x.model_score for x in personal.items]
        assert all(m is not None for m in model)
        crossed += model != sorted(
            model, reverse=True
        )  # rules reorder the model's list, so its scores alone would not be monotone
        for ctx in (Context("home"), Context("product_page", events[-1].item_id)):
            plain = rec.recommend(RecommendRequest(k=12, consent=False, context=ctx), rules)
            s = [x.score for x in plain.items]
            assert s == sorted(s, reverse=True) and all(x.model_score is None for x in plain.items)
    assert crossed > 0


def test_a_model_pick_is_similar_to_an_item_of_its_category_and_after_one_of_another(demo_bundle, rec):
    """The reason names the session item nearest the pick; its word says how they relate."""
    cat_of = dict(zip(demo_bundle.column("item_id"), demo_bundle.column("category")))
    seen = {"similar to": 0, "after": 0}
    for session in demo_bundle.sessions(40, min_len=3, seed=11):
        res = rec.recommend(RecommendRequest(events=session, k=10, now_ms=session[-1].timestamp_ms + DAY_MS))
        items = {e.item_id for e in session}
        for x in res.items:
            word, _, anchor = x.reason.rpartition(" ")
            if word not in seen:
                continue
            assert anchor in items, x  # the anchor is one of the session's own items
            assert (cat_of[x.item_id] == cat_of[anchor]) == (word == "similar to"), (x, cat_of[anchor])
            seen[word] += 1
    assert seen["similar to"] > 0 and seen["after"] > 0, seen  # both kinds occur on the demo shop
