"""Full-ranking evaluation throughput against the matrix-multiply FLOP bound of this CPU.

Scoring every item for every user is a matrix product: ``2 * users * items * dim`` floating-point
operations. The bound is that count divided by the machine's sustained SGEMM rate, measured in
the same run on a large square product (the best the BLAS does here). The benchmark times
journeyrec's own evaluation kernel (``evaluation.rank_kernel.rank_vectors``: ranks under both
protocols with seen-item exclusion, optionally the top-k lists for beyond-accuracy metrics) on
synthetic embeddings, in the same batches ``evaluation.ranking.evaluate`` uses, and reports
users/s and the ratio to the bound (1.0 would be the bound itself).

On a shared machine the rate the BLAS gets drifts during a long run. ``interleaved_peak`` then
also measures a short SGEMM burst (same 2048 x 2048 product) right before and after every batch
and reports the median over batches of (batch time / that batch's FLOP bound at the faster
burst's rate) as ``ratio_to_interleaved_bound``: both sides of each ratio see the same
contention. The bursts are not timed as evaluation.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from journeyrec.evaluation.rank_kernel import rank_vectors

__all__ = ["sgemm_peak", "run"]


def sgemm_peak(n: int = 2048, repeats: int = 5, rounds: int = 3) -> float:
    """Best sustained float32 GEMM rate (FLOP/s) over a few timed rounds of n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t0))
    return best


def run(
    users: int = 100_000,
    items: int = 1_000_000,
    dim: int = 64,
    batch: int = 512,
    history: int = 10,
    topk: int = 0,
    seed: int = 0,
    interleaved_peak: bool = False,
) -> dict:
    """Time rank_vectors over ``users`` synthetic cases against ``items`` items."""
    g = torch.Generator().manual_seed(seed)
    item_vecs = torch.randn(items + 1, dim, generator=g) / dim**0.5
    peak_before = sgemm_peak()
    elapsed = 0.0
    checksum = 0
    done = 0
    batch_ratios = []
    while done < users:
        b = min(batch, users - done)
        q = torch.randn(b, dim, generator=g)
        targets = torch.randint(1, items + 1, (b,), generator=g)
        rows = torch.arange(b).repeat_interleave(history)
        hist = torch.randint(1, items + 1, (b * history,), generator=g)
        burst = sgemm_peak(repeats=1, rounds=1) if interleaved_peak else 0.0
        t0 = time.perf_counter()
        out = rank_vectors(q, item_vecs, targets, rows, hist, topk=topk)
        dt = time.perf_counter() - t0
        elapsed += dt
        if burst:
            burst = max(burst, sgemm_peak(repeats=1, rounds=1))
            batch_ratios.append(dt / (2.0 * b * items * dim / burst))
        checksum += int(out["seen_excluded"].sum())
        done += b
    peak = max(peak_before, sgemm_peak())
    flops = 2.0 * users * items * dim
    bound = flops / peak
    result = {
        "benchmark": "eval",
        "users": users,
        "items": items,
        "dim": dim,
        "batch": batch,
        "history_per_user": history,
        "topk_lists": topk,
        "seconds": round(elapsed, 2),
        "users_per_s": round(users / elapsed, 1),
        "achieved_gflops": round(flops / elapsed / 1e9, 1),
        "sgemm_peak_gflops": round(peak / 1e9, 1),
        "flop_bound_seconds": round(bound, 2),
        "ratio_to_flop_bound": round(elapsed / bound, 3),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "checksum": checksum,
    }
    if batch_ratios:
        result["ratio_to_interleaved_bound"] = round(statistics.median(batch_ratios), 3)
        result["interleaved_ratio_quartiles"] = (
            [round(x, 3) for x in statistics.quantiles(batch_ratios, n=4)] if len(batch_ratios) > 1 else []
        )
    return result
