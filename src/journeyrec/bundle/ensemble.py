"""One bundle from several trained bundles: the mean of their scores (:class:`journeyrec.models.ensemble.Ensemble`),
served from one FAISS index of the concatenated item vectors and read back like any bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from journeyrec.bundle.format import BundleError, read_bundle, write_bundle
from journeyrec.models.ensemble import Ensemble

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
    return write_bundle(out, model, first.catalog, config, {}, factory, stats=first.stats)
