"""rank_vectors (tiled over the catalogue) must equal the dense definition exactly: ranks, ties
(exact ties from identical item vectors and zero queries), seen-exclusion, NaN targets, and the
top-k lists (compared by score, since the order among tied items is free)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from journeyrec.evaluation.rank_kernel import MISS_RANK, exclusion_mask, rank_vectors, target_ranks_many, topk_items
from journeyrec.models.losses import window_mask


def case(seed: int, n: int = 500, b: int = 37, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    items = torch.randn(n + 1, d, generator=g)
    items[10] = items[20]
    items[30] = items[20]  # exact ties with target 20
    items[5] = 0
    items[6] = 0
    q = torch.randn(b, d, generator=g)
    q[3] = 0  # every item ties
    targets = torch.randint(1, n + 1, (b,), generator=g)
    targets[0], targets[1] = 20, 5
    rows = torch.cat([torch.randint(0, b, (200,), generator=g), torch.tensor([0, 0, 1, 2])])
    cols = torch.cat([torch.randint(0, n + 1, (200,), generator=g), torch.tensor([10, 20, 6, 0])])
    return q, items, targets, rows, cols


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tile", [None, 7, 16, 64, 100, 1000])
def test_tiled_equals_dense(seed, tile):
    q, items, targets, rows, cols = case(seed)
    dense = q @ items.T
    excl = exclusion_mask(q.shape[0], items.shape[0], rows, cols)
    (ra, ta), (rs, ts) = target_ranks_many(dense, targets, [None, excl])
    out = rank_vectors(q, items, targets, rows, cols, topk=10, tile=tile)
    assert torch.equal(out["all"], ra) and torch.equal(out["seen_excluded"], rs)
    assert torch.equal(out["ties_all"], ta) and torch.equal(out["ties_seen_excluded"], ts)
    assert ta[0] == 2  # items 10 and 30 tie with target 20 exactly
    keep = [r for r in range(q.shape[0]) if r != 3]  # the zero query ties everything: order is free
    for name, ref in (("top_all", topk_items(dense, 10)[0]), ("top_seen_excluded", topk_items(dense, 10, excl)[0])):
        got = out[name]
        assert torch.equal(dense.gather(1, got[keep]), dense.gather(1, ref[keep]))
        assert not (got == 0).any()
    assert not set(out["top_seen_excluded"][0].tolist()) & {10, 20}
    assert rs[0] == MISS_RANK and ra[0] < items.shape[0]  # row 0 repeats its target 20


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tile", [None, 16, 100, 1000])
@pytest.mark.parametrize("bonus", [-3.0, 0.25])
def test_window_bonus_equals_the_dense_biased_scores(seed, tile, bonus):
    """A repeat bias on each row's window items (listed with duplicates, padding and a special
    token) ranks exactly like the dense ``scores + window_mask * bonus`` a biased model defines."""
    q, items, targets, rows, cols = case(seed)
    n_cols = items.shape[0]
    g = torch.Generator().manual_seed(100 + seed)
    win = torch.randint(0, n_cols, (q.shape[0], 12), generator=g)
    win[:, :3] = 0  # left padding
    win[0, 5], win[0, 6] = 20, 20  # the target, twice: it carries the bonus once
    win[1, 4] = n_cols  # a [MASK]-like id beyond the catalogue marks nothing
    win[2, 7] = 10  # an item that ties the target exactly, biased
    dense = q @ items.T + window_mask(win, n_cols) * bonus
    excl = exclusion_mask(q.shape[0], n_cols, rows, cols)
    (ra, ta), (rs, ts) = target_ranks_many(dense, targets, [None, excl])
    r = torch.arange(q.shape[0])[:, None].expand_as(win).reshape(-1)
    out = rank_vectors(
        q, items, targets, rows, cols, topk=10, tile=tile, window=(r, win.reshape(-1)), window_bonus=bonus
    )
    assert torch.equal(out["all"], ra) and torch.equal(out["seen_excluded"], rs)
    assert torch.equal(out["ties_all"], ta) and torch.equal(out["ties_seen_excluded"], ts)
    keep = [i for i in range(q.shape[0]) if i != 3]
    for name, ref in (("top_all", topk_items(dense, 10)[0]), ("top_seen_excluded", topk_items(dense, 10, excl)[0])):
        assert torch.equal(dense.gather(1, out[name][keep]), dense.gather(1, ref[keep]))
    plain = rank_vectors(q, items, targets, rows, cols)
    assert not torch.equal(plain["all"], out["all"])  # the bonus changed ranks: the test can fail


def test_nan_target_worst_and_small_catalogue_padding():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    items = torch.tensor([[0.0, 0.0], [float("nan"), 0.0], [0.5, 0.0], [0.7, 0.0]])
    out = rank_vectors(q, items, torch.tensor([1, 2]), topk=5)
    assert out["all"].tolist() == [2, 1]
    assert out["top_all"][1].tolist() == [3, 2, 0, 0, 0]  # NaN item never listed, padding fills


def test_empty_batch():
    out = rank_vectors(torch.zeros(0, 4), torch.randn(30, 4), torch.zeros(0, dtype=torch.long), topk=3)
    assert out["all"].numel() == 0 and out["top_all"].shape == (0, 3)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tile", [None, 1024, 2048, 1500])
def test_blocks_on_threads_equal_dense(two_threads, seed, tile):
    """Several query blocks (run on two threads), tiles of several widths and ragged ones,
    duplicate item vectors (exact ties), zero queries, NaN scores, seen items in every tile."""
    g = torch.Generator().manual_seed(100 + seed)
    n, b, d = 5000, 600, 32
    items = torch.randn(n + 1, d, generator=g)
    dup = torch.randint(1, n + 1, (300,), generator=g)
    items[dup] = items[7].clone()  # 300 items tie with item 7 exactly
    items[11, 0] = float("nan")
    q = torch.randn(b, d, generator=g)
    q[::50] = 0  # every item ties (NaN item aside)
    targets = torch.randint(1, n + 1, (b,), generator=g)
    targets[::7] = 7
    targets[5] = 11  # NaN target: worst rank
    rows = torch.randint(0, b, (8000,), generator=g)
    cols = torch.randint(0, n + 1, (8000,), generator=g)
    repeat = torch.arange(0, b, 2)  # every other row repeats its target: a miss when seen items are excluded
    rows = torch.cat([rows, repeat, torch.arange(b)])
    cols = torch.cat([cols, targets[repeat], dup[torch.arange(b) % 300]])
    dense = q @ items.T
    excl = exclusion_mask(b, n + 1, rows, cols)
    (ra, ta), (rs, ts) = target_ranks_many(dense, targets, [None, excl])
    out = rank_vectors(q, items, targets, rows, cols, tile=tile)
    assert torch.equal(out["all"], ra) and torch.equal(out["seen_excluded"], rs)
    assert torch.equal(out["ties_all"], ta) and torch.equal(out["ties_seen_excluded"], ts)
    assert int(ta[7]) > 250 and int(ra[5]) == n - 1  # the ties and the NaN target are exercised
    repeated = excl[torch.arange(b), targets]  # the pairs above, plus chance hits of the random ones
    assert repeated[repeat].all() and (~repeated).sum() > b // 3  # both kinds of rows are exercised
    assert torch.equal(rs == MISS_RANK, repeated)
    # a window bonus on every block and tile (the targets of every third row among them)
    win = torch.randint(0, n + 1, (b, 20), generator=g)
    win[::3, 0] = targets[::3]
    biased = dense + window_mask(win, n + 1) * 0.7
    (ra, ta), (rs, ts) = target_ranks_many(biased, targets, [None, excl])
    r = torch.arange(b)[:, None].expand_as(win).reshape(-1)
    out = rank_vectors(q, items, targets, rows, cols, tile=tile, window=(r, win.reshape(-1)), window_bonus=0.7)
    assert torch.equal(out["all"], ra) and torch.equal(out["seen_excluded"], rs)
    assert torch.equal(out["ties_all"], ta) and torch.equal(out["ties_seen_excluded"], ts)


def test_count_tile_equals_reference_with_ties_and_nan():
    """The compiled compare-and-count against NumPy's definition: exact ties (duplicated scores,
    the target's own value), NaN scores and a NaN target, accumulation into non-zero counts, and
    a row wider than the kernel's float32 chunk (so the chunked sums are exercised)."""
    from journeyrec.evaluation import tile_kernel

    rng = np.random.default_rng(0)
    for b, w in ((7, 1000), (3, tile_kernel._CHUNK + 1000)):
        s = rng.integers(-20, 20, size=(b, w)).astype(np.float32) / 4  # many exact ties
        t = s[np.arange(b), rng.integers(0, w, size=b)].copy()
        s[1, ::3] = np.nan
        t[2] = np.nan
        higher = np.arange(b, dtype=np.int64)
        equal = np.arange(b, dtype=np.int64) * 2
        fr = rng.integers(0, b, size=50)
        fc = rng.integers(0, w, size=50) + 500
        fv = np.empty(50, dtype=np.float32)
        tile_kernel.count_tile(s, t, higher, equal, fr, fc, 500, fv)
        with np.errstate(invalid="ignore"):
            ref_h = np.arange(b) + (s > t[:, None]).sum(axis=1)
            ref_e = np.arange(b) * 2 + (s == t[:, None]).sum(axis=1)
        assert np.array_equal(higher, ref_h) and np.array_equal(equal, ref_e)
        assert np.array_equal(fv, s[fr, fc - 500], equal_nan=True)
        assert ref_e[0] > np.arange(b)[0] * 2 + 1 and equal[2] == 4  # ties exercised; NaN ties nothing
