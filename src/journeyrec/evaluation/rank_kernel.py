"""Full ranking: each case's target ranked against every item of the catalogue.

Protocol. Each evaluation case has one target item. The model scores *every* item of the
catalogue (column 0, the padding id, never counts). The target's 0-based **rank** is the number
of candidate items with a **strictly higher** score than the target. Tie policy: items tied with
the target do not push it down (the optimistic convention; a model that gives many items the
target's exact score is reported in ``tie_rate``, so a degenerate constant scorer is visible
rather than hidden). A NaN target score gets the worst rank; NaN scores of other items count as
lower than any number.

Two protocols are always computed side by side, because papers mix them silently:

* ``all``: every item is a candidate;
* ``seen_excluded``: every item the user had before the target is removed from the candidates,
  the target included when it repeats one of them: such a case is a miss at every K (rank
  :data:`MISS_RANK`). This is S3-Rec's evaluation code (and BSARec's, TV-Rec's), which zeroes
  the score of every item of the user's history before ranking. Ranking a repeated target among
  candidates from which every *other* history item was removed would flatter models on data
  with repeats (the target's closest competitors, the user's other known items, are gone);
  ``all`` is the protocol that scores repeats honestly.

Ranks and top-K lists come from a score matrix (:func:`target_ranks_many`, :func:`topk_items`)
or, for dot-product scores, tile by tile from the vectors (:func:`rank_vectors`); the metrics
computed from them are in :mod:`journeyrec.evaluation.metrics`.

Sampled metrics (:func:`sampled_ranks`) exist only to reproduce papers that use them; callers must
label their keys ``sampled`` (``test_sampled100/ndcg@10``) and never use them by default. As in the
papers' own code (SASRec's and S3-Rec's sampled evaluation), the target is always ranked there,
among itself and negatives the user had not seen, even when it repeats an earlier item.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "PROTOCOLS",
    "MISS_RANK",
    "exclusion_mask",
    "target_ranks",
    "target_ranks_many",
    "rank_vectors",
    "topk_items",
    "sampled_ranks",
]

PROTOCOLS: tuple[str, ...] = ("all", "seen_excluded")
# The rank of a target that cannot be ranked (excluded by the protocol, unknown to the model):
# beyond every K, including K larger than the catalogue; exact in float64, far from int64's limit.
MISS_RANK: int = 2**62


def _as_float(scores: torch.Tensor) -> torch.Tensor:
    """float32, except float64 stays float64: baselines encode exact lexicographic keys
    (co-occurrence count, then popularity rank) that float32 would round into false ties."""
    return scores if scores.dtype == torch.float64 else scores.float()


def exclusion_mask(
    n_rows: int, n_cols: int, rows: torch.Tensor, cols: torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean [n_rows, n_cols] mask with True at (rows[i], cols[i]); duplicates are harmless."""
    mask = torch.zeros(n_rows, n_cols, dtype=torch.bool, device=device)
    if rows.numel():
        mask[rows.to(mask.device), cols.to(mask.device)] = True
    return mask


