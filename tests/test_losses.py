"""The chunked fused softmax CE must equal torch's cross-entropy in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from journeyrec.models import losses


@pytest.mark.parametrize("chunk_elements", [7, 1 << 21])
def test_chunked_softmax_matches_cross_entropy(monkeypatch, chunk_elements):
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(51, 16, dtype=torch.float64) * 0.3).requires_grad_()
    t = torch.randint(1, 51, (37,))
    ref = F.cross_entropy(h @ w[1:].T, t - 1)
    gh, gw = torch.autograd.grad(ref * 2.5, (h, w))
    got = losses.softmax_loss(h.float(), w.float(), t)
    gh2, gw2 = torch.autograd.grad(got * 2.5, (h, w))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(gh2, gh, atol=1e-5)
    assert torch.allclose(gw2, gw, atol=1e-5)
    assert gw2[0].abs().max() == 0  # padding row gets no gradient


def test_bce_loss_is_finite_and_decreases_with_better_scores():
    torch.manual_seed(0)
    w = torch.randn(20, 8)
    t = torch.randint(1, 20, (10,))
    good = losses.bce_loss(w[t] * 5, w, t, n_negatives=4, generator=torch.Generator().manual_seed(1))
    bad = losses.bce_loss(-w[t] * 5, w, t, n_negatives=4, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(good) and good < bad


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="softmax"):
        losses.compute_loss("hinge", torch.zeros(1, 2), torch.zeros(3, 2), torch.ones(1, dtype=torch.long))
