"""Sample recommendations for a few test customers, printed after a training run (``show_samples``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from journeyrec.data.prepare import load_prepared
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.serving.recommender import Recommender
from journeyrec.serving.request import RecommendRequest

__all__ = ["print_samples", "show_samples", "describe_item"]


def describe_item(catalog_row: Mapping[str, Any], item_id: str) -> str:
    title = catalog_row.get("title")
    if title:
        cat = catalog_row.get("category") or ""
        return f"{title} [{cat.rsplit('/', 1)[-1]}]" if cat else str(title)
    tags = catalog_row.get("tags")
    return f"item {item_id}" + (f" (attributes {', '.join(map(str, tags[:4]))})" if tags else "")


def print_samples(recommender: Any, prepared: Any, n: int, k: int = 5, recent: int = 5) -> None:
    """Recent events and top-k recommendations for ``n`` test customers (spread over the test set)."""
    seqs = prepared.sequences
    users = prepared.split.test.users
    if len(users) == 0:
        return
    picks = users[np.linspace(0, len(users) - 1, num=min(n, len(users))).astype(int)]
    rows = recommender.catalog.to_pylist()
    for u in picks:
        lo, hi = int(seqs.offsets[u]), int(seqs.offsets[u + 1])
        ids = [str(seqs.item_ids[i - 1]) for i in seqs.items[lo:hi]]
        et = [EVENT_TYPES[c - 1] for c in seqs.event_types[lo:hi]]
        ch = [CHANNELS[c - 1] for c in seqs.channels[lo:hi]]
        ts = seqs.timestamps[lo:hi].tolist()
        request = RecommendRequest.from_items(
            ids, k=k, event_types=et, channels=ch, timestamps_ms=ts, now_ms=ts[-1] if ts else None
        )
        res = recommender.recommend(request)
        print(f"\ncustomer {seqs.user_ids[u]} ({hi - lo} events), most recent last:")
        for i in range(max(0, len(ids) - recent), len(ids)):
            print(f"   {et[i]:>9} via {ch[i]:<10} {describe_item(rows[seqs.items[lo + i] - 1], ids[i])}")
        print("  recommended next:")
        for r in res.items:
            item = describe_item(rows[recommender.internal_id(r.item_id) - 1], r.item_id)
            print(f"   {r.score:9.3f}  {item}  <- {r.reason}")


def show_samples(bundle_dir: Path, prepared_dir: Path, n: int) -> None:
    """:func:`print_samples` for a finished run: its bundle, served as the HTTP service would."""
    print_samples(Recommender.load(bundle_dir), load_prepared(prepared_dir, mmap=True), n)
