"""Time of one full-ranking validation pass of a SASRec on a real file: the evaluation path in use
(length-batched cases, last block on the newest position only, the repeat bias added inside the
tiled ranking) against the straightforward one it replaced (cases in file order, the full forward
at every position, dense ``[B, N + 1]`` scores for a model with a repeat bias), measured in the
same run on the same weights. Both compute the same ranks up to float rounding; the result says how many agree.

Validation runs after every epoch, so on short-session files (Sports: about 8 real items in a
window of 50) it was a third of the epoch time of the causal ``experiment=s3rec_best`` of the time (``s3rec_causal``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from journeyrec.config import compose_cli
from journeyrec.data.datasets import EvalWindows
from journeyrec.data.prepare import prepare
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.evaluation.metrics import summarise
from journeyrec.evaluation.rank_kernel import exclusion_mask, rank_vectors, target_ranks_many
from journeyrec.evaluation.ranking import evaluate, model_inputs
from journeyrec.models import build_model
from journeyrec.models.losses import window_mask

__all__ = ["run"]

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@torch.no_grad()
def _straightforward(model: torch.nn.Module, ds: EvalWindows, batch_size: int) -> dict[str, np.ndarray]:
    """Ranks of every case the way evaluation computed them before: batches in case order, the
    hidden state of every position, and for a biased model its dense ``scores``."""
    bias = getattr(model, "repeat_bias", None)
    out: dict[str, list[torch.Tensor]] = {"all": [], "seen_excluded": []}
    for lo in range(0, len(ds), batch_size):
        batch = ds.__getitems__(list(range(lo, min(lo + batch_size, len(ds)))))
        items, feats = model_inputs(batch, model.feature_names)
        vectors = model.forward(items, feats)[:, -1]
        if bias is None:
            ranks = rank_vectors(
                vectors, model.item_vectors(), batch["targets"], batch["history_rows"], batch["history_items"]
            )
            got = {p: ranks[p] for p in out}
        else:
            scores = vectors @ model.item_vectors().T
            scores = scores + window_mask(items, scores.shape[1]) * bias
            excl = exclusion_mask(scores.shape[0], scores.shape[1], batch["history_rows"], batch["history_items"])
            (r_all, _), (r_seen, _) = target_ranks_many(scores, batch["targets"], [None, excl])
            got = {"all": r_all, "seen_excluded": r_seen}
        for p in out:
            out[p].append(got[p])
    return {p: torch.cat(v).numpy() for p, v in out.items()}


def run(
    data_path: str | None = None,
    experiment: str = "s3rec_best",
    overrides: Sequence[str] = (),
    threads: int = 2,
    bias: float = -0.05,
    seed: int = 0,
) -> dict:
    """Seconds per validation pass of each path and their ratio, on a freshly initialised model
    of ``experiment`` (``seed``); ``bias`` is written into the repeat bias when the model has one
    (a trained bias is not zero, and at zero the bias costs nothing)."""
    torch.set_num_threads(threads)
    args = [f"experiment={experiment}", *([f"data.path={data_path}"] if data_path else []), *overrides]
    cfg = compose_cli(str(CONFIGS), "train", args)
    prepared = prepare(cfg.data)
    seqs, cases = prepared.sequences, prepared.split.valid
    torch.manual_seed(seed)
    model = build_model(cfg.model, seqs.n_items, FEATURE_SIZES, seqs.catalog).eval()
    has_bias = isinstance(getattr(model, "repeat_bias", None), torch.Tensor)
    if has_bias:
        torch.nn.init.constant_(model.repeat_bias, bias)
    batch_size = int(cfg.data.eval_batch_size)
    ds = EvalWindows(seqs, cases, model.max_len, model.feature_names)

    t = time.perf_counter()
    now = evaluate(model, seqs, cases, "valid", batch_size=batch_size)
    t_now = time.perf_counter() - t
    t = time.perf_counter()
    before = _straightforward(model, ds, batch_size)
    t_before = time.perf_counter() - t

    # float rounding differs between the paths (other batch shapes, one query row in the last
    # block), so a few near-tied ranks may move; the report says how many and how far
    same = {p: float((now.ranks[p] == before[p]).mean()) for p in before}
    moved = {p: int(np.abs(now.ranks[p] - before[p]).max(initial=0)) for p in before}
    reference = summarise(before, [10], "valid")
    key = "valid_seen_excluded/ndcg@10"
    return {
        "benchmark": "validation",
        "data": Path(str(cfg.data.path)).name,
        "experiment": experiment,
        "users": len(cases),
        "items": int(seqs.n_items),
        "d_model": int(cfg.model.d_model),
        "threads": threads,
        "mean_window": round(float(ds.lengths.mean()), 2),
        "max_len": int(model.max_len),
        "repeat_bias": float(model.repeat_bias.detach()) if has_bias else None,
        "seconds": {"in_use": round(t_now, 2), "straightforward": round(t_before, 2)},
        "speedup": round(t_before / t_now, 2),
        "ranks_equal": same,
        "max_rank_difference": moved,
        "ndcg@10_seen_excluded": {"in_use": now.metrics[key], "straightforward": reference[key]},
    }
