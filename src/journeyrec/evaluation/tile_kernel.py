"""Compiled compare-and-count over one score tile: the inner loop of full-ranking evaluation.

:func:`journeyrec.evaluation.rank_kernel.rank_vectors` multiplies a block of queries with a slice of
the catalogue into a tile that still sits in the core's cache, then needs, per row, how many
scores are strictly above and exactly equal to the row's target score. NumPy does that in four
passes over the tile (two comparisons into a bool buffer, two row sums) and took about half as
long as the matrix product itself; this kernel reads the tile once, comparing eight floats per
AVX2 instruction, and costs a few percent of the product (measured in
``benchmarks/__main__.py eval``). It also reads back the few scores (padding, targets, seen items)
whose contribution the caller subtracts afterwards, so the tile is not touched again.

Imported lazily (numba's import and first compilation take a moment; the compiled code is cached
on disk), so CLI and serving start-up never pay for it.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["count_tile"]

# Counts are summed as float32 inside the vectorised loop (eight lanes per instruction; the sums
# are whole numbers, exact below 2**24) and moved into int64 after at most this many columns.
_CHUNK = 1 << 20


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy", fastmath={"reassoc"})
def count_tile(
    s: np.ndarray,
    t: np.ndarray,
    higher: np.ndarray,
    equal: np.ndarray,
    fix_rows: np.ndarray,
    fix_cols: np.ndarray,
    lo: int,
    fix_vals: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add to ``higher[i]`` / ``equal[i]`` how many of ``s[i]`` are > / == ``t[i]`` (NaN on
    either side counts as neither), and set ``fix_vals[k] = s[fix_rows[k], fix_cols[k] - lo]``.

    ``s`` is float32 [B, W] C-contiguous, ``t`` float32 [B]; counts are int64 [B]. Only
    reassociation of the float additions is allowed to the compiler (for vectorised sums of
    0/1 values, exact at any order); comparisons keep IEEE semantics, NaN included.
    """
    b, w = s.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for i in range(b):
        ti = t[i]
        for c0 in range(0, w, _CHUNK):
            c1 = min(c0 + _CHUNK, w)
            h = np.float32(0.0)
            e = np.float32(0.0)
            for j in range(c0, c1):
                x = s[i, j]
                h += one if x > ti else zero
                e += one if x == ti else zero
            higher[i] += np.int64(h)
            equal[i] += np.int64(e)
    for k in range(fix_rows.shape[0]):
        fix_vals[k] = s[fix_rows[k], fix_cols[k] - lo]
