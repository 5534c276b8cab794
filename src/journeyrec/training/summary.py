"""The one-screen summary printed at the end of a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["print_summary"]


def print_summary(metrics: Mapping[str, float], out: Path, run_id: str | None, ks: Sequence[int]) -> None:
    lines = ["", "=" * 72, f"run directory : {out}"]
    if run_id:
        lines.append(f"mlflow run    : {run_id}  (mlflow ui --backend-store-uri sqlite:///mlruns.db)")
    lines.append(f"trained       : {metrics.get('epochs', 0):.0f} epochs in {metrics.get('train_seconds', 0):.1f}s "
                 f"(best epoch {metrics.get('best_epoch', -1):.0f})")
    lines.append(f"{'full ranking':<24}" + "".join(f"{m + '@' + str(k):>11}" for k in ks for m in ("hr", "ndcg")))
    for split in ("valid", "test"):
        for proto, label in (("", "all items"), ("_seen_excluded", "seen excluded")):
            row = "".join(f"{metrics.get(f'{split}{proto}/{m}@{k}', float('nan')):>11.4f}" for k in ks for m in ("hr", "ndcg"))
            lines.append(f"{split + ' (' + label + ')':<24}{row}")
    share = metrics.get("test/repeat_target_share")
    if share:
        lines.append(f"{share:.1%} of test targets repeat an earlier item: misses when seen items are excluded")
    lines.append("=" * 72)
    print("\n".join(lines))
