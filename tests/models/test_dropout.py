"""The CPU dropout: F.dropout's contract (share dropped, kept elements scaled to keep the
expectation, gradient through the same mask, identity in eval, fixed by the seed), and the
attention that uses it equal to SDPA's whenever no element is dropped."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from journeyrec.models.dropout import Dropout, attention, dropout


@pytest.mark.parametrize("p", [0.1, 0.6, 0.9])
def test_drops_the_share_p_and_scales_the_rest_to_keep_the_expectation(p):
    torch.manual_seed(0)
    x = torch.rand(400, 501) + 0.5  # an odd element count: the last 64-bit draw is used in part
    y = dropout(x, p)
    kept = y != 0
    n = x.numel()
    share = kept.float().mean().item()
    assert abs(share - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # binomial, five standard errors
    threshold = round(p * 32768)
    assert torch.allclose(y[kept], x[kept] * (32768 / (32768 - threshold)))
    # the expectation: the scaled sum over the kept share equals the input sum within its noise
    assert abs(y.sum().item() / x.sum().item() - 1) < 5 * math.sqrt(p / ((1 - p) * n)) * 1.2


def test_gradient_flows_through_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.6)
    y.sum().backward()
    scale = 32768 / (32768 - round(0.6 * 32768))
    assert torch.equal(x.grad, (y != 0).float() * scale)


def test_eval_mode_and_zero_rate_are_the_identity_and_the_seed_fixes_the_mask():
    x = torch.randn(8, 16)
    layer = Dropout(0.5).eval()
    assert layer(x) is x and dropout(x, 0.0) is x
    layer.train()
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    assert torch.equal(a, layer(x))
    assert not torch.equal(a, layer(x))  # the next draw differs
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


@pytest.mark.parametrize("mask_kind", ["bool", "float", "causal", "none"])
def test_attention_equals_sdpa_when_nothing_is_dropped(mask_kind):
    torch.manual_seed(2)
    q, k, v = (torch.randn(3, 2, 7, 8) for _ in range(3))
    mask, causal = None, False
    if mask_kind == "bool":
        mask = torch.rand(3, 1, 7, 7) > 0.3
        mask |= torch.eye(7, dtype=torch.bool)  # every query keeps a key, as the encoder's masks do
    elif mask_kind == "float":
        mask = torch.randn(3, 2, 7, 7)
    elif mask_kind == "causal":
        causal = True
    # p below 1 / 65536 rounds to a threshold of 0: the dropout path runs and keeps everything
    ours = attention(q, k, v, mask, causal, 1e-6)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_attention_dropout_drops_probabilities_not_outputs():
    torch.manual_seed(4)
    q, k = torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    v = torch.eye(5)[None, None]  # the output rows are then the (dropped, rescaled) probabilities
    out = attention(q, k, v, None, False, 0.5)
    probs = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    kept = out != 0
    assert 0 < kept.sum() < kept.numel()
    assert torch.allclose(out[kept], probs[kept] * 2.0, atol=1e-6)
