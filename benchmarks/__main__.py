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
  live           journey store: intake events/s per backend, customer-id vs stateless endpoint p50/p99, batch for 100k customers

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
    p = sub.add_parser("live")
    p.add_argument("--bundle", required=True)
    p.add_argument("--out", default="docs/results", help="folder of the JSON result files ('' = none)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of intake per backend")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=100, help="events per intake request")
    p.add_argument("--requests", type=int, default=1500, help="latency: requests per endpoint and backend")
    p.add_argument("--customers", type=int, default=100_000, help="batch: customers in the store")
    p.add_argument("--parts", nargs="+", default=["intake", "latency", "batch"], choices=["intake", "latency", "batch"])
    a = ap.parse_args()

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
    elif a.name == "live":
        from benchmarks.live_store import run

        for result in run(a.bundle, a.out or None, a.duration, a.clients, a.batch, a.requests, a.customers, tuple(a.parts)):
            _emit(result)
    elif a.name == "data":
        subprocess.run([sys.executable, "-m", "benchmarks.data_scale", "--sizes", *a.sizes, "--workdir", a.workdir],
                       check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
