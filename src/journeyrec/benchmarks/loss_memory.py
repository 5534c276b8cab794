"""Peak memory of one training step (forward + backward) against catalogue size, per loss.

Each case runs in a fresh Python process, because the only honest CPU figure is the process's
resident high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): tracemalloc does not
see torch's allocator, and the high-water mark of a process that already ran a bigger case
would hide a smaller one. The child builds a SASRec with an ``items``-row embedding table and a
full-length random batch, reads the high-water mark, runs one forward + backward step of
:class:`journeyrec.models.losses.RecLoss`, and reports how far the step raised it.

Every loss pays for the dense gradient of the item table ((N + 1) x D float32; an embedding's
gradient is dense), reported as ``table_grad_mib``; ``step_minus_table_grad_mib`` is what the
loss itself adds on top. ``softmax`` is journeyrec's chunked full softmax
(:class:`~journeyrec.models.losses.ChunkedSoftmaxCE`: [positions x items] logits never exist
beyond one ~8 MiB chunk); ``softmax_materialised`` is the textbook ``F.cross_entropy`` on the
full logits matrix, the baseline measured in the same run (skipped where it would exceed
``max_materialised_gib``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Iterator

__all__ = ["LOSSES_MEASURED", "measure_case", "run"]

LOSSES_MEASURED = ("sampled_softmax", "gbce", "softmax", "softmax_materialised")  # sampled first: the ratios' baseline


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure_case(loss: str, items: int, d_model: int, batch: int, max_len: int, n_negatives: int,
                 seed: int = 0) -> dict:
    """One forward + backward step in THIS process; call it in a fresh process (see ``run``)."""
    import torch
    import torch.nn.functional as F

    from journeyrec.models.losses import LossConfig, RecLoss
    from journeyrec.models.sasrec import SASRec

    torch.manual_seed(seed)
    model = SASRec(items, d_model=d_model, n_blocks=2, n_heads=2, max_len=max_len, dropout=0.0)
    seq = torch.randint(1, items + 1, (batch, max_len + 1))
    inputs, targets = seq[:, :-1], seq[:, 1:].reshape(-1)
    fn = None if loss == "softmax_materialised" else RecLoss(LossConfig(loss=loss, n_negatives=n_negatives), items)
    before = _maxrss_mib()
    t0 = time.perf_counter()
    hidden = model(inputs).reshape(-1, d_model)
    vectors = model.item_vectors()
    if fn is None:
        value = F.cross_entropy(hidden @ vectors[1:].T, targets - 1)
    else:
        value = fn(hidden, vectors, targets)
    value.backward()
    seconds = time.perf_counter() - t0
    step = _maxrss_mib() - before
    table_grad = (items + 1) * d_model * 4 / 2**20
    return {
        "benchmark": "memory",
        "loss": loss,
        "items": items,
        "positions": int(targets.numel()),
        "d_model": d_model,
        "n_negatives": n_negatives if loss in ("sampled_softmax", "gbce") else 0,
        "baseline_rss_mib": round(before, 1),
        "step_peak_delta_mib": round(step, 1),
        "table_grad_mib": round(table_grad, 1),
        "step_minus_table_grad_mib": round(step - table_grad, 1),
        "step_seconds": round(seconds, 3),
        "loss_value": round(float(value), 4),
        "torch_threads": torch.get_num_threads(),
    }


def run(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), losses: tuple[str, ...] = LOSSES_MEASURED,
        d_model: int = 64, batch: int = 16, max_len: int = 50, n_negatives: int = 256,
        max_materialised_gib: float = 2.0, threads: int = 1) -> Iterator[dict]:
    """One result per (size, loss), each from a fresh process; ``growth_vs_smallest`` is the
    step delta relative to the same loss at the smallest size, ``ratio_vs_sampled_softmax`` the
    step delta relative to sampled softmax at the same size (both measured in this run)."""
    first: dict[str, float] = {}
    for items in sizes:
        sampled = None
        for loss in losses:
            logits_bytes = batch * max_len * items * 4
            if loss == "softmax_materialised" and 3 * logits_bytes > max_materialised_gib * 2**30:
                yield {"benchmark": "memory", "loss": loss, "items": items, "skipped":
                       f"needs ~{3 * logits_bytes / 2**30:.1f} GiB (logits, softmax, gradient) > {max_materialised_gib} GiB"}
                continue
            case = dict(loss=loss, items=items, d_model=d_model, batch=batch, max_len=max_len, n_negatives=n_negatives)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            proc = subprocess.run([sys.executable, "-m", "journeyrec.benchmarks.loss_memory", json.dumps(case)],
                                  capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"memory case {case} failed ({proc.returncode}): {proc.stderr[-2000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            delta = max(result["step_peak_delta_mib"], 1e-3)
            first.setdefault(loss, delta)
            result["growth_vs_smallest"] = round(delta / first[loss], 2)
            if loss == "sampled_softmax":
                sampled = delta
            if sampled is not None:
                result["ratio_vs_sampled_softmax"] = round(delta / sampled, 2)
            yield result


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(json.dumps(measure_case(**json.loads(sys.argv[1]))), flush=True)
