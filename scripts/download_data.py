"""Fetch a public dataset's official files for the readers:

    python scripts/download_data.py --list
    python scripts/download_data.py movielens --variant ml-1m      # -> data/movielens/
    python scripts/download_data.py otto --info                    # provenance and licence only

Then prepare it: python scripts/prepare_data.py data=NAME data.path=data/NAME/...
Read the licence printed for each dataset before using it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from journeyrec.data.download import PROVENANCE, describe, download

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "name", nargs="?", choices=sorted(PROVENANCE), help="dataset (the data config of the same name reads it)"
    )
    ap.add_argument("--list", action="store_true", help="list the datasets with publisher and licence")
    ap.add_argument("--info", action="store_true", help="print provenance and licence, download nothing")
    ap.add_argument("--variant", default=None, help="e.g. ml-1m (movielens) or Beauty (s3rec)")
    ap.add_argument("--target", default=None, help="directory (default: data/NAME)")
    args = ap.parse_args(argv)
    if args.list or not args.name:
        print("\n\n".join(describe(n) for n in sorted(PROVENANCE)))
        return 0
    print(describe(args.name))
    if args.info:
        return 0
    target = args.target or f"data/{args.name}"
    try:
        files = download(args.name, target, args.variant)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{len(files)} file(s) in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
