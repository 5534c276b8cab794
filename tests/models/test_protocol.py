"""Every model keeps the protocol evaluation, FAISS export and serving rely on, on tiny data:
shapes, exact rebuild from hparams + weights (attribute tables included), padding invariance,
causality, BERT4Rec's masking, and attribute-only vectors for items unseen in training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from journeyrec.data.datasets import EvalWindows, TrainWindows
from journeyrec.data.prepare import prepare
from journeyrec.data.schema import FEATURE_SIZES
from journeyrec.data.sequences import gather_windows
from journeyrec.models import MODELS, build_model
from journeyrec.models.config import MODEL_CONFIGS

ALL = sorted(set(MODELS) - {"ensemble"})  # trained models combined: tests/models/test_ensemble.py
FEATS = ["event_type", "channel", "time_gap"]


@pytest.fixture(scope="module")
def demo():
    return prepare(
        {"name": "demo", "options": {"n_customers": 120, "seed": 3}, "dedup_consecutive": True, "allow_demo_key": True}
    )


def make(name: str, demo, intent_head: bool = False, **over):
    """A tiny model of each family: the settings its typed schema has, from one shared list."""
    schema = MODEL_CONFIGS[name]
    shared = {
        "d_model": 16,
        "n_blocks": 1,
        "n_heads": 2,
        "n_layers": 1,
        "max_len": 12,
        "dropout": 0.0,
        "mask_prob": 0.3,
        "features": FEATS,
        "attributes": ["category", "brand", "price"],
        "normalize": True,
        **over,
    }
    fields = {f.name for f in dataclasses.fields(schema)}
    cfg = schema(**{k: v for k, v in shared.items() if k in fields})
    torch.manual_seed(0)
    return build_model(cfg, demo.sequences.n_items, FEATURE_SIZES, demo.sequences.catalog, intent_head=intent_head)


def batch_of(demo, model, n=16):
    ds = EvalWindows(demo.sequences, demo.split.test, model.max_len, model.feature_names)
    b = ds.__getitems__(list(range(n)))
    return b["items"], {k: b[k] for k in model.feature_names}


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_exact_rebuild_from_hparams(name, demo):
    model = make(name, demo).eval()
    items, feats = batch_of(demo, model)
    n = demo.sequences.n_items
    hidden = model(items, feats)
    assert hidden.shape == (*items.shape, 16)
    vecs, sess = model.item_vectors(), model.session_vectors(items, feats)
    assert vecs.shape == (n + 1, 16) and sess.shape == (items.shape[0], 16)
    assert torch.isfinite(sess).all() and torch.isfinite(vecs).all()
    # serving: hparams (JSON) + state dict only, no catalogue
    import json

    clone = type(model).from_hparams(json.loads(json.dumps(model.hparams)))
    missing, unexpected = clone.load_state_dict(model.state_dict(), strict=True)
    clone.eval()
    assert torch.equal(clone.item_vectors(), vecs)
    assert torch.equal(clone.session_vectors(items, feats), sess)
    # attribute codes are buffers: a fresh model without them gives different vectors
    assert any(k.startswith(("encoder.items.codes_", "items.codes_")) for k in model.state_dict())


@pytest.mark.parametrize("name", ALL)
def test_left_padding_does_not_change_outputs(name, demo):
    model = make(name, demo).eval()
    ds = EvalWindows(demo.sequences, demo.split.test, model.max_len, model.feature_names)
    cases = demo.split.test
    short = np.nonzero(cases.ends - demo.sequences.offsets[cases.users] < model.max_len - 3)[0]
    idx = short[:20].tolist()
    trimmed = ds.__getitems__(idx)
    full = gather_windows(
        demo.sequences, demo.split.test.users[idx], demo.split.test.ends[idx], model.max_len, model.feature_names
    )
    assert trimmed["items"].shape[1] < model.max_len
    with torch.no_grad():
        a = model.session_vectors(trimmed["items"], {k: trimmed[k] for k in model.feature_names})
        b = model.session_vectors(
            torch.from_numpy(full["items"]), {k: torch.from_numpy(full[k]) for k in model.feature_names}
        )
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "two_tower"])
def test_causal_models_do_not_see_the_future(name, demo):
    model = make(name, demo).eval()
    items, feats = batch_of(demo, model)
    changed = items.clone()
    changed[:, -1] = torch.where(items[:, -1] > 1, items[:, -1] - 1, items[:, -1] + 1)
    with torch.no_grad():
        a, b = model(items, feats), model(changed, feats)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_bert4rec_masking_view(demo):
    model = make("bert4rec", demo)
    ds = TrainWindows(demo.sequences, demo.split.train_ends, model.max_len, model.feature_names)
    batch = ds.__getitems__(list(range(len(ds))))
    torch.manual_seed(1)
    view = model.training_view(batch)
    seq = torch.cat([batch["items"][:, 1:], batch["targets"][:, -1:]], dim=1)
    masked = view["items"] == model.mask_id
    assert masked.any(dim=1).all()  # every sequence predicts something
    assert torch.equal(view["targets"][masked], seq[masked]) and (view["targets"][~masked] == 0).all()
    assert torch.equal(view["items"][~masked], seq[~masked])
    share = masked.sum() / (seq != 0).sum()
    assert 0.2 < float(share) < 0.45  # mask_prob 0.3 plus the forced ones
    for name in model.feature_names:  # features of masked slots are hidden, others are the sequence's
        assert (view[name][masked] == 0).all()
        assert torch.equal(view[name][~masked], batch[f"target_{name}"][~masked])
    # inference: [MASK] appended, the oldest event drops out of a full window
    items, feats = batch_of(demo, model)
    full = torch.from_numpy(
        gather_windows(demo.sequences, demo.split.test.users[:4], demo.split.test.ends[:4], 12)["items"]
    )
    model.eval()
    assert model.session_vectors(full, {k: torch.zeros_like(full) for k in model.feature_names}).shape == (4, 16)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_bert4rec_last_item_samples(demo, share):
    """A share of the sequences masks only the newest item (what inference asks), the rest are
    cloze samples; both hide exactly what they predict."""
    model = make("bert4rec", demo, mask_last_share=share)
    ds = TrainWindows(demo.sequences, demo.split.train_ends, model.max_len, model.feature_names)
    batch = ds.__getitems__(list(range(len(ds))))
    torch.manual_seed(2)
    view = model.training_view(batch)
    masked = view["items"] == model.mask_id
    real = torch.cat([batch["items"][:, 1:], batch["targets"][:, -1:]], dim=1) != 0
    last_only = masked[:, -1] & (masked.sum(dim=1) == 1)
    several = masked.sum(dim=1) > 1
    rows = len(masked)
    if share == 1.0:
        assert last_only.all()
    elif share == 0.0:
        assert several.float().mean() > 0.5  # cloze: several masked positions in most sequences
    else:  # about half of the sequences ask the last-item question; only cloze rows mask several
        assert 0.3 < float(last_only.float().mean()) < 0.8 and several.any()
    assert not (masked & ~real).any() and rows == len(ds)


def test_two_tower_scores_unseen_items_from_attributes(demo):
    model = make("two_tower", demo).eval()
    n = demo.sequences.n_items
    known = np.ones(n + 1, dtype=bool)
    known[1:6] = False
    before = model.item_vectors().detach().clone()
    model.set_known_items(known)
    after = model.item_vectors().detach()
    assert torch.equal(before[6:], after[6:])
    assert not torch.allclose(before[1:6], after[1:6])
    assert (after[1:6].norm(dim=1) > 0.5).all()  # normalised attribute-only vectors, not zeros
    # the hidden items' id embeddings get no gradient
    model.train()
    model.item_vectors()[1:].sum().backward()
    assert model.encoder.items.id_emb.weight.grad[1:6].abs().max() == 0
    assert model.encoder.items.id_emb.weight.grad[6:].abs().max() > 0


def test_attribute_only_items_share_vectors_with_their_attributes(demo):
    from journeyrec.models.attributes import attribute_codes

    codes = attribute_codes(demo.sequences.catalog, ["category", "brand", "price"])
    assert codes["category"].shape[1] == 3  # Dept, Dept/Sub, Dept/Sub/Leaf
    assert (codes["category"][0] == 0).all() and (codes["category"][1:] > 0).all()
    assert 1 <= codes["price"][1:].max() <= 10
    model = make("sasrec", demo, attributes=["category", "brand"])
    emb = model.encoder.items
    model.set_known_items(np.zeros(demo.sequences.n_items + 1, dtype=bool))
    table = emb().detach()
    key = [tuple(codes["category"][i]) + tuple(codes["brand"][i]) for i in range(len(codes["brand"]))]
    same = [i for i in range(2, len(key)) if key[i] == key[1]]
    assert same, "demo catalogue has several items per leaf and brand"
    assert torch.allclose(table[same[0]], table[1])
    assert (table[0] == 0).all()


def test_sasrec_feed_forward_options_change_the_block_and_survive_rebuild(demo):
    import json

    narrow = make("sasrec", demo, ffn_mult=1, activation="relu").eval()
    wide = make("sasrec", demo).eval()
    assert narrow.encoder.blocks[0].mlp[0].out_features == 16 and wide.encoder.blocks[0].mlp[0].out_features == 64
    assert isinstance(narrow.encoder.blocks[0].mlp[1], torch.nn.ReLU)
    items, feats = batch_of(demo, narrow)
    clone = type(narrow).from_hparams(json.loads(json.dumps(narrow.hparams)))
    clone.load_state_dict(narrow.state_dict(), strict=True)
    assert torch.equal(clone.eval().session_vectors(items, feats), narrow.session_vectors(items, feats))
    with pytest.raises(ValueError, match="activation must be one of"):
        make("sasrec", demo, activation="swish")


def test_repeat_bias_scores_window_items_and_survives_rebuild(demo):
    """With ``repeat_bias`` the model scores densely (``scores``): dot products plus the bias on
    each item of its window, once; evaluation ranks under the bias, so a negative bias lifts a
    new target in the nothing-excluded protocol (seen-excluded ranks of new targets cannot change:
    the window is excluded there) and sinks a repeated one."""
    import json

    from journeyrec.evaluation.ranking import rank_batch

    plain = make("sasrec", demo).eval()
    assert not hasattr(plain, "scores") and "repeat_bias" not in dict(plain.named_parameters())
    model = make("sasrec", demo, repeat_bias=True).eval()
    with torch.no_grad():
        model.repeat_bias.fill_(-2.5)
    items, feats = batch_of(demo, model)
    dots = model.session_vectors(items, feats) @ model.item_vectors().T
    got = model.scores(items, feats)
    for row in range(items.shape[0]):
        window = set(items[row][items[row] > 0].tolist())
        expect = dots[row].clone()
        expect[list(window)] += -2.5
        assert torch.allclose(got[row], expect, atol=1e-6)
    clone = type(model).from_hparams(json.loads(json.dumps(model.hparams)))
    clone.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(clone.eval().scores(items, feats), got)
    ds = EvalWindows(demo.sequences, demo.split.test, model.max_len, model.feature_names)
    batch = ds.__getitems__(list(range(32)))
    ranks = {b: None for b in (0.0, -50.0)}
    for b in ranks:
        with torch.no_grad():
            model.repeat_bias.fill_(b)
        ranks[b] = rank_batch(model, batch)
    fresh = ~(batch["items"] == batch["targets"][:, None]).any(1)  # target not a repeat of the window
    assert fresh.any() and (~fresh).any()  # the demo shop has both
    assert torch.equal(ranks[0.0]["seen_excluded"][fresh], ranks[-50.0]["seen_excluded"][fresh])
    assert (ranks[-50.0]["all"][fresh] <= ranks[0.0]["all"][fresh]).all()  # seen items pushed below
    assert (ranks[-50.0]["all"][fresh] < ranks[0.0]["all"][fresh]).any()
    assert (ranks[-50.0]["all"][~fresh] >= ranks[0.0]["all"][~fresh]).all()  # a repeated target sinks too


def test_bad_configs_name_the_problem(demo):
    with pytest.raises(ValueError, match="unknown item attribute"):
        make("sasrec", demo, attributes=["flavour"])
    with pytest.raises(ValueError, match="unknown sequence feature"):
        make("sasrec", demo, features=["weather"])
    with pytest.raises(ValueError, match="intent"):
        make("bert4rec", demo, intent_head=True)
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"name": "nope"}, 3, {})


@pytest.mark.parametrize(
    "n_blocks,positions,mixer",
    [
        (1, "from_end", "attention"),
        (2, "from_end", "attention"),
        (2, "from_start", "attention"),
        (2, "relative", "attention"),
        (2, "from_end", "bsa"),
    ],
)
def test_unpadded_session_vectors_equal_the_padded_ones(n_blocks, positions, mixer, demo):
    """Serving's fast path (no padding, no mask, last block on the newest position only) gives
    the model's own session vector of the left-padded window, at every length."""
    model = make("sasrec", demo, n_blocks=n_blocks, max_len=12, positions=positions, mixer=mixer).eval()
    if positions == "relative":  # a trained bias, not the zeros it starts from
        with torch.no_grad():
            model.encoder.rel_bias.copy_(torch.randn_like(model.encoder.rel_bias))
    items, feats = batch_of(demo, model, n=16)
    length = items.shape[1]
    for row in range(len(items)):  # sessions of every length 1..max_len, left-padded as training pads them
        n = 1 + row % length
        items[row, : length - n] = 0
        for v in feats.values():
            v[row, : length - n] = 0
    with torch.no_grad():
        padded = model.session_vectors(items, feats)
        for row in range(len(items)):
            n = int((items[row] != 0).sum())
            got = model.session_vectors_unpadded(
                items[row : row + 1, -n:], {k: v[row : row + 1, -n:] for k, v in feats.items()}
            )
            torch.testing.assert_close(got[0], padded[row], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "name,over",
    [
        ("sasrec", {"n_blocks": 2}),
        ("sasrec", {"n_blocks": 2, "positions": "relative"}),
        ("sasrec", {"n_blocks": 2, "positions": "from_start"}),
        ("sasrec", {"n_blocks": 2, "mixer": "bsa"}),
        ("two_tower", {"n_blocks": 2}),
        ("bert4rec", {"n_blocks": 2}),
        ("gru4rec", {}),
    ],
)
def test_session_vectors_are_the_full_forward_at_the_newest_position(name, over, demo):
    """Session vectors compute only the newest position in the last block; that must be the
    full forward's newest hidden state, on left-padded windows of every length."""
    model = make(name, demo, **over).eval()
    enc = getattr(model, "encoder", None)
    if getattr(enc, "rel_bias", None) is not None:
        with torch.no_grad():
            enc.rel_bias.copy_(torch.randn_like(enc.rel_bias))
    items, feats = batch_of(demo, model, n=24)
    length = items.shape[1]
    for row in range(len(items)):
        cut = length - 1 - row % length
        items[row, :cut] = 0
        for v in feats.values():
            v[row, :cut] = 0
    with torch.no_grad():
        got = model.session_vectors(items, feats)
        if name == "bert4rec":  # its query is a [MASK] appended after the newest event
            x = torch.cat([items[:, 1:], torch.full_like(items[:, :1], model.mask_id)], dim=1)
            f = {k: torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1) for k, v in feats.items()}
            want = model.forward(x, f)[:, -1]
        else:
            want = model.forward(items, feats)[:, -1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_positions_from_start_or_relative_make_each_training_position_its_prefix(demo):
    """With ``positions=from_start`` or ``relative`` the hidden state a causal model trains on at position t of a
    window is exactly the session vector of that window's prefix ending at t (what inference
    computes when the session ends there); with ``from_end`` it is not (the prefix's items sit at
    other positions). The option survives a rebuild from hparams and is checked by name."""
    import json

    items, feats = batch_of(demo, make("sasrec", demo))
    row = int(torch.argmax((items != 0).sum(1)))  # the longest window in the batch
    items, feats = items[row : row + 1], {k: v[row : row + 1] for k, v in feats.items()}
    length, n = items.shape[1], int((items != 0).sum())
    assert n >= 3
    for positions, consistent in (("from_start", True), ("relative", True), ("from_end", False)):
        model = make("sasrec", demo, positions=positions, dropout=0.0).eval()
        with torch.no_grad():
            if positions == "relative":
                model.encoder.rel_bias.copy_(torch.randn_like(model.encoder.rel_bias))
            hidden = model(items, feats)[0]
            t = length - 2  # the second-newest position: its prefix drops the newest event
            prefix = torch.zeros_like(items)
            prefix[0, 1:] = items[0, :-1]
            pf = {k: torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], 1) for k, v in feats.items()}
            same = torch.allclose(hidden[t], model.session_vectors(prefix, pf)[0], atol=1e-5)
        assert same == consistent, positions
    clone = type(model).from_hparams(json.loads(json.dumps(make("sasrec", demo, positions="from_start").hparams)))
    assert clone.encoder.positions == "from_start"
    with pytest.raises(ValueError, match="positions must be one of"):
        make("sasrec", demo, positions="random")
    from journeyrec.models.encoder import SequenceEncoder

    with pytest.raises(ValueError, match="needs a causal model"):
        SequenceEncoder(10, 16, 1, 2, 8, causal=False, positions="relative")


