"""Time of one full-softmax training step (forward and backward of the chunked loss) with the
seen-item options, against the plain softmax measured in the same run.

The repeat bias and ``exclude_seen`` read each position's earlier items; they should cost about
what the plain softmax does (the seen items are a few columns per position, read sparsely). The
default shape is a Beauty batch: 128 sequences x ~8.6 target positions, 12,101 items, d = 64,
a window of 50 earlier items per position.
"""

from __future__ import annotations

import torch

from benchmarks.interleaved import interleaved_medians
from journeyrec.models.losses import softmax_loss

__all__ = ["run"]

VARIANTS = {
    "plain": {},
    "exclude_seen": {"exclude": True},
    "repeat_bias": {"exclude": True, "bias": True},
    "repeat_bias+exclude_seen": {"exclude": True, "bias": True, "drop_seen": True},
}


def run(
    positions: int = 1100,
    items: int = 12_101,
    dim: int = 64,
    window: int = 50,
    repeats: int = 7,
    threads: int = 1,
    seed: int = 0,
) -> dict:
    """Median seconds per step of each variant (interleaved, so machine drift hits all alike)."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(positions, dim, generator=gen).requires_grad_()
    w = (torch.randn(items + 1, dim, generator=gen) * 0.1).requires_grad_()
    targets = torch.randint(1, items + 1, (positions,), generator=gen)
    seen = torch.randint(0, items + 1, (positions, window), generator=gen)
    bias = torch.zeros((), requires_grad=True)

    def step(v: dict) -> None:
        softmax_loss(
            h,
            w,
            targets,
            exclude=seen if v.get("exclude") else None,
            seen_bias=bias if v.get("bias") else None,
            drop_seen=v.get("drop_seen"),
        ).backward()

    # one warm-up round (allocator, caches)
    median = interleaved_medians({name: (lambda v=v: step(v)) for name, v in VARIANTS.items()}, repeats)
    return {
        "benchmark": "softmax",
        "positions": positions,
        "items": items,
        "dim": dim,
        "window": window,
        "threads": threads,
        "repeats": repeats,
        "ms_per_step": {name: round(s * 1e3, 1) for name, s in median.items()},
        "ratio_vs_plain": {name: round(s / median["plain"], 2) for name, s in median.items()},
    }
