"""Would ``trainer.time_budget_minutes`` have changed a finished run? The budget's rule
(:class:`journeyrec.training.time_budget.TimeBudget`) replayed on the run's ``train.log``.

At the end of each epoch the fit stops when the seconds left are fewer than the next epoch (as
long as this one, validation included) plus the refit (``trainer.refit_epochs`` at this epoch's
training pace times :func:`journeyrec.training.time_budget.refit_work_ratio`); the refit, once it starts,
trains the whole epochs still left. The log gives each epoch's end and training seconds and the
refit's end and seconds; the first epoch's validation is taken as long as the second's. The clock
starts at ``--started``, the command's start: a few seconds earlier than the run's own clock
(Python's imports), so the replay leaves the run less time than it had, never more.

  python -m benchmarks.time_budget RUN_DIR [RUN_DIR ...] --started ISO [ISO ...] --minutes 28 --out FILE
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import command_line, result_record, save_result

__all__ = ["replay"]

_STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"
EPOCH = re.compile(_STAMP + r"\[journeyrec\.training\.callbacks\]\[INFO\] - epoch (\d+)/\d+: epoch_seconds=([\d.]+)")
REFIT = re.compile(
    _STAMP + r"\[journeyrec\.training\.run\]\[INFO\] - refit (\d+) epochs on the validation targets in ([\d.]+)s"
)


def _seconds(stamp: str, started: datetime) -> float:
    return (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC) - started).total_seconds()


def replay(run: Path, started: datetime, minutes: float) -> dict[str, Any]:
    """The budget's decisions at each epoch end and before the refit of ``run`` (see the module
    docstring), and whether any of them differs from what the run did."""
    from omegaconf import OmegaConf

    from journeyrec.data.prepare import load_prepared
    from journeyrec.training.config import train_config
    from journeyrec.training.time_budget import refit_work_ratio

    cfg = train_config(OmegaConf.load(run / "config.yaml"))
    log = (run / "train.log").read_text().splitlines()
    ends, train = [], []
    refit: tuple[float, int, float] | None = None
    for line in log:
        if m := EPOCH.match(line):
            ends.append(_seconds(m[1], started))
            train.append(float(m[3]))
        elif m := REFIT.match(line):
            refit = (_seconds(m[1], started), int(m[2]), float(m[3]))
    if len(ends) < 2:
        raise ValueError(f"{run}/train.log: fewer than two epoch lines; nothing to replay")
    budget = 60.0 * minutes
    wanted = cfg.trainer.refit_epochs
    ratio = refit_work_ratio(cfg, load_prepared(run / "prepared")) if wanted else 1.0
    first = train[0] + (ends[1] - ends[0] - train[1])  # the second epoch's validation stands in for the first's
    epochs = []
    for k, end in enumerate(ends):
        epoch = first if k == 0 else end - ends[k - 1]
        need = epoch + wanted * train[k] * ratio
        epochs.append(
            {
                "epoch": k + 1,
                "ends_at_s": round(end, 1),
                "seconds_left": round(budget - end, 1),
                "next_epoch_s": round(epoch, 1),
                "refit_s": round(wanted * train[k] * ratio, 1),
                "would_stop": budget - end < need and k + 1 < len(ends),
            }
        )
    stop = next((e["epoch"] for e in epochs if e["would_stop"]), None)
    row: dict[str, Any] = {
        "run": str(run),
        "file": Path(str(cfg.data.path)).stem,
        "started": started.isoformat(),
        "budget_s": budget,
        "epochs": len(ends),
        "fit_would_stop_after": stop,
        "closest_margin_s": min(e["seconds_left"] - e["next_epoch_s"] - e["refit_s"] for e in epochs[:-1]),
        "refit_work_ratio": round(ratio, 4),
    }
    if refit is not None:
        refit_end, done, seconds = refit
        left = budget - (refit_end - seconds)
        fits = max(0, min(wanted, int(left // (train[-1] * ratio))))
        row.update(
            refit_starts_at_s=round(refit_end - seconds, 1),
            refit_seconds_left=round(left, 1),
            refit_epoch_forecast_s=round(train[-1] * ratio, 1),
            refit_epoch_measured_s=round(seconds / done, 1),
            refit_epochs_run=done,
            refit_epochs_within_budget=fits,
            refit_ends_at_s=round(refit_end, 1),
        )
    row["unchanged"] = stop is None and (refit is None or row["refit_epochs_within_budget"] == refit[1])
    row["per_epoch"] = epochs
    return row


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="finished training runs (train.log, config.yaml, prepared/)")
    ap.add_argument("--started", nargs="+", required=True, help="each run's command start, ISO 8601 (UTC)")
    ap.add_argument("--minutes", type=float, required=True, help="the budget replayed")
    ap.add_argument("--out", type=Path, default=None, help="the result file (its name is the record's)")
    args = ap.parse_args(argv)
    if len(args.started) != len(args.runs):
        ap.error(f"--started: one time per run ({len(args.runs)}), got {len(args.started)}")
    rows = []
    for run, when in zip(args.runs, args.started):
        try:
            rows.append(replay(run, datetime.fromisoformat(when.replace("Z", "+00:00")), args.minutes))
        except (OSError, ValueError) as exc:
            ap.error(str(exc))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_epoch"}), flush=True)
    if args.out is not None:
        record = result_record(
            args.out.stem, rows, command_line(argv, module="benchmarks.time_budget"), None, minutes=args.minutes
        )
        record["threads"] = "the runs' own (see each run's record)"
        save_result(record, args.out.parent)


if __name__ == "__main__":
    main()
