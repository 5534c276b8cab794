"""Exploration that learns: Thompson sampling draws from each candidate's posterior, and through
the service and a real store the exploration slots come to show what earned clicks there, where
random exploration keeps showing anything."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from journeyrec.serving import Recommender
from journeyrec.serving.request import Context, RecommendRequest
from journeyrec.serving.rules import thompson_top
from journeyrec.serving.service import Service
from journeyrec.serving.settings import RulesConfig
from journeyrec.serving.store import SQLiteStore

pytestmark = pytest.mark.usefixtures("one_thread")


def test_thompson_sampling_picks_by_posterior():
    rng = np.random.default_rng(0)
    # a candidate with 30 clicks in 100 shows beats one with 2 in 100, nearly always
    wins = sum(thompson_top([30, 2], [100, 100], 1, 0.05, 10.0, rng)[0] == 0 for _ in range(500))
    assert wins >= 495
    # an unknown candidate is tried against a known poor one (its posterior is wide), not always
    tried = sum(thompson_top([0, 0], [0, 400], 1, 0.05, 10.0, rng)[0] == 0 for _ in range(2000))
    assert 0.5 < tried / 2000 < 0.98
    # the hierarchical prior: an unknown item of a category that earned clicks beats one of a category that did not
    means = np.asarray([0.20, 0.01])
    wins = sum(thompson_top([0, 0], [0, 0], 1, means, 50.0, rng)[0] == 0 for _ in range(500))
    assert wins >= 490


@pytest.mark.parametrize("mode", ["bandit", "random"])
def test_the_exploration_slots_learn_what_is_clicked_there(demo_bundle, tmp_path, mode):
    """One customer asks again and again; they click one particular candidate whenever it is
    explored, nothing else. The bandit comes to explore it most of the time; random does not."""
    rules = RulesConfig(epsilon=0.2, exploration=mode, seed=5)
    rec = Recommender.load(demo_bundle.path, rules=rules)
    events = demo_bundle.sessions(1, min_len=8, seed=3)[0]
    now = events[-1].timestamp_ms + 60_000
    request = RecommendRequest(events=events, k=10, context=Context("home"), now_ms=now)
    pool = [
        x.item_id for x in rec.recommend(RecommendRequest(events=events, k=40, now_ms=now), RulesConfig()).items[10:]
    ]
    liked = pool[7]
    with SQLiteStore(tmp_path / "j.sqlite") as store:
        service = Service(rec, allow_demo_key=True, store=store)
        shown = []
        for r in range(240):
            result, _ = service.recommend(dataclasses.replace(request, now_ms=now + r * 1000))
            explored = [x.item_id for x in result.items if x.reason == "explore"]
            assert len(explored) == 2
            shown.append(liked in explored)
            if liked in explored:
                status, _ = service.feedback(
                    result.request_id, liked, "click", now + r * 1000 + 10, now + r * 1000 + 10
                )
                assert status == 200
    early, late = np.mean(shown[:60]), np.mean(shown[-60:])
    if mode == "bandit":
        assert late > 0.8 and late > early + 0.3, (early, late)
    else:
        assert late < 0.3, (early, late)  # about 2 slots out of ~50 candidates, whatever was clicked
