"""Models: plain torch modules (no Lightning inside) so that serving can load them alone.

Every sequential model exposes the same protocol (see :mod:`journeyrec.models.base`), which is
all training, evaluation and serving rely on:

* ``forward(items, features) -> [B, L, D]`` hidden state per position;
* ``session_vectors(items, features) -> [B, D]`` the query vector of each sequence;
* ``item_vectors() -> [N + 1, D]`` one vector per item id (row 0 = padding), so that
  ``score = session_vector @ item_vectors.T`` and a FAISS inner-product index reproduce the model;
* optionally ``purchase_intent(items, features, table=None) -> [B]`` probabilities.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

from journeyrec.models.config import MODEL_CONFIGS, ModelConfig
from journeyrec.typed import to_typed

if TYPE_CHECKING:  # the package itself stays light: journeyrec.config imports its config schemas
    import pyarrow as pa

    from journeyrec.models.base import SequenceModel

__all__ = ["MODELS", "build_model"]

# model name -> "module:class"; each class has ``from_config(cfg, n_items, feature_sizes, catalog,
# intent_head)`` and ``from_hparams(hparams)``
MODELS: dict[str, str] = {
    "sasrec": "journeyrec.models.sasrec:SASRec",
    "bert4rec": "journeyrec.models.bert4rec:BERT4Rec",
    "gru4rec": "journeyrec.models.gru4rec:GRU4Rec",
    "two_tower": "journeyrec.models.two_tower:TwoTower",
    "ensemble": "journeyrec.models.ensemble:Ensemble",  # trained models combined (never built from a config)
}


def build_model(
    cfg: ModelConfig | Mapping[str, Any],
    n_items: int,
    feature_sizes: Mapping[str, int],
    catalog: pa.Table | None = None,
    intent_head: bool = False,
) -> SequenceModel:
    """Instantiate the model ``cfg`` describes for a catalogue of ``n_items`` items (``catalog``,
    aligned with internal ids, supplies item attributes when the config names some; ``intent_head``
    adds the purchase-intent head that ``loss.intent_weight`` trains). A mapping is checked
    against the schema of its ``name`` first."""
    name = cfg.name if isinstance(cfg, ModelConfig) else cfg.get("name")
    if name == "ensemble":
        raise ValueError(
            "model.name=ensemble combines trained models (journeyrec.bundle.ensemble.ensemble_bundle); "
            "train its members"
        )
    if not isinstance(cfg, ModelConfig):
        if name not in MODEL_CONFIGS:
            raise ValueError(f"unknown model '{name}'; available: {sorted(MODELS)}")
        cfg = to_typed(MODEL_CONFIGS[name], cfg)
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model '{cfg.name}'; available: {sorted(MODELS)}")
    module, cls = MODELS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls).from_config(cfg, n_items, feature_sizes, catalog, intent_head)
