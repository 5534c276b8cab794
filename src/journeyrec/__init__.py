"""journeyrec: session-based recommenders for e-commerce customer journeys.

The public Python API (:mod:`journeyrec.api`) is importable from here: ``prepare``, ``train``,
``evaluate``, ``load_bundle`` and ``RecommendRequest``. Importing ``journeyrec`` itself is cheap:
those names load their layers (torch, Lightning, MLflow) on first use.

Layers, each importing only those below it (checked by import-linter, ``.importlinter``)::

    api | cli | config | console        the entry points
    training | serving                 Lightning and MLflow | the inference path and HTTP service
    evaluation                          full ranking over vectors and bundles
    tracking                            MLflow: the tracking URI, tags, runs
    bundle                              format, read_bundle, FAISS index, rule statistics, export
    models                              plain torch modules, losses, baselines
    data                                schema and vocabularies, readers, privacy, sequences
    typed | errors, io                  typed configs, user errors, atomic writes
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

# FAISS logs its CPU-feature probing at INFO on every import; it is noise for our users.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

__version__ = "0.1.0"

_API = ("prepare", "train", "evaluate", "load_bundle", "RecommendRequest", "compose")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("journeyrec.api"), name)
    raise AttributeError(f"module 'journeyrec' has no attribute {name!r}")
