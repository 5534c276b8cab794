"""How much the seen-excluded protocol's treatment of repeated targets matters, per data set.

For every data set it prepares (each with its shipped config), the share of validation and test
targets that repeat an item the user had before: under S3-Rec's rule (``evaluation.rank_kernel``)
those cases are misses whatever the model does. With ``--run DIR`` (a training run directory with
``bundle/`` and ``prepared/``) it also scores that model's test split under S3-Rec's rule and
under the rule journeyrec used before (a repeated target ranked among the candidates left after
removing every *other* history item), to show what the old rule inflated.

    python -m benchmarks protocol --write [--run outputs/.../run]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from journeyrec.data.datasets import EvalBatchSampler, EvalWindows
from journeyrec.data.prepare import load_prepared, prepare
from journeyrec.data.sequences import repeated_targets
from journeyrec.evaluation.metrics import per_case_metrics
from journeyrec.evaluation.rank_kernel import rank_vectors
from journeyrec.evaluation.statistics import bootstrap_intervals

__all__ = ["DATA", "repeat_shares", "compare_rules", "run"]

ROOT = Path(__file__).resolve().parents[1]
# data set -> scripts/train.py overrides naming it (the shipped data configs, unchanged)
DATA: dict[str, list[str]] = {
    "amazon/Beauty": ["data=s3rec", "data.path=../shared/data/amazon/Beauty.txt"],
    "amazon/Sports_and_Outdoors": ["data=s3rec", "data.path=../shared/data/amazon/Sports_and_Outdoors.txt"],
    "amazon/Toys_and_Games": ["data=s3rec", "data.path=../shared/data/amazon/Toys_and_Games.txt"],
    "taobao_userbehavior": ["data=taobao"],
    "yoochoose": ["data=yoochoose"],
    "ml-1m-subset": ["data=movielens", "data.path=../shared/data/ml-1m-subset"],
    "ml-100k": ["data=movielens", "data.path=../shared/data/ml-100k"],
    "movielens-latest-small": ["data=movielens", "data.path=../shared/data/movielens-latest-small"],
    "demo (3000 customers)": ["data=demo"],
}


def _compose(overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    from journeyrec.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def repeat_shares(overrides: Sequence[str]) -> dict[str, Any]:
    cfg = _compose(overrides)
    prepared = prepare(cfg.data)
    out: dict[str, Any] = {
        "split": prepared.split.kind,
        "users": prepared.sequences.n_users,
        "items": prepared.sequences.n_items,
    }
    for role in ("valid", "test"):
        cases = getattr(prepared.split, role)
        out[f"{role}_cases"] = len(cases)
        out[f"{role}_repeat_target_share"] = (
            round(float(repeated_targets(prepared.sequences, cases).mean()), 4) if len(cases) else 0.0
        )
    return out


@torch.no_grad()
def compare_rules(run_dir: str | Path, ks: Sequence[int] = (10, 20), batch_size: int = 512) -> dict[str, Any]:
    """Test metrics of a trained run's model under S3-Rec's rule and the earlier rule."""
    from journeyrec.bundle.format import read_bundle

    run_dir = Path(run_dir)
    model = read_bundle(run_dir / "bundle").model.eval()
    prepared = load_prepared(run_dir / "prepared")
    seqs, cases = prepared.sequences, prepared.split.test
    ds = EvalWindows(seqs, cases, model.max_len, getattr(model, "feature_names", ()))
    ranks = {"s3rec_rule": np.zeros(len(cases), dtype=np.int64), "earlier_rule": np.zeros(len(cases), dtype=np.int64)}
    for idx in EvalBatchSampler(ds.lengths, batch_size):
        b = ds.__getitems__(idx)
        feats = {f: b[f] for f in getattr(model, "feature_names", ())}
        q, v, t = model.session_vectors(b["items"], feats), model.item_vectors(), b["targets"]
        rows, items = b["history_rows"], b["history_items"]
        bias = getattr(model, "repeat_bias", None)  # as evaluation ranks a model with a repeat bias
        window, bonus = None, 0.0
        if isinstance(bias, torch.Tensor):
            real = b["items"] != 0
            window = (torch.arange(real.shape[0])[:, None].expand_as(real)[real], b["items"][real])
            bonus = float(bias)
        ranks["s3rec_rule"][idx] = rank_vectors(q, v, t, rows, items, window=window, window_bonus=bonus)[
            "seen_excluded"
        ].numpy()
        other = items != t[rows]  # the earlier rule: every history item but the target removed
        ranks["earlier_rule"][idx] = rank_vectors(
            q, v, t, rows[other], items[other], window=window, window_bonus=bonus
        )["seen_excluded"].numpy()
    repeat = repeated_targets(seqs, cases)
    out: dict[str, Any] = {
        "run": str(run_dir),
        "source": prepared.source,
        "test_cases": len(cases),
        "test_repeat_target_share": round(float(repeat.mean()), 4),
    }
    for rule, r in ranks.items():
        per = per_case_metrics(r, ks)
        ci = bootstrap_intervals({k: v for k, v in per.items() if not k.startswith("mrr")}, 1000)
        out[rule] = {
            k: {
                "value": round(float(per[k].mean()), 5),
                "ci95": [round(ci[k][0], 5), round(ci[k][1], 5)],
                "repeated_cases": round(float(per[k][repeat].mean()), 5) if repeat.any() else None,
                "other_cases": round(float(per[k][~repeat].mean()), 5),
            }
            for k in ci
        }
    return out


def run(datasets: Sequence[str] | None = None, run_dirs: Sequence[str] = ()) -> dict[str, Any]:
    shares = {}
    for name in datasets or DATA:
        try:
            shares[name] = repeat_shares(DATA[name])
        except FileNotFoundError as exc:  # a data set not on this machine
            print(f"skipped {name}: {exc}", file=sys.stderr)
    return {"benchmark": "protocol", "repeat_shares": shares, "rules": [compare_rules(d) for d in run_dirs]}
