"""The model protocol as types: what training, evaluation, bundle export and serving call on a
model, whatever its class (the :class:`~journeyrec.models.base.SequenceModel` subclasses, an
:class:`~journeyrec.models.ensemble.Ensemble`, the baselines). Structural: a model satisfies it
by having these members, no class needs to inherit from it (see :mod:`journeyrec.models.base`
for what each member means). Optional members (``scores``, ``purchase_intent``,
``session_vectors_unpadded``) are looked up with ``hasattr`` where they are used.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Self, TypeGuard

import torch
from torch import nn

__all__ = [
    "RankingModel",
    "EmbeddingModel",
    "IntentModel",
    "UnpaddedModel",
    "is_embedding_model",
    "embedding_model",
    "has_unpadded_path",
    "has_purchase_intent",
]


class RankingModel(Protocol):
    """Any model evaluation ranks with: sequence models, ensembles and the baselines (which
    score with an optional ``scores(items, features)`` instead of session and item vectors)."""

    training: bool

    @property
    def max_len(self) -> int: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Self: ...

    def eval(self) -> Self: ...


class EmbeddingModel(RankingModel, Protocol):
    """A model that embeds sessions and items in one space (``score = session . item``): the
    sequence models and ensembles, what a bundle exports and serving encodes with."""

    @property
    def hparams(self) -> Mapping[str, Any]: ...

    def session_vectors(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor: ...

    def item_table(self) -> torch.Tensor: ...

    def item_vectors(self, table: torch.Tensor | None = None) -> torch.Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...


class IntentModel(EmbeddingModel, Protocol):
    """An embedding model built with the purchase-intent head."""

    def purchase_intent(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor: ...


class UnpaddedModel(EmbeddingModel, Protocol):
    """An embedding model with the cheaper ``session_vectors`` of windows without padding."""

    def session_vectors_unpadded(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def is_embedding_model(model: object) -> TypeGuard[EmbeddingModel]:
    """Whether ``model`` scores by session and item vectors (the baselines do not)."""
    return hasattr(model, "session_vectors") and hasattr(model, "item_vectors")


def embedding_model(model: object) -> EmbeddingModel:
    """``model`` as an :class:`EmbeddingModel`; TypeError when it has no session or item vectors."""
    if not is_embedding_model(model):
        raise TypeError(f"model {type(model).__name__} has no session_vectors() / item_vectors()")
    return model


def has_unpadded_path(model: object) -> TypeGuard[UnpaddedModel]:
    """Whether ``model`` has ``session_vectors_unpadded`` (the optional protocol method)."""
    return hasattr(model, "session_vectors_unpadded")


def has_purchase_intent(model: object) -> TypeGuard[IntentModel]:
    """Whether ``model`` was built with the purchase-intent head (the optional protocol method)."""
    return hasattr(model, "purchase_intent")
