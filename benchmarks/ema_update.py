"""Time of one exponential-moving-average update of a SASRec's weights: Lightning's
``EMAWeightAveraging`` path (``avg_fn``, one parameter at a time) against the foreach path that
``trainer.ema_decay`` uses (``multi_avg_fn``), measured in the same run on the same model."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn

from benchmarks.interleaved import interleaved_medians
from journeyrec.models import build_model

__all__ = ["run"]


def run(
    items: int = 12_101, d_model: int = 64, blocks: int = 2, updates: int = 300, threads: int = 1, decay: float = 0.99
) -> dict:
    """Median milliseconds per update of each path (interleaved rounds)."""
    torch.set_num_threads(threads)
    model = build_model(
        {"name": "sasrec", "d_model": d_model, "n_blocks": blocks, "n_heads": 2, "max_len": 50, "dropout": 0.0},
        items,
        {},
    )
    paths = {
        "per_parameter": AveragedModel(model, use_buffers=False, avg_fn=get_ema_avg_fn(decay)),
        "foreach": AveragedModel(model, use_buffers=False, multi_avg_fn=get_ema_multi_avg_fn(decay)),
    }
    for avg in paths.values():
        avg.update_parameters(model)  # the first update only copies the weights
    median = interleaved_medians(
        {name: (lambda a=avg: a.update_parameters(model)) for name, avg in paths.items()}, updates
    )
    return {
        "benchmark": "ema",
        "items": items,
        "d_model": d_model,
        "blocks": blocks,
        "threads": threads,
        "updates": updates,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(list(model.parameters())),
        "ms_per_update": {name: round(s * 1e3, 3) for name, s in median.items()},
        "ratio_per_parameter_vs_foreach": round(median["per_parameter"] / median["foreach"], 1),
    }
