"""One bundle from several trained bundles: the mean of their scores (:class:`journeyrec.models.ensemble.Ensemble`),
served from one FAISS index of the concatenated item vectors and read back like any bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from journeyrec.bundle.format import Bundle, BundleError, read_bundle, write_bundle
from journeyrec.models.ensemble import Ensemble
from journeyrec.models.transitions import Transitions

__all__ = ["ensemble_bundle"]


def ensemble_bundle(directories: Sequence[str | Path], out: str | Path, index_factory: str | None = None) -> Path:
    """Write to ``out`` the bundle of the mean score of the bundles in ``directories`` (trained on
    the same catalogue). Its catalogue, rule statistics and training configuration are the first
    bundle's; the index is the first bundle's kind unless ``index_factory`` says otherwise, built
    on the concatenated item vectors. Its metrics are empty: evaluate it (scripts/evaluate.py)."""
    if len(directories) < 2:
        raise BundleError(f"an ensemble needs at least 2 bundles, got {len(directories)}")
    if Path(out).resolve() in {Path(d).resolve() for d in directories}:
        raise BundleError(f"{out}: is one of the ensemble's bundles; write the ensemble to a new directory")
    bundles = [read_bundle(d) for d in directories]
    first = bundles[0]
    for b in bundles[1:]:
        if not np.array_equal(b.item_ids, first.item_ids):
            raise BundleError(
                f"{b.directory}: its catalogue differs from {first.directory}'s; an ensemble needs one catalogue"
            )
    model = Ensemble([b.model for b in bundles])
    config = {**first.config, "ensemble_of": [str(b.directory) for b in bundles]}
    factory = index_factory or str(first.manifest["index"]["factory"])
    return write_bundle(
        out, model, first.catalog, config, {}, factory, stats=first.stats, transitions=_mean_blend(bundles)
    )


def _mean_blend(bundles: Sequence[Bundle]) -> Transitions | None:
    """The members' transition blends as one: with the same counts, the mean of ``score_m + w_m *
    log(1 + count)`` is the mean score plus ``mean(w_m) * log(1 + count)`` (a member without a blend
    has w = 0). Members whose counts differ (other training prefixes) cannot be combined."""
    blends = [b.transitions for b in bundles]
    shipped = [t for t in blends if t is not None]
    if not shipped:
        return None
    first = shipped[0]
    for b, t in zip(bundles, blends):
        if t is not None and not (
            (t.window, t.history) == (first.window, first.history)
            and all(np.array_equal(getattr(t, a), getattr(first, a)) for a in ("indptr", "indices", "values"))
        ):
            raise BundleError(
                f"{b.directory}: its transition counts differ from the other members' (other training "
                "prefixes); ensemble bundles trained on the same prefixes"
            )
    return first.with_weight(sum(t.weight for t in shipped) / len(bundles))
