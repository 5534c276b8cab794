"""Benchmark suite: python -m benchmarks NAME [options] [--save [RESULT_NAME]]. Every benchmark prints
one JSON line per result, with its ratios against a baseline measured in the same run on this
machine; ``--save`` also writes them with their command, machine, threads, date and commit to
docs/results/RESULT_NAME.json (default: NAME with underscores), from which the docs render.

  train-vs-peer      time to quality and throughput vs RecTools' SASRec (own virtualenv), Beauty
  eval               full-ranking users/s for 100k users x 1M items vs the SGEMM FLOP bound
  faiss              Flat / HNSW32 / IVF-PQ fast-scan on 1M x 64 (+ a real bundle): build, recall@10, QPS
  serving            recommend-latency and loadtest together on one bundle (in process, then HTTP)
  recommend-latency  in-process recommend() latency with every rule on vs the model alone and the eager model
  gc-pauses          the serving process's garbage collections: start-up objects collected vs frozen
  loadtest           HTTP load (open or closed loop) against a running service on 127.0.0.1
  soak               a served bundle under a fixed rate for minutes: errors and memory growth
  data-scale         generate + prepare 1M / 10M / 50M events: events/s and peak RSS
  memory             peak memory of one training step vs catalogue size per loss and path
  softmax            one full-softmax step with exclude_seen / the repeat bias vs the plain softmax
  dropout            one s3rec_best training step with journeyrec's CPU dropout vs torch's, and one mask alone
  ema                one weight-average update: Lightning's per-parameter path vs the foreach one in use
  validation         one validation pass on a real file: the evaluation path in use vs the straightforward one
  atomic-kills       every artifact writer SIGKILLed mid-write N times: torn / older / stray files (vs a naive writer)
  demo-shop          the demo shop generator: time vs an earlier version (from git), journey statistics
  gpu                s3rec_best on Beauty in fp32 / bf16-mixed, eager / compiled, on CUDA; full vs sampled softmax
  protocol           seen-excluded figures under S3-Rec's rule vs the rule that ranked repeated targets
  journey-ablation   next-purchase / next-cart NDCG@10 with item ids only, + event type, channel, time gap, context
  record-run         one scripts/train.py run's metrics, curve and wall time as docs/results/<name>.json
  live               journey store: intake events/s per backend, customer-id vs stateless endpoint p50/p99, batch
  bandit             demo shop CTR by round: exploration by the Thompson bandit vs random vs none (true clicks)
  abandonment        cart-abandonment AUC: boosted trees / logistic / intent head vs count logistic and cart age
  served-replay      test cases through Recommender.recommend per rule configuration: accuracy, coverage, own brand

Run under the shared CPU lock on a quiet machine; every figure states its threads.
"""

from __future__ import annotations

import os
import sys

# A serving process runs one BLAS thread (harness.start_server); the in-process latency benchmark
# must too, and OpenBLAS reads the setting once, when NumPy loads, hence before any import below.
if sys.argv[1:2] in (["recommend-latency"], ["serving"], ["gc-pauses"]):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks import harness  # noqa: E402
from benchmarks.harness import command_line, emit, result_record, save_result, write_result  # noqa: E402

Runner = Callable[[argparse.Namespace, argparse.ArgumentParser], Iterable[dict]]


# --------------------------------------------------------------------------- benchmarks with options here
def _train_vs_peer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data/amazon/Beauty.txt")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workdir", default=".cache/bench/train-vs-peer")
    p.add_argument(
        "--compare-only",
        action="store_true",
        help="recompute the comparison from the workdir's finished runs, without training",
    )


