"""The S3-Rec result files behind the results table of docs/results_s3rec.md.

``collect`` turns one finished ``scripts/train.py experiment=s3rec_best`` run (refit on: its
metrics.json holds the test split scored at the picked epoch, ``test_before_refit...``, and after
the refit, ``test...``) into one result JSON under docs/results/, with the best published figure
on the same file (``published``). The docs hook (docs/hooks.py) renders the table from those
files: ``{{ results_table("s3rec_best_Beauty") }}``.

  python -m benchmarks.s3rec_results collect RUN_DIR --command "..." --wall-seconds S --load "..." --out FILE
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from journeyrec.io import atomic_write_json

__all__ = ["ANCHORS", "collect", "protocol_figures", "published"]

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "2-core AMD EPYC VM, no GPU, shared with other engineers' jobs"

# best published test figures on the same files and protocol (full ranking, leave-one-out, the
# user's earlier items excluded, validation targets never trained on): (model, NDCG@10, HR@10)
ANCHORS: dict[str, tuple[str, float, float]] = {
    "Beauty": ("BSARec (AAAI'24)", 0.0611, 0.1008),
    "Sports_and_Outdoors": ("TV-Rec (NeurIPS'25)", 0.0363, 0.0635),
    "Toys_and_Games": ("ICSRec (WSDM'24)", 0.0657, 0.1055),
}
PROTOCOLS = {"without_refit": "test_before_refit", "with_refit": "test"}


def published(stem: str) -> dict[str, Any] | None:
    """The best published test figures on the data file ``stem`` (``ANCHORS``), as a record field."""
    if stem not in ANCHORS:
        return None
    model, ndcg, hr = ANCHORS[stem]
    return {"model": model, "ndcg@10": ndcg, "hr@10": hr}


def protocol_figures(metrics: Mapping[str, float], split: str) -> dict[str, Any]:
    """Seen-excluded NDCG@10 and HR@10 of ``split`` (a metrics.json prefix) with their 95% intervals."""
    out: dict[str, Any] = {}
    for name in ("ndcg@10", "hr@10"):
        key = f"{split}_seen_excluded/{name}"
        if key not in metrics:
            raise KeyError(f"{key} is not in metrics.json: collect needs a run with trainer.refit_epochs > 0")
        low, high = metrics.get(f"{key}_ci95_low"), metrics.get(f"{key}_ci95_high")
        out[name] = float(metrics[key])
        out[f"{name}_ci95"] = None if low is None or high is None else [float(low), float(high)]
    return out


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def collect(
    run_dir: Path,
    command: str,
    wall_seconds: float,
    load: str,
    threads: int = 2,
    date: str | None = None,
    commit: str | None = None,
    cpu_seconds: float | None = None,
    peak_rss_mb: float | None = None,
) -> dict[str, Any]:
    """One result record from a run directory (metrics.json, config.yaml). ``cpu_seconds`` (user +
    sys of the whole command) says what the run cost on a busy machine, where wall time says little."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = OmegaConf.load(run_dir / "config.yaml")
    stem = Path(str(cfg.data.path)).stem
    return {
        "name": f"s3rec_best_{stem}",
        "file": stem,
        "command": command,
        "machine": MACHINE,
        "threads": threads,
        "load": load,
        "date": date or datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit or _commit(),
        "protocol": "test split read once per configuration; full ranking; leave-one-out; the user's earlier "
        "items excluded (seen excluded); 95% bootstrap intervals (1000 resamples)",
        "published": published(stem),
        "without_refit": protocol_figures(metrics, PROTOCOLS["without_refit"]),
        "with_refit": protocol_figures(metrics, PROTOCOLS["with_refit"]),
        "valid_seen_excluded_ndcg@10": float(metrics["valid_seen_excluded/ndcg@10"]),
        # the protocol that keeps the earlier items (scored with the learned repeat bias)
        "nothing_excluded_ndcg@10": {proto: float(metrics[f"{split}/ndcg@10"]) for proto, split in PROTOCOLS.items()},
        "epochs": int(metrics["epochs"]),
        "best_epoch": int(metrics["best_epoch"]),
        "refit_epochs": int(metrics.get("refit_epochs", 0)),
        "train_seconds": round(float(metrics["train_seconds"]), 1),
        "refit_seconds": round(float(metrics.get("refit_seconds", 0.0)), 1),
        "wall_seconds": round(float(wall_seconds), 1),
        "cpu_seconds": None if cpu_seconds is None else round(float(cpu_seconds), 1),
        "peak_rss_mb": None if peak_rss_mb is None else round(float(peak_rss_mb)),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": {k: cfg.trainer[k] for k in ("max_epochs", "patience", "ema_decay", "refit_epochs")},
    }


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    c = sub.add_parser("collect")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--command", required=True)
    c.add_argument("--wall-seconds", type=float, required=True)
    c.add_argument("--load", required=True, help="what else ran (uptime's load averages)")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--commit", default=None, help="the commit the run ran at (default: HEAD)")
    c.add_argument("--date", default=None, help="when the run started, ISO 8601 (default: now)")
    c.add_argument("--cpu-seconds", type=float, default=None, help="user + sys seconds of the command")
    c.add_argument("--peak-rss-mb", type=float, default=None)
    c.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    record = collect(
        args.run_dir,
        args.command,
        args.wall_seconds,
        args.load,
        args.threads,
        args.date,
        args.commit,
        args.cpu_seconds,
        args.peak_rss_mb,
    )
    atomic_write_json(args.out, record)
    print(json.dumps({k: record[k] for k in ("name", "without_refit", "with_refit")}))


if __name__ == "__main__":
    main()