def test_evaluate_returns_every_result_in_case_order(demo):
    """``evaluate`` batches cases by window length; its ranks and top-k lists must still be the
    cases' own, in the order of ``cases`` (paired comparisons and reports index them by case)."""
    from journeyrec.evaluation.ranking import evaluate, rank_batch

    model = make("sasrec", demo).eval()
    cases = demo.split.test
    res = evaluate(model, demo.sequences, cases, "test", batch_size=7, topk=5)
    ds = EvalWindows(demo.sequences, cases, model.max_len, model.feature_names)
    assert not (np.diff(ds.lengths) >= 0).all()  # case order is not length order: the test can fail
    direct = rank_batch(model, ds.__getitems__(list(range(len(ds)))), topk=5)
    for p in ("all", "seen_excluded"):
        np.testing.assert_array_equal(res.ranks[p], direct[p].numpy())
        np.testing.assert_array_equal(res.topk[p], direct[f"top_{p}"].numpy())


def test_low_pass_kernel_is_the_fft_low_pass_at_the_newest_position():
    """Against torch.fft: zero every rFFT bin from ``cutoff`` up and read the newest position."""
    from journeyrec.models.encoder import low_pass_kernel

    gen = torch.Generator().manual_seed(0)
    for length, cutoff in [(50, 3), (12, 1), (12, 7), (11, 4), (11, 6)]:
        x = torch.randn(length, 5, generator=gen, dtype=torch.float64)
        spectrum = torch.fft.rfft(x, dim=0, norm="ortho")
        spectrum[cutoff:] = 0
        want = torch.fft.irfft(spectrum, n=length, dim=0, norm="ortho")[-1]
        got = (low_pass_kernel(length, cutoff).double()[:, None] * x.flip(0)).sum(0)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    for bad in (0, 8):
        with pytest.raises(ValueError, match="filter_cutoff must be in 1..7"):
            low_pass_kernel(12, bad)


