"""A/B report: CTR and conversion per variant with confidence intervals and the lift's interval.

    python scripts/ab_report.py LOG.jsonl [LOG2.jsonl ...] [--control control] [--alpha 0.05] [--json]

Each LOG holds JSON lines with ``variant``, ``event`` (impression | click | purchase) and,
ideally, ``request_id`` (see journeyrec.serving.abstats). The service's stderr (its JSON log) is
a valid impressions log; append the shop's click / purchase lines to it or pass both files.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import chain
from pathlib import Path

from journeyrec.serving.abstats import count_log, read_jsonl, report


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--control", default=None, help="control variant (default: 'control' or the first name)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.logs if not p.is_file()]
    if missing:
        parser.error(f"log file(s) not found: {missing}")
    handles = [open(p, encoding="utf-8") for p in args.logs]
    try:
        rep = report(count_log(read_jsonl(chain(*handles))), args.control, args.alpha)
    except ValueError as exc:
        print(f"ab_report: {exc}", file=sys.stderr)
        return 2
    finally:
        for h in handles:
            h.close()
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    level = f"{100 * rep['level']:.0f}%"
    print(f"control: {rep['control']}   intervals: {level} (Wilson; lift: log risk ratio)")
    header = f"{'variant':<16}{'impressions':>12}  {'CTR':>8} [{level} CI]        {'conversion':>10} [{level} CI]"
    print(header)
    for name, row in rep["variants"].items():
        ctr, conv = row["ctr"], row["conversion"]
        print(f"{name:<16}{row['impressions']:>12}  {_pct(ctr['value'])} [{_pct(ctr['ci'][0])}, {_pct(ctr['ci'][1])}]  "
              f"{_pct(conv['value'])} [{_pct(conv['ci'][0])}, {_pct(conv['ci'][1])}]")
    for name, row in rep["variants"].items():
        if name == rep["control"]:
            continue
        for metric in ("ctr", "conversion"):
            lift = row[metric]["lift"]
            print(f"lift of {name} over {rep['control']} in {metric}: {100 * lift['value']:+.2f}% "
                  f"[{100 * lift['ci'][0]:+.2f}%, {100 * lift['ci'][1]:+.2f}%]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
