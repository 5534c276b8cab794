"""One training step of ``experiment=s3rec_best``'s network with journeyrec's CPU dropout
(:mod:`journeyrec.models.dropout`) against torch's own (``F.dropout`` and the dropout inside
``scaled_dot_product_attention``), and the dropout of one activation tensor alone, timed in
interleaved rounds in the same run.

The step is the newest-position step of ``loss.targets=newest``: a batch of windows through the
non-causal SASRec with the BSARec filter, the newest position's full softmax over the catalogue,
backward and Adam. Windows hold random item ids at a fixed length (``--lengths``: the step's cost
grows with it; the training windows of the S3-Rec files are mostly short)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.interleaved import interleaved_medians

__all__ = ["add_arguments", "main", "run"]


@contextmanager
def torch_dropout() -> Iterator[None]:
    """Inside: every journeyrec dropout is ``F.dropout`` and attention is SDPA with its own dropout."""
    import journeyrec.models.dropout as d
    import journeyrec.models.encoder as e

    saved = d.dropout, e.attention
    d.dropout = lambda x, p, training=True: F.dropout(x, p, training)  # type: ignore[assignment]
    e.attention = lambda q, k, v, m, c, p: F.scaled_dot_product_attention(  # type: ignore[assignment]
        q, k, v, attn_mask=m, dropout_p=p, is_causal=c
    )
    try:
        yield
    finally:
        d.dropout, e.attention = saved


def run(items: int, batch: int, length: int, dropout: float, rounds: int, threads: int) -> dict[str, Any]:
    from journeyrec.models import build_model
    from journeyrec.models.dropout import dropout as fast_dropout

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(
        {
            "name": "sasrec",
            "d_model": 128,
            "n_blocks": 2,
            "n_heads": 2,
            "max_len": 50,
            "dropout": dropout,
            "mixer": "bsa",
            "filter_alpha": 0.7,
            "filter_cutoff": 3,
            "causal": False,
        },
        items,
        {},
    )
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    windows = torch.randint(1, items + 1, (batch, length))
    targets = torch.randint(1, items + 1, (batch,))

    def step() -> None:
        h = model.last_hidden(windows)
        loss = F.cross_entropy(h @ model.item_vectors().T, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_torch() -> None:
        with torch_dropout():
            step()

    x = torch.randn(batch, length, 128)
    median = interleaved_medians(
        {
            "step_journeyrec": step,
            "step_torch": step_torch,
            "mask_journeyrec": lambda: fast_dropout(x, dropout),
            "mask_torch": lambda: F.dropout(x, dropout, True),
        },
        rounds,
    )
    return {
        "benchmark": "dropout",
        "items": items,
        "batch": batch,
        "length": length,
        "dropout": dropout,
        "threads": threads,
        "rounds": rounds,
        "step_ms_journeyrec": round(median["step_journeyrec"] * 1e3, 1),
        "step_ms_torch": round(median["step_torch"] * 1e3, 1),
        "step_speedup": round(median["step_torch"] / median["step_journeyrec"], 2),
        "dropout_ms_journeyrec": round(median["mask_journeyrec"] * 1e3, 2),
        "dropout_ms_torch": round(median["mask_torch"] * 1e3, 2),
        "dropout_speedup": round(median["mask_torch"] / median["mask_journeyrec"], 1),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=int, default=12_101, help="catalogue size (default: Beauty's)")
    p.add_argument("--batch", type=int, default=768, help="windows per step (s3rec_best's)")
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 50])
    p.add_argument("--dropout", type=float, default=0.6)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)


def main(a: argparse.Namespace, _: argparse.ArgumentParser) -> Iterator[dict[str, Any]]:
    for length in a.lengths:
        yield run(a.items, a.batch, length, a.dropout, a.rounds, a.threads)