def test_bsa_filter_is_bsarecs_at_the_newest_position_and_causal_everywhere():
    """The filter of a full window at its newest position is BSARec's (FFT low-pass of the whole
    window, plus beta^2 times the rest); at every position t it reads positions <= t only, and
    padding counts as zeros whatever the hidden states hold there."""
    from journeyrec.models.encoder import LowPass

    torch.manual_seed(0)
    length, d = 10, 6
    filt = LowPass(d, length, 3)
    h = torch.randn(4, length, d)
    spectrum = torch.fft.rfft(h, dim=1, norm="ortho")
    spectrum[:, 3:] = 0
    low = torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho")
    want = low[:, -1] + filt.sqrt_beta.square() * (h[:, -1] - low[:, -1])
    with torch.no_grad():
        out = filt(h, None)
        torch.testing.assert_close(out[:, -1], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(filt(h, None, last_only=True)[:, 0], out[:, -1])
        for t in range(length - 1):  # a change at t + 1 leaves positions <= t as they were
            changed = h.clone()
            changed[:, t + 1] += 1.0
            other = filt(changed, None)
            assert torch.equal(other[:, : t + 1], out[:, : t + 1]) and not torch.allclose(
                other[:, t + 1], out[:, t + 1]
            )
        keep = torch.ones(4, length, dtype=torch.bool)
        keep[:, :3] = False
        noisy = h.clone()
        noisy[:, :3] = 99.0
        zeroed = h.clone()
        zeroed[:, :3] = 0.0
        torch.testing.assert_close(filt(noisy, keep)[:, 3:], filt(zeroed, None)[:, 3:])


def test_bsa_mixer_is_causal_padding_invariant_and_rebuilds(demo):
    """A SASRec with ``mixer=bsa``: no position sees a later item, left padding changes nothing,
    and hparams + weights rebuild it exactly; bad settings are named."""
    import json

    model = make("sasrec", demo, n_blocks=2, mixer="bsa", filter_alpha=0.6, filter_cutoff=4).eval()
    assert all(b.low_pass is not None and b.filter_alpha == 0.6 for b in model.encoder.blocks)
    items, feats = batch_of(demo, model)
    row = int(torch.argmax((items != 0).sum(1)))
    first = int((items[row] == 0).sum())
    with torch.no_grad():
        base = model(items, feats)
        for t in range(first, items.shape[1] - 1):
            changed = items.clone()
            changed[row, t + 1] = 1 if int(items[row, t + 1]) != 1 else 2
            out = model(changed, feats)
            assert torch.allclose(out[row, : t + 1], base[row, : t + 1], atol=1e-6)
            assert not torch.allclose(out[row, t + 1], base[row, t + 1])
        padded = torch.cat([torch.zeros_like(items[:, :3]), items], 1)[:, -model.max_len :]
        if padded.shape[1] > items.shape[1]:
            pf = {k: torch.cat([torch.zeros_like(v[:, :3]), v], 1)[:, -model.max_len :] for k, v in feats.items()}
            torch.testing.assert_close(
                model.session_vectors(padded, pf), model.session_vectors(items, feats), atol=1e-5, rtol=1e-5
            )
        clone = type(model).from_hparams(json.loads(json.dumps(model.hparams)))
        clone.load_state_dict(model.state_dict(), strict=True)
        clone.eval()
        assert torch.equal(clone.session_vectors(items, feats), model.session_vectors(items, feats))
    plain = make("sasrec", demo, n_blocks=2)
    assert all(b.low_pass is None for b in plain.encoder.blocks)
    with pytest.raises(ValueError, match="mixer must be one of"):
        make("sasrec", demo, mixer="fourier")
    with pytest.raises(ValueError, match="filter_alpha must be in"):
        make("sasrec", demo, mixer="bsa", filter_alpha=1.5)
    with pytest.raises(ValueError, match="filter_cutoff must be in"):
        make("sasrec", demo, mixer="bsa", filter_cutoff=9)


def test_bsa_filter_without_causality_is_bsarecs_at_every_position():
    """``causal=False``: BSARec's own filter (FFT low-pass of the whole window) at every position,
    the same as the causal filter at the newest one."""
    from journeyrec.models.encoder import LowPass

    torch.manual_seed(1)
    length, d = 10, 6
    causal, whole = LowPass(d, length, 3), LowPass(d, length, 3, causal=False)
    whole.load_state_dict(causal.state_dict())
    h = torch.randn(4, length, d)
    spectrum = torch.fft.rfft(h, dim=1, norm="ortho")
    spectrum[:, 3:] = 0
    low = torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho")
    with torch.no_grad():
        out = whole(h, None)
        torch.testing.assert_close(out, low + whole.sqrt_beta.square() * (h - low), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:, -1], causal(h, None)[:, -1], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, 0], causal(h, None)[:, 0])


