"""Benchmark suite: python scripts/benchmark.py NAME [options]; prints one JSON line per result.

NAME: train-vs-peer (RecTools SASRec on an S3-Rec file).
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="name", required=True)
    p = sub.add_parser("train-vs-peer", help="time to quality and throughput vs RecTools' SASRec")
    p.add_argument("--data", default="../shared/data/amazon/Beauty.txt")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workdir", default=".cache/bench/train-vs-peer")
    a = ap.parse_args()
    if a.name == "train-vs-peer":
        from journeyrec.benchmarks.train_vs_peer import run

        result = run(a.data, a.epochs, a.workdir)
        result.pop("curves")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
