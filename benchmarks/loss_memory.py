"""Peak memory of one training step (forward + backward) against catalogue size, per loss.

Each case runs in a fresh Python process, because the only honest CPU figure is the process's
resident high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): tracemalloc does not
see torch's allocator, and the high-water mark of a process that already ran a bigger case
would hide a smaller one. The child builds a SASRec with an ``items``-row embedding table and a
full-length random batch, reads the high-water mark, runs one forward + backward step of
:class:`journeyrec.models.losses.RecLoss`, and reports how far the step raised it.

``path`` is how the step reads the item table:

* ``table``: the model's whole table (id embedding x known mask + attribute means) built every
  step and indexed by the loss, the only path of the full softmax; every loss then pays for the
  dense gradient of the item table ((N + 1) x D float32), reported as ``table_grad_mib``, and
  ``step_minus_table_grad_mib`` is what the loss itself adds on top;
* ``rows``: the sampled losses' training step (:meth:`RecModule.training_step`): only the rows
  of the batch's items, targets and negatives are gathered, but the id embedding's gradient is
  still a dense (N + 1) x D tensor;
* ``rows_sparse``: the same with ``sparse_item_grad`` (a sparse gradient of the gathered rows).

For the ``rows`` paths the first optimiser step is measured after the step (``opt_*``): it
allocates Adam's two moment tables, (N + 1) x D float32 each for the id embedding whichever the
gradient, the part of training memory that is linear in the catalogue by construction.

Peaks are the process's resident high-water mark (``VmHWM``), reset (``/proc/self/clear_refs``)
just before what is measured, so building the model does not hide a smaller step. ``softmax`` is
journeyrec's chunked full softmax (:class:`~journeyrec.models.losses.ChunkedSoftmaxCE`:
[positions x items] logits never exist beyond one ~8 MiB chunk); ``softmax_materialised`` is the
textbook ``F.cross_entropy`` on the full logits matrix, the baseline measured in the same run
(skipped where it would exceed ``max_materialised_gib``).
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
    """Resident high-water mark since the last :func:`_reset_peak` (Linux ``VmHWM``, MiB)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024.0
    except OSError:  # not Linux: the process-lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024.0
    except OSError:
        return _maxrss_mib()