@torch.no_grad()
def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each row's target among columns 1..N, and the number of items tied with it.

    Args:
        scores: [B, N + 1] float scores; column 0 is padding and is ignored.
        targets: [B] int64 target column (1..N).
        exclude: optional [B, N + 1] bool mask of candidates to remove. A row whose target is
            itself excluded (a repeat of an earlier item under ``seen_excluded``) is a miss:
            rank :data:`MISS_RANK`, ties 0.

    Returns:
        (ranks, ties): int64 [B] each. ``ranks`` counts strictly higher candidates.
    """
    return target_ranks_many(scores, targets, [exclude])[0]


@torch.no_grad()
def target_ranks_many(
    scores: torch.Tensor, targets: torch.Tensor, excludes: Sequence[torch.Tensor | None]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`target_ranks` under several exclusion masks from one comparison of the scores.

    Counting is the hot loop of evaluation ([B, N + 1] per batch): the comparisons with the
    target are made once; each protocol subtracts the excluded candidates that were higher /
    tied (int32 counts, about twice as fast as default bool sums).
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.shape[0] != targets.shape[0]:
        raise ValueError(
            f"scores must be [B, N+1] and targets [B]; got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]):
        raise ValueError("targets must be item ids in 1..N (0 is padding)")
    s = _as_float(scores)
    rows = torch.arange(s.shape[0], device=s.device)
    t = s[rows, targets]
    gt = s > t[:, None]
    gt[:, 0] = False
    eq = s == t[:, None]
    eq[:, 0] = False
    higher = gt.sum(dim=1, dtype=torch.int32)
    equal = eq.sum(dim=1, dtype=torch.int32) - 1  # the target itself (a NaN target is handled below)
    n_items = s.shape[1] - 1
    nan_target = torch.isnan(t)
    out = []
    for exclude in excludes:
        h, e, n_cand = higher, equal, torch.full_like(higher, n_items)
        missed = torch.zeros_like(nan_target)
        if exclude is not None:
            ex = exclude.clone()
            ex[:, 0] = False
            missed = ex[rows, targets]
            ex[rows, targets] = False
            h = h - (gt & ex).sum(dim=1, dtype=torch.int32)
            e = e - (eq & ex).sum(dim=1, dtype=torch.int32)
            n_cand = n_cand - ex.sum(dim=1, dtype=torch.int32)
        ranks = torch.where(nan_target, n_cand - 1, h).long()
        ties = torch.where(nan_target, torch.zeros_like(e), e).long()
        out.append((ranks.masked_fill(missed, MISS_RANK), ties.masked_fill(missed, 0)))
    return out


_TILE_ELEMENTS = 1 << 18  # scores per tile (1 MiB in float32): stays in one core's L2 cache
_BLOCK_ROWS = 256  # queries per block; blocks run on separate cores
_MIN_TILE = 16  # narrower products take a different BLAS path whose rounding differs from wide tiles


def _target_scores(q: torch.Tensor, v: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's score of its target, bit-identical to the value a wide tile computes.

    Ties must be exact, so the target's score has to come from the same BLAS arithmetic as its
    competitors': the diagonal of ``q @ v[targets].T``, padded to at least ``_MIN_TILE`` columns,
    takes the same wide-matrix path as the tiles (checked against the dense product by
    tests/evaluation/test_rank_vectors.py). A catalogue that fits one tile takes the target's score
    from that tile instead.
    """
    b = q.shape[0]
    if b == 0:
        return q.new_zeros(0)
    cols = v[targets]
    if b < _MIN_TILE:
        cols = torch.cat([cols, cols.new_zeros(_MIN_TILE - b, cols.shape[1])])
    return (q @ cols.T)[torch.arange(b, device=q.device), torch.arange(b, device=q.device)].contiguous()


