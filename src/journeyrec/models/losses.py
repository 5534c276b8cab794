"""Training losses over packed target positions (padding positions are dropped before the
catalogue-sized matmul, which is where the time goes).

* ``softmax``: full cross-entropy over all N items (the strongest objective for SASRec). It is
  computed by :class:`ChunkedSoftmaxCE`, which does forward and backward together, a few hundred
  positions at a time, so the [positions x items] logits never leave the cache: on a CPU with
  little memory bandwidth this is ~1.6x faster than ``F.cross_entropy`` on materialised logits,
  with identical loss and gradients (tested).
* ``bce``: binary cross-entropy with ``n_negatives`` uniformly sampled negatives per position
  (the original SASRec objective; cheaper, weaker).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "ChunkedSoftmaxCE", "softmax_loss", "bce_loss", "compute_loss"]

LOSSES = ("softmax", "bce")
_CHUNK_ELEMENTS = 1 << 21  # logits per chunk (8 MiB in float32)


class ChunkedSoftmaxCE(torch.autograd.Function):
    """mean_p CE(h_p @ W[1:].T, t_p - 1), gradients computed in the forward pass, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h = hidden.float()
        w = weight[1:].float()
        n_pos, n_items = h.shape[0], w.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(n_items, 1))
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight, dtype=torch.float32)
        total = h.new_zeros(())
        for lo in range(0, n_pos, chunk):
            hc = h[lo : lo + chunk]
            tc = targets[lo : lo + chunk] - 1
            rows = torch.arange(hc.shape[0], device=h.device)
            logits = hc @ w.T
            target_logit = logits[rows, tc]
            peak = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(peak).exp_()  # in place: one buffer per chunk, few passes over it
            norm = probs.sum(dim=1, keepdim=True)
            total = total + (peak[:, 0] + norm[:, 0].log() - target_logit).sum()
            probs.div_(norm)
            probs[rows, tc] -= 1.0  # d CE / d logits
            grad_h[lo : lo + chunk] = probs @ w
            grad_w[1:].addmm_(probs.T, hc)
        scale = 1.0 / max(n_pos, 1)
        ctx.save_for_backward(grad_h.mul_(scale), grad_w.mul_(scale))
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_h * grad_out).to(h_dtype), (grad_w * grad_out).to(w_dtype), None


def softmax_loss(hidden: torch.Tensor, item_vectors: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full softmax CE. hidden [P, D], item_vectors [N + 1, D] (row 0 padding), targets [P] in 1..N."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    return ChunkedSoftmaxCE.apply(hidden, item_vectors, targets)


def bce_loss(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    n_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """BCE on the positive and ``n_negatives`` uniform negatives (ids 1..N, may rarely hit the positive)."""
    n_items = item_vectors.shape[0] - 1
    neg = torch.randint(1, n_items + 1, (targets.shape[0], n_negatives), device=targets.device, generator=generator)
    pos_logit = (hidden * item_vectors[targets]).sum(-1)
    neg_logit = torch.einsum("pd,pkd->pk", hidden, item_vectors[neg])
    pos = F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
    negl = F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))
    return pos + negl


def compute_loss(name: str, hidden: torch.Tensor, item_vectors: torch.Tensor, targets: torch.Tensor, n_negatives: int = 1) -> torch.Tensor:
    if name == "softmax":
        return softmax_loss(hidden, item_vectors, targets)
    if name == "bce":
        return bce_loss(hidden, item_vectors, targets, n_negatives)
    raise ValueError(f"unknown loss '{name}'; available: {list(LOSSES)}")
