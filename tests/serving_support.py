"""A demo-shop bundle for serving tests: the real demo shop (its catalogue, events and
complement ground truth), statistics learned from its events, and a small *untrained* SASRec.

The business rules under test (filters, repeat purchase, complements, boosts, diversity,
exploration, consent) must hold for any model, so no training is needed; the bundle is built
once per test session in a few seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from journeyrec.bundle.format import session_queries, write_bundle
from journeyrec.bundle.stats import learn_stats
from journeyrec.data.prepare import PreparedData, prepare
from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.models.config import SASRecConfig
from journeyrec.models.sasrec import SASRec
from journeyrec.serving.request import Event

N_CUSTOMERS = 3000
DEMO = {
    "name": "demo",
    "path": None,
    "options": {"n_customers": N_CUSTOMERS, "seed": 7},
    "dedup_consecutive": True,
    "allow_demo_key": True,
}
FEATURES = {"event_type": len(EVENT_TYPES), "channel": len(CHANNELS), "time_gap": 10}
DAY_MS = 86_400_000


@dataclass
class DemoBundle:
    path: Path
    prepared: PreparedData
    complements: pa.Table  # ground truth item_id -> complement_item_id

    @property
    def catalog(self) -> pa.Table:
        return self.prepared.sequences.catalog

    def column(self, name: str) -> list:
        return self.catalog.column(name).to_pylist()

    def user_events(self, user: int) -> list[Event]:
        s = self.prepared.sequences
        lo, hi = int(s.offsets[user]), int(s.offsets[user + 1])
        return [
            Event(str(s.item_ids[i - 1]), EVENT_TYPES[e - 1], CHANNELS[c - 1], int(t))
            for i, e, c, t in zip(s.items[lo:hi], s.event_types[lo:hi], s.channels[lo:hi], s.timestamps[lo:hi])
        ]

    def sessions(self, n: int, min_len: int = 5, seed: int = 0) -> list[list[Event]]:
        s = self.prepared.sequences
        users = np.flatnonzero(s.lengths >= min_len)
        picks = np.random.default_rng(seed).choice(users, size=min(n, len(users)), replace=False)
        return [self.user_events(int(u)) for u in picks]


LIVE_ATTRIBUTES = ["category", "brand", "price", "size", "colour"]


def build_demo_bundle(directory: Path, index: str = "Flat", attributes: list[str] | None = None) -> DemoBundle:
    """``attributes``: item attributes the model reads (default none), e.g. LIVE_ATTRIBUTES for the
    live catalogue's new items, whose vectors are their attribute part."""
    prepared = prepare(DEMO)
    seqs = prepared.sequences
    torch.manual_seed(0)
    if attributes:
        cfg = SASRecConfig(
            d_model=16,
            n_blocks=1,
            n_heads=2,
            max_len=20,
            dropout=0.0,
            features=list(FEATURES),
            attributes=list(attributes),
        )
        model = SASRec.from_config(cfg, seqs.n_items, FEATURES, seqs.catalog).eval()
    else:
        model = SASRec(
            seqs.n_items, d_model=16, n_blocks=1, n_heads=2, max_len=20, dropout=0.0, features=FEATURES
        ).eval()
    queries = session_queries(model, seqs, prepared.split.valid, n=400)
    write_bundle(
        directory,
        model,
        seqs.catalog,
        {"data": DEMO},
        {},
        index,
        stats=learn_stats(seqs),
        queries=queries,
        query_source="validation session vectors",
    )
    return DemoBundle(directory, prepared, prepared.extras["complements"])


class ThreadServer:
    """uvicorn in a background thread on an ephemeral 127.0.0.1 port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, access_log=False, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def uid(what: str) -> str:
    """A fresh id (``what-<10 hex>``), so tests sharing one store never meet each other's customers."""
    return f"{what}-{uuid.uuid4().hex[:10]}"


def items_of(answer: dict) -> list[str]:
    """The item ids of a recommendation answer, in order."""
    return [x["item_id"] for x in answer["items"]]
