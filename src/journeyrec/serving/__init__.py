"""Serving: the inference path over a bundle (no Lightning, no MLflow).

Names are imported lazily, so that ``journeyrec.serving.settings`` (plain dataclasses that the
Hydra schemas reuse) can be imported without loading torch and FAISS.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Recommender": "journeyrec.serving.recommender",
    "RecommendRequest": "journeyrec.serving.request",
    "RecommendResult": "journeyrec.serving.request",
    "Recommendation": "journeyrec.serving.request",
    "Event": "journeyrec.serving.request",
    "Context": "journeyrec.serving.request",
    "RulesConfig": "journeyrec.serving.settings",
    "BoostRule": "journeyrec.serving.settings",
    "FilterError": "journeyrec.serving.catalog",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'journeyrec.serving' has no attribute {name!r}")
