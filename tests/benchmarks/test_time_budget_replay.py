"""The time budget's replay reads a real run's train.log (as scripts/train.py writes it) and
finds what the budget would have done: nothing with ample time, a stop after the first epoch and
no refit with none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from benchmarks.time_budget import main, replay

from conftest import TINY_DEMO, run_script

pytestmark = pytest.mark.slow  # a training run through the CLI


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    started = datetime.now(UTC)
    args = [*TINY_DEMO, "trainer.max_epochs=3", "trainer.patience=3", "trainer.refit_epochs=1", "logger=none"]
    run_script("train.py", [*args, f"hydra.run.dir={tmp / 'out'}"], f"sqlite:///{tmp / 'mlruns.db'}")
    return tmp / "out", started


def test_ample_time_changes_nothing_and_no_time_stops_after_the_first_epoch(finished_run):
    run, started = finished_run
    ample = replay(run, started, minutes=600)
    assert ample["epochs"] == 3 and len(ample["per_epoch"]) == 3 and ample["fit_would_stop_after"] is None
    assert ample["refit_epochs_run"] == 1 and ample["refit_epochs_within_budget"] == 1 and ample["unchanged"]
    assert ample["refit_work_ratio"] > 1  # each user's validation target is one more training position
    ends = [e["ends_at_s"] for e in ample["per_epoch"]]
    assert ends == sorted(ends) and ends[0] > 0 and ample["refit_ends_at_s"] > ends[-1]
    none = replay(run, started, minutes=1e-4)
    assert none["fit_would_stop_after"] == 1 and none["refit_epochs_within_budget"] == 0 and not none["unchanged"]


def test_one_start_time_per_run_is_required(finished_run, capsys):
    run, _ = finished_run
    with pytest.raises(SystemExit) as exc:
        main([str(run), str(run), "--started", "2026-12-07T19:32:00Z", "--minutes", "28"])
    assert exc.value.code == 2 and "one time per run (2), got 1" in capsys.readouterr().err