def _train_vs_peer(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.train_vs_peer import compare, run

    result = compare(a.workdir, a.data) if a.compare_only else run(a.data, a.epochs, a.workdir)
    result.pop("curves")
    return [result]


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--topk", type=int, default=0, help="also build top-k lists (beyond-accuracy metrics)")
    p.add_argument(
        "--interleaved-peak",
        action="store_true",
        help="also time an SGEMM burst before every batch (for a shared, busy machine)",
    )


def _eval(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.eval_throughput import run

    return [run(a.users, a.items, a.dim, topk=a.topk, interleaved_peak=a.interleaved_peak)]


def _faiss_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bundle", default=None, help="a trained run's bundle/ (real item vectors + session queries)")


def _faiss(a: argparse.Namespace, _: argparse.ArgumentParser) -> Iterable[dict]:
    from benchmarks.faiss_bench import run

    return run(a.items, a.dim, a.queries, a.threads, a.bundle)


def _serving_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=2000)


def _serving(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.serving_bench import run

    return run(a.bundle, a.duration, a.rate, a.clients, a.requests)


def _memory_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", nargs="+", type=lambda v: int(float(v)), default=[10_000, 100_000, 1_000_000])
    p.add_argument(
        "--losses", nargs="+", default=None, help="default: sampled_softmax gbce softmax softmax_materialised"
    )
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--negatives", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--paths",
        nargs="+",
        default=["table"],
        choices=["table", "rows", "rows_sparse"],
        help="table: the whole item table every step (every loss); rows / rows_sparse: the sampled "
        "losses' gathered rows, dense / sparse id-embedding gradient, + the first Adam step",
    )


def _memory(a: argparse.Namespace, _: argparse.ArgumentParser) -> Iterable[dict]:
    from benchmarks.loss_memory import LOSSES_MEASURED, run

    return run(
        tuple(a.sizes),
        tuple(a.losses or LOSSES_MEASURED),
        a.dim,
        a.batch,
        a.max_len,
        a.negatives,
        threads=a.threads,
        paths=tuple(a.paths),
    )


def _softmax_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--positions", type=int, default=1100)
    p.add_argument("--items", type=int, default=12_101)
    p.add_argument("--threads", type=int, default=1)


def _softmax(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.softmax_step import run

    return [run(a.positions, a.items, threads=a.threads)]


def _ema_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=int, default=12_101)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)


def _ema(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.ema_update import run

    return [run(a.items, updates=a.updates, threads=a.threads)]


def _validation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data/amazon/Sports_and_Outdoors.txt")
    p.add_argument("--experiment", default="s3rec_best")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="more config overrides, key=value")


def _validation(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.validation_pass import run

    return [run(a.data, a.experiment, a.overrides, threads=a.threads)]


def _demo_shop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default="ba2a47b", help="a commit whose generator is timed beside today's ('' = none)")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write", action="store_true", help="also write docs/results/demo_shop.json")


def _demo_shop(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.demo_shop import run

    result = run(a.baseline or None, a.customers, a.rounds, a.threads)
    if a.write:
        write_result("demo_shop", result, a.threads)
    return [result]


def _gpu_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script without a GPU")
    p.add_argument("--data", default=None, help="an S3-Rec-format file (default ../shared/data/amazon/Beauty.txt)")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--budget", type=float, default=690.0, help="seconds for everything after data preparation")
    p.add_argument("--softmax-items", type=int, default=1_000_000)
    p.add_argument(
        "--bar",
        type=float,
        default=None,
        help="quality bar (valid seen-excluded NDCG@10); default 95%% of the fp32 arm's best",
    )
    p.add_argument("--cpu-metrics", default=None, help="a CPU run's metrics.json of the same configuration")
    p.add_argument("--arms", nargs="+", default=None, help="default: fp32 bf16-mixed fp32+compile bf16-mixed+compile")
    p.add_argument("--workdir", default=".cache/bench/gpu")
    p.add_argument("--write", action="store_true", help="write docs/results/gpu[_dry_run].json (after every arm)")
    p.add_argument("overrides", nargs="*", help="more scripts/train.py overrides for every arm")


def _gpu(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.gpu import run

    name = "gpu_dry_run" if a.dry_run else "gpu"

    def save(partial: dict) -> None:
        if a.write:
            write_result(name, partial, threads=0)

    return [
        run(
            a.workdir,
            a.dry_run,
            a.data,
            a.max_epochs,
            a.budget,
            a.softmax_items,
            a.bar,
            a.cpu_metrics,
            a.arms,
            a.overrides,
            on_update=save,
        )
    ]


def _protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", default=None, help="default: every data set of benchmarks/protocol.py DATA")
    p.add_argument(
        "--run", nargs="*", default=[], help="training run directories (bundle/ + prepared/) to score both ways"
    )
    p.add_argument("--write", action="store_true", help="also write docs/results/protocol.json")


def _protocol(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.protocol import run

    result = run(a.data, a.run)
    if a.write:
        write_result("protocol", result, threads=1)
    return [result]


def _journey_ablation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="demo | taobao | yoochoose")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=None, help="default: all (a_item_ids ... e_context_only)")
    p.add_argument("--threads", type=int, default=1, help="per run (on a busy 2-core machine one thread is far faster)")
    p.add_argument(
        "--workdir", default=None, help="default .cache/bench/journey-ablation/<data>; finished runs are reused"
    )
    p.add_argument("--write", action="store_true", help="also write docs/results/journey_ablation_<data>.json")
    p.add_argument("overrides", nargs="*", help="more scripts/train.py overrides for every arm")


def _journey_ablation(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.journey_ablation import run

    result = run(a.data, a.seeds, a.arms, a.threads, a.workdir, a.overrides)
    if a.write:
        write_result(f"journey_ablation_{a.data}", result, a.threads)
    return [result]


def _live_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True)
    p.add_argument("--out", default="docs/results", help="folder of the JSON result files ('' = none)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of intake per backend")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=100, help="events per intake request")
    p.add_argument("--requests", type=int, default=1500, help="latency: requests per endpoint and backend")
    p.add_argument("--customers", type=int, default=100_000, help="batch: customers in the store")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["intake", "latency", "batch"],
        choices=["intake", "latency", "batch", "impressions"],
    )