@pytest.mark.parametrize("causal", [True, False])
def test_bsa_filter_of_a_shorter_window_is_the_padded_windows(causal):
    """A window shorter than ``max_len`` without padding (serving's unpadded path, length buckets)
    is filtered as the same items left-padded to ``max_len``: padding reads as zeros, at every
    position and at the newest one alone."""
    from journeyrec.models.encoder import LowPass

    torch.manual_seed(2)
    length, d = 12, 5
    filt = LowPass(d, length, 4, causal=causal)
    for n in (1, 2, 7, length):
        h = torch.randn(3, n, d)
        padded = torch.cat([torch.full((3, length - n, d), 7.0), h], 1)
        keep = torch.ones(3, length, dtype=torch.bool)
        keep[:, : length - n] = False
        with torch.no_grad():
            want = filt(padded, keep)[:, length - n :]
            torch.testing.assert_close(filt(h, None), want, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(filt(h, None, last_only=True), want[:, -1:], atol=1e-6, rtol=1e-6)


def test_non_causal_sasrec_reads_the_whole_window_and_needs_newest_targets(demo):
    """``causal=False``: an earlier position changes when a later item does, left padding still
    changes nothing at the newest position, hparams rebuild it; RecModule trains it only on the
    newest position (``loss.targets=newest``), and refuses settings that cannot work."""
    import json

    from journeyrec.models.losses import LossConfig
    from journeyrec.training.module import RecModule

    model = make("sasrec", demo, n_blocks=2, mixer="bsa", causal=False).eval()
    assert model.causal is False and model.encoder.causal is False
    items, feats = batch_of(demo, model)
    row = int(torch.argmax((items != 0).sum(1)))
    first = int((items[row] == 0).sum())
    with torch.no_grad():
        base = model(items, feats)
        changed = items.clone()
        changed[row, -1] = 1 if int(items[row, -1]) != 1 else 2
        assert not torch.allclose(model(changed, feats)[row, first], base[row, first])
        padded = torch.cat([torch.zeros_like(items[:, :3]), items], 1)[:, -model.max_len :]
        pf = {k: torch.cat([torch.zeros_like(v[:, :3]), v], 1)[:, -model.max_len :] for k, v in feats.items()}
        torch.testing.assert_close(
            model.session_vectors(padded, pf), model.session_vectors(items, feats), atol=1e-5, rtol=1e-5
        )
        clone = type(model).from_hparams(json.loads(json.dumps(model.hparams)))
        clone.load_state_dict(model.state_dict(), strict=True)
        assert clone.causal is False
        assert torch.equal(clone.eval().session_vectors(items, feats), model.session_vectors(items, feats))
    RecModule(model, LossConfig(targets="newest"))
    with pytest.raises(ValueError, match="model.causal=false .* loss.targets=newest"):
        RecModule(model, LossConfig())
    with pytest.raises(ValueError, match="loss.targets='last'; allowed: every"):
        RecModule(make("sasrec", demo), LossConfig(targets="last"))
    with pytest.raises(ValueError, match="bert4rec chooses its own"):
        RecModule(make("bert4rec", demo), LossConfig(targets="newest"))
    with pytest.raises(ValueError, match="recency_halflife=null"):
        RecModule(model, LossConfig(targets="newest", recency_halflife=3.0))
    assert make("sasrec", demo).causal is True
