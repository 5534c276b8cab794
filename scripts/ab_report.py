"""A/B report: CTR, add-to-cart and conversion per variant with confidence intervals and the lift's
interval, from the journey store's impressions and reactions or from JSON-lines logs.

    python scripts/ab_report.py --store outputs/store/journeys.sqlite --experiment own_brand_boost
    python scripts/ab_report.py --store redis://127.0.0.1:6379/0 [--prefix jr] --experiment own_brand_boost
    python scripts/ab_report.py LOG.jsonl [LOG2.jsonl ...]
    [--control control] [--alpha 0.05] [--json]

The store holds every list the service showed and the reactions attributed to it (POST
/v1/feedback, and carts / purchases sent as events): nothing to join; the same figures as
GET /v1/ab/report. A log holds JSON lines with ``variant``, ``event`` (impression | click | cart |
purchase) and, ideally, ``request_id`` (see journeyrec.serving.abstats).
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import chain
from pathlib import Path

from journeyrec.serving.abstats import METRICS, count_log, read_jsonl, report, store_counts
from journeyrec.serving.settings import StoreConfig

LABELS = {"ctr": "CTR", "add_to_cart": "add-to-cart", "conversion": "conversion"}


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def _from_store(where: str, prefix: str, experiment: str, control: str | None, alpha: float) -> dict:
    from journeyrec.serving.store import open_store  # the store (and Redis client) only for --store

    if where.startswith(("redis://", "rediss://", "unix://")):
        cfg = StoreConfig(backend="redis", url=where, prefix=prefix)
    else:
        if not Path(where).is_file():
            raise ValueError(f"store file {where} not found (the service's store.path, or a redis:// URL)")
        cfg = StoreConfig(backend="sqlite", path=where)
    with open_store(cfg) as store:
        counts = store_counts(store.ab_counts(experiment))
    if not counts:
        raise ValueError(f"no list of experiment {experiment!r} shown to an identified customer in {where}")
    return {"experiment": experiment, "source": "journey store", **report(counts, control, alpha)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="*", type=Path)
    parser.add_argument("--store", default=None, help="the journey store: a SQLite file or a redis:// URL")
    parser.add_argument("--prefix", default="jr", help="Redis key prefix of the store (store.prefix)")
    parser.add_argument(
        "--experiment", default="none", help="experiment name (configs/ab/*.yaml name; 'none' without one)"
    )
    parser.add_argument("--control", default=None, help="control variant (default: 'control' or the first name)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if bool(args.store) == bool(args.logs):
        parser.error("give either --store or log files")
    missing = [str(p) for p in args.logs if not p.is_file()]
    if missing:
        parser.error(f"log file(s) not found: {missing}")
    try:
        if args.store:
            rep = _from_store(args.store, args.prefix, args.experiment, args.control, args.alpha)
        else:
            handles = [open(p, encoding="utf-8") for p in args.logs]
            try:
                rep = report(count_log(read_jsonl(chain(*handles))), args.control, args.alpha)
            finally:
                for h in handles:
                    h.close()
    except (ValueError, OSError) as exc:
        print(f"ab_report: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    level = f"{100 * rep['level']:.0f}%"
    print(f"control: {rep['control']}   intervals: {level} (Wilson; lift: log risk ratio)")
    print(f"{'variant':<16}{'impressions':>12}" + "".join(f"  {LABELS[m]:>11} [{level} CI]      " for m in METRICS))
    for name, row in rep["variants"].items():
        cells = "".join(
            f"  {_pct(row[m]['value'])} [{_pct(row[m]['ci'][0])}, {_pct(row[m]['ci'][1])}]" for m in METRICS
        )
        print(f"{name:<16}{row['impressions']:>12}{cells}")
    for name, row in rep["variants"].items():
        if name == rep["control"]:
            continue
        for metric in METRICS:
            lift = row[metric]["lift"]
            print(
                f"lift of {name} over {rep['control']} in {metric}: {100 * lift['value']:+.2f}% "
                f"[{100 * lift['ci'][0]:+.2f}%, {100 * lift['ci'][1]:+.2f}%]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