@torch.no_grad()
def rank_vectors(
    queries: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    exclude_rows: torch.Tensor | None = None,
    exclude_items: torch.Tensor | None = None,
    topk: int = 0,
    tile: int | None = None,
    window: tuple[torch.Tensor, torch.Tensor] | None = None,
    window_bonus: float = 0.0,
    window_values: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Ranks, ties (and optionally top-k lists) under both protocols for dot-product scores
    ``queries @ items.T``, computed tile by tile over the catalogue: exactly what
    :func:`target_ranks_many` and :func:`topk_items` give on the full score matrix, without ever
    materialising it (a 1M-item catalogue would need gigabytes per batch and run at memory speed).

    ``window`` (rows, items) pairs get ``window_bonus`` added to their score, once per pair
    however often it is listed: a model's learned repeat bias on the items of the input window.
    With ``window_values`` (one per pair) each pair gets its own value instead, the values of a
    pair listed more than once summed: a sparse bonus such as the transition blend's. It is added
    inside each tile before counting, so such models keep the tiled path instead of building and
    comparing a whole [B, N + 1] score matrix per batch.

    The target's score is taken from the same matrix-multiply arithmetic (the diagonal of
    ``queries @ items[targets].T``) and the target's own column is never counted, so ties are
    exact; a test checks equality with the dense definition, ties and exclusions included.
    Seen-exclusion comes as (row, item) pairs (duplicates are harmless); a row whose target is
    among its pairs is a miss under ``seen_excluded`` (rank :data:`MISS_RANK`, ties 0, and the
    target is left out of its ``top_seen_excluded`` list), as in :func:`target_ranks_many`.
    Returns ``all``, ``seen_excluded``, ``ties_all``, ``ties_seen_excluded`` (int64 [B]) and,
    with ``topk``, ``top_all`` / ``top_seen_excluded`` (int64 [B, topk], 0 = no item).

    Speed (issue 7: within 2x of the SGEMM FLOP bound). Queries go in blocks of ``_BLOCK_ROWS``;
    on the CPU the blocks run on ``torch.get_num_threads()`` Python threads with one BLAS thread
    each (the product and the compiled count release the GIL), so each core multiplies and
    counts its own 1 MiB score tile while it is still in its cache; the count reads the tile once
    (:func:`journeyrec.evaluation.tile_kernel.count_tile`). The padding column, the target's own
    column and the seen items are not masked in the tile: their few scores are read back in the
    same pass and their contribution subtracted from the counts afterwards.
    """
    q = queries.float()
    v = items.float()
    b, n_cols = q.shape[0], v.shape[0]
    n_items = n_cols - 1
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) > n_items):
        raise ValueError("targets must be item ids in 1..N (0 is padding)")
    # exclusion pairs: unique, never padding, sorted by row (then item)
    if exclude_rows is not None and exclude_rows.numel():
        if exclude_items is None:
            raise ValueError("exclude_rows needs exclude_items: exclusions are (row, item) pairs")
        key = torch.unique(exclude_rows.to(q.device) * n_cols + exclude_items.to(q.device))
        pr, pi = key // n_cols, key % n_cols
        keep = pi != 0
        pr, pi = pr[keep], pi[keep]
    else:
        pr = pi = torch.zeros(0, dtype=torch.int64, device=q.device)
    wr = wi = torch.zeros(0, dtype=torch.int64, device=q.device)
    wv = torch.zeros(0, dtype=q.dtype, device=q.device)
    if window is not None and window[0].numel() and (window_values is not None or window_bonus != 0.0):
        w_rows, w_items = window[0].to(q.device), window[1].to(q.device)
        keep = (w_items > 0) & (w_items < n_cols)  # padding and special tokens get nothing
        key, inverse = torch.unique(w_rows[keep] * n_cols + w_items[keep], return_inverse=True)
        wr, wi = key // n_cols, key % n_cols
        if window_values is None:
            wv = torch.full(key.shape, float(window_bonus), dtype=q.dtype, device=q.device)
        else:
            values = window_values.to(q.device, q.dtype)[keep]
            wv = torch.zeros(key.shape, dtype=q.dtype, device=q.device).index_add_(0, inverse, values)
    starts = list(range(0, b, _BLOCK_ROWS)) or [0]
    bounds = torch.tensor(starts[1:] + [b], device=q.device)
    cuts = torch.searchsorted(pr, bounds).tolist()
    wcuts = torch.searchsorted(wr, bounds).tolist()
    jobs: list[_RankJob] = []
    for i, lo in enumerate(starts):
        hi = min(lo + _BLOCK_ROWS, b)
        a, z = (cuts[i - 1] if i else 0), cuts[i]
        wa, wz = (wcuts[i - 1] if i else 0), wcuts[i]
        jobs.append((q[lo:hi], targets[lo:hi], pr[a:z] - lo, pi[a:z], wr[wa:wz] - lo, wi[wa:wz], wv[wa:wz]))

    def run(job: _RankJob) -> dict[str, torch.Tensor]:
        return _rank_block(v, *job, topk, tile)

    threads = min(torch.get_num_threads(), len(jobs)) if q.device.type == "cpu" else 1
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(run, jobs))
        finally:
            torch.set_num_threads(before)
    else:
        parts = [run(job) for job in jobs]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


# the arguments of one _rank_block call from q to wv
_RankJob = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _rank_block(
    v: torch.Tensor,
    q: torch.Tensor,
    targets: torch.Tensor,
    pr: torch.Tensor,
    pi: torch.Tensor,
    wr: torch.Tensor,
    wi: torch.Tensor,
    wv: torch.Tensor,
    topk: int,
    tile: int | None,
) -> dict[str, torch.Tensor]:
    """:func:`rank_vectors` for one block of queries; ``pr`` (local rows) / ``pi`` are its
    exclusion pairs, ``wr`` / ``wi`` (unique) its window pairs that get ``wv`` added."""
    b, n_cols = q.shape[0], v.shape[0]
    n_items = n_cols - 1
    dev = q.device
    # a pair on the row's own target makes the row a miss under seen_excluded; it still leaves
    # the target out of the row's seen-excluded list, but is no candidate to subtract
    on_target = pi == targets[pr]
    missed = torch.zeros(b, dtype=torch.bool, device=dev)
    missed[pr[on_target]] = True
    top_pr, top_pi = pr, pi
    pr, pi = pr[~on_target], pi[~on_target]
    width = max(_MIN_TILE, tile or _TILE_ELEMENTS // max(b, 1))
    bounds = list(range(0, n_cols, width))
    if len(bounds) > 1 and n_cols - bounds[-1] < _MIN_TILE:
        bounds.pop()  # a narrow last tile would take BLAS's narrow-matrix path: merge it
    bounds.append(n_cols)
    rows = torch.arange(b, device=dev)
    single = q @ v.T if len(bounds) == 2 else None  # the whole catalogue is one tile
    t = single[rows, targets] if single is not None else _target_scores(q, v, targets)
    if wr.numel():  # the target's own score carries its pair's value (pairs are unique per row and item)
        on_target = wi == targets[wr]
        t = t.clone()
        t[wr[on_target]] += wv[on_target]
        by_col = torch.argsort(wi, stable=True)
        win_r, win_c, win_v = wr[by_col], wi[by_col], wv[by_col]
        win_pos = torch.searchsorted(win_c, torch.tensor(bounds, device=dev)).tolist()
    tcol = t[:, None]
    # columns read back after counting: padding and the target's own column (both protocols),
    # then the seen items (seen_excluded only); sorted by column to slice them per tile
    n_both = 2 * b
    fix_r = torch.cat([rows, rows, pr])
    fix_c = torch.cat([torch.zeros_like(rows), targets, pi])
    order = torch.argsort(fix_c, stable=True)
    fix_r, fix_c = fix_r[order], fix_c[order]
    fix_pos = torch.searchsorted(fix_c, torch.tensor(bounds, device=dev)).tolist()
    fix_val = torch.empty(fix_c.shape[0], device=dev)
    higher = torch.zeros(b, dtype=torch.int64, device=dev)
    equal = torch.zeros_like(higher)
    cpu = dev.type == "cpu"
    if cpu:  # NumPy views of the same memory for the compiled kernel
        from journeyrec.evaluation.tile_kernel import count_tile

        buf = torch.empty(b, width)
        fix_rn, fix_cn, fix_valn = fix_r.numpy(), fix_c.numpy(), fix_val.numpy()
        tn, hn, en = t.contiguous().numpy(), higher.numpy(), equal.numpy()
    tops: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # per tile: values, seen values, ids
    if topk:
        by_item = torch.argsort(top_pi, stable=True)
        top_r, top_c = top_pr[by_item], top_pi[by_item]
        top_pos = torch.searchsorted(top_c, torch.tensor(bounds, device=dev)).tolist()
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if single is not None:
            s = single
        elif cpu and hi - lo == width:
            s = torch.mm(q, v[lo:hi].T, out=buf)
        else:
            s = q @ v[lo:hi].T
        if wr.numel() and win_pos[i + 1] > win_pos[i]:
            a, z = win_pos[i], win_pos[i + 1]
            s[win_r[a:z], win_c[a:z] - lo] += win_v[a:z]
        a, z = fix_pos[i], fix_pos[i + 1]
        if cpu:  # one compiled pass: counts, and the read-back scores of this tile
            count_tile(s.numpy(), tn, hn, en, fix_rn[a:z], fix_cn[a:z], lo, fix_valn[a:z])
        else:
            higher += (s > tcol).sum(dim=1)
            equal += (s == tcol).sum(dim=1)
            if z > a:
                fix_val[a:z] = s[fix_r[a:z], fix_c[a:z] - lo]
        if topk:
            a, z = top_pos[i], top_pos[i + 1]
            ex_r, ex_c = top_r[a:z], top_c[a:z]
            if lo == 0:
                s[:, 0] = -torch.inf  # padding
            own = (targets >= lo) & (targets < hi)
            s[rows[own], targets[own] - lo] = t[own]  # the target competes for the lists like any item
            s.nan_to_num_(nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
            tops.append(_tile_topk(s, lo, topk, ex_r, ex_c))
    # subtract what the read-back columns contributed (NaN scores contributed nothing)
    ft = t[fix_r]
    fix_gt = (fix_val > ft).long()
    fix_eq = (fix_val == ft).long()
    both = order < n_both
    higher -= _sum_by_row(fix_r[both], fix_gt[both], b)
    equal -= _sum_by_row(fix_r[both], fix_eq[both], b)
    seen = ~both
    ex_higher = _sum_by_row(fix_r[seen], fix_gt[seen], b)
    ex_equal = _sum_by_row(fix_r[seen], fix_eq[seen], b)
    n_ex = torch.bincount(pr, minlength=b) if b else torch.zeros(0, dtype=torch.int64, device=dev)
    nan_target = torch.isnan(t)
    out: dict[str, torch.Tensor] = {}
    for name, h, e, n_cand in (
        ("all", higher, equal, torch.full_like(higher, n_items)),
        ("seen_excluded", higher - ex_higher, equal - ex_equal, n_items - n_ex),
    ):
        out[name] = torch.where(nan_target, n_cand - 1, h)
        out[f"ties_{name}"] = torch.where(nan_target, torch.zeros_like(e), e)
    out["seen_excluded"] = out["seen_excluded"].masked_fill(missed, MISS_RANK)
    out["ties_seen_excluded"] = out["ties_seen_excluded"].masked_fill(missed, 0)
    if topk:
        out["top_all"] = _final_topk([x[0] for x in tops], [x[2] for x in tops], topk)
        out["top_seen_excluded"] = _final_topk([x[1] for x in tops], [x[2] for x in tops], topk)
    return out


def _sum_by_row(rows: torch.Tensor, values: torch.Tensor, b: int) -> torch.Tensor:
    return torch.zeros(b, dtype=torch.int64, device=values.device).index_add_(0, rows, values)


def _tile_topk(
    s: torch.Tensor, offset: int, k: int, ex_rows: torch.Tensor, ex_items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One tile's candidates for both protocols from a single top-(k + e) selection, where e is
    the most excluded items any row has in this tile: removing a row's excluded items from that
    list leaves its k best non-excluded items."""
    e = int(torch.bincount(ex_rows).max()) if ex_rows.numel() else 0
    vals, idx = torch.topk(s, min(k + e, s.shape[1]), dim=1)
    idx = idx + offset
    seen = vals
    if e:
        hit = idx[ex_rows] == ex_items[:, None]  # [pairs, k + e]: where each excluded item sits
        r, c = hit.nonzero(as_tuple=True)
        seen = vals.clone()
        seen[ex_rows[r], c] = -torch.inf
    return vals, seen, idx


