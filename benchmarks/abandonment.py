"""Cart abandonment: the candidates (boosted trees and a logistic regression on session and cart
features, the sequence model's intent head) against the baselines (a logistic regression on
count features, cart age alone), AUC on validation and test with 95% intervals from a bootstrap
over sessions (:func:`journeyrec.evaluation.abandonment.compare`).

Every system reads the same prepared store, is fitted on the same training cases and scored on
the same held-out open-cart prefixes; the candidate with the best validation AUC is "chosen"
and compared with every other system on test, pairwise (same resamples).

    python scripts/train.py experiment=demo_intent hydra.run.dir=.cache/runs/demo_intent
    python -m benchmarks abandonment --run .cache/runs/demo_intent --save abandonment_demo
    python scripts/train.py experiment=taobao_intent hydra.run.dir=.cache/runs/taobao_intent
    python -m benchmarks abandonment --run .cache/runs/taobao_intent --save abandonment_taobao
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from journeyrec.bundle.format import read_bundle
from journeyrec.data.prepare import load_prepared
from journeyrec.evaluation.abandonment import compare

__all__ = ["add_arguments", "main", "LABELS"]

LABELS = {
    "boosted": "boosted trees (LightGBM), session + cart features",
    "logistic": "logistic regression, session + cart features",
    "head": "sequence model's intent head (1 - P(purchase))",
    "logistic_counts": "logistic regression, count features (baseline)",
    "cart_age": "cart age alone (baseline)",
}
ROLES = {
    "boosted": "candidate",
    "logistic": "candidate",
    "head": "candidate",
    "logistic_counts": "baseline",
    "cart_age": "baseline",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run",
        required=True,
        help="a training run directory: prepared/ (or its config's data.prepared) "
        "and bundle/ (a model with an intent head adds the head as a candidate)",
    )
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the sessions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


def _prepared_dir(run: Path) -> Path:
    if (run / "prepared" / "prepared.json").is_file():
        return run / "prepared"
    cfg = json.loads((run / "bundle" / "config.json").read_text())
    return Path(cfg["data"]["prepared"])


def _cases(split: dict[str, Any]) -> str:
    return f"{split['cases']:,} prefixes of {split['sessions']:,} sessions, abandon rate {split['abandon_rate']}"


def main(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict[str, Any]]:
    torch.set_num_threads(a.threads)
    run = Path(a.run)
    prepared = load_prepared(_prepared_dir(run))
    model = read_bundle(run / "bundle").model if (run / "bundle").is_dir() else None
    t0 = time.perf_counter()
    report = compare(prepared.sequences, prepared.split, model, n_boot=a.boot, seed=a.seed, threads=a.threads)
    seconds = time.perf_counter() - t0
    valid, test = report["splits"]["valid"], report["splits"]["test"]
    rows = []
    for name in [n for n in LABELS if n in test["auc"]]:
        rows.append(
            {
                "system": LABELS[name],
                "key": name,
                "role": ROLES[name],
                "chosen": name == report["chosen"],
                "valid_auc": valid["auc"][name],
                "test_auc": test["auc"][name],
                "test_chosen_minus_this": test["chosen_minus"].get(name),
                "data": str(prepared.source),
                "run": str(run),
                "valid_cases": _cases(valid),
                "test_cases": _cases(test),
                "cart_age_direction": report["cart_age_direction"],
                "boot": a.boot,
                "boosted_fit": {
                    k: report["boosted"][k] for k in ("best_iteration", "n_train", "n_stop", "train_abandon_rate")
                },
                "seconds": round(seconds, 1),
            }
        )
    return rows