def _live(a: argparse.Namespace, _: argparse.ArgumentParser) -> Iterable[dict]:
    from benchmarks.live_store import run

    return run(a.bundle, a.out or None, a.duration, a.clients, a.batch, a.requests, a.customers, tuple(a.parts))


def _record_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", dest="name_", required=True, help="docs/results/<name>.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("overrides", nargs="*", help="scripts/train.py overrides")


def _record_run(a: argparse.Namespace, _: argparse.ArgumentParser) -> list[dict]:
    from benchmarks.record_run import run

    result = run(a.name_, a.overrides, a.threads)
    write_result(a.name_, result, a.threads)
    return [{k: v for k, v in result.items() if k != "curve"}]


# --------------------------------------------------------------------------- benchmarks with their own options
def _module(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Runner]:
    """A benchmark module's ``add_arguments`` and ``main``, imported only when that benchmark runs
    (each pulls in its own heavy dependencies: torch, FAISS, the serving stack)."""

    def add(p: argparse.ArgumentParser) -> None:
        importlib.import_module(f"benchmarks.{name}").add_arguments(p)

    def run(a: argparse.Namespace, p: argparse.ArgumentParser) -> Iterable[dict]:
        return importlib.import_module(f"benchmarks.{name}").main(a, p)

    return add, run


BENCHMARKS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Runner]] = {
    "train-vs-peer": (_train_vs_peer_args, _train_vs_peer),
    "eval": (_eval_args, _eval),
    "faiss": (_faiss_args, _faiss),
    "serving": (_serving_args, _serving),
    "recommend-latency": _module("recommend_latency"),
    "gc-pauses": _module("gc_pauses"),
    "loadtest": _module("loadtest"),
    "soak": _module("soak"),
    "data-scale": _module("data_scale"),
    "memory": (_memory_args, _memory),
    "softmax": (_softmax_args, _softmax),
    "dropout": _module("dropout_step"),
    "ema": (_ema_args, _ema),
    "validation": (_validation_args, _validation),
    "atomic-kills": _module("atomic_kills"),
    "demo-shop": (_demo_shop_args, _demo_shop),
    "gpu": (_gpu_args, _gpu),
    "protocol": (_protocol_args, _protocol),
    "journey-ablation": (_journey_ablation_args, _journey_ablation),
    "record-run": (_record_run_args, _record_run),
    "live": (_live_args, _live),
    "bandit": _module("bandit"),
    "abandonment": _module("abandonment"),
    "served-replay": _module("served_replay"),
}


def _result_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a result name is lower-case letters, digits and _ (the file is docs/results/<name>.json)"
        )
    return value


def _threads(a: argparse.Namespace) -> int | str:
    """The threads the figures ran with: the benchmark's own option, else torch's setting when it
    ran torch in this process, else the OpenMP setting or every core."""
    if getattr(a, "threads", None):
        return int(a.threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return os.environ.get("OMP_NUM_THREADS") or f"default ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="name", required=True, metavar="NAME")
    parsers = {}
    # only the chosen benchmark's options are built: building them imports its module
    chosen = argv[0] if argv and argv[0] in BENCHMARKS else None
    for name, (add, _) in BENCHMARKS.items():
        p = sub.add_parser(name, add_help=name == chosen)
        if name == chosen:
            add(p)
            p.add_argument(
                "--save",
                nargs="?",
                const=name.replace("-", "_"),
                default=None,
                metavar="RESULT_NAME",
                type=_result_name,
                help="also write the results to docs/results/RESULT_NAME.json (default: %(const)s)",
            )
        parsers[name] = p
    a = ap.parse_args(argv)
    harness.started_commit()  # the commit of the code that runs, before a long benchmark ends
    rows: list[dict[str, Any]] = []
    for row in BENCHMARKS[a.name][1](a, parsers[a.name]):
        emit(row)
        rows.append(row)
    if a.save:
        path = save_result(result_record(a.save, rows, command_line(argv), _threads(a)), harness.RESULTS_DIR)
        print(f"saved {path}", file=sys.stderr)
    return 1 if any(r.get("passed") is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