def _final_topk(values: list[torch.Tensor], ids: list[torch.Tensor], k: int) -> torch.Tensor:
    vals, idx = torch.cat(values, dim=1), torch.cat(ids, dim=1)
    top, pos = torch.topk(vals, min(k, vals.shape[1]), dim=1)
    idx = torch.gather(idx, 1, pos)
    idx = torch.where(torch.isinf(top) & (top < 0), torch.zeros_like(idx), idx)
    if idx.shape[1] < k:
        idx = torch.cat([idx, idx.new_zeros(idx.shape[0], k - idx.shape[1])], dim=1)
    return idx


@torch.no_grad()
def topk_items(scores: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item ids (1..N) and scores per row; padding and excluded items never appear.

    If fewer than k candidates exist, the tail is filled with id 0 and score -inf.
    """
    s = _as_float(scores).clone()  # one copy, then in place
    s[:, 0] = -torch.inf
    if exclude is not None:
        s.masked_fill_(exclude, -torch.inf)
    s.nan_to_num_(nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    k_eff = min(k, s.shape[1])
    vals, idx = torch.topk(s, k_eff, dim=1)
    idx = torch.where(torch.isinf(vals) & (vals < 0), torch.zeros_like(idx), idx)
    if k_eff < k:
        pad = k - k_eff
        idx = torch.cat([idx, idx.new_zeros(idx.shape[0], pad)], dim=1)
        vals = torch.cat([vals, vals.new_full((vals.shape[0], pad), -torch.inf)], dim=1)
    return idx, vals


# --- sampled metrics (on request only) ------------------------------------------------------


@torch.no_grad()
def sampled_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    n_negatives: int,
    exclude: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rank of each target among itself and ``n_negatives`` items drawn uniformly without
    replacement from the other candidates (not the target, not padding, not ``exclude``).

    Same tie policy as :func:`target_ranks` (strictly higher counts). Provided to reproduce
    papers that sample; numbers from it must carry ``sampled`` in their names.
    """
    s = _as_float(scores)
    b = s.shape[0]
    rows = torch.arange(b, device=s.device)
    keys = torch.rand(s.shape, generator=generator).to(s.device)  # CPU generator: same draws on any device
    keys[:, 0] = -1.0
    if exclude is not None:
        keys = keys.masked_fill(exclude, -1.0)
    keys[rows, targets] = -1.0
    k = min(int(n_negatives), s.shape[1] - 1)
    picked_keys, neg = torch.topk(keys, k, dim=1)
    valid = picked_keys >= 0
    t = s[rows, targets]
    neg_s = s.gather(1, neg)
    higher = ((neg_s > t[:, None]) & valid).sum(dim=1)
    return torch.where(torch.isnan(t), valid.sum(dim=1), higher).long()
