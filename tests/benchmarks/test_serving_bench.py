"""``python -m benchmarks recommend-latency``'s ``--stages`` pass: every pipeline step it names is timed on real
requests through a real Recommender, and the timers are gone afterwards (the same Recommender
then runs on its own methods again)."""

from __future__ import annotations

import pytest

import benchmarks.recommend_latency as bench
from journeyrec.serving import Recommender, RulesConfig
from journeyrec.serving import recommender as recommender_module
from journeyrec.serving import rules as rules_module

pytestmark = pytest.mark.usefixtures("one_thread")


def test_stage_pass_times_every_step_and_removes_its_timers(demo_bundle):
    rules = RulesConfig(epsilon=0.2, diversity_lambda=0.7, seed=3)  # every step runs on every request
    assert rules.exploration == "bandit" and ("module", "bandit_picks") in bench.stage_attrs(rules)
    rec = Recommender.load(demo_bundle.path, rules=rules)
    requests = bench.make_requests(rec, 40, 20, 10, {})
    stages = bench.stage_medians(rec, requests, rules)

    assert list(stages) == list(bench.STAGES.values())
    assert all(v is not None and v > 0 for v in stages.values()), stages
    for owner in (rec, rec.event_parser, rec.encoder, rec.policy, rec.retriever):
        assert not {attr for _, attr in bench.stage_attrs(rules)} & set(vars(owner)), type(owner).__name__
    assert recommender_module.mmr_scores is rules_module.mmr_scores
    assert recommender_module.exploration_slots is rules_module.exploration_slots
    assert len(rec.recommend(requests[0], rules).items) == 10
