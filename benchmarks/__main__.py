"""Benchmark suite: python -m benchmarks NAME [options]. Every benchmark prints one JSON
line per result, with its ratio against a baseline measured in the same run on this machine.

  train-vs-peer  time to quality and throughput vs RecTools' SASRec (own virtualenv), Beauty
  eval           full-ranking users/s for 100k users x 1M items vs the SGEMM FLOP bound
  faiss          Flat / HNSW32 / IVF-PQ fast-scan on 1M x 64 (+ a real bundle): build, recall@10, QPS
  serving        in-process recommend() latency (vs the model alone) and HTTP latency under load
  data           generate + prepare 1M / 10M / 50M events: events/s and peak RSS
  memory         peak memory of one training step vs catalogue size (10k / 100k / 1M items) per loss and path
  softmax        one full-softmax step with exclude_seen / the repeat bias vs the plain softmax
  ema            one weight-average update: Lightning's per-parameter path vs the foreach one in use
  validation     one validation pass on a real file: the evaluation path in use vs the straightforward one
  demo-shop      the demo shop generator: time vs an earlier version (from git), journey statistics
  gpu            s3rec_best on Beauty in fp32 / bf16-mixed, eager / compiled, on CUDA; full vs sampled
                 softmax steps at 1M items (benchmarks/gpu.sh; --dry-run: the same on the CPU, tiny)
  record-run     one scripts/train.py run's metrics, curve and wall time as docs/results/<name>.json
  protocol       share of repeated targets per data set; a run's seen-excluded figures under S3-Rec's
                 rule and the earlier one
  journey-ablation  next-purchase / next-cart quality with item ids only, + event type, + channel,
                 + time gap, and views / carts as context only; seeds, intervals, paired tests

Run under the shared CPU lock on a quiet machine; every figure states its threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="name", required=True)
    p = sub.add_parser("train-vs-peer")
    p.add_argument("--data", default="../shared/data/amazon/Beauty.txt")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workdir", default=".cache/bench/train-vs-peer")
    p.add_argument("--compare-only", action="store_true",
                   help="recompute the comparison from the workdir's finished runs, without training")
    p = sub.add_parser("eval")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--topk", type=int, default=0, help="also build top-k lists (beyond-accuracy metrics)")
    p.add_argument("--interleaved-peak", action="store_true",
                   help="also time an SGEMM burst before every batch (for a shared, busy machine)")
    p = sub.add_parser("faiss")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bundle", default=None, help="a trained run's bundle/ (real item vectors + session queries)")
    p = sub.add_parser("serving")
    p.add_argument("--bundle", required=True)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=2000)
    p = sub.add_parser("data")
    p.add_argument("--sizes", nargs="+", default=["1e6", "1e7", "5e7"])
    p.add_argument("--workdir", default=".cache/bench/data")
    p.add_argument("--write", action="store_true", help="also write docs/results/data_scale.json")
    p = sub.add_parser("memory")
    p.add_argument("--sizes", nargs="+", type=lambda v: int(float(v)), default=[10_000, 100_000, 1_000_000])
    p.add_argument("--losses", nargs="+", default=None, help="default: sampled_softmax gbce softmax softmax_materialised")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--paths", nargs="+", default=["table"], choices=["table", "rows", "rows_sparse"],
                   help="table: the whole item table every step (every loss); rows / rows_sparse: the sampled "
                        "losses' gathered rows, dense / sparse id-embedding gradient, + the first Adam step")
    p = sub.add_parser("softmax")
    p.add_argument("--positions", type=int, default=1100)
    p.add_argument("--items", type=int, default=12_101)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("ema")
    p.add_argument("--items", type=int, default=12_101)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("validation")
    p.add_argument("--data", default="../shared/data/amazon/Sports_and_Outdoors.txt")
    p.add_argument("--experiment", default="s3rec_best")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="more config overrides, key=value")
    p = sub.add_parser("demo-shop")
    p.add_argument("--baseline", default="ba2a47b", help="a commit whose generator is timed beside today's ('' = none)")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write", action="store_true", help="also write docs/results/demo_shop.json")
    p = sub.add_parser("gpu")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script without a GPU")
    p.add_argument("--data", default=None, help="an S3-Rec-format file (default ../shared/data/amazon/Beauty.txt)")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--budget", type=float, default=690.0, help="seconds for everything after data preparation")
    p.add_argument("--softmax-items", type=int, default=1_000_000)
    p.add_argument("--bar", type=float, default=None,
                   help="quality bar (valid seen-excluded NDCG@10); default 95%% of the fp32 arm's best")
    p.add_argument("--cpu-metrics", default=None, help="a CPU run's metrics.json of the same configuration")
    p.add_argument("--arms", nargs="+", default=None, help="default: fp32 bf16-mixed fp32+compile bf16-mixed+compile")
    p.add_argument("--workdir", default=".cache/bench/gpu")
    p.add_argument("--write", action="store_true", help="write docs/results/gpu[_dry_run].json (after every arm)")
    p.add_argument("overrides", nargs="*", help="more scripts/train.py overrides for every arm")
    p = sub.add_parser("record-run")
    p.add_argument("--name", dest="name_", required=True, help="docs/results/<name>.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", help="scripts/train.py overrides")
    p = sub.add_parser("protocol")
    p.add_argument("--data", nargs="+", default=None, help="default: every data set of benchmarks/protocol.py DATA")
    p.add_argument("--run", nargs="*", default=[], help="training run directories (bundle/ + prepared/) to score both ways")
    p.add_argument("--write", action="store_true", help="also write docs/results/protocol.json")
    p = sub.add_parser("journey-ablation")
    p.add_argument("--data", required=True, help="demo | taobao | yoochoose")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=None, help="default: all (a_item_ids ... e_context_only)")
    p.add_argument("--threads", type=int, default=1, help="per run (on a busy 2-core machine one thread is far faster)")
    p.add_argument("--workdir", default=None, help="default .cache/bench/journey-ablation/<data>; finished runs are reused")
    p.add_argument("--write", action="store_true", help="also write docs/results/journey_ablation_<data>.json")
    p.add_argument("overrides", nargs="*", help="more scripts/train.py overrides for every arm")
    a = ap.parse_args()
    if getattr(a, "write", False) or a.name == "record-run":
        from benchmarks.results import started_commit

        started_commit()  # the code that runs is the code checked out now

    if a.name == "train-vs-peer":
        from benchmarks.train_vs_peer import compare, run

        result = compare(a.workdir, a.data) if a.compare_only else run(a.data, a.epochs, a.workdir)
        result.pop("curves")
        _emit(result)
    elif a.name == "eval":
        from benchmarks.eval_throughput import run

        _emit(run(a.users, a.items, a.dim, topk=a.topk, interleaved_peak=a.interleaved_peak))
    elif a.name == "faiss":
        from benchmarks.faiss_bench import run

        run(a.items, a.dim, a.queries, a.threads, a.bundle)
    elif a.name == "serving":
        from benchmarks.serving_bench import run

        for result in run(a.bundle, a.duration, a.rate, a.clients, a.requests):
            _emit(result)
    elif a.name == "memory":
        from benchmarks.loss_memory import LOSSES_MEASURED, run

        for result in run(tuple(a.sizes), tuple(a.losses or LOSSES_MEASURED), a.dim, a.batch, a.max_len,
                          a.negatives, threads=a.threads, paths=tuple(a.paths)):
            _emit(result)
    elif a.name == "softmax":
        from benchmarks.softmax_step import run

        _emit(run(a.positions, a.items, threads=a.threads))
    elif a.name == "ema":
        from benchmarks.ema_update import run

        _emit(run(a.items, updates=a.updates, threads=a.threads))
    elif a.name == "validation":
        from benchmarks.validation_pass import run

        _emit(run(a.data, a.experiment, a.overrides, threads=a.threads))
    elif a.name == "demo-shop":
        from benchmarks.demo_shop import run
        from benchmarks.results import write_result

        result = run(a.baseline or None, a.customers, a.rounds, a.threads)
        _emit(result)
        if a.write:
            write_result("demo_shop", result, a.threads)
    elif a.name == "gpu":
        from benchmarks.gpu import run
        from benchmarks.results import write_result

        name = "gpu_dry_run" if a.dry_run else "gpu"

        def save(partial: dict) -> None:
            if a.write:
                write_result(name, partial, threads=0)

        result = run(a.workdir, a.dry_run, a.data, a.max_epochs, a.budget, a.softmax_items, a.bar, a.cpu_metrics,
                     a.arms, a.overrides, on_update=save)
        _emit(result)
    elif a.name == "record-run":
        from benchmarks.record_run import run
        from benchmarks.results import write_result

        result = run(a.name_, a.overrides, a.threads)
        _emit({k: v for k, v in result.items() if k != "curve"})
        write_result(a.name_, result, a.threads)
    elif a.name == "protocol":
        from benchmarks.protocol import run
        from benchmarks.results import write_result

        result = run(a.data, a.run)
        _emit(result)
        if a.write:
            write_result("protocol", result, threads=1)
    elif a.name == "journey-ablation":
        from benchmarks.journey_ablation import run
        from benchmarks.results import write_result

        result = run(a.data, a.seeds, a.arms, a.threads, a.workdir, a.overrides)
        _emit(result)
        if a.write:
            write_result(f"journey_ablation_{a.data}", result, a.threads)
    elif a.name == "data":
        subprocess.run([sys.executable, "-m", "benchmarks.data_scale", "--sizes", *a.sizes, "--workdir", a.workdir,
                        *(["--write"] if a.write else [])], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
