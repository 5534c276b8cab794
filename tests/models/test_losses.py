"""Losses and negative samplers against brute-force references on tiny tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from journeyrec.models import losses
from journeyrec.models.losses import LossConfig, NegativeSampler, RecLoss


def tiny(seed=0, p=37, n=51, d=16):
    torch.manual_seed(seed)
    h = torch.randn(p, d, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(n, d, dtype=torch.float64) * 0.3).requires_grad_()
    t = torch.randint(1, n, (p,))
    return h, w, t


@pytest.mark.parametrize("chunk_elements", [7, 1 << 21])
def test_chunked_softmax_with_weights_and_label_smoothing(monkeypatch, chunk_elements):
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", chunk_elements)
    h, w, t = tiny()
    pw = torch.rand(t.shape[0], dtype=torch.float64) * 3
    per = F.cross_entropy(h @ w[1:].T, t - 1, reduction="none", label_smoothing=0.1)
    ref = (per * pw).sum() / pw.sum()
    gh, gw = torch.autograd.grad(ref * 1.7, (h, w))
    got = losses.softmax_loss(h.float(), w.float(), t, pw.float(), label_smoothing=0.1)
    gh2, gw2 = torch.autograd.grad(got * 1.7, (h, w))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(gh2, gh, atol=1e-5) and torch.allclose(gw2, gw, atol=1e-5)
    assert gw2[0].abs().max() == 0


def test_event_type_weights_of_one_change_nothing():
    h, w, t = tiny()
    a = losses.softmax_loss(h.float(), w.float(), t)
    b = losses.softmax_loss(h.float(), w.float(), t, torch.ones(t.shape[0]))
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def reference_sampled(h, w, t, cand, log_expected):
    """Brute force: per position CE over [positive, candidates != positive] with logQ."""
    out = []
    for p in range(h.shape[0]):
        c = [int(j) for j in cand if int(j) != int(t[p])]
        logits = torch.stack([h[p] @ w[t[p]] - log_expected[t[p]]] + [h[p] @ w[j] - log_expected[j] for j in c])
        out.append(torch.logsumexp(logits, 0) - logits[0])
    return torch.stack(out).mean()


@pytest.mark.parametrize("kind", ["uniform", "popularity", "in_batch", "mixed"])
def test_sampled_softmax_matches_brute_force(kind):
    h, w, t = tiny(p=9, n=13)
    counts = np.arange(13) * 3 % 7 + 1
    sampler = NegativeSampler(kind, 12, counts)
    torch.manual_seed(5)
    got = losses.sampled_softmax_loss(h, w, t, sampler, n_negatives=6)
    torch.manual_seed(5)
    sampled = sampler.sample((6,), h.device) if kind != "in_batch" else torch.zeros(0, dtype=torch.long)
    cand = torch.cat([t if kind in ("in_batch", "mixed") else t[:0], sampled])
    expected = torch.zeros(13, dtype=torch.float64)
    if kind in ("in_batch", "mixed"):
        expected += 9 * sampler.target_freq.double()
    if kind != "in_batch":
        expected += 6 * sampler.sampled_q.double()
    ref = reference_sampled(h, w, t, cand, expected.clamp_min(1e-30).log())
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


def test_sampled_softmax_with_all_items_as_negatives_equals_full_softmax():
    """Uniform candidates covering every item once, no logQ: exactly the full softmax."""
    h, w, t = tiny(p=11, n=20)

    class Everything(NegativeSampler):
        def sample(self, shape, device):
            return torch.arange(1, 20)

    got = losses.sampled_softmax_loss(h, w, t, Everything("uniform", 19), n_negatives=19, logq=False)
    ref = F.cross_entropy(h @ w[1:].T, t - 1)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9)


def test_popularity_sampler_follows_counts():
    counts = np.array([0, 1, 10, 100, 1000])
    s = NegativeSampler("popularity", 4, counts, alpha=1.0)
    torch.manual_seed(0)
    ids = s.sample((200_000,), torch.device("cpu"))
    freq = np.bincount(ids.numpy(), minlength=5)[1:] / 200_000
    expect = (counts[1:] + 1) / (counts[1:] + 1).sum()
    assert np.allclose(freq, expect, atol=0.01) and (ids > 0).all()


def test_gbce_reduces_to_bce_terms_and_beta():
    h, w, t = tiny(p=10, n=30)
    sampler = NegativeSampler("uniform", 29)
    torch.manual_seed(3)
    got = losses.gbce_loss(h, w, t, sampler, n_negatives=4, t=0.5)
    torch.manual_seed(3)
    neg = sampler.sample((10, 4), h.device)
    alpha = 4 / 28
    beta = alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha)
    pos = (h * w[t]).sum(-1)
    negl = torch.einsum("pd,pkd->pk", h, w[neg])
    valid = (neg != t[:, None]).double()
    ref = ((beta * F.softplus(-pos) + (F.softplus(negl) * valid).sum(1)) / 5).mean()
    assert got.item() == pytest.approx(ref.item(), rel=1e-9)
    assert 0 < beta < 1


@pytest.mark.parametrize(
    "loss, negatives",
    [("softmax", "uniform"), ("sampled_softmax", "mixed"), ("bce", "popularity"), ("gbce", "uniform")],
)
def test_every_loss_decreases_when_scores_improve(loss, negatives):
    torch.manual_seed(0)
    w = torch.randn(40, 8)
    t = torch.randint(1, 40, (25,))
    fn = RecLoss(LossConfig(name=loss, negatives=negatives, n_negatives=8), 39, np.arange(40))
    torch.manual_seed(1)
    good = fn(w[t] * 4, w, t)
    torch.manual_seed(1)
    bad = fn(-w[t] * 4, w, t)
    assert torch.isfinite(good) and good < bad


def test_binary_losses_refuse_in_batch_negatives():
    fn = RecLoss(LossConfig(name="bce", negatives="in_batch"), 9)
    with pytest.raises(ValueError, match="per-position negatives"):
        fn(torch.randn(3, 4), torch.randn(10, 4), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="unknown negatives"):
        RecLoss(LossConfig(negatives="hard"), 9)


@pytest.mark.parametrize("chunk_elements", [7, 1 << 21])
def test_exclude_seen_matches_masked_cross_entropy(monkeypatch, chunk_elements):
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", chunk_elements)
    h, w, t = tiny()
    torch.manual_seed(2)
    seen = torch.randint(0, 51, (t.shape[0], 6))  # 0 = no item
    seen[:, 0] = t  # a repeated item that is the target stays in the softmax
    logits = h @ w[1:].T
    drop = torch.zeros_like(logits, dtype=torch.bool)
    rows = torch.arange(t.shape[0])[:, None].expand_as(seen)
    drop[rows[seen > 0], seen[seen > 0] - 1] = True
    drop[torch.arange(t.shape[0]), t - 1] = False
    ref = F.cross_entropy(logits.masked_fill(drop, float("-inf")), t - 1)
    gh, gw = torch.autograd.grad(ref, (h, w))
    got = losses.softmax_loss(h.float(), w.float(), t, exclude=seen)
    gh2, gw2 = torch.autograd.grad(got, (h, w))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(gh2, gh, atol=1e-5) and torch.allclose(gw2, gw, atol=1e-5)
    assert got < losses.softmax_loss(h.float(), w.float(), t)  # fewer competitors, lower loss
    with pytest.raises(ValueError, match="label smoothing"):
        losses.softmax_loss(h.float(), w.float(), t, label_smoothing=0.1, exclude=seen)


@pytest.mark.parametrize("chunk_elements", [7, 1 << 21])
def test_seen_bias_is_fitted_on_the_biased_softmax_with_the_representation_held_fixed(monkeypatch, chunk_elements):
    """The learned repeat bias: the loss and the gradients of h and W are the plain (smoothed,
    weighted) softmax's; b's gradient is that of the softmax with + b on each seen item's logit
    (once, even when the item occurs twice; the target too when it is a repeat), h and W fixed."""
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", chunk_elements)
    h, w, t = tiny()
    torch.manual_seed(3)
    seen = torch.randint(0, 51, (t.shape[0], 6))  # 0 = no item
    seen[:, 1] = seen[:, 2]  # duplicates count once
    seen[::3, 0] = t[::3]  # some targets are repeats
    pw = torch.rand(t.shape[0], dtype=torch.float64) * 2
    plain = (F.cross_entropy(h @ w[1:].T, t - 1, reduction="none", label_smoothing=0.05) * pw).sum() / pw.sum()
    gh, gw = torch.autograd.grad(plain * 1.3, (h, w))
    b = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    in_seen = torch.zeros(t.shape[0], 51, dtype=torch.bool).scatter_(1, seen, True)[:, 1:]
    biased = F.cross_entropy(h.detach() @ w.detach()[1:].T + in_seen * b, t - 1, reduction="none")
    (gb,) = torch.autograd.grad((biased * pw).sum() / pw.sum() * 1.3, (b,))
    b32 = b.detach().float().requires_grad_()
    got = losses.softmax_loss(h.float(), w.float(), t, pw.float(), 0.05, exclude=seen, seen_bias=b32)
    gh2, gw2, gb2 = torch.autograd.grad(got * 1.3, (h, w, b32))
    assert got.item() == pytest.approx(plain.item(), rel=1e-5)
    assert torch.allclose(gh2, gh, atol=1e-5) and torch.allclose(gw2, gw, atol=1e-5)
    assert gb2.item() == pytest.approx(gb.item(), rel=1e-4, abs=1e-6)
    assert gb.abs() > 1e-3  # the bias gets a real gradient here
    with pytest.raises(ValueError, match="seen_bias needs"):
        losses.softmax_loss(h.float(), w.float(), t, seen_bias=b32)
    with pytest.raises(ValueError, match="loss=softmax"):
        RecLoss(LossConfig(name="bce"), 50)(h.float(), w.float(), t, seen=seen, seen_bias=b32)


def test_window_columns_is_window_mask_in_sparse_form():
    """Duplicates once, padding (0) and special tokens (ids > n_items, e.g. [MASK]) never."""
    torch.manual_seed(6)
    n_items = 30
    ids = torch.randint(0, n_items + 3, (64, 12))
    ids[:, 3] = ids[:, 5]  # duplicates
    cols, ok = losses.window_columns(ids, n_items)
    dense = torch.zeros(64, n_items, dtype=torch.bool)
    rows = torch.arange(64)[:, None].expand_as(cols)
    dense[rows[ok], cols[ok]] = True
    assert torch.equal(dense, losses.window_mask(ids, n_items + 1)[:, 1:])
    assert int(ok.sum()) == int(dense.sum())  # each item counted once


@pytest.mark.parametrize("chunk_elements", [7, 1 << 21])
def test_seen_bias_with_exclusion_trains_the_representation_without_the_seen_items(monkeypatch, chunk_elements):
    """exclude_seen plus a repeat bias: loss and gradients of h and W are exclude_seen's (seen
    items out of the softmax, a repeated target kept), b's gradient is still the plain biased
    softmax's with h and W fixed."""
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", chunk_elements)
    h, w, t = tiny()
    torch.manual_seed(5)
    seen = torch.randint(0, 51, (t.shape[0], 6))
    seen[::4, 0] = t[::4]  # some targets are repeats: they stay in the softmax
    pw = torch.rand(t.shape[0], dtype=torch.float64) * 2
    logits = h @ w[1:].T
    in_seen = torch.zeros(t.shape[0], 51, dtype=torch.bool).scatter_(1, seen, True)[:, 1:]
    drop = in_seen.clone()
    drop[torch.arange(t.shape[0]), t - 1] = False
    ref = (F.cross_entropy(logits.masked_fill(drop, float("-inf")), t - 1, reduction="none") * pw).sum() / pw.sum()
    gh, gw = torch.autograd.grad(ref, (h, w))
    b = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
    biased = F.cross_entropy(h.detach() @ w.detach()[1:].T + in_seen * b, t - 1, reduction="none")
    (gb,) = torch.autograd.grad((biased * pw).sum() / pw.sum(), (b,))
    b32 = b.detach().float().requires_grad_()
    got = losses.softmax_loss(h.float(), w.float(), t, pw.float(), exclude=seen, seen_bias=b32, drop_seen=True)
    gh2, gw2, gb2 = torch.autograd.grad(got, (h, w, b32))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(gh2, gh, atol=1e-5) and torch.allclose(gw2, gw, atol=1e-5)
    assert gb2.item() == pytest.approx(gb.item(), rel=1e-4, abs=1e-6) and gb.abs() > 1e-3
    kept = losses.softmax_loss(h.float(), w.float(), t, pw.float(), exclude=seen, seen_bias=b32)
    assert kept.item() > got.item()  # without drop_seen the seen items compete: the plain, higher loss
    via_config = RecLoss(LossConfig(exclude_seen=True), 50)(
        h.float(), w.float(), t, pw.float(), seen=seen, seen_bias=b32
    )
    assert via_config.item() == pytest.approx(got.item(), rel=1e-6)
    with pytest.raises(ValueError, match="label smoothing"):
        losses.softmax_loss(h.float(), w.float(), t, label_smoothing=0.1, exclude=seen, seen_bias=b32, drop_seen=True)
    with pytest.raises(ValueError, match="nothing for the seen items"):
        losses.softmax_loss(h.float(), w.float(), t, exclude=seen, drop_seen=False)


@pytest.mark.parametrize("repeats", [False, True])
def test_seen_bias_learns_whether_the_data_repeats(repeats):
    """Gradient descent on the bias alone: negative when targets are never earlier items, positive
    when they always are (the data decides, not a rule)."""
    torch.manual_seed(4)
    p, n, d = 256, 40, 8
    h, w = torch.randn(p, d), torch.randn(n + 1, d) * 0.5
    seen = torch.randint(1, n + 1, (p, 5))
    if repeats:
        t = seen[:, 0].clone()
    else:
        t = torch.randint(1, n + 1, (p,))
        while (hit := (seen == t[:, None]).any(1)).any():
            t[hit] = torch.randint(1, n + 1, (int(hit.sum()),))
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([b], lr=2.0)
    for _ in range(60):
        opt.zero_grad()
        losses.softmax_loss(h, w, t, exclude=seen, seen_bias=b).backward()
        opt.step()
    assert (b.item() > 0.5) if repeats else (b.item() < -0.5)


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