def _reset_peak() -> float:
    """Start a new high-water mark at the current resident size; returns that size."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss_mib()


def measure_case(
    loss: str, items: int, d_model: int, batch: int, max_len: int, n_negatives: int, seed: int = 0, path: str = "table"
) -> dict:
    """One forward + backward step in THIS process; call it in a fresh process (see ``run``)."""
    import warnings

    import torch
    import torch.nn.functional as F

    from journeyrec.models.losses import LossConfig, RecLoss
    from journeyrec.models.sasrec import SASRec

    torch.manual_seed(seed)
    model = SASRec(items, d_model=d_model, n_blocks=2, n_heads=2, max_len=max_len, dropout=0.0)
    seq = torch.randint(1, items + 1, (batch, max_len + 1))
    inputs, targets = seq[:, :-1], seq[:, 1:].reshape(-1)
    table_grad = (items + 1) * d_model * 4 / 2**20
    result = {
        "benchmark": "memory",
        "loss": loss,
        "path": path,
        "items": items,
        "positions": int(targets.numel()),
        "d_model": d_model,
        "n_negatives": n_negatives if loss in ("sampled_softmax", "gbce") else 0,
        "id_table_mib": round(table_grad, 1),
    }
    if path == "table":
        fn = None if loss == "softmax_materialised" else RecLoss(LossConfig(name=loss, n_negatives=n_negatives), items)
        before = _reset_peak()
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
        result.update(table_grad_mib=round(table_grad, 1), step_minus_table_grad_mib=round(step - table_grad, 1))
    else:
        from journeyrec.training.config import OptimConfig
        from journeyrec.training.module import RecModule

        warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer: the logged loss goes nowhere
        module = RecModule(
            model, LossConfig(name=loss, n_negatives=n_negatives), OptimConfig(sparse_item_grad=path == "rows_sparse")
        )
        if not module.gather_rows:
            raise ValueError(f"path={path} needs a sampled loss, not {loss}")
        step_batch = {
            "items": inputs,
            "targets": targets.view(batch, max_len),
            "target_index": torch.arange(targets.numel()),
        }
        opt = module.configure_optimizers()
        model.train()
        before = _reset_peak()
        t0 = time.perf_counter()
        value = module.training_step(step_batch, 0)
        value.backward()
        seconds = time.perf_counter() - t0
        step = _maxrss_mib() - before
        grad = model.item_embedding.id_emb.weight.grad
        grad_mib = (grad._values() if grad.is_sparse else grad).numel() * 4 / 2**20
        opt_before = _reset_peak()
        t1 = time.perf_counter()
        opt.step()  # the first step allocates the moments
        opt_seconds = time.perf_counter() - t1
        result.update(
            id_grad_mib=round(grad_mib, 1),
            id_grad_sparse=bool(grad.is_sparse),
            opt_first_step_peak_delta_mib=round(_maxrss_mib() - opt_before, 1),
            opt_state_after_mib=round(_rss_mib() - opt_before, 1),
            adam_moments_id_mib=round(2 * table_grad, 1),
            opt_step_seconds=round(opt_seconds, 3),
        )
        opt.zero_grad()
        before2 = _reset_peak()
        t2 = time.perf_counter()
        value = module.training_step(step_batch, 0)
        value.backward()
        opt.step()
        result.update(
            second_step_seconds=round(time.perf_counter() - t2, 3),
            second_step_peak_delta_mib=round(_maxrss_mib() - before2, 1),
        )
    result.update(
        baseline_rss_mib=round(before, 1),
        step_peak_delta_mib=round(step, 1),
        step_seconds=round(seconds, 3),
        loss_value=round(float(value), 4),
        torch_threads=torch.get_num_threads(),
    )
    return result


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    losses: tuple[str, ...] = LOSSES_MEASURED,
    d_model: int = 64,
    batch: int = 16,
    max_len: int = 50,
    n_negatives: int = 256,
    max_materialised_gib: float = 2.0,
    threads: int = 1,
    paths: tuple[str, ...] = ("table",),
) -> Iterator[dict]:
    """One result per (size, loss, path), each from a fresh process; ``growth_vs_smallest`` is
    the step delta relative to the same loss and path at the smallest size,
    ``ratio_vs_sampled_softmax`` the step delta relative to sampled softmax at the same size and
    path (both measured in this run). The ``rows`` paths run for the sampled losses only."""
    for path in paths:
        yield from _run_path(path, sizes, losses, d_model, batch, max_len, n_negatives, max_materialised_gib, threads)


def _run_path(
    path: str,
    sizes: tuple[int, ...],
    losses: tuple[str, ...],
    d_model: int,
    batch: int,
    max_len: int,
    n_negatives: int,
    max_materialised_gib: float,
    threads: int,
) -> Iterator[dict]:
    first: dict[str, float] = {}
    if path != "table":
        losses = tuple(loss for loss in losses if loss in ("sampled_softmax", "bce", "gbce"))
    for items in sizes:
        sampled = None
        for loss in losses:
            logits_bytes = batch * max_len * items * 4
            if loss == "softmax_materialised" and 3 * logits_bytes > max_materialised_gib * 2**30:
                yield {
                    "benchmark": "memory",
                    "loss": loss,
                    "items": items,
                    "skipped": f"needs ~{3 * logits_bytes / 2**30:.1f} GiB (logits, softmax, gradient) "
                    f"> {max_materialised_gib} GiB",
                }
                continue
            case = dict(
                loss=loss,
                items=items,
                d_model=d_model,
                batch=batch,
                max_len=max_len,
                n_negatives=n_negatives,
                path=path,
            )
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.loss_memory", json.dumps(case)],
                capture_output=True,
                text=True,
                env=env,
                timeout=1800,
            )
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
