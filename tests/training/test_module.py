"""Pieces of the training step: the seen-item sets of exclude_seen, event-type and recency weights."""

from __future__ import annotations

import pytest
import torch

from journeyrec.data.schema import EVENT_TYPES
from journeyrec.training.module import event_type_weight_table, recency_weights, seen_items

from conftest import events_table


def test_seen_items_causal_and_bidirectional():
    seq = torch.tensor([[0, 0, 4, 7, 9], [3, 5, 6, 2, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    causal = seen_items(seq, mask, causal=True)
    assert causal.tolist() == [[0, 0, 4, 0, 0], [0, 0, 4, 7, 0], [3, 0, 0, 0, 0], [3, 5, 6, 2, 8]]
    both = seen_items(seq, mask, causal=False)
    assert both.tolist() == [[0, 0, 4, 7, 9], [0, 0, 4, 7, 9], [3, 5, 6, 2, 8], [3, 5, 6, 2, 8]]


def test_event_type_weight_table():
    t = event_type_weight_table({"purchase": 3.0, "cart": 1.5})
    assert t[EVENT_TYPES.index("purchase") + 1] == 3.0 and t[EVENT_TYPES.index("cart") + 1] == 1.5
    assert t[EVENT_TYPES.index("view") + 1] == 1.0 and t.shape == (len(EVENT_TYPES) + 1,)
    assert event_type_weight_table({"view": 1.0}) is None and event_type_weight_table({}) is None
    with pytest.raises(ValueError, match="unknown event type"):
        event_type_weight_table({"checkout": 2.0})


def test_recency_weights_count_the_targets_after_each_one():
    """Against each user's own target list: the target with k later training targets weighs
    0.5 ** (k / halflife), on windows cut to max_len (long users) and left-padded (short ones)."""
    from journeyrec.data.datasets import TrainWindows
    from journeyrec.data.sequences import build_sequences, make_split

    rows = [(f"u{u}", f"i{(t * 3 + u) % 11}", "view", t) for u in range(7) for t in range(2 * u + 3)]
    s = build_sequences(events_table(rows))
    sp = make_split(s)
    ds = TrainWindows(s, sp.train_ends, max_len=5)
    batch = ds.__getitems__(list(range(len(ds))))
    targets = batch["targets"]
    weights = recency_weights(targets, 2.0)
    checked = 0
    for row, user in enumerate(ds.users):
        own = s.items[s.offsets[user] + 1 : sp.train_ends[user]].tolist()  # this user's training targets
        cols = torch.nonzero(targets[row]).flatten().tolist()
        assert targets[row, cols].tolist() == own[-len(cols) :]
        for j, col in enumerate(cols):
            later = len(cols) - 1 - j
            assert weights[row, col].item() == pytest.approx(0.5 ** (later / 2.0))
            checked += 1
    assert checked == int((targets != 0).sum()) and checked > len(ds)


def test_recency_halflife_must_be_positive():
    from journeyrec.models import build_model
    from journeyrec.models.losses import LossConfig
    from journeyrec.training.module import RecModule

    model = build_model({"name": "sasrec", "d_model": 8, "n_blocks": 1, "n_heads": 1, "max_len": 5}, 20, {})
    RecModule(model, LossConfig(recency_halflife=3.0))
    with pytest.raises(ValueError, match="recency_halflife"):
        RecModule(model, LossConfig(recency_halflife=0.0))


def test_contrastive_loss_prefers_matching_views_and_ignores_same_target_pairs():
    from journeyrec.training.module import contrastive_loss

    torch.manual_seed(0)
    a = torch.randn(6, 8)
    key = torch.arange(6)
    aligned = contrastive_loss(a, a + 0.01 * torch.randn(6, 8), key)
    shuffled = contrastive_loss(a, a[torch.randperm(6)], key)
    assert aligned < shuffled
    # two sessions with the same next item: neither is the other's negative
    b = a.clone()
    b[1] = a[0]
    same = torch.tensor([0, 0, 2, 3, 4, 5])
    assert contrastive_loss(a, b, same) < contrastive_loss(a, b, key)


def test_repeat_bias_needs_full_softmax_at_temperature_one():
    from journeyrec.models import build_model
    from journeyrec.models.losses import LossConfig
    from journeyrec.training.module import RecModule

    model = build_model(
        {
            "name": "sasrec",
            "d_model": 8,
            "n_blocks": 1,
            "n_heads": 1,
            "max_len": 5,
            "dropout": 0.0,
            "repeat_bias": True,
        },
        20,
        {},
    )
    RecModule(model, LossConfig(name="softmax"))
    with pytest.raises(ValueError, match="needs loss=softmax"):
        RecModule(model, LossConfig(name="gbce"))
    RecModule(model, LossConfig(name="softmax", exclude_seen=True))  # the two combine (tests/test_models_losses.py)
    with pytest.raises(ValueError, match="temperature"):
        RecModule(model, LossConfig(name="softmax", temperature=0.5))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a step outside a Trainer
@pytest.mark.parametrize("causal", [True, False])
def test_newest_targets_step_is_the_full_forward_at_the_last_column(causal):
    """``loss.targets=newest``: the step encodes the newest position only, and its loss is the
    softmax (seen items left out) of the full forward's last column, window by window."""
    import torch.nn.functional as F

    from journeyrec.data.datasets import TrainWindows
    from journeyrec.data.sequences import build_sequences, make_split
    from journeyrec.models import build_model
    from journeyrec.models.losses import LossConfig
    from journeyrec.training.module import RecModule

    rows = [(f"u{u}", f"i{(t * 3 + u) % 11}", "view", t) for u in range(7) for t in range(2 * u + 3)]
    s = build_sequences(events_table(rows))
    sp = make_split(s)
    arch = {"name": "sasrec", "d_model": 8, "n_blocks": 2, "n_heads": 2, "max_len": 5, "dropout": 0.0}
    torch.manual_seed(0)
    model = build_model({**arch, "mixer": "bsa", "causal": causal}, s.n_items, {})
    module = RecModule(model, LossConfig(targets="newest", exclude_seen=True))
    batch = TrainWindows(s, sp.train_ends, max_len=5, newest=True).__getitems__(list(range(9)))
    loss = module.training_step(batch, 0)
    with torch.no_grad():
        logits = model(batch["items"])[:, -1] @ model.item_vectors().T
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, batch["items"], True)
        seen[:, 0] = True
        target = batch["targets"][:, -1]
        seen[torch.arange(len(target)), target] = False
        want = F.cross_entropy(logits.masked_fill(seen, float("-inf")), target)
    torch.testing.assert_close(loss.detach(), want, atol=1e-5, rtol=1e-5)
