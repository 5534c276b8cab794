"""trainer.time_budget_minutes: the fit stops at the end of the epoch after which the next one
and the refit would overrun the budget, the refit trains the whole epochs still left (none when
nothing is left, its test figures then being the picked epoch's), and a budget that is never
reached changes nothing."""

from __future__ import annotations

import json
import time

import pytest
from sequence_support import make_data

from journeyrec.training.time_budget import TimeBudget, refit_work_ratio

from conftest import compose
from conftest import train_tiny as run

ARGS = ["experiment=demo", "model.n_blocks=1", "trainer.max_epochs=3", "trainer.patience=3", "trainer.refit_epochs=2"]


@pytest.mark.slow  # two real tiny fits
def test_a_spent_budget_stops_the_fit_after_one_epoch_and_skips_the_refit(tmp_path):
    # a budget of a few microseconds is spent before the fit starts: one epoch (min_epochs), no refit
    spent, out = run(tmp_path / "spent", [*ARGS, "trainer.time_budget_minutes=1e-7"])
    assert spent["epochs"] == 1 and spent["fit_stopped_by_time_budget"] == 1.0
    assert len(json.loads((out / "curve.json").read_text())) == 1
    assert spent["refit_epochs"] == 0 and spent["refit_seconds"] == 0.0
    assert not (out / "checkpoints" / "refit.ckpt").exists()
    # the test figures are the picked epoch's, reported under both names
    before = {k.replace("test_before_refit", "test", 1): v for k, v in spent.items() if k.startswith("test_before")}
    assert before and all(spent[k] == v for k, v in before.items())
    # the bundle is written, and its config says its weights had no refit
    assert json.loads((out / "bundle" / "config.json").read_text())["trainer"]["refit_epochs"] == 0
    # a budget far from reached: every epoch and the whole refit, as without one
    ample, _ = run(tmp_path / "ample", [*ARGS, "trainer.time_budget_minutes=600"])
    assert ample["epochs"] == 3 and ample["fit_stopped_by_time_budget"] == 0.0
    assert ample["refit_epochs"] == 2 and ample["refit_seconds"] > 0
    assert ample["time_budget_minutes"] == 600 and "time_budget_minutes" in spent


def test_refit_epochs_that_fit_counts_whole_epochs_at_the_refit_pace():
    budget = TimeBudget(minutes=4.5, started=time.perf_counter(), refit_epochs=5, refit_scale=1.0)
    assert budget.refit_epochs_that_fit(5) == 5  # no epoch timed yet: nothing to reckon with
    budget.train_seconds = 100.0  # 270 s left: two whole epochs of 100 s
    assert budget.refit_epochs_that_fit(5) == 2 and budget.refit_epochs_that_fit(1) == 1
    budget.refit_scale = 1.2  # a refit epoch of 120 s: still two
    assert budget.refit_epochs_that_fit(5) == 2
    budget.refit_scale = 1.5  # 150 s: one
    assert budget.refit_epochs_that_fit(5) == 1
    late = TimeBudget(minutes=1.0, started=time.perf_counter() - 120.0)
    late.train_seconds = 1.0
    assert late.seconds_left() < 0 and late.refit_epochs_that_fit(5) == 0


@pytest.mark.parametrize("minutes", ["0", "-5"])
def test_a_budget_that_is_not_positive_is_refused_before_reading_data(tmp_path, minutes):
    with pytest.raises(ValueError, match=r"trainer.time_budget_minutes=.*must be > 0"):
        run(tmp_path, ["experiment=demo", f"trainer.time_budget_minutes={minutes}"])
    assert not (tmp_path / "prepared").exists()


@pytest.mark.parametrize("targets", ["newest", "every"])
def test_refit_work_ratio_counts_the_positions_the_validation_targets_add(targets):
    """Brute force: a window per training target (newest) or per user (every), each as long as
    the items it reads plus its target, at most max_len + 1."""
    seqs = [[1, 2, 3, 1, 4, 5, 6], [2, 3, 2, 5], [1, 2, 5, 6, 7, 8], [3, 3, 1], [6, 2, 1, 2, 4, 8, 9, 3]]
    prep = make_data(seqs)
    max_len = 3
    cfg = compose("train", ["experiment=demo", f"model.max_len={max_len}", f"loss.targets={targets}"])
    from journeyrec.training.config import train_config

    def positions(prefix_lengths):
        if targets == "newest":
            return sum(min(k, max_len + 1) for n in prefix_lengths for k in range(2, n + 1))
        return sum(min(n, max_len + 1) for n in prefix_lengths if n >= 2)

    fit = [len(s) - 2 for s in seqs]  # leave-one-out: the last two items are validation and test
    want = positions([n + 1 for n in fit]) / positions(fit)
    assert refit_work_ratio(train_config(cfg), prep) == pytest.approx(want)
