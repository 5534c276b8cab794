"""Dropout whose mask costs little on CPU, and attention that uses it.

Why: on CPU, ``torch.nn.functional.dropout`` (and the dropout inside
``scaled_dot_product_attention``) draws one Bernoulli sample per element through a scalar
generator loop; with the heavy dropout the S3-Rec configurations use (0.6, nine masks per step
over every position and the feed-forward's 4x width) that is a large share of a training step
(``python -m benchmarks dropout`` times a step with each).
:func:`dropout` draws 64 random bits per four elements from the same torch generator (so
``seed_everything`` still fixes every mask) and keeps an element when its 15-bit lane is at or
above ``round(p * 32768)``: the drop probability is ``p`` to within 2e-5, and the kept elements are
scaled by the exact inverse of the keep probability, so the expectation is unchanged. On other
devices (CUDA's fused Philox dropout is already fast) it is ``F.dropout`` itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "dropout", "attention"]

_LANES = 32768  # 15 random bits per element: each int16 lane of a 63-bit draw, top bit cleared


def _keep_mask(shape: torch.Size, threshold: int, device: torch.device) -> torch.Tensor:
    """Bool tensor of ``shape``, True with probability ``1 - threshold / 32768``."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    lanes = bits.view(torch.int16)[:n]
    return (lanes & 0x7FFF).ge_(threshold).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: each element zeroed with probability ``p``, the rest scaled to keep the
    expectation (``F.dropout``'s contract)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    threshold = round(p * _LANES)
    scale = _LANES / (_LANES - threshold)
    mask = _keep_mask(x.shape, threshold, x.device).to(x.dtype).mul_(scale)
    return x * mask


class Dropout(nn.Module):
    """``nn.Dropout`` with :func:`dropout`'s mask."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1]; got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    dropout_p: float,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, whose own dropout on CPU is the slow Bernoulli loop:
    with ``dropout_p`` > 0 on CPU the probabilities are formed as SDPA's math path forms them and
    dropped with :func:`dropout`. ``attn_mask``: bool (True = may attend) or a float score bias."""
    if dropout_p <= 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if is_causal:
        # SDPA's rule: query t attends to keys 0..t (top-left aligned)
        allowed = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return dropout(torch.softmax(scores, dim=-1), dropout_p) @ v
