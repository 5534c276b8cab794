"""Serving a bundle with the transition blend: the list is the exact top k of the blended scores
(the index's best by dot product plus the items the counts lift), with the blended score
reported as the model's, on the demo shop with a real bundle, index and Recommender."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from journeyrec.bundle.format import read_bundle, write_bundle
from journeyrec.bundle.stats import RuleStats
from journeyrec.models.transitions import Transitions
from journeyrec.serving import Recommender, RecommendRequest, RulesConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# relevance alone: no repeat rules, bonuses, diversity or exploration between the scores and the list
PLAIN = RulesConfig(
    exclude_seen=False,
    in_stock_only=False,
    repeat_policy=False,
    replenish_weight=0.0,
    complement_weight=0.0,
    diversity_lambda=1.0,
)


def with_blend(demo_bundle, plain: Recommender, counts: Transitions, directory) -> None:
    """The demo bundle's model, index kind and statistics, written again with ``counts``."""
    config = {"data": {"dedup_consecutive": True}}
    stats = RuleStats.load(demo_bundle.path)
    write_bundle(directory, plain.model, plain.catalog, config, {}, "Flat", stats=stats, transitions=counts)


@pytest.fixture(scope="module")
def blended(demo_bundle, tmp_path_factory):
    plain = Recommender.load(demo_bundle.path)
    prep = demo_bundle.prepared
    d = tmp_path_factory.mktemp("blend") / "bundle"
    with_blend(demo_bundle, plain, Transitions.fit(prep.sequences, prep.split.train_ends).with_weight(2.0), d)
    return plain, Recommender.load(d), read_bundle(d)


@pytest.mark.parametrize("k", [5, 30])
def test_the_list_is_the_exact_top_k_of_the_blended_scores(demo_bundle, blended, k):
    plain, rec, bundle = blended
    assert rec.transitions is not None and rec.transitions.weight == 2.0
    changed = 0
    for events in demo_bundle.sessions(30, min_len=3, seed=4):
        res = rec.recommend(RecommendRequest(events=events, k=k), PLAIN)
        ids, et, ch, ts, _ = rec.event_parser.parse(events, now=0)
        items, feats = rec.encoder.window(ids, et, ch, ts)
        with torch.no_grad():
            scores = bundle.ranking_model.scores(items, rec.encoder._feature_dict(feats))[0].numpy()
        scores[0] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:k]
        got = [rec.internal_id(x.item_id) for x in res.items]
        assert got == expected.tolist()
        np.testing.assert_allclose([x.model_score for x in res.items], scores[expected], rtol=1e-5, atol=1e-5)
        alone = plain.recommend(RecommendRequest(events=events, k=k), PLAIN)
        changed += [x.item_id for x in alone.items] != [x.item_id for x in res.items]
    assert changed > 0  # the counts do change what is shown


def test_a_session_whose_items_nothing_followed_gets_the_model_alone(demo_bundle, blended, tmp_path):
    plain = blended[0]
    prep = demo_bundle.prepared
    s = prep.sequences
    # counts of ten customers' prefixes only: most items never came before another one
    few = np.where(np.arange(s.n_users) < 10, prep.split.train_ends, s.offsets[:-1])
    counts = Transitions.fit(s, few).with_weight(2.0)
    with_blend(demo_bundle, plain, counts, tmp_path / "b")
    rec = Recommender.load(tmp_path / "b")
    lonely = [i for i in range(1, counts.n_items + 1) if counts.indptr[i] == counts.indptr[i + 1]]
    followed = [i for i in range(1, counts.n_items + 1) if counts.indptr[i] < counts.indptr[i + 1]]
    for ids, same in ((lonely[:3], True), (followed[:3], False)):
        request = RecommendRequest.from_items([str(rec.item_ids[i - 1]) for i in ids], k=10)
        a, b = plain.recommend(request, PLAIN), rec.recommend(request, PLAIN)
        ma, mb = [x.model_score for x in a.items], [x.model_score for x in b.items]
        assert ([x.item_id for x in a.items] == [x.item_id for x in b.items] and np.allclose(ma, mb)) is same
