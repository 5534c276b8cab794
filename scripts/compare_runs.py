"""Paired comparison of two runs on the same cases: mean difference B - A with its bootstrap 95%
interval and a paired sign-flip permutation test, per metric.

    python scripts/compare_runs.py RUN_A RUN_B                     # MLflow run ids (training or evaluation runs)
    python scripts/compare_runs.py EVAL_RUN:popularity EVAL_RUN    # an evaluation's model vs its popularity baseline
    python scripts/compare_runs.py outputs/a outputs/b --split valid --k 10 20
    python scripts/compare_runs.py A B --protocol seen_excluded --metrics ndcg hr

Runs are read from the tracking store (MLFLOW_TRACKING_URI, else ./mlruns.db) or from
directories holding per_case.parquet. See journeyrec.evaluation.compare.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a", help="A: MLflow run id or directory with per_case.parquet, optionally :<system>")
    ap.add_argument("run_b", help="B: same forms; the differences are B - A")
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", type=int, nargs="+", default=[10])
    ap.add_argument("--metrics", nargs="+", default=["ndcg", "hr", "mrr"], choices=["ndcg", "hr", "mrr"])
    ap.add_argument("--protocol", choices=["all", "seen_excluded", "both"], default="both")
    ap.add_argument("--n-boot", type=int, default=10000, help="bootstrap resamples for the interval")
    ap.add_argument("--n-perm", type=int, default=10000, help="random sign flips for the test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tracking-uri", default=None)
    args = ap.parse_args(argv)

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one screen of output, no download bars
    from journeyrec.evaluation.compare import compare_runs  # imports after argument parsing

    protocols = ("all", "seen_excluded") if args.protocol == "both" else (args.protocol,)
    try:
        text, _ = compare_runs(
            args.run_a,
            args.run_b,
            args.tracking_uri,
            split=args.split,
            ks=args.k,
            metrics=args.metrics,
            protocols=protocols,
            n_boot=args.n_boot,
            n_perm=args.n_perm,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"compare_runs: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
