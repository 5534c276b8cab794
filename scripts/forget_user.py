"""Remove one user's events from a prepared store (right to be forgotten):

    python scripts/forget_user.py --store outputs/prepare/demo/.../prepared --user C0000042
    python scripts/forget_user.py --store ... --pseudonym u3f9c2a7d1e0b4c55

The raw id is pseudonymised with the key used for preparation ($JOURNEYREC_HMAC_KEY or
--hmac-key-file; the public demo key only if the store was prepared with it). The store is
rewritten atomically. Models trained on the store before still reflect the user: retrain them.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="the prepared store directory (holds prepared.json)")
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the raw user id as in the source data")
    who.add_argument("--pseudonym", help="the pseudonymised id as in the store")
    ap.add_argument("--hmac-key-file", default=None, help="file holding the key (default: $JOURNEYREC_HMAC_KEY)")
    args = ap.parse_args(argv)

    from journeyrec.data.card import load_card
    from journeyrec.data.forget import forget_user
    from journeyrec.data.privacy import pseudonymise, resolve_key

    if args.user is not None:
        try:
            demo = bool(load_card(args.store)["privacy"].get("demo_key"))
        except FileNotFoundError:
            demo = False
        pseudonym = pseudonymise(args.user, resolve_key(args.hmac_key_file, allow_demo_key=demo))
    else:
        pseudonym = args.pseudonym
    report = forget_user(args.store, pseudonym)
    if not report["found"]:
        print(f"user {pseudonym} is not in {args.store} (nothing removed; is the key the one used for preparation?)")
        return 1
    print(
        f"removed user {pseudonym} from {args.store}: {report['sequence_events']} sequence positions, "
        f"{report['events']} events, {report['quarantined']} quarantined rows, {report['side_rows']} side-table rows"
    )
    print(
        "models trained on this store before still reflect this user: "
        "retrain them (and delete their bundles / MLflow runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
