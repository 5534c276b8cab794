"""Sequences, splits and windows on small hand-made event tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from journeyrec.data.datasets import EpochBatchSampler, EvalBatchSampler, EvalWindows, TrainWindows
from journeyrec.data.schema import EVENT_TYPES
from journeyrec.data.sequences import (
    build_sequences,
    gather_windows,
    history_pairs,
    make_split,
    with_validation_targets,
)

from conftest import events_table


def test_stable_sort_ids_and_padding():
    ev = events_table(
        [
            ("b", "x", "view", 5),
            ("a", "y", "view", 2),
            ("a", "x", "view", 1),
            ("a", "z", "view", 2),  # same timestamp as "y": must keep file order y, z
            ("b", None, "search", 6),  # not an item event: skipped
        ]
    )
    s = build_sequences(ev)
    assert s.n_users == 2 and s.n_items == 3
    assert set(s.items.tolist()) <= {1, 2, 3}  # 0 is reserved for padding
    seq_a = [s.item_ids[i - 1] for i in s.sequence(0)]
    assert seq_a == ["x", "y", "z"]
    assert [s.item_ids[i - 1] for i in s.sequence(1)] == ["x"]


def test_dedup_consecutive_keeps_strongest_event():
    ev = events_table(
        [
            ("a", "x", "view", 1),
            ("a", "x", "cart", 2),
            ("a", "x", "purchase", 3),
            ("a", "y", "view", 4),
            ("a", "x", "view", 5),
        ]
    )
    s = build_sequences(ev, dedup_consecutive=True)
    assert [s.item_ids[i - 1] for i in s.items] == ["x", "y", "x"]
    assert [EVENT_TYPES[c - 1] for c in s.event_types] == ["purchase", "view", "view"]
    assert s.timestamps.tolist() == [3000, 4000, 5000]


def test_leave_one_out_split():
    ev = events_table([("a", f"i{k}", "view", k) for k in range(5)] + [("b", "i0", "view", 1), ("b", "i1", "view", 2)])
    s = build_sequences(ev)
    sp = make_split(s, "leave_one_out")
    a = int(np.nonzero(s.user_ids == "a")[0][0])
    b = int(np.nonzero(s.user_ids == "b")[0][0])
    assert sp.train_ends[a] - s.offsets[a] == 3  # i0 i1 i2
    assert sp.train_ends[b] == s.offsets[b + 1]  # too short to evaluate: trains on everything
    assert sp.valid.users.tolist() == [a] and sp.test.users.tolist() == [a]
    assert s.item_ids[sp.valid.targets[0] - 1] == "i3"
    assert s.item_ids[sp.test.targets[0] - 1] == "i4"
    assert sp.test.ends[0] - s.offsets[a] == 4  # test input = i0..i3


def test_drop_newest_turns_validation_targets_into_test_targets():
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{rng.integers(30)}", "view", t) for u in range(40) for t in range(int(rng.integers(1, 9)))]
    s = build_sequences(events_table(rows))
    full = make_split(s, "leave_one_out")
    tune = make_split(s, "leave_one_out", drop_newest=1)
    assert tune.info == {"drop_newest": 1} and full.info == {}
    # users long enough to be evaluated once the newest item is gone: their test case is the full split's
    # validation case (same input, same target); shorter ones train on all but their newest item
    keep = np.isin(full.valid.users, tune.test.users)
    assert 0 < keep.sum() < len(full.valid)
    assert (tune.test.users == full.valid.users[keep]).all()
    assert (tune.test.ends == full.valid.ends[keep]).all() and (tune.test.targets == full.valid.targets[keep]).all()
    assert (tune.valid.ends == tune.test.ends - 1).all()
    newest = s.offsets[1:] - 1
    assert (tune.train_ends <= np.maximum(newest, s.offsets[:-1])).all()
    assert (tune.train_ends[tune.test.users] == tune.valid.ends).all()
    with pytest.raises(ValueError, match="leave_one_out only"):
        make_split(s, "global_time", drop_newest=1)
    with pytest.raises(ValueError, match=">= 0"):
        make_split(s, "leave_one_out", drop_newest=-1)


def test_global_time_split():
    rows = [("a", f"i{k}", "view", k) for k in range(10)] + [("b", f"i{k}", "view", k) for k in range(0, 10, 3)]
    s = build_sequences(events_table(rows))
    sp = make_split(s, "global_time", valid_fraction=0.2, test_fraction=0.2)
    t_valid, t_test = sp.info["cutoff_valid_ms"], sp.info["cutoff_test_ms"]
    for u in range(s.n_users):
        ts = s.timestamps[s.offsets[u] : sp.train_ends[u]]
        assert (ts < t_valid).all()
    for cases, lo, hi in ((sp.valid, t_valid, t_test), (sp.test, t_test, np.inf)):
        for u, e in zip(cases.users, cases.ends):
            assert lo <= s.timestamps[e] < hi
            assert (s.timestamps[s.offsets[u] : e] < lo).all()
            assert e > s.offsets[u]  # non-empty history


@pytest.mark.parametrize("kind", ["leave_one_out", "global_time"])
def test_refit_split_trains_on_validation_targets_never_on_test(kind):
    rows = (
        [("a", f"i{k}", "view", k) for k in range(10)]
        + [("b", f"i{k}", "view", k) for k in range(0, 10, 3)]
        + [("c", "i0", "view", 1), ("c", "i1", "view", 2)]
    )
    s = build_sequences(events_table(rows))
    sp = make_split(s, kind, valid_fraction=0.2, test_fraction=0.2)
    assert len(sp.valid) > 0
    re = with_validation_targets(sp)
    assert (re.train_ends >= sp.train_ends).all()
    for u, e in zip(sp.valid.users, sp.valid.ends):
        assert re.train_ends[u] > e  # each validation target is now a training position
    for u, e in zip(sp.test.users, sp.test.ends):
        assert re.train_ends[u] <= e  # no test target is
    untouched = np.setdiff1d(np.arange(s.n_users), sp.valid.users)
    assert (re.train_ends[untouched] == sp.train_ends[untouched]).all()
    assert re.test is sp.test and re.valid is sp.valid and re.info["refit_on_validation"]
    if kind == "leave_one_out":
        assert (re.train_ends[sp.test.users] == sp.test.ends).all()


def test_gather_windows_and_history_match_naive():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{rng.integers(20)}", "view", t) for u in range(6) for t in range(int(rng.integers(1, 12)))]
    s = build_sequences(events_table(rows))
    users = np.arange(s.n_users)
    ends = s.offsets[1:] - 1
    w = gather_windows(s, users, ends, 4, ("event_type", "time_gap"))
    for r, (u, e) in enumerate(zip(users, ends)):
        seq = s.items[s.offsets[u] : e][-4:]
        expect = np.r_[np.zeros(4 - len(seq), np.int64), seq]
        assert w["items"][r].tolist() == expect.tolist()
        assert ((w["event_type"][r] != 0) == (expect != 0)).all()
    hr, hi = history_pairs(s, users, ends)
    for r, (u, e) in enumerate(zip(users, ends)):
        assert sorted(hi[hr == r].tolist()) == sorted(s.items[s.offsets[u] : e].tolist())


def test_trimmed_batches_give_identical_model_outputs():
    from journeyrec.models.sasrec import SASRec

    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{rng.integers(30)}", "view", t) for u in range(8) for t in range(int(rng.integers(3, 9)))]
    s = build_sequences(events_table(rows))
    sp = make_split(s)
    model = SASRec(s.n_items, d_model=16, n_blocks=2, n_heads=2, max_len=20, dropout=0.0).eval()
    trimmed = EvalWindows(s, sp.test, 20).__getitems__(list(range(len(sp.test))))
    full = gather_windows(s, sp.test.users, sp.test.ends, 20)
    assert trimmed["items"].shape[1] < 20
    with torch.no_grad():
        a = model.session_vectors(trimmed["items"])
        b = model.session_vectors(torch.from_numpy(full["items"]))
    assert torch.allclose(a, b, atol=1e-5)


def test_eval_batches_group_similar_lengths_and_cover_every_case_once():
    lengths = np.random.default_rng(2).integers(1, 50, size=103)
    batches = list(EvalBatchSampler(lengths, 10))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(103))  # each case exactly once
    assert (np.diff(lengths[flat]) >= 0).all()  # shortest first: a batch spans a narrow length range
    # two replicas: equal case counts (all_gather needs it), together every case, a pad case repeated
    parts = [[i for b in EvalBatchSampler(lengths, 10, num_replicas=2, rank=r) for i in b] for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 52
    assert set(parts[0]) | set(parts[1]) == set(range(103))
    with pytest.raises(ValueError, match="rank 2 is outside"):
        EvalBatchSampler(lengths, 10, num_replicas=2, rank=2)


def test_train_windows_targets_and_bucket_sampler():
    rows = [(f"u{u}", f"i{t % 7}", "view", t) for u in range(10) for t in range(u + 3)]
    s = build_sequences(events_table(rows))
    sp = make_split(s)
    ds = TrainWindows(s, sp.train_ends, max_len=5)
    batch = ds.__getitems__(list(range(len(ds))))
    items, targets = batch["items"], batch["targets"]
    assert items.dtype == torch.int64 and items.shape == targets.shape
    assert ((targets != 0) <= (items != 0)).all()  # no target at a padding input
    sampler = EpochBatchSampler(ds.lengths, batch_size=3, seed=0)
    first = [sorted(b) for b in sampler]
    assert [sorted(b) for b in sampler] == first  # the order is a function of (seed, epoch)
    sampler.set_epoch(1)
    second = [sorted(b) for b in sampler]
    assert sorted(i for b in first for i in b) == list(range(len(ds)))
    assert first != second  # a new order every epoch
    for b in first:
        assert np.ptp(ds.lengths[b]) <= 3
    plain = EpochBatchSampler(ds.lengths, batch_size=3, seed=0, by_length=False)
    assert sorted(i for b in plain for i in b) == list(range(len(ds)))
    halves = [EpochBatchSampler(ds.lengths, 3, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    shards = [list(map(tuple, h)) for h in halves]
    assert len(shards[0]) == len(shards[1]) and not set(shards[0]) & set(shards[1])


def test_unknown_feature_is_refused():
    s = build_sequences(events_table([("a", "x", "view", 1)]))
    with pytest.raises(ValueError, match="unknown sequence feature"):
        gather_windows(s, np.array([0]), np.array([1]), 3, ("colour",))


def test_session_ids_from_inactivity_gap():
    ev = events_table([("a", "x", "view", 0), ("a", "y", "view", 60), ("a", "z", "view", 4000), ("b", "x", "view", 10)])
    s = build_sequences(ev)
    assert s.session_ids(gap_ms=30 * 60 * 1000).tolist() == [0, 0, 1, 0]


def test_newest_train_windows_hold_every_target_once_at_the_newest_position():
    """``newest``: one window per training target, the target at the last position only, after
    the (at most) ``max_len`` items before it; together they hold exactly the targets of the
    per-user windows (for users no longer than the window) and every target of longer users."""
    rows = [(f"u{u}", f"i{(t * 5 + u) % 13}", "view", t) for u in range(9) for t in range(u + 2)]
    s = build_sequences(events_table(rows))
    sp = make_split(s)
    max_len = 4
    ds = TrainWindows(s, sp.train_ends, max_len=max_len, newest=True)
    batch = ds.__getitems__(list(range(len(ds))))
    items, targets = batch["items"].numpy(), batch["targets"].numpy()
    assert (targets[:, :-1] == 0).all() and (targets[:, -1] != 0).all()
    got = sorted((tuple(row[row != 0]), int(t)) for row, t in zip(items, targets[:, -1]))
    want = []
    for u in range(s.n_users):
        seq = s.items[s.offsets[u] : sp.train_ends[u]].tolist()
        want += [(tuple(seq[max(0, j - max_len) : j]), seq[j]) for j in range(1, len(seq))]
    assert got == sorted(want) and len(ds) == len(want)
    every = TrainWindows(s, sp.train_ends, max_len=max_len)
    short = [u for u in every.users if sp.train_ends[u] - s.offsets[u] <= max_len + 1]
    per_user = every.__getitems__([int(np.flatnonzero(every.users == u)[0]) for u in short])["targets"].numpy()
    mine = targets[np.isin(ds.users, short), -1]
    assert sorted(per_user[per_user != 0].tolist()) == sorted(mine.tolist())
    assert (ds.lengths == np.minimum(ds.ends - s.offsets[ds.users], max_len + 1)).all()
