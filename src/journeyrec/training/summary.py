"""The one-screen summary printed at the end of a training run, and the warnings it carries.

A model that trains without error can still be useless (a learning rate that diverges after the
first epoch, a split the model cannot learn): the summary puts the cheap baselines beside it on
the same cases, and :func:`baseline_warnings` says so when the model is below one of them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["print_summary", "baseline_warnings"]

_PROTOCOLS = (("", "all items"), ("_seen_excluded", "seen excluded"))


def _row(metrics: Mapping[str, float], prefix: str, split: str, proto: str, ks: Sequence[int]) -> str:
    return "".join(
        f"{metrics.get(f'{prefix}{split}{proto}/{m}@{k}', float('nan')):>11.4f}" for k in ks for m in ("hr", "ndcg")
    )


def print_summary(
    metrics: Mapping[str, float],
    out: Path,
    run_id: str | None,
    ks: Sequence[int],
    baselines: Sequence[str] = (),
    parent_run: str | None = None,
    tracking_uri: str = "sqlite:///mlruns.db",
) -> None:
    """Where the run is, how long it trained, and model vs baselines on both splits and protocols."""
    lines = ["", "=" * 72, f"run directory : {out}"]
    if run_id:
        lines.append(f"mlflow run    : {run_id}  (mlflow ui --backend-store-uri {tracking_uri})")
    if parent_run:
        lines.append(f"sweep parent  : {parent_run}")
    lines.append(
        f"trained       : {metrics.get('epochs', 0):.0f} epochs in {metrics.get('train_seconds', 0):.1f}s "
        f"(best epoch {metrics.get('best_epoch', -1):.0f})"
    )
    lines.append(f"{'full ranking':<34}" + "".join(f"{m + '@' + str(k):>11}" for k in ks for m in ("hr", "ndcg")))
    for split in ("valid", "test"):
        for proto, label in _PROTOCOLS:
            lines.append(f"{split + ' (' + label + ')':<34}{_row(metrics, '', split, proto, ks)}")
            for name in baselines:
                if f"{name}/{split}{proto}/ndcg@{ks[0]}" in metrics:
                    lines.append(f"{'  ' + name:<34}{_row(metrics, name + '/', split, proto, ks)}")
    key = f"test_seen_excluded/ndcg@{ks[0]}"
    if f"{key}_ci95_low" in metrics:
        lines.append(
            f"{key} = {metrics[key]:.4f}, 95% CI [{metrics[key + '_ci95_low']:.4f}, {metrics[key + '_ci95_high']:.4f}]"
        )
    share = metrics.get("test/repeat_target_share")
    if share:
        lines.append(f"{share:.1%} of test targets repeat an earlier item: misses when seen items are excluded")
    lines.append("=" * 72)
    print("\n".join(lines))


def baseline_warnings(metrics: Mapping[str, float], k: int, baselines: Sequence[str]) -> list[str]:
    """One line naming every (split, protocol) where a baseline's NDCG@k beats the model's; none
    when the model is at least as good everywhere."""
    below = []
    for split in ("valid", "test"):
        for proto, label in _PROTOCOLS:
            key = f"{split}{proto}/ndcg@{k}"
            model = metrics.get(key, float("nan"))
            better = [
                (name, metrics[f"{name}/{key}"])
                for name in baselines
                if f"{name}/{key}" in metrics and not math.isnan(model) and metrics[f"{name}/{key}"] > model
            ]
            if better:
                beaten = ", ".join(f"{name} {value:.4f}" for name, value in better)
                below.append(f"{split} ({label}) {model:.4f} < {beaten}")
    if not below:
        return []
    return [
        f"the model's NDCG@{k} is below a baseline on the same cases: {'; '.join(below)}. Check the learning "
        "rate, the epochs and the validation curve (curve.json) before using it"
    ]
