"""The dropout benchmark compares what it says: inside its baseline context journeyrec's dropout
and attention are torch's own (same seed, same values), outside they are journeyrec's again, and
its ratios are those of its own timings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import journeyrec.models.dropout as d
import journeyrec.models.encoder as e
from benchmarks.dropout_step import run, torch_dropout


def test_the_baseline_context_is_torchs_dropout_and_attention_and_is_undone():
    x = torch.randn(64, 32)
    q, k, v = (torch.randn(2, 2, 5, 8) for _ in range(3))
    with torch_dropout():
        torch.manual_seed(5)
        inside = d.dropout(x, 0.6)
        torch.manual_seed(6)
        att = e.attention(q, k, v, None, False, 0.3)
    torch.manual_seed(5)
    assert torch.equal(inside, F.dropout(x, 0.6, True))
    torch.manual_seed(6)
    assert torch.equal(att, F.scaled_dot_product_attention(q, k, v, dropout_p=0.3))
    torch.manual_seed(5)
    assert not torch.equal(d.dropout(x, 0.6), inside)  # journeyrec's own again
    assert e.attention is d.attention


def test_a_tiny_run_reports_its_own_ratios():
    threads = torch.get_num_threads()
    try:
        row = run(items=200, batch=16, length=6, dropout=0.5, rounds=2, threads=1)
    finally:
        torch.set_num_threads(threads)
    # the ratios are of the unrounded medians; the step's milliseconds are rounded to 0.1
    step = row["step_ms_torch"] / row["step_ms_journeyrec"]
    assert abs(row["step_speedup"] / step - 1) < 0.1
    assert (row["length"], row["batch"], row["threads"]) == (6, 16, 1)
