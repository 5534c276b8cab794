"""Exploration's picks and their places, on plain arrays: the picks take the drawn slots and the
list's weakest items make way; random exploration takes the least-shown unshown candidates."""

from __future__ import annotations

import numpy as np

from journeyrec.serving.exploration import bandit_picks, random_picks, take_slots
from journeyrec.serving.settings import RulesConfig


def test_picks_take_the_drawn_slots_and_the_last_items_make_way():
    chosen = np.array([11, 12, 13, 14, 15])
    reasons: list[str | None] = ["r11", None, "r13", "r14", "r15"]
    got, why = take_slots(chosen, reasons, np.array([1, 3]), [21, 22])
    assert got.tolist() == [11, 21, 12, 22, 13]
    assert why == ["r11", "explore", None, "explore", "r13"]
    # fewer picks than slots: the first slots only; none: the list as it was
    assert take_slots(chosen, reasons, np.array([0, 4]), [21])[0].tolist() == [21, 11, 12, 13, 14]
    assert take_slots(chosen, reasons, np.array([0]), []) == (chosen, reasons)


def test_random_exploration_takes_the_least_shown_unshown_candidates():
    eligible = np.ones(10, bool)
    exposure = np.array([0, 0, 0, 5, 0, 5, 1, 5, 5, 5])
    rules = RulesConfig(explore_trending_share=0.0)
    rest = np.array([3, 4, 5, 6, 7])
    picks = random_picks(
        2, eligible, np.array([1, 2]), rest, rules, np.arange(1, 10), exposure, np.random.default_rng(0)
    )
    assert picks == [4, 6]  # exposure 0, then 1


def test_the_bandit_draws_from_unshown_candidates_and_trending_items():
    eligible = np.ones(10, bool)
    eligible[9] = False
    chosen, rest = np.array([1, 2]), np.array([2, 3])
    rng = np.random.default_rng(0)
    no_groups = lambda rows: [""] * len(rows)  # noqa: E731  # without a store the bandit reads none
    for _ in range(20):
        picks = bandit_picks(
            3, eligible, chosen, rest, np.arange(1, 10), RulesConfig(), "home", None, [], no_groups, rng
        )
        assert len(picks) == 3 and len(set(picks)) == 3
        assert not set(picks) & {1, 2, 9}  # neither shown nor ineligible
